//! Operating etl: the run history, `etl run --every` and its clean stop on SIGTERM, the
//! data model's mistakes in the log and in `etl check`, and `etl plan`'s cost of a run. The built binary, the demo docs in a
//! Grist emulator, real Postgres and the Bolt graph server; every test reads back what it
//! asserts (rows, pages, series).

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::{root, wait_for, Setup};

const DATA: &str = "demo-data";

async fn history_json(s: &Setup, args: &[&str]) -> Value {
    let mut all = vec!["history", "--json"];
    all.extend_from_slice(args);
    let r = s.etl(&all, &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_records_each_run_with_its_steps_and_failed_keys() {
    let s = Setup::demo().await;
    s.model.poison("Ada Brook");
    let first = s.etl(&["run"], &[]).await;
    assert_eq!(first.code, Some(1), "a key failed: {first}");
    s.model.cure();
    s.run().await;

    let runs = history_json(&s, &[]).await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    // Newest first.
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert_eq!(runs[1]["outcome"], "keys_failed");
    assert_eq!(runs[1]["command"], "etl run");
    assert!(runs[1]["summary"]["texts_embedded"].as_u64().unwrap() > 0);
    assert!(runs[1]["summary"]["grist_requests"].as_u64().unwrap() > 0);

    let failed_run = runs[1]["run_id"].as_i64().unwrap();
    let one = history_json(&s, &[&failed_run.to_string()]).await;
    let steps = one["steps"].as_array().unwrap();
    let embed = steps.iter().find(|st| st["step"] == "embed_nodes").unwrap();
    assert_eq!(embed["outcome"], "keys_failed");
    assert_eq!(embed["keys_failed"], 1);
    // The failed key, by its digest (no row value in the history), and why.
    let failures = embed["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = failures[0].as_str().unwrap();
    assert!(
        failure.starts_with("key#") && failure.contains("`person_name`"),
        "{failure}"
    );
    assert!(!failure.contains("Ada Brook"), "{failure}");
    assert!(embed["counters"]["texts_embedded"].as_u64().unwrap() > 0);
    assert!(
        embed["tables"]["rag_anchor_embeddings"]["inserted"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Every step of the pipeline is recorded under the run, with its start.
    assert_eq!(steps.len(), 11, "{steps:?}");
    assert!(steps.iter().all(|st| st["started_at"].is_string()));

    // The retry of the failed key is the second run's work.
    let last = history_json(&s, &["--last"]).await;
    let embed = last["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["step"] == "embed_nodes")
        .unwrap()
        .clone();
    assert_eq!(embed["keys_processed"], 1, "{embed}");
    assert_eq!(embed["outcome"], "succeeded");

    // The text form lists both, and one run's steps.
    let text = s.etl(&["history"], &[]).await;
    assert!(
        text.stdout.contains("keys_failed") && text.stdout.contains("succeeded"),
        "{text}"
    );
    let text = s.etl(&["history", &failed_run.to_string()], &[]).await;
    assert!(
        text.stdout.contains("embed_nodes") && text.stdout.contains("failed: key#"),
        "{text}"
    );
    let missing = s.etl(&["history", "999999"], &[]).await;
    assert_eq!(missing.code, Some(4), "{missing}");

    // Retention: runs older than it are pruned by the next run's end.
    s.db.execute("UPDATE etl.runs SET started_at = started_at - interval '40 days'")
        .await;
    s.etl(&["run"], &[("ETL_HISTORY_RETENTION", "30d")]).await;
    assert_eq!(s.count("SELECT count(*) FROM etl.runs").await, 1);
    assert_eq!(
        s.count("SELECT count(DISTINCT run_id) FROM etl.run_steps")
            .await,
        1
    );
}

/// The rows of a run of the history, by step, and the run's outcome.
async fn run_row(s: &Setup, run: i64) -> (Option<String>, BTreeSet<String>) {
    let outcome: Option<String> =
        s.db.text(&format!(
            "SELECT outcome FROM etl.runs WHERE run_id = {run}"
        ))
        .await;
    let steps =
        s.db.texts(&format!(
            "SELECT step || '=' || outcome FROM etl.run_steps WHERE run_id = {run}"
        ))
        .await;
    (outcome, steps.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_runs_again_and_stops_cleanly_on_sigterm_mid_run() {
    let s = Setup::demo().await;
    // Batches of one key: the renames below leave keys pending behind the batches in flight.
    let config = support::config_with_batch_size(1);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
    cmd.current_dir(root())
        .arg("--config")
        .arg(&config)
        .args(["run", "--every", "1s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &s.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();

    // Two rounds, the second a no-op.
    wait_for("two finished runs", Duration::from_secs(60), async || {
        s.count("SELECT count(*) FROM etl.runs WHERE outcome = 'succeeded'")
            .await
            >= 2
    })
    .await;
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 34);

    // Renames, and a slow model: the next round stops in the middle of its embeddings, Ada's
    // batch (the first key) at the model, the next waiting its turn, the rest pending.
    s.model.set_latency(Duration::from_secs(3));
    s.docs()
        .update_record(
            DATA,
            "Anchor_person",
            1,
            json!({"person_name": "Ada Renamed"}),
        )
        .unwrap();
    for id in 2..=5 {
        s.docs()
            .update_record(
                DATA,
                "Anchor_person",
                id,
                json!({"person_name": format!("Person {id} renamed")}),
            )
            .unwrap();
    }
    let before = s
        .count("SELECT coalesce(max(run_id), 0) FROM etl.runs")
        .await;
    // SIGTERM while the model holds the embedding request: that batch is in flight.
    wait_for(
        "the next run's embedding request",
        Duration::from_secs(30),
        async || s.model.texts().iter().any(|t| t == "Ada Renamed"),
    )
    .await;
    let run = s
        .count(&format!(
            "SELECT max(run_id) FROM etl.runs WHERE run_id > {before}"
        ))
        .await;
    let killed_at = Instant::now();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("etl exits after its batch in flight")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the loop ends with 0 when asked to stop"
    );
    // It waited for the batch in flight (the model's 3 s), no longer than a few of them.
    assert!(killed_at.elapsed() < Duration::from_secs(20));

    let (outcome, steps) = run_row(&s, run).await;
    assert_eq!(outcome.as_deref(), Some("interrupted"), "{steps:?}");
    // The step stopped after its batch in flight, which committed: its work is not lost.
    assert!(steps.contains("embed_nodes=interrupted"), "{steps:?}");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE attribute_value = 'Ada Renamed'")
            .await,
        1
    );
    // No round after the stop.
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM etl.runs WHERE run_id > {run}"
        ))
        .await,
        0
    );

    // The next run converges: the graph gets the rename.
    s.model.set_latency(Duration::ZERO);
    s.run().await;
    let names = s.graph_nodes().await.join("\n");
    assert!(names.contains("Ada Renamed"), "{names}");
    assert_eq!(
        s.count("SELECT count(*) FROM rag_anchor_embeddings WHERE attribute_value = 'Ada Renamed'")
            .await,
        1
    );
    let r = s.run().await;
    assert!(
        r.stdout.contains("graph_nodes") && !r.stdout.contains("graph_nodes_written"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_model_mistakes_are_warned_once_and_listed_by_check() {
    let s = Setup::demo().await;
    let model = "demo-data-model";
    // An anchor with no table (silent before), an attribute with no column, a link to an
    // unknown anchor.
    s.docs()
        .add_record(
            model,
            "Anchors",
            json!({"noun": "pet", "description": "A pet"}),
        )
        .unwrap();
    s.docs()
        .add_record(
            model,
            "Anchor_attributes",
            json!({"anchor": "person", "attribute_name": "shoe_size", "embeddable": false}),
        )
        .unwrap();
    s.docs()
        .add_record(
            model,
            "Links",
            json!({"anchor1": "person", "anchor2": "dragon", "sentence": "PERSON_rides_DRAGON"}),
        )
        .unwrap();
    let run = s.etl(&["run"], &[]).await;
    assert_eq!(run.code, Some(0), "a mistake is not a failure: {run}");
    let expected = [
        "Data Model doc `demo-data-model`, table `Anchors`, the row of noun `pet`",
        "table `Anchor_person` of the Data doc has no column `shoe_size`",
        "anchor2 `dragon` is not an anchor of the table Anchors",
    ];
    for e in expected {
        assert!(run.stderr.contains(e), "no warning `{e}`: {run}");
    }
    assert!(run.stdout.contains("data_model_problems: 3"), "{run}");
    let check = s.etl(&["check"], &[]).await;
    for e in expected {
        assert_eq!(check.stdout.matches(e).count(), 1, "`{e}` once in: {check}");
    }
    // Dependencies keep quiet: no connection-pool lines in a run's log.
    let plain = s.etl_with(&["run"], &[], &["RUST_LOG"]).await;
    assert!(
        !plain.stderr.to_lowercase().contains("connection pool"),
        "{plain}"
    );
    assert!(
        plain.stderr.contains("step finished"),
        "etl's own steps log at info: {plain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_texts_a_run_would_embed_with_the_cache_looked_up() {
    let s = Setup::demo().await;
    s.run().await;
    // Person 4 gets a new name (a text never embedded) and person 1's bio (in the cache).
    let bio_of_1 = "Spends weekends by the river watching otters play.";
    s.docs()
        .update_record(
            DATA,
            "Anchor_person",
            4,
            json!({"person_name": "Dana Planned", "bio": bio_of_1}),
        )
        .unwrap();
    let r = s
        .etl(&["run", "--step", "grist_graph", "--step", "nodes"], &[])
        .await;
    assert_eq!(r.code, Some(0), "{r}");
    let requests = s.model.requests();
    let plan = s.etl(&["plan", "--step", "embed_nodes"], &[]).await;
    assert_eq!(plan.code, Some(0), "{plan}");
    assert!(
        plan.stdout
            .contains("table `rag_anchor_embeddings`: rows of up to 1 keys written"),
        "{plan}"
    );
    assert!(
        plan.stdout.contains("texts to embed: 1, about ")
            && plan
                .stdout
                .contains("(1 more already in the embedding cache)"),
        "{plan}"
    );
    // Planning sent nothing to the model and wrote nothing.
    assert_eq!(s.model.requests(), requests);
    let seq = s.seq().await;
    s.etl(&["plan"], &[]).await;
    assert_eq!(s.seq().await, seq);
    // The run does what the plan said.
    let run = s.etl(&["run", "--step", "embed_nodes"], &[]).await;
    assert!(run.stdout.contains("texts_embedded: 1"), "{run}");
}
