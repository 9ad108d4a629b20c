//! The work queue contract: how the batches of a step's run are shared among workers.
//!
//! A run that uses the queue publishes each transform's pending keys as batches, once the steps
//! it depends on have finished; any worker (a task of the run itself, or an `etl worker`
//! process elsewhere) claims a batch, processes it with the step's own code and per-batch
//! transactions, and completes it with what it did. A queue guarantees:
//! * **One holder.** A claimed batch is leased to one worker; no other can claim it while the
//!   lease holds ([`WorkQueue::claim`]).
//! * **Leases end.** A lease not renewed ([`WorkQueue::renew`]) within its duration ends, and
//!   the batch can be claimed again: a worker killed with its batch loses it to another. The
//!   batch's bookkeeping decides what was committed (a batch processed twice writes nothing
//!   the second time), so a batch is completed once, whoever finishes it.
//! * **Steps in order.** Only published batches can be claimed, and a run publishes a step's
//!   batches only after the steps it depends on have finished.
//! * **Only live runs.** A batch can be claimed only while its run goes on: the run is not
//!   recorded as ended, it renews its own heartbeat, and it has not closed the step
//!   ([`WorkQueue::close`]). Batches of a run that died wait for nobody.
//! * **Only matching code.** A worker claims only batches of steps whose fingerprint equals its
//!   own, so a worker with another configuration never processes them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::report::TableCounts;
use crate::store::StoreError;
use crate::value::Key;

/// A batch a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    pub id: i64,
    pub run_id: i64,
    pub step: String,
    pub keys: Vec<Key>,
}

/// What processing a batch did, as the run's report adds it up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchResult {
    pub processed: u64,
    pub failed_keys: u64,
    /// The first failures, as the report keeps them (`key digest: error`).
    pub failures: Vec<String>,
    pub tables: BTreeMap<String, TableCounts>,
    pub counters: BTreeMap<String, u64>,
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Publishes batches of a step's keys for run `run`, under the step's fingerprint.
    async fn publish(
        &self,
        run: i64,
        step: &str,
        fingerprint: &str,
        batches: Vec<Vec<Key>>,
    ) -> Result<(), StoreError>;

    /// Leases one published batch to `worker` for `lease`: of `run` and `step` when given, else
    /// of any run, among the steps (name, fingerprint) the worker can process.
    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        only: Option<(i64, &str)>,
        steps: &[(String, String)],
    ) -> Result<Option<ClaimedBatch>, StoreError>;

    /// Renews every lease `worker` holds, and says it is alive: the worker (`run: None`, an
    /// `etl worker`), or run `run` that shares its batches.
    async fn renew(
        &self,
        worker: &str,
        lease: Duration,
        run: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Completes a batch with what it did. `false` when the worker had lost its lease and
    /// another completed the batch first (the result is then dropped).
    async fn complete(
        &self,
        batch: i64,
        worker: &str,
        result: &BatchResult,
    ) -> Result<bool, StoreError>;

    /// How many batches of `step` in `run` are not completed yet (waiting or leased).
    async fn open(&self, run: i64, step: &str) -> Result<u64, StoreError>;

    /// The results of the batches of `step` in `run` that were completed, all of them.
    async fn results(&self, run: i64, step: &str) -> Result<Vec<BatchResult>, StoreError>;

    /// The run is done with `step` (finished, stopped or failed): its batches not completed
    /// can no longer be claimed.
    async fn close(&self, run: i64, step: &str) -> Result<(), StoreError>;

    /// A worker stops: its leases end now, so others take its batches at once.
    async fn leave(&self, worker: &str) -> Result<(), StoreError>;
}
