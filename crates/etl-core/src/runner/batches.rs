//! A transform's run: its input changes captured into pending keys, which are processed in
//! batches; a batch is retried on transient errors and split on data errors until the failing
//! keys are isolated, and each commits its outputs and bookkeeping in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::dag::{Pipeline, StepDef, TableDef};
use crate::diff::{diff, FreshRow, TableDiff};
use crate::report::{StepReport, TableCounts};
use crate::retry::{retry, RetryPolicy};
use crate::step::{ErrorClass, StepContext, StepError, StepImpl};
use crate::store::{Commit, Store};
use crate::value::Key;

use super::drift::{DriftCheck, DRIFT_REPAIRED};
use super::{RunOptions, Runner, KEYS_SETTLED_UNREAD};

impl Runner {
    pub(super) async fn run_transform(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        ctx: &StepContext,
        early_drift: Option<DriftCheck>,
        run_id: Option<i64>,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let StepImpl::Transform(transform) = &step.implementation else {
            unreachable!("run_transform is called for transforms")
        };
        let drifted = match early_drift {
            _ if opts.full_refresh => false,
            Some(check) => check
                .await
                .map_err(|e| StepError::fatal(format!("the step's drift check panicked: {e}")))??,
            None => transform.drifted(ctx).await?,
        };
        if drifted {
            tracing::warn!(
                "the step's outside state drifted from what it wrote: reprocessing every key"
            );
            ctx.counters.add(DRIFT_REPAIRED, 1);
        }
        let full = opts.full_refresh || drifted;
        let capture = retry(&opts.retry, "capture changes", || {
            self.store.capture(step, full)
        })
        .await?;
        tracing::info!(
            pending = capture.pending,
            full = capture.full,
            "changes captured"
        );
        self.progress.started(&step.name, Some(capture.pending));
        if capture.pending == 0 {
            transform.finished(ctx, 0).await?;
            self.keep_memo(step, ctx, opts).await;
            return Ok(());
        }
        let nothing = retry(
            &opts.retry,
            "ask whether the step produces anything",
            || transform.produces_nothing(ctx),
        )
        .await?;
        if nothing {
            let settled = retry(&opts.retry, "settle the pending keys", || {
                self.store.settle_unread(step)
            })
            .await?;
            if let Some(settled) = settled {
                tracing::info!(
                    keys = settled,
                    "the step produces nothing from these keys: settled without reading them"
                );
                ctx.counters.add(KEYS_SETTLED_UNREAD, settled);
                report.keys_processed += settled;
                self.progress.advanced(&step.name, settled);
                return self.batches_committed(step, opts, ctx, report).await;
            }
        }
        if !opts.allow_mass_delete {
            let outside = transform.outside_target();
            let previews = retry(&opts.retry, "count what the run would delete", || {
                self.store.deletion_preview(step, &outside)
            })
            .await?;
            crate::guard::check_preview(step, &previews)?;
        }
        if ctx.memo.is_some() {
            // Whatever this run writes, the old memo no longer describes the outside state.
            retry(&opts.retry, "forget the step's memo", || {
                self.store.set_memo(step, None)
            })
            .await?;
        }
        let run = crate::step::RunStart {
            pending_keys: capture.pending,
            queued: opts.queue.is_some() && run_id.is_some(),
        };
        transform.starting(ctx, run).await?;
        let worker = BatchWorker {
            store: self.store.clone(),
            pipeline: &self.pipeline,
            step,
            ctx,
            retry: opts.retry,
            tally: crate::guard::DeleteTally::new(self.store.clone(), opts.allow_mass_delete),
        };
        if let (Some(q), Some(run_id)) = (&opts.queue, run_id) {
            self.run_queued(step, opts, q, run_id, &worker, report)
                .await?;
            return self.batches_committed(step, opts, ctx, report).await;
        }
        let batch_size = step.batch_size_for(capture.pending);
        let mut after: Option<Key> = None;
        let mut in_flight = FuturesUnordered::new();
        let mut exhausted = false;
        let mut fatal: Option<StepError> = None;
        let mut stopped = false;
        loop {
            if opts.stop.requested() && !exhausted && fatal.is_none() {
                // Finish the batches in flight, start no more: the rest stays pending.
                stopped = true;
                exhausted = true;
            }
            while !exhausted && fatal.is_none() && in_flight.len() < step.concurrency {
                let keys = retry(&opts.retry, "list pending keys", || {
                    self.store.pending_keys(step, after.as_ref(), batch_size)
                })
                .await?;
                if keys.is_empty() {
                    exhausted = true;
                    break;
                }
                after = keys.last().cloned();
                let n = keys.len();
                in_flight.push(
                    worker
                        .process(keys)
                        .instrument(tracing::debug_span!("batch", keys = n)),
                );
            }
            match in_flight.next().await {
                None => break,
                Some(Ok(done)) => {
                    self.progress
                        .advanced(&step.name, done.processed + done.failed_keys);
                    // The batch's counters went to the step's context as it worked.
                    super::queued::add_up(
                        report,
                        &ctx.counters,
                        done.into_result(Default::default()),
                    );
                }
                Some(Err(e)) => {
                    if fatal.is_none() {
                        fatal = Some(e);
                    }
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        if stopped {
            return Err(StepError::interrupted());
        }
        self.batches_committed(step, opts, ctx, report).await
    }

    /// The end of a transform's run whose batches all committed, processed here or by workers:
    /// the store's deferred key bookkeeping, the step's own end, its memo.
    async fn batches_committed(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        ctx: &StepContext,
        report: &StepReport,
    ) -> Result<(), StepError> {
        let StepImpl::Transform(transform) = &step.implementation else {
            unreachable!("batches are for transforms")
        };
        retry(&opts.retry, "complete the key bookkeeping", || {
            self.store.batches_done(step)
        })
        .await?;
        transform.finished(ctx, report.keys_processed).await?;
        self.keep_memo(step, ctx, opts).await;
        Ok(())
    }
}

/// The outcome of one batch (after any splitting).
#[derive(Default)]
pub(super) struct BatchDone {
    pub(super) processed: u64,
    pub(super) failed_keys: u64,
    pub(super) failures: Vec<String>,
    pub(super) tables: BTreeMap<String, TableCounts>,
}

impl BatchDone {
    fn merge(&mut self, other: BatchDone) {
        self.processed += other.processed;
        self.failed_keys += other.failed_keys;
        self.failures.extend(other.failures);
        for (t, c) in other.tables {
            self.tables.entry(t).or_default().add(&c);
        }
    }
}

/// Processes batches of one step: the run's own, or a worker's (see `queued`).
pub(super) struct BatchWorker<'a> {
    pub(super) store: Arc<dyn Store>,
    pub(super) pipeline: &'a Pipeline,
    pub(super) step: &'a StepDef,
    pub(super) ctx: &'a StepContext,
    pub(super) retry: RetryPolicy,
    pub(super) tally: crate::guard::DeleteTally,
}

impl<'a> BatchWorker<'a> {
    /// Processes a batch; on a data error splits it until the failing keys are isolated.
    pub(super) fn process(&self, keys: Vec<Key>) -> BoxFuture<'_, Result<BatchDone, StepError>> {
        Box::pin(async move {
            let attempt = retry(&self.retry, "process batch", || self.attempt(&keys)).await;
            match attempt {
                Ok(done) => Ok(done),
                Err(e) if e.class == ErrorClass::Data && keys.len() > 1 => {
                    let mid = keys.len() / 2;
                    tracing::debug!(keys = keys.len(), "batch failed on data, splitting");
                    let mut left = self.process(keys[..mid].to_vec()).await?;
                    let right = self.process(keys[mid..].to_vec()).await?;
                    left.merge(right);
                    Ok(left)
                }
                Err(e) if e.class == ErrorClass::Data => {
                    let text = e.chain();
                    let commit = Commit {
                        failed: vec![(keys[0].clone(), text.clone())],
                        ..Commit::default()
                    };
                    retry(&self.retry, "record failure", || {
                        self.store.commit(self.step, clone_commit(&commit))
                    })
                    .await?;
                    tracing::warn!(key = %keys[0], error = %text, "key failed");
                    Ok(BatchDone {
                        failed_keys: 1,
                        failures: vec![format!("{}: {text}", keys[0])],
                        ..BatchDone::default()
                    })
                }
                Err(e) => Err(e),
            }
        })
    }

    async fn attempt(&self, keys: &[Key]) -> Result<BatchDone, StepError> {
        let step = self.step;
        let StepImpl::Transform(transform) = &step.implementation else {
            unreachable!("batches are for transforms")
        };
        let mut batch = self.store.read_inputs(step, keys).await?;
        // Keys with no row left in any input that lists keys have vanished.
        let mut present: HashSet<Key> = HashSet::new();
        for input in batch.inputs.iter().filter(|i| i.covers_key) {
            let cols: Vec<String> = input.join.iter().map(|(_, c)| c.clone()).collect();
            for row in &input.rows {
                if let Ok(k) = row.key(&cols) {
                    present.insert(k);
                }
            }
        }
        batch.present = present.clone();
        let output = transform.process(self.ctx, batch).await?;

        let batch_keys: HashSet<&Key> = keys.iter().collect();
        let mut failed: HashMap<Key, String> = HashMap::new();
        for (k, e) in output.failed {
            if !batch_keys.contains(&k) {
                return Err(StepError::fatal(format!(
                    "step `{}` reported a failure for a key outside its batch (a bug in the step)",
                    step.name
                )));
            }
            failed.insert(k, e.chain());
        }
        let mut fresh_by_table: BTreeMap<&str, Vec<FreshRow>> = step
            .outputs
            .iter()
            .map(|o| (o.as_str(), Vec::new()))
            .collect();
        for out in output.rows {
            if !batch_keys.contains(&out.producer) {
                return Err(StepError::fatal(format!(
                    "step `{}` produced a row for a key outside its batch (a bug in the step)",
                    step.name
                )));
            }
            if failed.contains_key(&out.producer) {
                continue;
            }
            let Some(list) = fresh_by_table.get_mut(out.table.as_str()) else {
                return Err(StepError::fatal(format!(
                    "step `{}` produced rows for table `{}`, which is not among its outputs ({})",
                    step.name,
                    out.table,
                    step.outputs.join(", ")
                )));
            };
            let table = self.pipeline_table(&out.table)?;
            match out.row.key(&table.primary_key) {
                Ok(key) => list.push(FreshRow {
                    key,
                    row: out.row,
                    producer: Some(out.producer),
                }),
                Err(e) => {
                    failed.insert(
                        out.producer,
                        format!("an output row for `{}` has no key: {e}", out.table),
                    );
                }
            }
        }
        // Drop rows of keys that failed while building rows.
        for list in fresh_by_table.values_mut() {
            list.retain(|r| r.producer.as_ref().is_none_or(|p| !failed.contains_key(p)));
        }

        let producers: Vec<Key> = keys
            .iter()
            .filter(|k| !failed.contains_key(*k))
            .cloned()
            .collect();
        let producer_set: HashSet<&Key> = producers.iter().collect();
        let mut commit = Commit::default();
        let mut done = BatchDone::default();
        for (table_name, fresh) in fresh_by_table {
            let table = self.pipeline_table(table_name)?;
            let fresh_keys: Vec<Key> = fresh.iter().map(|r| r.key.clone()).collect();
            let mut stored = self.store.stored(table, &fresh_keys).await?;
            stored.extend(self.store.stored_by_producer(table, &producers).await?);
            let d = diff(fresh, &stored, |s| {
                s.producer
                    .as_ref()
                    .is_some_and(|p| producer_set.contains(p))
            });
            done.tables.insert(table_name.to_string(), counts_of(&d));
            commit.tables.push((table_name.to_string(), d));
        }
        for k in &producers {
            if present.contains(k) {
                commit.processed.push(k.clone());
            } else {
                commit.vanished.push(k.clone());
            }
        }
        done.processed = producers.len() as u64;
        done.failed_keys = failed.len() as u64;
        for (k, e) in &failed {
            tracing::warn!(key = %k, error = %e, "key failed");
            done.failures.push(format!("{k}: {e}"));
        }
        commit.failed = failed.into_iter().collect();
        let deletes: Vec<(String, u64)> = commit
            .tables
            .iter()
            .map(|(t, d)| (t.clone(), d.deletes.len() as u64))
            .collect();
        self.tally.admit(step, self.pipeline, &deletes).await?;
        // A failed commit keeps its deletes counted: it may have applied before its answer was
        // lost, and counting twice can only refuse early, never let too much through.
        self.store.commit(step, commit).await?;
        Ok(done)
    }

    fn pipeline_table(&self, name: &str) -> Result<&'a TableDef, StepError> {
        self.pipeline.tables.get(name).ok_or_else(|| {
            StepError::fatal(format!(
                "unknown table `{name}` (a bug: outputs are validated)"
            ))
        })
    }
}

fn counts_of(d: &TableDiff) -> TableCounts {
    TableCounts {
        inserted: d.inserts.len() as u64,
        updated: d.updates.len() as u64,
        deleted: d.deletes.len() as u64,
        unchanged: d.unchanged as u64,
    }
}

pub(super) fn clone_commit(c: &Commit) -> Commit {
    Commit {
        tables: c.tables.clone(),
        processed: c.processed.clone(),
        vanished: c.vanished.clone(),
        failed: c.failed.clone(),
    }
}
