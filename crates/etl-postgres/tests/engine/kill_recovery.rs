//! Crash safety: a run killed (SIGKILL) in the middle of an extract or a transform converges
//! on the next run to the state of an uninterrupted run. The test re-runs its own binary as the
//! child to kill.

use std::sync::Arc;
use std::time::Duration;

use etl_core::config::parse;
use etl_core::dag::compile;
use etl_core::store::Store;
use etl_core::{Pipeline, Runner};
use etl_postgres::PgStore;
use etl_testkit::steps::{FnTransform, MemorySource, TestCatalog};

use crate::harness::{options, Harness};
use crate::pipeline_under_test::{seed, shape, tags, CONFIG};

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
    // This test's name as the test binary knows it (its module path without the crate name),
    // for running exactly this test in the child.
    let test_name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::a_run_killed_at_any_point_converges"),
        None => "a_run_killed_at_any_point_converges".to_string(),
    };
    for (phase, table, at) in [("extract", "src_nodes", 10), ("transform", "nodes_out", 8)] {
        let h = Harness::new().await;
        seed(&h.source, 40);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test_name.as_str(), "--exact", "--nocapture"])
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
