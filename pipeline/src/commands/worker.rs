//! `etl worker`: takes batches of the runs of this pipeline from the work queue until SIGTERM,
//! and the queue options `etl run` shares its batches with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etl_core::history::Invocation;
use etl_core::runner::QueueOptions;
use etl_core::Runner;
use etl_postgres::queue::PgQueue;
use etl_postgres::PgStore;

use crate::exit::Exit;

/// How long a lease holds without renewal: `ETL_LEASE_TIMEOUT` (e.g. `20s`), default 20 s.
pub fn lease_timeout() -> Result<Duration, String> {
    match std::env::var("ETL_LEASE_TIMEOUT") {
        Ok(v) if !v.is_empty() => crate::schedule::parse_duration(&v)
            .map_err(|e| format!("ETL_LEASE_TIMEOUT: {e}"))
            .and_then(|d| {
                if d < Duration::from_secs(1) {
                    Err("ETL_LEASE_TIMEOUT: at least 1s".into())
                } else {
                    Ok(d)
                }
            }),
        _ => Ok(Duration::from_secs(20)),
    }
}

/// The queue of this store, for the process `who` says (its worker id, host and pid).
pub fn queue_options(
    store: &PgStore,
    who: &Invocation,
    lease: Duration,
    local: usize,
) -> QueueOptions {
    QueueOptions {
        queue: Arc::new(PgQueue::new(
            store.pool().clone(),
            who.host.clone(),
            who.pid,
        )),
        worker: who.worker.clone(),
        lease,
        local_workers: local,
    }
}

/// Whether a run should share its batches: `--workers N` asked for it, or workers are alive.
pub async fn share_batches(store: &PgStore, lease: Duration, workers: Option<usize>) -> bool {
    if workers.is_some() {
        return true;
    }
    match etl_postgres::queue::live_workers(store.pool(), lease).await {
        Ok(live) => !live.is_empty(),
        Err(e) => {
            tracing::warn!(error = %e, "could not look for workers; the run processes its batches alone");
            false
        }
    }
}

pub async fn worker(config: &Path) -> Exit {
    let lease = match lease_timeout() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let select = crate::SelectArgs::default();
    let (pipeline, _) = match super::load_selected(config, &select, true) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let store = match super::open_store(&pipeline, true).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let who = super::run::invocation(Duration::ZERO);
    let id = who.worker.clone();
    let q = queue_options(&store, &who, lease, 1);
    let runner = Runner::new(store, Arc::new(pipeline));
    let stop = crate::schedule::stop_on_signals();
    tracing::info!(worker = %id, lease_secs = lease.as_secs_f64(), "worker started: waiting for batches");
    match runner.work(&q, &stop).await {
        Ok(n) => {
            println!("worker {id}: {n} batches");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {}", e.chain());
            Exit::StepFailed
        }
    }
}
