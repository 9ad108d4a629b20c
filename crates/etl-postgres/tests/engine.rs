//! The engine against real Postgres: every test asserts rows and metadata.
//!
//! The pipeline under test (see `CONFIG`): an extract `load` of three tables from a
//! [`MemorySource`], a transform `shape` (one node row per node, its attributes filtered by the
//! side table `attrs`, joined on `node_type = anchor`), and a one-to-many, two-input transform
//! `tags` (one row per tag of a node, only while the node exists).

use std::sync::Arc;
use std::time::Duration;

use etl_core::config::parse;
use etl_core::dag::compile;
use etl_core::report::{RunReport, StepRunStatus};
use etl_core::retry::RetryPolicy;
use etl_core::store::Store;
use etl_core::{BatchOutput, InputBatch, Key, Pipeline, Row, RunOptions, Runner, Selection, Value};
use etl_postgres::PgStore;
use etl_testkit::postgres::TestDb;
use etl_testkit::steps::{text_row, FnTransform, MemorySource, ReadFailure, TestCatalog};

const CONFIG: &str = r#"
version = 1
[tables.src_nodes]
primary_key = ["node_id", "node_type"]
[tables.attrs]
primary_key = ["anchor", "attribute_name"]
[tables.src_tags]
primary_key = ["node_id", "node_type", "tag"]
[tables.nodes_out]
primary_key = ["node_id", "node_type"]
[tables.node_tags]
primary_key = ["node_id", "node_type", "tag"]

[steps.load]
kind = "extract"
uses = "source"
outputs = ["src_nodes", "attrs", "src_tags"]
labels = { stage = "source" }
batch_size = 3

[steps.shape]
kind = "transform"
uses = "shape"
inputs = ["src_nodes", { table = "attrs", on = { node_type = "anchor" } }]
outputs = ["nodes_out"]
labels = { stage = "derive", part = "nodes" }
batch_size = 2

[steps.tags]
kind = "transform"
uses = "tags"
inputs = ["src_nodes", "src_tags"]
outputs = ["node_tags"]
labels = { stage = "derive", part = "tags" }
batch_size = 2
"#;

const TABLES: &str = "
CREATE TABLE src_nodes (node_id text, node_type text, name text, age text, PRIMARY KEY (node_id, node_type));
CREATE TABLE attrs (anchor text, attribute_name text, PRIMARY KEY (anchor, attribute_name));
CREATE TABLE src_tags (node_id text, node_type text, tag text, PRIMARY KEY (node_id, node_type, tag));
CREATE TABLE nodes_out (node_id text, node_type text, attributes jsonb, PRIMARY KEY (node_id, node_type));
CREATE TABLE node_tags (node_id text, node_type text, tag text, name text, PRIMARY KEY (node_id, node_type, tag));
";

fn shape() -> FnTransform {
    FnTransform::new(&["node_id", "node_type"], |batch: &InputBatch| {
        let nodes = batch.rows_by_key("src_nodes");
        let mut out = BatchOutput::default();
        for key in &batch.keys {
            let Some(node) = nodes.get(key).and_then(|v| v.first()) else {
                continue;
            };
            let node_type = &key.parts()[1];
            let mut attributes = serde_json::Map::new();
            for a in batch.rows("attrs") {
                if a.text("anchor") == Some(node_type.as_str()) {
                    let name = a.text("attribute_name").unwrap();
                    if let Some(Value::Text(v)) = node.get(name) {
                        attributes.insert(name.to_string(), serde_json::Value::String(v.clone()));
                    }
                }
            }
            out.push(
                "nodes_out",
                key,
                Row::new()
                    .with("node_id", key.parts()[0].as_str())
                    .with("node_type", node_type.as_str())
                    .with("attributes", serde_json::Value::Object(attributes)),
            );
        }
        out
    })
}

