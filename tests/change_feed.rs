//! Grist as a change feed, checked against the one rule that matters: after any sequence of
//! edits, a run that read only what changed leaves every table exactly as a fresh database's
//! complete run on the same docs does.
//!
//! Random sequences (seeded, so a failure can be replayed) of the edits users make: cells
//! updated, rows added and removed, node ids changed, formula cells that follow another cell,
//! columns renamed, the data model and the test set edited, and the server's history cut short.
//!
//! Module `requests`: what the feed asks of Grist (a no-op asks one question per doc and nothing
//! else) and how a delta's deletes go through the mass-delete guard.

#[path = "change_feed/requests.rs"]
mod requests;
mod support;

use std::collections::BTreeMap;

use grist_emulator::Column;
use serde_json::{json, Value};
use support::{Run, Setup};

/// The steps the change feed feeds, and the normalizing steps after them.
const STEPS: [&str; 5] = [
    "grist_data_model",
    "grist_graph",
    "grist_test_set",
    "nodes",
    "edges",
];

fn step_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["run"];
    for s in STEPS {
        args.extend(["--step", s]);
    }
    args.extend(extra);
    args
}

/// Every row of every data table, as canonical JSON, per table.
async fn tables(db: &etl_testkit::postgres::TestDb) -> BTreeMap<String, Vec<String>> {
    let mut c = db.connect().await;
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (name,) in names {
        let rows: Vec<(Value,)> = sqlx::query_as(&format!(
            "SELECT to_jsonb(t) FROM public.\"{}\" AS t",
            name.replace('"', "\"\"")
        ))
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut rows: Vec<String> = rows.iter().map(|(v,)| support::canonical(v)).collect();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// A complete run of the same steps on a database of its own.
async fn fresh_tables(s: &Setup) -> BTreeMap<String, Vec<String>> {
    let db = etl_testkit::postgres::TestDb::new().await;
    let args = step_args(&[]);
    let r = s.etl(&args, &[("DB_CONN_URI", db.url.as_str())]).await;
    assert_eq!(r.code, Some(0), "fresh run: {r}");
    tables(&db).await
}

/// A small deterministic generator (xorshift), so that a seed replays a sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const DATA: &str = "demo-data";

fn ids(s: &Setup, table: &str) -> Vec<i64> {
    s.docs()
        .records(DATA, table)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

fn pick(rng: &mut Rng, v: &[i64]) -> Option<i64> {
    (!v.is_empty()).then(|| v[rng.below(v.len())])
}

fn some_interest(rng: &mut Rng, s: &Setup) -> String {
    match rng.below(8) {
        0 => "interest:nobody".to_string(), // an edge to no node: dropped
        _ => {
            let id = pick(rng, &ids(s, "Anchor_interest")).unwrap_or(1);
            let rec = s
                .docs()
                .records(DATA, "Anchor_interest")
                .unwrap()
                .into_iter()
                .find(|r| r.id == id)
                .unwrap();
            rec.fields["interest_id"].as_str().unwrap_or("").to_string()
        }
    }
}

/// Makes one random edit; returns what it was.
async fn edit(rng: &mut Rng, s: &Setup, step: usize) -> String {
    let docs = s.docs();
    match rng.below(22) {
        0..=3 => {
            let id = pick(rng, &ids(s, "Anchor_interest")).unwrap();
            docs.update_record(
                DATA,
                "Anchor_interest",
                id,
                json!({"interest_name": format!("interest renamed {step}")}),
            )
            .unwrap();
            format!("interest {id} renamed")
        }
        4 => {
            let id = pick(rng, &ids(s, "Anchor_person")).unwrap();
            docs.update_record(
                DATA,
                "Anchor_person",
                id,
                json!({"person_name": format!("person renamed {step}")}),
            )
            .unwrap();
            format!("person {id} renamed (its alias formula follows)")
        }
        5..=8 => {
            let id = pick(rng, &ids(s, "Link_person_likes_interest")).unwrap();
            let to = some_interest(rng, s);
            docs.update_record(
                DATA,
                "Link_person_likes_interest",
                id,
                json!({"to_node_id": to, "since": 2000 + step as i64}),
            )
            .unwrap();
            format!("link {id} now to {to}")
        }
        9..=12 => {
            let links = docs.records(DATA, "Link_person_likes_interest").unwrap();
            if rng.below(3) == 0 && !links.is_empty() {
                // A copy of another row: one edge from two rows (the first by row id wins).
                let copy = &links[rng.below(links.len())];
                let mut fields = serde_json::Map::new();
                for c in ["from_node_id", "to_node_id", "edge_label"] {
                    fields.insert(c.into(), copy.fields[c].clone());
                }
                fields.insert("since".into(), json!(1900 + step as i64));
                let id = docs
                    .add_record(DATA, "Link_person_likes_interest", Value::Object(fields))
                    .unwrap();
                return format!("link {id} added, a copy of link {}", copy.id);
            }
            let person = pick(rng, &ids(s, "Anchor_person")).unwrap();
            let to = some_interest(rng, s);
            let id = docs
                .add_record(DATA, "Link_person_likes_interest", json!({"from_node_id": format!("person:{person}"), "to_node_id": to, "edge_label": "PERSON_likes_INTEREST", "since": 1990}))
                .unwrap();
            format!("link {id} added (person:{person} to {to}, maybe a duplicate)")
        }
        13 | 14 => {
            let all = ids(s, "Link_person_likes_interest");
            let n = 1 + rng.below(3);
            let mut gone = Vec::new();
            for _ in 0..n {
                if let Some(id) = pick(rng, &all).filter(|id| !gone.contains(id)) {
                    docs.delete_record(DATA, "Link_person_likes_interest", id)
                        .unwrap();
                    gone.push(id);
                }
            }
            format!("links {gone:?} removed")
        }
        15 => {
            let id = docs
                .add_record(DATA, "Anchor_interest", json!({"interest_id": format!("interest:new{step}"), "interest_name": "brand new"}))
                .unwrap();
            format!("interest {id} added")
        }
        16 => {
            let id = pick(rng, &ids(s, "Anchor_interest")).unwrap();
            if rng.below(2) == 0 {
                docs.delete_record(DATA, "Anchor_interest", id).unwrap();
                format!("interest {id} removed")
            } else {
                docs.update_record(
                    DATA,
                    "Anchor_interest",
                    id,
                    json!({"interest_id": format!("interest:moved{step}")}),
                )
                .unwrap();
                format!("interest {id} got a new node id")
            }
        }
        17 => {
            let cols = docs.table(DATA, "Anchor_interest").unwrap().columns;
            let (from, to) = if cols.iter().any(|c| c.id == "interest_name") {
                ("interest_name", "interest_title")
            } else {
                ("interest_title", "interest_name")
            };
            let url = format!(
                "{}/api/docs/{DATA}/tables/Anchor_interest/columns",
                s.grist.url()
            );
            let status = reqwest::Client::new()
                .patch(url)
                .json(&json!({"columns": [{"id": from, "fields": {"colId": to}}]}))
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_success());
            format!("column {from} renamed {to}")
        }
        18 => {
            docs.truncate_history(DATA);
            let id = pick(rng, &ids(s, "Anchor_interest")).unwrap();
            docs.update_record(
                DATA,
                "Anchor_interest",
                id,
                json!({"interest_name": format!("after the cut {step}")}),
            )
            .unwrap();
            format!("history cut, then interest {id} renamed")
        }
        19 | 20 => {
            // A person moves to another city: the edge of the `city` reference column moves.
            let id = pick(rng, &ids(s, "Anchor_person")).unwrap();
            let city = match rng.below(4) {
                0 => json!(0),
                _ => json!(pick(rng, &ids(s, "Anchor_city")).unwrap()),
            };
            docs.update_record(DATA, "Anchor_person", id, json!({"city": city}))
                .unwrap();
            format!("person {id} moved to city {city}")
        }
        21 if rng.below(2) == 0 => {
            let prompts = docs
                .records("demo-data-model", "Anchor_attributes")
                .unwrap();
            let id = prompts[rng.below(prompts.len())].id;
            docs.update_record(
                "demo-data-model",
                "Anchor_attributes",
                id,
                json!({"description": format!("described at {step}")}),
            )
            .unwrap();
            format!("attribute {id} described")
        }
        _ => {
            let gds = docs.records("demo-test-set", "Gds").unwrap();
            let id = gds[rng.below(gds.len())].id;
            docs.update_record(
                "demo-test-set",
                "Gds",
                id,
                json!({"gds_answer": format!("answer {step}")}),
            )
            .unwrap();
            let links = docs.records("demo-data-model", "Links").unwrap();
            let directed = links[0].fields["has_direction"].as_bool().unwrap_or(false);
            docs.update_record(
                "demo-data-model",
                "Links",
                links[0].id,
                json!({"has_direction": !directed}),
            )
            .unwrap();
            "the test set and the data model edited".to_string()
        }
    }
}

/// The demo, with a formula attribute on persons (`alias` = `$person_name`).
async fn demo_with_a_formula() -> Setup {
    let s = Setup::demo().await;
    let docs = s.docs();
    let mut cols = docs.table(DATA, "Anchor_person").unwrap().columns;
    cols.push(
        Column::new("alias", "Any")
            .with("isFormula", json!(true))
            .with("formula", json!("$person_name"))
            .with("colRef", json!(901)),
    );
    docs.replace_columns(DATA, "Anchor_person", cols).unwrap();
    docs.add_record(
        "demo-data-model",
        "Anchor_attributes",
        json!({"attribute_name": "alias", "anchor": 1, "embeddable": false}),
    )
    .unwrap();
    s
}

fn summary_counter(r: &Run, name: &str) -> u64 {
    r.stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_any_edits_a_run_of_the_changes_equals_a_complete_run() {
    let mut changes_only = 0;
    // Two sequences in CI; `ETL_CHANGE_FEED_SEQUENCES=N` runs N (a seed each) by hand.
    let sequences: u64 = std::env::var("ETL_CHANGE_FEED_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let seeds = (0..sequences).map(|i| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1) | 1);
    for seed in seeds {
        let s = demo_with_a_formula().await;
        let args = step_args(&["--allow-mass-delete"]);
        let r = s.etl(&args, &[]).await;
        assert_eq!(r.code, Some(0), "{r}");
        let mut rng = Rng(seed);
        let mut done = Vec::new();
        for step in 0..12 {
            for _ in 0..1 + rng.below(4) / 3 {
                done.push(edit(&mut rng, &s, step).await);
            }
            let r = s.etl(&args, &[]).await;
            assert_eq!(r.code, Some(0), "seed {seed:#x}, after {done:#?}: {r}");
            changes_only += summary_counter(&r, "read_changes_only");
            let got = tables(&s.db).await;
            let want = fresh_tables(&s).await;
            for (table, rows) in &want {
                let have = got.get(table).cloned().unwrap_or_default();
                let missing: Vec<&String> = rows.iter().filter(|x| !have.contains(x)).collect();
                let extra: Vec<&String> = have.iter().filter(|x| !rows.contains(x)).collect();
                assert!(
                    missing.is_empty() && extra.is_empty() && have.len() == rows.len(),
                    "seed {seed:#x}: table {table} differs from a complete run's after {done:#?}\n\
                     missing: {missing:#?}\nextra: {extra:#?}\n{r}"
                );
            }
        }
    }
    assert!(
        changes_only > 10,
        "the runs should mostly read only the changes, but only {changes_only} did"
    );
}
