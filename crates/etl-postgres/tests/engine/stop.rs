//! A run asked to stop: steps finish their batches in flight, start no more, are recorded
//! interrupted in the history, and the next run converges to an uninterrupted run's state.

use std::time::Duration;

use etl_core::report::StepRunStatus;
use etl_core::runner::Stop;
use etl_core::RunOptions;

use crate::harness::{options, step, Harness};
use crate::pipeline_under_test::seed;

#[tokio::test]
async fn a_stop_before_the_run_starts_nothing_and_is_recorded() {
    let h = Harness::new().await;
    let (handle, stop) = Stop::new();
    handle.stop();
    let r = h.run_with(RunOptions { stop, ..options() }).await;
    assert!(r.interrupted(), "{r}");
    for s in &r.steps {
        assert!(matches!(s.status, StepRunStatus::Interrupted(_)), "{r}");
    }
    assert_eq!(h.count("SELECT count(*) FROM src_nodes").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM etl.runs WHERE outcome = 'interrupted'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM etl.run_steps WHERE outcome = 'interrupted' AND started_at IS NULL")
            .await,
        3
    );
}

#[tokio::test]
async fn a_stop_mid_transform_keeps_whole_batches_and_the_next_run_converges() {
    let reference = Harness::new().await;
    seed(&reference.source, 20);
    reference.run().await;
    let expected = reference.dump().await;

    let h = Harness::new().await;
    seed(&h.source, 20);
    h.shape.pause(Some(Duration::from_millis(40)));
    let (handle, stop) = Stop::new();
    let run = {
        let opts = RunOptions { stop, ..options() };
        let h = &h;
        async move { h.run_with(opts).await }
    };
    let stopper = async {
        // `shape` takes 40 ms a batch of 2: stop once its first batch has committed, however
        // slow the machine (a fixed delay could fall before it, or after the last batch).
        let mut conn = h.db.connect().await;
        loop {
            // Before the run prepares it, the table does not exist: that counts as nothing done.
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM etl.\"keys__shape\" WHERE NOT pending")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or(0);
            if done > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.stop();
    };
    let (r, ()) = tokio::join!(run, stopper);
    let shape = step(&r, "shape");
    assert!(matches!(shape.status, StepRunStatus::Interrupted(_)), "{r}");
    // Whole batches committed, the rest pending.
    let processed = shape.keys_processed as i64;
    let pending = h
        .count("SELECT count(*) FROM etl.\"keys__shape\" WHERE pending")
        .await;
    let total = h.count("SELECT count(*) FROM etl.\"keys__shape\"").await;
    assert!(processed > 0 && pending > 0, "some batches, not all: {r}");
    assert_eq!(processed + pending, total);
    assert_eq!(
        h.count("SELECT count(*) FROM etl.\"keys__shape\" WHERE NOT pending AND is_success")
            .await,
        processed
    );
    h.shape.pause(None);
    let again = h.run().await;
    assert!(!again.any_failed(), "{again}");
    assert_eq!(step(&again, "shape").keys_processed as i64, pending);
    assert_eq!(h.dump().await, expected);
}