fn tags() -> FnTransform {
    FnTransform::new(&["node_id", "node_type"], |batch: &InputBatch| {
        let nodes = batch.rows_by_key("src_nodes");
        let tags = batch.rows_by_key("src_tags");
        let mut out = BatchOutput::default();
        for key in &batch.keys {
            let Some(node) = nodes.get(key).and_then(|v| v.first()) else {
                continue;
            };
            for t in tags.get(key).into_iter().flatten() {
                out.push(
                    "node_tags",
                    key,
                    Row::new()
                        .with("node_id", key.parts()[0].as_str())
                        .with("node_type", key.parts()[1].as_str())
                        .with("tag", t.text("tag").unwrap())
                        .with("name", node.get("name").cloned().unwrap_or(Value::Null)),
                );
            }
        }
        out
    })
}

fn node(id: &str, ty: &str, name: &str, age: &str) -> Row {
    text_row(&[
        ("node_id", id),
        ("node_type", ty),
        ("name", name),
        ("age", age),
    ])
}

fn seed(source: &MemorySource, people: usize) {
    let mut nodes = Vec::new();
    for i in 0..people {
        nodes.push(node(
            &format!("p{i:03}"),
            "person",
            &format!("Person {i}"),
            &format!("{}", 20 + i),
        ));
    }
    for i in 0..3 {
        nodes.push(node(
            &format!("i{i}"),
            "interest",
            &format!("Interest {i}"),
            "",
        ));
    }
    source.set_table("src_nodes", nodes);
    source.set_table(
        "attrs",
        vec![
            text_row(&[("anchor", "person"), ("attribute_name", "name")]),
            text_row(&[("anchor", "interest"), ("attribute_name", "name")]),
        ],
    );
    let mut t = Vec::new();
    for i in 0..people {
        t.push(text_row(&[
            ("node_id", &format!("p{i:03}")),
            ("node_type", "person"),
            ("tag", "a"),
        ]));
        if i % 2 == 0 {
            t.push(text_row(&[
                ("node_id", &format!("p{i:03}")),
                ("node_type", "person"),
                ("tag", "b"),
            ]));
        }
    }
    source.set_table("src_tags", t);
}

struct Harness {
    db: TestDb,
    store: Arc<PgStore>,
    source: MemorySource,
    shape: FnTransform,
    tags: FnTransform,
    catalog: TestCatalog,
}

impl Harness {
    async fn new() -> Harness {
        let db = TestDb::new().await;
        for stmt in TABLES.split(';').filter(|s| !s.trim().is_empty()) {
            db.execute(stmt).await;
        }
        let source = MemorySource::new();
        seed(&source, 10);
        let (shape, tags) = (shape(), tags());
        let catalog = TestCatalog::new()
            .extract("source", source.clone())
            .transform("shape", shape.clone())
            .transform("tags", tags.clone());
        let store = Arc::new(PgStore::connect(&db.url, 4).await.unwrap());
        Harness {
            db,
            store,
            source,
            shape,
            tags,
            catalog,
        }
    }

    fn pipeline(&self) -> Pipeline {
        self.pipeline_from(CONFIG)
    }

    fn pipeline_from(&self, text: &str) -> Pipeline {
        let (config, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        compile(&config.unwrap(), &self.catalog, Arc::new(|_: &str| None)).unwrap()
    }

    async fn run_with(&self, opts: RunOptions) -> RunReport {
        let pipeline = Arc::new(self.pipeline());
        self.store.prepare(&pipeline).await.unwrap();
        let runner = Runner::new(self.store.clone(), pipeline);
        runner.run(&opts).await.unwrap()
    }

    async fn run(&self) -> RunReport {
        self.run_with(options()).await
    }

    async fn plan(&self) -> RunReport {
        let pipeline = Arc::new(self.pipeline());
        self.store.prepare(&pipeline).await.unwrap();
        Runner::new(self.store.clone(), pipeline)
            .plan(&options())
            .await
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// Every row of every data and meta table, as text, for comparing whole states.
    async fn dump(&self) -> Vec<String> {
        let mut c = self.db.connect().await;
        let mut out = Vec::new();
        for t in ["src_nodes", "attrs", "src_tags", "nodes_out", "node_tags"] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM {t} t ORDER BY 1"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| format!("{t}: {r}")));
            let live: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM etl.\"meta__{t}\" WHERE delete_ts IS NULL"
            ))
            .fetch_one(&mut c)
            .await
            .unwrap();
            out.push(format!("meta {t}: {live} live"));
        }
        for s in ["shape", "tags"] {
            let pending: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM etl.\"keys__{s}\" WHERE pending"
            ))
            .fetch_one(&mut c)
            .await
            .unwrap();
            out.push(format!("keys {s}: {pending} pending"));
        }
        out
    }
}

