//! Source memos: an unchanged source is not read again, a changed one is, and a source
//! reverted after a failed run is read again, not skipped with the failed run's partial writes.

use etl_core::report::StepRunStatus;
use etl_core::RunOptions;
use etl_testkit::steps::ReadFailure;

use crate::harness::{options, step, Harness};

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
