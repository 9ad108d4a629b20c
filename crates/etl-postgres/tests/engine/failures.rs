//! Failures: failing keys are recorded while the rest finish, the mass-delete guard and its
//! bounded counts, a source failing part way deletes nothing, and transient failures are
//! retried before they count.

use etl_core::report::StepRunStatus;
use etl_core::store::Store;
use etl_testkit::steps::ReadFailure;

use crate::harness::{pkey, step, Harness};

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

    let r = h.run_allowing_mass_delete().await;
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

/// The guard's counts stop where they decide (`Store::count_live_to`): a change feed removing
/// 1% of a 2,000,000-row table used to count all of its live rows, over a second a table at L.
/// The count must stop exactly at the bound and never count a tombstone.
#[tokio::test]
async fn counting_live_rows_up_to_what_the_guard_needs_stops_there_and_skips_tombstones() {
    let h = Harness::new().await;
    h.run().await;
    let def = h.pipeline().tables["src_nodes"].clone();
    let live = h.store.count_live(&def).await.unwrap();
    assert_eq!(live, 13);
    for (enough, counted) in [(0, 0), (1, 1), (5, 5), (13, 13), (14, 13), (1000, 13)] {
        assert_eq!(
            h.store.count_live_to(&def, enough).await.unwrap(),
            counted,
            "counted up to {enough}"
        );
    }
    assert_eq!(h.store.count_live_to(&def, u64::MAX).await.unwrap(), 13);
    // Tombstones are not live: 9 rows removed (allowed), 4 left, however far it may count.
    h.source.edit("src_nodes", |rows| rows.truncate(4));
    let r = h.run_allowing_mass_delete().await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.store.count_live_to(&def, 5).await.unwrap(), 4);
    assert_eq!(h.store.count_live_to(&def, 3).await.unwrap(), 3);
}