fn options() -> RunOptions {
    RunOptions {
        retry: RetryPolicy::quick(),
        ..RunOptions::default()
    }
}

fn pkey(id: &str, ty: &str) -> Key {
    Key::new([id, ty])
}

fn step<'a>(r: &'a RunReport, name: &str) -> &'a etl_core::report::StepReport {
    r.steps.iter().find(|s| s.step == name).unwrap()
}

#[tokio::test]
async fn first_run_loads_everything_and_a_second_run_writes_nothing() {
    let h = Harness::new().await;
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.count("SELECT count(*) FROM src_nodes").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 15);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes = '{\"name\": \"Person 3\"}'")
            .await,
        1
    );
    // Metadata: one live row per data row, with hashes and create = update.
    assert_eq!(
        h.count(
            "SELECT count(*) FROM etl.meta__nodes_out WHERE hash IS NOT NULL AND delete_ts IS NULL"
        )
        .await,
        13
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__node_tags WHERE producer_key IS NOT NULL")
            .await,
        15
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE NOT pending AND is_success")
            .await,
        13
    );

    let seq_before = h.count("SELECT last_value FROM etl.change_seq").await;
    let updates_before = h
        .count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts")
        .await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.calls(), 0, "no key of shape is reprocessed: {r}");
    assert_eq!(h.tags.calls(), 0);
    assert_eq!(
        h.count("SELECT last_value FROM etl.change_seq").await,
        seq_before,
        "no row changed"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts")
            .await,
        updates_before
    );
    for s in &r.steps {
        assert_eq!(s.rows_written(), 0, "{} wrote rows", s.step);
    }
    let plan = h.plan().await;
    for s in &plan.steps {
        assert_eq!(
            s.plan.unwrap().total(),
            0,
            "plan of {} shows work: {:?}",
            s.step,
            s.plan
        );
    }
}

#[tokio::test]
async fn modified_and_deleted_rows_recompute_exactly_the_affected_keys() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.source.edit("src_nodes", |rows| {
        rows[1].set("name", "Renamed");
        rows.retain(|r| r.text("node_id") != Some("p004"));
    });
    let plan = h.plan().await;
    assert_eq!(step(&plan, "load").plan.unwrap().changed, 1);
    assert_eq!(step(&plan, "load").plan.unwrap().deleted, 1);

    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.shape.keys_seen(),
        vec![pkey("p001", "person"), pkey("p004", "person")]
    );
    assert_eq!(
        h.tags.keys_seen(),
        vec![pkey("p001", "person"), pkey("p004", "person")]
    );
    let load = step(&r, "load");
    assert_eq!(load.tables["src_nodes"].updated, 1);
    assert_eq!(load.tables["src_nodes"].deleted, 1);
    assert_eq!(load.tables["src_nodes"].unchanged, 11);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE node_id = 'p001' AND attributes->>'name' = 'Renamed'").await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE node_id = 'p004'")
            .await,
        0
    );
    // p004's tags are gone too, though its rows in src_tags remain: outputs follow the node.
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p004'")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p001' AND name = 'Renamed'")
            .await,
        1
    );
    // Deletions are recorded as tombstones; other rows were not touched.
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE delete_ts IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.meta__nodes_out WHERE update_ts > create_ts AND delete_ts IS NULL").await,
        1
    );
}

