//! A transform's batches shared through a work queue ([`crate::queue`]), and the loop of a
//! worker that takes them.
//!
//! The run that owns a step (it holds the step's locks) publishes the step's pending keys as
//! batches, works on them with its own tasks beside any `etl worker` that claims them, renews
//! its leases while it works, and waits until every batch is done; then it adds up what every
//! worker did into the step's report. A worker elsewhere runs [`Runner::work`]: it claims a
//! batch of any step whose fingerprint it shares, processes it with the same code and per-batch
//! transactions as the run would, and completes it with what it did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dag::StepDef;
use crate::queue::{BatchResult, WorkQueue};
use crate::report::StepReport;
use crate::retry::retry;
use crate::step::{StepContext, StepError, StepImpl, StepReads};
use crate::value::Key;

use super::batches::{BatchDone, BatchWorker};
use super::{RunOptions, Runner, Stop};

/// How a run or a worker uses the queue.
#[derive(Clone)]
pub struct QueueOptions {
    pub queue: Arc<dyn WorkQueue>,
    /// This process's worker id (`ETL_WORKER_NAME`, else `host:pid`).
    pub worker: String,
    /// How long a lease holds without renewal; a dead worker's batches wait this long.
    pub lease: Duration,
    /// Tasks of this process working on a step's batches (at least the step's concurrency).
    pub local_workers: usize,
}

impl std::fmt::Debug for QueueOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueOptions")
            .field("worker", &self.worker)
            .field("lease", &self.lease)
            .field("local_workers", &self.local_workers)
            .finish_non_exhaustive()
    }
}

/// Pages of pending keys published in one statement.
const PAGES_PER_PUBLISH: usize = 50;
/// How often a task with nothing to claim looks again while other workers hold batches.
const POLL: Duration = Duration::from_millis(100);
/// How often an idle worker looks for batches: one indexed query.
const IDLE_POLL: Duration = Duration::from_millis(250);

impl BatchDone {
    pub(super) fn into_result(
        self,
        counters: std::collections::BTreeMap<String, u64>,
    ) -> BatchResult {
        BatchResult {
            processed: self.processed,
            failed_keys: self.failed_keys,
            failures: self.failures,
            tables: self.tables,
            counters,
        }
    }
}

/// Renews `worker`'s leases (and the heartbeat of `run`, or of the worker) every third of the
/// lease until aborted.
fn keep_leases(
    queue: Arc<dyn WorkQueue>,
    worker: String,
    lease: Duration,
    run: Option<i64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = queue.renew(&worker, lease, run).await {
                tracing::warn!(error = %e, "could not renew the worker's leases");
            }
            tokio::time::sleep(lease / 3).await;
        }
    })
}

/// What the run's tasks on one step share.
struct StepShare<'s, 'w> {
    step: &'s StepDef,
    opts: &'s RunOptions,
    q: &'s QueueOptions,
    run_id: i64,
    worker: &'s BatchWorker<'w>,
    /// The one (step, fingerprint) the tasks claim.
    only: [(String, String); 1],
    halt: AtomicBool,
}

/// Adds a batch's result to the step's report (its counters to the step's).
pub(super) fn add_up(report: &mut StepReport, counters: &crate::step::Counters, r: BatchResult) {
    report.keys_processed += r.processed;
    report.keys_failed += r.failed_keys;
    for f in r.failures {
        if report.failures.len() < 5 {
            report.failures.push(f);
        }
    }
    for (t, c) in r.tables {
        report.tables.entry(t).or_default().add(&c);
    }
    for (name, n) in r.counters {
        counters.add(&name, n);
    }
}

impl Runner {
    /// Processes a step's pending keys through the queue (see the module's notes).
    pub(super) async fn run_queued(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        q: &QueueOptions,
        run_id: i64,
        worker: &BatchWorker<'_>,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let queue = &q.queue;
        let mut after: Option<Key> = None;
        let mut pages: Vec<Vec<Key>> = Vec::new();
        loop {
            let keys = retry(&opts.retry, "list pending keys", || {
                self.store
                    .pending_keys(step, after.as_ref(), step.batch_size)
            })
            .await?;
            let last = keys.is_empty();
            if !last {
                after = keys.last().cloned();
                pages.push(keys);
            }
            if pages.len() >= PAGES_PER_PUBLISH || (last && !pages.is_empty()) {
                let batch = std::mem::take(&mut pages);
                retry(&opts.retry, "publish batches", || {
                    queue.publish(run_id, &step.name, &step.fingerprint, batch.clone())
                })
                .await?;
            }
            if last {
                break;
            }
        }
        // Alive before anyone looks: workers claim batches only of a run that renews.
        retry(&opts.retry, "renew the run's heartbeat", || {
            queue.renew(&q.worker, q.lease, Some(run_id))
        })
        .await?;
        let renewing = keep_leases(queue.clone(), q.worker.clone(), q.lease, Some(run_id));
        let share = StepShare {
            step,
            opts,
            q,
            run_id,
            worker,
            only: [(step.name.clone(), step.fingerprint.clone())],
            halt: AtomicBool::new(false),
        };
        let outcome = self.work_on_step(&share, report).await;
        renewing.abort();
        // Whatever happened, nobody takes this step's batches any more.
        if let Err(e) = queue.close(run_id, &step.name).await {
            tracing::warn!(error = %e, "could not close the step's batches");
        }
        outcome
    }

