//! Locks: a second run is held off by the lock another run holds, or waits for it.

use std::sync::Arc;
use std::time::Duration;

use etl_core::report::StepRunStatus;
use etl_core::store::Store;
use etl_core::{RunOptions, Runner};

use crate::harness::{options, step, Harness};

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

/// Lock sessions are pooled: a lock dropped without `release` (a panic, a cancelled run) must
/// close its session, or the next step of the process would be handed a session still holding
/// it and other runs would wait for a lock nobody holds.
#[tokio::test]
async fn a_lock_dropped_unreleased_is_not_left_held_in_a_pooled_session() {
    let h = Harness::new().await;
    let pipeline = Arc::new(h.pipeline());
    h.store.prepare(&pipeline).await.unwrap();
    let load = pipeline.step("load").unwrap();
    let other_process = etl_postgres::PgStore::connect(&h.db.url, 2).await.unwrap();

    let dropped = h.store.lock(load, false).await.unwrap();
    assert!(other_process.lock(load, false).await.is_err(), "held");
    drop(dropped);
    wait_until_free(&other_process, load).await;

    // Released: the session goes back to the pool, holding nothing.
    let released = h.store.lock(load, false).await.unwrap();
    released.release().await.unwrap();
    let again = other_process.lock(load, false).await.unwrap();
    again.release().await.unwrap();
    // And the pooled session takes the lock again for this process.
    h.store
        .lock(load, false)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

/// A closed session's locks go when Postgres has noticed the close: shortly after.
async fn wait_until_free(store: &etl_postgres::PgStore, step: &etl_core::StepDef) {
    for _ in 0..100 {
        if let Ok(lock) = store.lock(step, false).await {
            lock.release().await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the dropped lock is still held");
}

/// A step's locks are tried in one statement: when one is held elsewhere, the ones taken
/// beside it in that statement must go too, and the message names the one refused.
#[tokio::test]
async fn a_lock_refused_part_way_leaves_none_of_the_steps_locks_held() {
    let h = Harness::new().await;
    let pipeline = Arc::new(h.pipeline());
    h.store.prepare(&pipeline).await.unwrap();
    let other_process = etl_postgres::PgStore::connect(&h.db.url, 2).await.unwrap();
    // `load` writes `src_nodes`; `shape` reads it (shared), and takes its own step and its
    // output table exclusively: those two are free, the shared one is not.
    let held = other_process
        .lock(pipeline.step("load").unwrap(), false)
        .await
        .unwrap();
    let advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted";
    let before = h.count(advisory).await;
    let shape = pipeline.step("shape").unwrap();
    let refused = match h.store.lock(shape, false).await {
        Ok(_) => panic!("shape's shared lock on src_nodes is held by `load`"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("table src_nodes"), "{refused}");
    // The refused session closes; Postgres drops what it took once it notices.
    let mut now = h.count(advisory).await;
    for _ in 0..100 {
        if now == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = h.count(advisory).await;
    }
    assert_eq!(
        now, before,
        "locks taken beside the refused one are still held"
    );
    // Nothing of shape's is held: once `load` is free, another process takes all of it.
    held.release().await.unwrap();
    other_process
        .lock(shape, false)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}