#[tokio::test]
async fn one_to_many_outputs_follow_deletes_in_either_input() {
    let h = Harness::new().await;
    h.run().await;
    h.tags.reset_calls();
    // Delete one tag row (second input) of p000, which has tags a and b.
    h.source.edit("src_tags", |rows| {
        rows.retain(|r| !(r.text("node_id") == Some("p000") && r.text("tag") == Some("b")))
    });
    // Add a tag to p003 (second input).
    h.source.edit("src_tags", |rows| {
        rows.push(text_row(&[
            ("node_id", "p003"),
            ("node_type", "person"),
            ("tag", "z"),
        ]))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.tags.keys_seen(),
        vec![pkey("p000", "person"), pkey("p003", "person")]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p000'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p003'")
            .await,
        2
    );
    let t = step(&r, "tags").tables["node_tags"];
    assert_eq!((t.inserted, t.deleted, t.updated), (1, 1, 0));
    // Shape does not read src_tags: untouched.
    assert_eq!(step(&r, "shape").keys_processed, 0);

    // Delete the node itself (first input): every tag row it produced goes.
    h.source.edit("src_nodes", |rows| {
        rows.retain(|r| r.text("node_id") != Some("p002"))
    });
    h.run().await;
    assert_eq!(
        h.count("SELECT count(*) FROM node_tags WHERE node_id = 'p002'")
            .await,
        0
    );
    // A key with no input left is forgotten by the step.
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE node_id = 'p002'")
            .await,
        0
    );
    // ... but its tags remain in src_tags, so the tags step still knows the key (no outputs).
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__tags WHERE node_id = 'p002' AND NOT pending")
            .await,
        1
    );
}

#[tokio::test]
async fn a_side_table_change_invalidates_only_the_keys_that_depend_on_it() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.source.edit("attrs", |rows| {
        rows.push(text_row(&[
            ("anchor", "interest"),
            ("attribute_name", "age"),
        ]))
    });
    let plan = h.plan().await;
    assert_eq!(step(&plan, "load").plan.unwrap().new, 1);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    // Exactly the 3 interest nodes, none of the 10 persons.
    assert_eq!(
        h.shape.keys_seen(),
        vec![
            pkey("i0", "interest"),
            pkey("i1", "interest"),
            pkey("i2", "interest")
        ]
    );
    assert_eq!(h.tags.calls(), 0);
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes ? 'age'")
            .await,
        3
    );
    // Only the changed outputs were written.
    assert_eq!(step(&r, "shape").tables["nodes_out"].updated, 3);
}

#[tokio::test]
async fn failing_keys_are_recorded_the_rest_finish_and_they_succeed_once_fixed() {
    let h = Harness::new().await;
    h.shape.poison([pkey("p005", "person")]);
    let r = h.run().await;
    let shape = step(&r, "shape");
    assert_eq!(shape.status, StepRunStatus::KeysFailed, "{r}");
    assert_eq!(shape.keys_failed, 1);
    assert!(r.keys_failed());
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 12);
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE node_id = 'p005' AND pending AND NOT is_success AND attempts = 1 AND error LIKE '%poisoned%'").await,
        1
    );
    // The other step is unaffected.
    assert_eq!(step(&r, "tags").status, StepRunStatus::Succeeded);
    let status = h
        .store
        .status(h.pipeline().step("shape").unwrap())
        .await
        .unwrap();
    assert_eq!(status.keys_failed, 1);
    assert!(status.latest_errors[0].0.contains("p005"));
    assert!(status.latest_errors[0].2.contains("poisoned"));

    // Still poisoned: retried, and the attempt counted.
    h.shape.reset_calls();
    let r = h.run().await;
    assert_eq!(step(&r, "shape").keys_failed, 1);
    assert_eq!(h.shape.keys_seen(), vec![pkey("p005", "person")]);
    assert_eq!(
        h.count("SELECT attempts::bigint FROM etl.keys__shape WHERE node_id = 'p005'")
            .await,
        2
    );

    // Fixed: only that key is processed, and it succeeds.
    h.shape.poison([]);
    h.shape.reset_calls();
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.keys_seen(), vec![pkey("p005", "person")]);
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE NOT is_success OR pending")
            .await,
        0
    );
}

#[tokio::test]
async fn a_fingerprint_change_reprocesses_every_key_of_that_step_only() {
    let h = Harness::new().await;
    h.run().await;
    h.shape.reset_calls();
    h.tags.reset_calls();
    h.catalog.set_version("shape", 2);
    let plan = h.plan().await;
    assert!(step(&plan, "shape").plan.unwrap().all_keys);
    assert_eq!(step(&plan, "tags").plan.unwrap().total(), 0);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.keys_seen().len(), 13);
    assert_eq!(h.tags.calls(), 0);
    // Same output: nothing rewritten.
    assert_eq!(step(&r, "shape").rows_written(), 0);

    // A setting that is part of the identity changes the fingerprint too.
    h.shape.reset_calls();
    let with_setting = CONFIG.replace(
        "labels = { stage = \"derive\", part = \"nodes\" }",
        "labels = { stage = \"derive\", part = \"nodes\" }\nsettings = { flavour = \"spicy\" }",
    );
    let pipeline = Arc::new(h.pipeline_from(&with_setting));
    let r = Runner::new(h.store.clone(), pipeline)
        .run(&options())
        .await
        .unwrap();
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.shape.keys_seen().len(), 13);
}