    /// The run's own tasks on a step's published batches, then what every worker did.
    async fn work_on_step(
        &self,
        share: &StepShare<'_, '_>,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let StepShare { step, opts, q, .. } = *share;
        let tasks = q.local_workers.max(step.concurrency).max(1);
        let work = (0..tasks).map(|_| async {
            let outcome = self.claim_and_process(share).await;
            if outcome.is_err() {
                // A task that fails stops the others from claiming more.
                share.halt.store(true, Ordering::Relaxed);
            }
            outcome
        });
        let mut stopped = false;
        for outcome in futures::future::join_all(work).await {
            stopped |= outcome?;
        }
        let results = retry(&opts.retry, "read the step's batches", || {
            q.queue.results(share.run_id, &step.name)
        })
        .await?;
        for r in results {
            add_up(report, &share.worker.ctx.counters, r);
        }
        if stopped {
            return Err(StepError::interrupted());
        }
        Ok(())
    }

    /// One task of the run: claims the step's batches and processes them until none is left
    /// open; `Ok(true)` when it stopped on request.
    async fn claim_and_process(&self, s: &StepShare<'_, '_>) -> Result<bool, StepError> {
        let (queue, step, retry_policy) = (&s.q.queue, s.step, &s.opts.retry);
        loop {
            if s.opts.stop.requested() {
                return Ok(true);
            }
            if s.halt.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let claimed = retry(retry_policy, "claim a batch", || {
                queue.claim(
                    &s.q.worker,
                    s.q.lease,
                    Some((s.run_id, &step.name)),
                    &s.only,
                )
            })
            .await?;
            let Some(batch) = claimed else {
                let open = retry(retry_policy, "count the step's open batches", || {
                    queue.open(s.run_id, &step.name)
                })
                .await?;
                if open == 0 {
                    return Ok(false);
                }
                tokio::time::sleep(POLL).await;
                continue;
            };
            let n = batch.keys.len() as u64;
            let done = s.worker.process(batch.keys).await?;
            self.progress.advanced(&step.name, n);
            // This task's counters went to the step's context as it worked.
            let result = done.into_result(Default::default());
            retry(retry_policy, "complete a batch", || {
                queue.complete(batch.id, &s.q.worker, &result)
            })
            .await?;
        }
    }

    /// A worker's loop: claims batches of any run, among the transforms of this pipeline whose
    /// fingerprint matches, until `stop`; a stop is seen between batches. Returns the number of
    /// batches it completed.
    pub async fn work(&self, q: &QueueOptions, stop: &Stop) -> Result<u64, StepError> {
        let queue = &q.queue;
        let steps: Vec<(String, String)> = self
            .pipeline
            .steps
            .iter()
            .filter(|s| matches!(s.implementation, StepImpl::Transform(_)) && s.skipped.is_none())
            .map(|s| (s.name.clone(), s.fingerprint.clone()))
            .collect();
        let renewing = keep_leases(queue.clone(), q.worker.clone(), q.lease, None);
        let retry_policy = crate::retry::RetryPolicy::default();
        let mut completed = 0;
        let outcome = loop {
            if stop.requested() {
                break Ok(completed);
            }
            let claimed = match queue.claim(&q.worker, q.lease, None, &steps).await {
                Ok(c) => c,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "could not claim a batch; trying again");
                    tokio::time::sleep(POLL * 10).await;
                    continue;
                }
                Err(e) => break Err(e.into()),
            };
            let Some(batch) = claimed else {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.wait() => {}
                }
                continue;
            };
            let Some(step) = self.pipeline.steps.iter().find(|s| s.name == batch.step) else {
                continue;
            };
            let span = tracing::info_span!("batch", step = %step.name, run = batch.run_id, keys = batch.keys.len());
            let ctx = StepContext::new(step.name.clone(), false, None)
                .with_outputs(step.outputs.clone())
                .with_reads(StepReads::new(self.store.clone(), step.clone()));
            let worker = BatchWorker {
                store: self.store.clone(),
                pipeline: &self.pipeline,
                step,
                ctx: &ctx,
                retry: retry_policy,
                // The run that published the batch counted its deletions before publishing.
                tally: crate::guard::DeleteTally::new(self.store.clone(), true),
            };
            let done = {
                use tracing::Instrument;
                worker.process(batch.keys).instrument(span).await
            };
            match done {
                Ok(done) => {
                    let result = done.into_result(ctx.counters.snapshot());
                    match queue.complete(batch.id, &q.worker, &result).await {
                        Ok(true) => completed += 1,
                        Ok(false) => tracing::warn!(
                            batch = batch.id,
                            "the batch's lease had ended and another worker completed it"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not complete a batch; its lease will end")
                        }
                    }
                }
                // The lease ends and another worker (or the run) takes the batch again.
                Err(e) => tracing::warn!(step = %step.name, error = %e.chain(), "a batch failed"),
            }
        };
        renewing.abort();
        if let Err(e) = queue.leave(&q.worker).await {
            tracing::warn!(error = %e, "could not hand back the worker's leases");
        }
        outcome
    }
}