#[tokio::test]
async fn the_mass_delete_guard_holds_unless_allowed() {
    let h = Harness::new().await;
    h.run().await;
    h.source.edit("src_nodes", |rows| rows.truncate(4)); // 9 of 13 gone: 69%
    let r = h.run().await;
    let load = step(&r, "load");
    match &load.status {
        StepRunStatus::Failed(e) => {
            assert!(
                e.contains("refusing to delete 9 of the 13 rows of table `src_nodes`"),
                "{e}"
            );
            assert!(e.contains("--allow-mass-delete"), "{e}");
        }
        other => panic!("expected the guard to refuse, got {other:?}"),
    }
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes").await,
        13,
        "nothing deleted"
    );
    assert!(matches!(
        step(&r, "shape").status,
        StepRunStatus::Skipped(_)
    ));

    let r = h
        .run_with(RunOptions {
            allow_mass_delete: true,
            ..options()
        })
        .await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.count("SELECT count(*) FROM src_nodes").await, 4);
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 4);
}

#[tokio::test]
async fn a_source_failing_part_way_deletes_nothing_and_the_next_run_recovers() {
    let h = Harness::new().await;
    h.run().await;
    h.source.edit("src_nodes", |rows| {
        rows.retain(|r| r.text("node_id") != Some("p009"));
        rows[0].set("name", "Changed");
    });
    for failure in [ReadFailure::TransientAfter(5), ReadFailure::FatalAfter(5)] {
        h.source.fail(Some(failure));
        let r = h.run().await;
        assert!(
            matches!(step(&r, "load").status, StepRunStatus::Failed(_)),
            "{r}"
        );
        assert_eq!(
            h.count("SELECT count(*) FROM src_nodes WHERE node_id = 'p009'")
                .await,
            1,
            "nothing deleted"
        );
    }
    h.source.fail(None);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes WHERE node_id = 'p009'")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE node_id = 'p009'")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes->>'name' = 'Changed'")
            .await,
        1
    );
}

#[tokio::test]
async fn selection_by_step_downstream_label_and_full_refresh() {
    let h = Harness::new().await;
    let only = |steps: &[&str], labels: &[(&str, &str)], downstream: bool| RunOptions {
        selection: Selection {
            steps: steps.iter().map(|s| s.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            downstream,
        },
        ..options()
    };
    let r = h.run_with(only(&["load"], &[], false)).await;
    assert_eq!(
        r.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        vec!["load"]
    );
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 0);

    let r = h.run_with(only(&[], &[("part", "nodes")], false)).await;
    assert_eq!(
        r.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        vec!["shape"]
    );
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 0);

    let r = h.run_with(only(&["load"], &[], true)).await;
    let mut names: Vec<_> = r.steps.iter().map(|s| s.step.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["load", "shape", "tags"]);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 15);

    h.shape.reset_calls();
    h.tags.reset_calls();
    let r = h
        .run_with(RunOptions {
            full_refresh: true,
            ..only(&["tags"], &[], false)
        })
        .await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.tags.keys_seen().len(), 13);
    assert_eq!(h.shape.calls(), 0);

    let pipeline = Arc::new(h.pipeline());
    let err = Runner::new(h.store.clone(), pipeline)
        .run(&only(&["nope"], &[], false))
        .await
        .unwrap_err();
    assert!(err[0].contains("no step or group named `nope`"), "{err:?}");
}

#[tokio::test]
async fn a_second_run_is_held_off_by_the_lock() {
    let h = Harness::new().await;
    let pipeline = Arc::new(h.pipeline());
    h.store.prepare(&pipeline).await.unwrap();
    // Another process holds the lock of `load` (same database, another session).
    let held = h
        .store
        .lock(pipeline.step("load").unwrap(), false)
        .await
        .unwrap();
    let r = h.run().await;
    match &step(&r, "load").status {
        StepRunStatus::Locked(m) => assert!(m.contains("locked by another etl run"), "{m}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(matches!(
        step(&r, "shape").status,
        StepRunStatus::Skipped(_)
    ));
    assert_eq!(h.count("SELECT count(*) FROM src_nodes").await, 0);
    // A step reading `src_nodes` cannot take its shared lock while the writer holds it.
    let shape_lock = h.store.lock(pipeline.step("shape").unwrap(), false).await;
    assert!(shape_lock.is_err());

    // With --wait, the run waits for the holder and then proceeds.
    let store = h.store.clone();
    let p2 = pipeline.clone();
    let waiting = tokio::spawn(async move {
        Runner::new(store, p2)
            .run(&RunOptions {
                wait_for_locks: true,
                ..options()
            })
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the waiting run must not proceed while the lock is held"
    );
    held.release().await.unwrap();
    let r = waiting.await.unwrap();
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
}

#[tokio::test]
async fn duplicate_keys_in_a_snapshot_keep_the_first_row() {
    let h = Harness::new().await;
    h.source.edit("src_nodes", |rows| {
        rows.push(node("p000", "person", "Impostor", "99"))
    });
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        step(&r, "load").counters.get("duplicate_keys_ignored"),
        Some(&1)
    );
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes WHERE name = 'Impostor'")
            .await,
        0
    );
}

/// The child side of `a_run_killed_at_any_point_converges`: runs with pauses so that the parent
/// can kill it in the middle.
async fn killable_child(url: &str, kill_phase: &str) {
    let h = ChildHarness::new(url);
    match kill_phase {
        "extract" => h.source.pause(Some(Duration::from_millis(30))),
        _ => h.shape.pause(Some(Duration::from_millis(30))),
    }
    let store = Arc::new(PgStore::connect(url, 4).await.unwrap());
    let pipeline = Arc::new(h.pipeline());
    store.prepare(&pipeline).await.unwrap();
    Runner::new(store, pipeline).run(&options()).await.unwrap();
    // The parent kills us before we get here.
    std::process::exit(3);
}

struct ChildHarness {
    source: MemorySource,
    shape: FnTransform,
    catalog: TestCatalog,
}

impl ChildHarness {
    fn new(_url: &str) -> Self {
        let source = MemorySource::new();
        source.set_table("src_nodes", Vec::new());
        seed(&source, 40);
        let mut source = source;
        source.chunk = 3;
        let shape = shape();
        let catalog = TestCatalog::new()
            .extract("source", source.clone())
            .transform("shape", shape.clone())
            .transform("tags", tags());
        ChildHarness {
            source,
            shape,
            catalog,
        }
    }

    fn pipeline(&self) -> Pipeline {
        let (config, _) = parse(CONFIG);
        compile(&config.unwrap(), &self.catalog, Arc::new(|_: &str| None)).unwrap()
    }
}

#[tokio::test]
async fn a_run_killed_at_any_point_converges() {
    if let (Ok(url), Ok(phase)) = (
        std::env::var("ETL_KILL_CHILD_DB"),
        std::env::var("ETL_KILL_CHILD_PHASE"),
    ) {
        killable_child(&url, &phase).await;
        return;
    }
    // The reference: an uninterrupted run.
    let reference = {
        let h = Harness::new().await;
        seed(&h.source, 40);
        let r = h.run().await;
        assert!(!r.any_failed(), "{r}");
        h.dump().await
    };
    for (phase, table, at) in [("extract", "src_nodes", 10), ("transform", "nodes_out", 8)] {
        let h = Harness::new().await;
        seed(&h.source, 40);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_run_killed_at_any_point_converges",
                "--exact",
                "--nocapture",
            ])
            .env("ETL_KILL_CHILD_DB", &h.db.url)
            .env("ETL_KILL_CHILD_PHASE", phase)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child is in the middle of the phase, then kill -9.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let n = h
                .db
                .scalar(&format!(
                    "SELECT CASE WHEN to_regclass('{table}') IS NULL THEN 0 ELSE (SELECT count(*) FROM {table}) END"
                ))
                .await;
            if n >= at {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the child ended before it was killed"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the child made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let partial = h.count(&format!("SELECT count(*) FROM {table}")).await;
        assert!(
            partial < 43, // 40 persons and 3 interests in all
            "killed in the middle ({phase}: {partial} rows)"
        );

        let r = h.run().await;
        assert!(!r.any_failed(), "{r}");
        assert_eq!(
            h.dump().await,
            reference,
            "state after a kill during {phase} differs from an uninterrupted run"
        );
        // And no duplicated work is left behind: a further run does nothing.
        let r = h.run().await;
        assert_eq!(r.steps.iter().map(|s| s.rows_written()).sum::<u64>(), 0);
    }
}

#[tokio::test]
async fn transient_failures_are_retried_before_they_count() {
    let h = Harness::new().await;
    // Two timeouts: within the retry budget (3 attempts), so nothing fails.
    h.shape.fail_transiently(2);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);

    // A persisting outage stops the step; its keys stay pending, none is marked failed.
    h.source
        .edit("src_nodes", |rows| rows[0].set("name", "Changed"));
    h.shape.fail_transiently(100);
    let r = h.run().await;
    assert!(
        matches!(step(&r, "shape").status, StepRunStatus::Failed(_)),
        "{r}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE pending")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.keys__shape WHERE is_success = false")
            .await,
        0
    );

    // Once the outage is over, the next run does the pending work.
    h.shape.fail_transiently(0);
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes->>'name' = 'Changed'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unchanged_source_is_not_read_again_and_a_changed_one_is() {
    let h = Harness::new().await;
    h.source.clone().remembering();
    h.run().await;
    assert_eq!(h.source.reads(), 1);
    let seq = h.count("SELECT last_value FROM etl.change_seq").await;

    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.source.reads(), 1, "an unchanged source is not read again");
    assert_eq!(h.source.skipped(), 1);
    assert_eq!(step(&r, "load").counters.get("source_unchanged"), Some(&1));
    assert_eq!(h.count("SELECT last_value FROM etl.change_seq").await, seq);

    h.source
        .edit("src_nodes", |rows| rows[0].set("name", "Changed"));
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.source.reads(), 2, "a changed source is read");
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes->>'name' = 'Changed'")
            .await,
        1
    );
    assert_eq!(step(&r, "shape").keys_processed, 1);

    // A full refresh reads the source whatever its memo says.
    h.run_with(RunOptions {
        full_refresh: true,
        ..options()
    })
    .await;
    assert_eq!(h.source.reads(), 3);
}

#[tokio::test]
async fn a_source_reverted_after_a_failed_run_was_skipped_with_its_partial_writes() {
    // Run 1 reads A and remembers it. The source becomes B; run 2 writes part of B and fails.
    // The source goes back to A. The memo of A must not let run 3 skip the source: the tables
    // hold part of B. A run forgets the memo before it writes.
    let h = Harness::new().await;
    h.source.clone().remembering();
    h.run().await;
    let original = h
        .count("SELECT count(*) FROM src_nodes WHERE node_id = 'p000' AND name = 'Person 0'")
        .await;
    assert_eq!(original, 1);

    h.source
        .edit("src_nodes", |rows| rows[0].set("name", "Changed"));
    // attrs (2 rows) and src_nodes (13) are handed over; src_tags fails.
    h.source.fail(Some(ReadFailure::TransientAfter(15)));
    let r = h.run().await;
    assert!(
        matches!(step(&r, "load").status, StepRunStatus::Failed(_)),
        "{r}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes WHERE name = 'Changed'")
            .await,
        1,
        "the failed run wrote part of B"
    );

    h.source.fail(None);
    h.source
        .edit("src_nodes", |rows| rows[0].set("name", "Person 0"));
    let r = h.run().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.source.skipped(), 0, "the source was read, not skipped");
    assert_eq!(
        h.count("SELECT count(*) FROM src_nodes WHERE node_id = 'p000' AND name = 'Person 0'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM nodes_out WHERE attributes->>'name' = 'Changed'")
            .await,
        0
    );
}
