//! Running a pipeline: steps in dependency order (independent ones at once), each under its lock.
//!
//! An **extract** streams its snapshot through a [`SnapshotWriter`], which diffs each batch
//! against the store and writes only new and changed rows; once the snapshot is complete, the
//! keys it did not contain are deleted, unless they are more than the step's
//! `max_delete_fraction` of the table and the run does not allow mass deletes.
//!
//! A **transform** (or sink) first captures the input changes it has not seen into pending keys,
//! then processes pending keys in batches of `batch_size`, `concurrency` batches at a time. A batch
//! is retried on transient errors; a batch failing on data is split in halves until the failing
//! keys are isolated and recorded; a fatal error stops the step. Each batch commits its outputs and
//! its bookkeeping in one transaction, so a run killed at any point leaves pending exactly the keys
//! whose batches did not commit, and the next run converges.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::dag::{Pipeline, Selection, StepDef, StepKind, TableDef};
use crate::diff::{diff, FreshRow, TableDiff};
use crate::report::{RunReport, StepReport, StepRunStatus, TableCounts};
use crate::retry::{retry, RetryPolicy};
use crate::step::{ErrorClass, SnapshotSink, StepContext, StepError, StepImpl};
use crate::store::{Commit, Outcome, Store};
use crate::value::{Key, Row};

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub selection: Selection,
    /// Reprocess every key of the selected steps.
    pub full_refresh: bool,
    /// Let extracts delete more than their `max_delete_fraction` of a table.
    pub allow_mass_delete: bool,
    /// Wait for locks held by other runs instead of failing.
    pub wait_for_locks: bool,
    pub retry: RetryPolicy,
}

/// Progress reporting (a bar on a terminal, nothing otherwise).
pub trait Progress: Send + Sync {
    fn started(&self, _step: &str, _total_keys: Option<u64>) {}
    fn advanced(&self, _step: &str, _keys: u64) {}
    fn finished(&self, _step: &str) {}
}

/// Progress that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, pipeline: Arc<Pipeline>) -> Self {
        Runner {
            store,
            pipeline,
            progress: Arc::new(NoProgress),
        }
    }

    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Runs the selected steps. Selection errors (unknown step or label) come back as `Err`.
    pub async fn run(&self, opts: &RunOptions) -> Result<RunReport, Vec<String>> {
        self.execute(opts, false).await
    }

    /// `etl plan`: what a run would do, writing nothing. Extracts read their source and diff it.
    pub async fn plan(&self, opts: &RunOptions) -> Result<RunReport, Vec<String>> {
        self.execute(opts, true).await
    }

    async fn execute(&self, opts: &RunOptions, dry_run: bool) -> Result<RunReport, Vec<String>> {
        let started = Instant::now();
        let selected = self.pipeline.select(&opts.selection)?;
        let selected_set: HashSet<usize> = selected.iter().copied().collect();
        let mut reports: HashMap<usize, StepReport> = HashMap::new();
        let mut running: FuturesUnordered<BoxFuture<'static, (usize, StepReport)>> =
            FuturesUnordered::new();
        let mut started_set: HashSet<usize> = HashSet::new();

        // Memos are an optimisation: without them every step does its full check.
        let selected_defs: Vec<&StepDef> =
            selected.iter().map(|&i| &self.pipeline.steps[i]).collect();
        let mut memos = match self.store.memos(&selected_defs).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the steps' memos; every step checks its source and target in full");
                HashMap::new()
            }
        };
        let mut contexts: HashMap<usize, StepContext> = selected
            .iter()
            .map(|&i| {
                let step = &self.pipeline.steps[i];
                (
                    i,
                    StepContext::new(step.name.clone(), dry_run, memos.remove(&step.name))
                        .with_outputs(step.outputs.clone())
                        .with_reads(crate::step::StepReads::new(
                            self.store.clone(),
                            step.clone(),
                        )),
                )
            })
            .collect();
        let mut early_drift = self.start_drift_checks(&selected, &contexts, opts, dry_run);

        loop {
            // Start every selected step whose selected upstream steps are done.
            for &i in &selected {
                if started_set.contains(&i) {
                    continue;
                }
                let ups: Vec<usize> = self
                    .pipeline
                    .upstream_of(i)
                    .into_iter()
                    .filter(|u| selected_set.contains(u))
                    .collect();
                if !ups.iter().all(|u| reports.contains_key(u)) {
                    continue;
                }
                started_set.insert(i);
                let failed_up = ups.iter().find(|u| {
                    !matches!(
                        reports[u].status,
                        StepRunStatus::Succeeded
                            | StepRunStatus::KeysFailed
                            | StepRunStatus::NotConfigured(_)
                    )
                });
                let step = &self.pipeline.steps[i];
                if let Some(why) = &step.skipped {
                    tracing::info!(step = %step.name, reason = %why, "step not configured: not run, its tables are left as they are");
                    let mut r = StepReport::new(&step.name, step.kind);
                    r.status = StepRunStatus::NotConfigured(why.clone());
                    reports.insert(i, r);
                    continue;
                }
                if let Some(u) = failed_up {
                    let mut r = StepReport::new(&step.name, step.kind);
                    r.status = StepRunStatus::Skipped(format!(
                        "step `{}` it depends on did not finish",
                        self.pipeline.steps[*u].name
                    ));
                    reports.insert(i, r);
                    continue;
                }
                let this = self.clone();
                let opts = opts.clone();
                let ctx = contexts.remove(&i).expect("a context per selected step");
                let drift = early_drift.remove(&i);
                let span =
                    tracing::info_span!("step", step = %step.name, kind = step.kind.as_str());
                running.push(Box::pin(async move {
                    let handle = tokio::spawn(
                        async move { this.run_step(i, &opts, ctx, drift).await }.instrument(span),
                    );
                    match handle.await {
                        Ok(r) => (i, r),
                        Err(join) => {
                            let mut r = StepReport::new("?", StepKind::Transform);
                            r.status = StepRunStatus::Failed(format!("the step panicked: {join}"));
                            (i, r)
                        }
                    }
                }));
            }
            if running.is_empty() {
                // Steps skipped above may unblock nothing more: done when all are reported.
                if selected.iter().all(|i| reports.contains_key(i)) {
                    break;
                }
                continue;
            }
            if let Some((i, mut r)) = running.next().await {
                if r.step == "?" {
                    r.step = self.pipeline.steps[i].name.clone();
                    r.kind = self.pipeline.steps[i].kind;
                }
                reports.insert(i, r);
            }
        }

        let steps = selected
            .iter()
            .map(|i| reports.remove(i).expect("every step reported"))
            .collect();
        Ok(RunReport {
            steps,
            elapsed: started.elapsed(),
        })
    }

    /// Starts the drift checks of the selected transforms at once, alongside the run's first
    /// steps: a check looks at the step's outside state and its own bookkeeping, not at its
    /// inputs, so it need not wait for upstream steps. Not when the run waits for locks (another
    /// run may be writing that state) or reprocesses everything anyway.
    fn start_drift_checks(
        &self,
        selected: &[usize],
        contexts: &HashMap<usize, StepContext>,
        opts: &RunOptions,
        dry_run: bool,
    ) -> HashMap<usize, DriftCheck> {
        if dry_run || opts.wait_for_locks || opts.full_refresh {
            return HashMap::new();
        }
        let mut checks = HashMap::new();
        for &i in selected {
            let step = &self.pipeline.steps[i];
            let StepImpl::Transform(transform) = &step.implementation else {
                continue;
            };
            if step.skipped.is_some() {
                continue;
            }
            let transform = transform.clone();
            let ctx = contexts[&i].clone();
            let span = tracing::info_span!("drift_check", step = %step.name);
            checks.insert(
                i,
                tokio::spawn(async move { transform.drifted(&ctx).await }.instrument(span)),
            );
        }
        checks
    }

    async fn run_step(
        &self,
        i: usize,
        opts: &RunOptions,
        ctx: StepContext,
        early_drift: Option<DriftCheck>,
    ) -> StepReport {
        let step = &self.pipeline.steps[i];
        let dry_run = ctx.dry_run;
        let started = Instant::now();
        let mut report = StepReport::new(&step.name, step.kind);

        let lock = if dry_run {
            None
        } else {
            match self.store.lock(step, opts.wait_for_locks).await {
                Ok(l) => Some(l),
                Err(e @ crate::store::StoreError::Locked { .. }) => {
                    report.status = StepRunStatus::Locked(e.to_string());
                    report.elapsed = started.elapsed();
                    return report;
                }
                Err(e) => {
                    report.status = StepRunStatus::Failed(e.to_string());
                    report.elapsed = started.elapsed();
                    return report;
                }
            }
        };
        if !dry_run {
            if let Err(e) = self.store.run_started(step).await {
                tracing::warn!(error = %e, "could not record the start of the step");
            }
        }
        tracing::info!("step started");

        let result = match (&step.implementation, dry_run) {
            (StepImpl::Extract(_), _) => self.run_extract(step, opts, &ctx, &mut report).await,
            (StepImpl::Transform(_), false) => {
                self.run_transform(step, opts, &ctx, early_drift, &mut report)
                    .await
            }
            (StepImpl::Transform(_), true) => match self.store.plan(step).await {
                Ok(p) => {
                    report.plan = Some(p);
                    Ok(())
                }
                Err(e) => Err(StepError::from(e)),
            },
        };
        report.counters = ctx.counters.snapshot();
        report.elapsed = started.elapsed();
        let outcome = match &result {
            Err(e) => {
                report.status = StepRunStatus::Failed(e.chain());
                Outcome::Failed(e.chain())
            }
            Ok(()) if report.keys_failed > 0 => {
                report.status = StepRunStatus::KeysFailed;
                Outcome::KeysFailed(report.keys_failed)
            }
            Ok(()) => Outcome::Succeeded,
        };
        self.progress.finished(&step.name);
        if !dry_run {
            if let Err(e) = self
                .store
                .run_finished(step, &outcome, &report.counters, report.elapsed)
                .await
            {
                tracing::warn!(error = %e, "could not record the end of the step");
            }
        }
        if let Some(lock) = lock {
            if let Err(e) = lock.release().await {
                tracing::warn!(error = %e, "could not release the step lock (it ends with the session)");
            }
        }
        match &report.status {
            StepRunStatus::Failed(e) => {
                tracing::error!(error = %e, elapsed_ms = report.elapsed.as_millis() as u64, "step failed")
            }
            _ => tracing::info!(
                elapsed_ms = report.elapsed.as_millis() as u64,
                rows_written = report.rows_written(),
                keys = report.keys_processed,
                keys_failed = report.keys_failed,
                "step finished"
            ),
        }
        report
    }

    async fn run_extract(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        ctx: &StepContext,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let StepImpl::Extract(extract) = &step.implementation else {
            unreachable!("run_extract is called for extracts")
        };
        self.progress.started(&step.name, None);
        if let Some(memo) = ctx.memo.as_deref().filter(|_| !opts.full_refresh) {
            if extract.unchanged_since(ctx, memo).await? {
                tracing::info!("the source is unchanged since the last complete snapshot");
                ctx.counters.add("source_unchanged", 1);
                if ctx.dry_run {
                    report.plan = Some(crate::store::PlanCounts::default());
                }
                return Ok(());
            }
            // Whatever this run writes, the old memo no longer describes the tables.
            if !ctx.dry_run {
                retry(&opts.retry, "forget the step's memo", || {
                    self.store.set_memo(step, None)
                })
                .await?;
            }
        }
        let mut writer = SnapshotWriter::new(
            self.store.clone(),
            self.pipeline.clone(),
            step,
            opts.retry,
            ctx.dry_run,
        );
        let read = extract.extract(ctx, &mut writer).await;
        let flushed = writer.flush_all().await;
        report.tables = writer.counts.clone();
        read?;
        flushed?;
        writer.finish(opts.allow_mass_delete).await?;
        report.tables = writer.counts.clone();
        self.keep_memo(step, ctx, opts).await;
        if writer.duplicates > 0 {
            ctx.counters
                .add("duplicate_keys_ignored", writer.duplicates);
        }
        if ctx.dry_run {
            let mut plan = crate::store::PlanCounts::default();
            for c in writer.counts.values() {
                plan.new += c.inserted;
                plan.changed += c.updated;
                plan.deleted += c.deleted;
            }
            report.plan = Some(plan);
            report.tables.clear();
        }
        Ok(())
    }

    async fn run_transform(
        &self,
        step: &StepDef,
        opts: &RunOptions,
        ctx: &StepContext,
        early_drift: Option<DriftCheck>,
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
        transform.starting(ctx, capture.pending).await?;
        let worker = BatchWorker {
            store: self.store.clone(),
            pipeline: &self.pipeline,
            step,
            ctx,
            retry: opts.retry,
            tally: crate::guard::DeleteTally::new(self.store.clone(), opts.allow_mass_delete),
        };
        let mut after: Option<Key> = None;
        let mut in_flight = FuturesUnordered::new();
        let mut exhausted = false;
        let mut fatal: Option<StepError> = None;
        loop {
            while !exhausted && fatal.is_none() && in_flight.len() < step.concurrency {
                let keys = retry(&opts.retry, "list pending keys", || {
                    self.store
                        .pending_keys(step, after.as_ref(), step.batch_size)
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
                    report.keys_processed += done.processed;
                    report.keys_failed += done.failures.len() as u64;
                    for f in done.failures {
                        if report.failures.len() < 5 {
                            report.failures.push(f);
                        }
                    }
                    for (t, c) in done.tables {
                        let e = report.tables.entry(t).or_default();
                        e.inserted += c.inserted;
                        e.updated += c.updated;
                        e.deleted += c.deleted;
                        e.unchanged += c.unchanged;
                    }
                    self.progress
                        .advanced(&step.name, done.processed + done.failed_keys);
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
        transform.finished(ctx, report.keys_processed).await?;
        self.keep_memo(step, ctx, opts).await;
        Ok(())
    }

    /// Records what the step remembered in this (complete) run. Failing to is not an error of
    /// the run: the next run does its full check.
    async fn keep_memo(&self, step: &StepDef, ctx: &StepContext, opts: &RunOptions) {
        let Some(memo) = ctx.remembered().filter(|_| !ctx.dry_run) else {
            return;
        };
        if ctx.memo.as_deref() == Some(memo.as_str()) {
            return;
        }
        if let Err(e) = retry(&opts.retry, "record the step's memo", || {
            self.store.set_memo(step, Some(&memo))
        })
        .await
        {
            tracing::warn!(error = %e, "could not record the step's memo; the next run checks in full");
        }
    }
}

/// The counter a step's report carries when its drift check found drift and every key was
/// reprocessed.
pub const DRIFT_REPAIRED: &str = "drift_repaired";

/// A drift check started early (see [`Runner::start_drift_checks`]).
type DriftCheck = tokio::task::JoinHandle<Result<bool, StepError>>;

/// The outcome of one batch (after any splitting).
#[derive(Default)]
struct BatchDone {
    processed: u64,
    failed_keys: u64,
    failures: Vec<String>,
    tables: BTreeMap<String, TableCounts>,
}

impl BatchDone {
    fn merge(&mut self, other: BatchDone) {
        self.processed += other.processed;
        self.failed_keys += other.failed_keys;
        self.failures.extend(other.failures);
        for (t, c) in other.tables {
            let e = self.tables.entry(t).or_default();
            e.inserted += c.inserted;
            e.updated += c.updated;
            e.deleted += c.deleted;
            e.unchanged += c.unchanged;
        }
    }
}

struct BatchWorker<'a> {
    store: Arc<dyn Store>,
    pipeline: &'a Pipeline,
    step: &'a StepDef,
    ctx: &'a StepContext,
    retry: RetryPolicy,
    tally: crate::guard::DeleteTally,
}

impl<'a> BatchWorker<'a> {
    /// Processes a batch; on a data error splits it until the failing keys are isolated.
    fn process(&self, keys: Vec<Key>) -> BoxFuture<'_, Result<BatchDone, StepError>> {
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
        if let Err(e) = self.store.commit(step, commit).await {
            self.tally.release(&deletes).await;
            return Err(e.into());
        }
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

fn clone_commit(c: &Commit) -> Commit {
    Commit {
        tables: c.tables.clone(),
        processed: c.processed.clone(),
        vanished: c.vanished.clone(),
        failed: c.failed.clone(),
    }
}

/// Receives an extract's snapshot, diffs it batch by batch, and decides deletions at the end.
pub struct SnapshotWriter {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    step: StepDef,
    retry: RetryPolicy,
    dry_run: bool,
    buffers: BTreeMap<String, Vec<FreshRow>>,
    /// Digests of the keys seen so far, per table: 16 bytes a key, not the rows.
    seen: BTreeMap<String, HashSet<[u8; 16]>>,
    counts: BTreeMap<String, TableCounts>,
    duplicates: u64,
    in_flight: FuturesUnordered<tokio::task::JoinHandle<Result<(String, TableCounts), StepError>>>,
}

/// Batches of a snapshot compared and written at once, while the extract reads on.
const FLUSHES_IN_FLIGHT: usize = 2;

impl SnapshotWriter {
    fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        step: &StepDef,
        retry: RetryPolicy,
        dry_run: bool,
    ) -> Self {
        let mut counts = BTreeMap::new();
        let mut seen = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for o in &step.outputs {
            counts.insert(o.clone(), TableCounts::default());
            seen.insert(o.clone(), HashSet::new());
            buffers.insert(o.clone(), Vec::new());
        }
        SnapshotWriter {
            store,
            pipeline,
            step: step.clone(),
            retry,
            dry_run,
            buffers,
            seen,
            counts,
            duplicates: 0,
            in_flight: FuturesUnordered::new(),
        }
    }

    /// Sends a table's buffered rows to be compared and written, in the background: the
    /// extract goes on reading while up to [`FLUSHES_IN_FLIGHT`] batches are looked up and
    /// committed (their keys are distinct: duplicates never reach a buffer).
    async fn flush(&mut self, table: &str) -> Result<(), StepError> {
        let fresh = std::mem::take(self.buffers.get_mut(table).expect("output table"));
        if fresh.is_empty() {
            return Ok(());
        }
        let def = self.pipeline.tables[table].clone();
        let store = self.store.clone();
        let step = self.step.clone();
        let retry_policy = self.retry;
        let dry_run = self.dry_run;
        let table = table.to_string();
        let span = tracing::debug_span!("batch", table = %table, rows = fresh.len());
        self.in_flight.push(tokio::spawn(
            async move {
                let keys: Vec<Key> = fresh.iter().map(|r| r.key.clone()).collect();
                let started = Instant::now();
                let stored = retry(&retry_policy, "read stored hashes", || {
                    store.stored(&def, &keys)
                })
                .await?;
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "stored hashes read"
                );
                let d = diff(fresh, &stored, |_| false);
                let counts = TableCounts {
                    inserted: d.inserts.len() as u64,
                    updated: d.updates.len() as u64,
                    unchanged: d.unchanged as u64,
                    deleted: 0,
                };
                if !dry_run && !d.is_empty() {
                    let commit = Commit {
                        tables: vec![(table.clone(), d)],
                        ..Commit::default()
                    };
                    retry(&retry_policy, "write batch", || {
                        store.commit(&step, clone_commit(&commit))
                    })
                    .await?;
                }
                Ok((table, counts))
            }
            .instrument(span),
        ));
        while self.in_flight.len() > FLUSHES_IN_FLIGHT {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Waits for one background flush and adds up its counts.
    async fn settle_one(&mut self) -> Result<(), StepError> {
        let Some(done) = self.in_flight.next().await else {
            return Ok(());
        };
        let (table, counts) =
            done.map_err(|e| StepError::fatal(format!("writing a batch panicked: {e}")))??;
        let c = self.counts.get_mut(&table).expect("output table");
        c.inserted += counts.inserted;
        c.updated += counts.updated;
        c.unchanged += counts.unchanged;
        Ok(())
    }

    /// Flushes every buffer and waits for every background flush.
    async fn flush_all(&mut self) -> Result<(), StepError> {
        let tables: Vec<String> = self.buffers.keys().cloned().collect();
        let mut first_error = None;
        for t in tables {
            if let Err(e) = self.flush(&t).await {
                first_error.get_or_insert(e);
            }
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.settle_one().await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The snapshot is complete: delete what it no longer holds, within the mass-delete guard.
    async fn finish(&mut self, allow_mass_delete: bool) -> Result<(), StepError> {
        for table in self.step.outputs.clone() {
            let def = self.pipeline.tables[&table].clone();
            let seen = &self.seen[&table];
            // One pass over the stored keys, counting first, so that the guard decides before
            // anything is deleted.
            let in_snapshot = |k: &Key| seen.contains(&k.digest());
            let (live, gone) = retry(&self.retry, "list stored keys", || {
                self.store.live_keys_not_in(&def, &in_snapshot)
            })
            .await?;
            let missing = gone.len() as u64;
            tracing::debug!(
                table,
                live,
                missing,
                "snapshot compared with the stored keys"
            );
            if missing == 0 {
                continue;
            }
            let limit = (self.step.max_delete_fraction * live as f64).floor() as u64;
            if missing > limit && !allow_mass_delete {
                return Err(StepError::fatal(format!(
                    "refusing to delete {missing} of the {live} rows of table `{table}` ({:.0}%, more than the step's max_delete_fraction of {:.0}%): \
                     check that the source is complete; if the deletion is intended, rerun with --allow-mass-delete",
                    100.0 * missing as f64 / live as f64,
                    100.0 * self.step.max_delete_fraction
                )));
            }
            self.counts.get_mut(&table).expect("output table").deleted += missing;
            if self.dry_run {
                continue;
            }
            for chunk in gone.chunks(self.step.batch_size) {
                let commit = Commit {
                    tables: vec![(
                        table.clone(),
                        TableDiff {
                            deletes: chunk.to_vec(),
                            ..TableDiff::default()
                        },
                    )],
                    ..Commit::default()
                };
                retry(&self.retry, "delete vanished rows", || {
                    self.store.commit(&self.step, clone_commit(&commit))
                })
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotSink for SnapshotWriter {
    async fn write(&mut self, table: &str, rows: Vec<Row>) -> Result<(), StepError> {
        let Some(def) = self
            .pipeline
            .tables
            .get(table)
            .filter(|_| self.buffers.contains_key(table))
        else {
            return Err(StepError::fatal(format!(
                "step `{}` wrote to table `{table}`, which is not among its outputs ({})",
                self.step.name,
                self.step.outputs.join(", ")
            )));
        };
        let pk = def.primary_key.clone();
        for row in rows {
            let key = row.key(&pk).map_err(|e| {
                StepError::data(format!("a row for table `{table}` has no usable key: {e}"))
            })?;
            if !self
                .seen
                .get_mut(table)
                .expect("output table")
                .insert(key.digest())
            {
                self.duplicates += 1;
                continue;
            }
            let buffer = self.buffers.get_mut(table).expect("output table");
            buffer.push(FreshRow {
                key,
                row,
                producer: None,
            });
            if buffer.len() >= self.step.batch_size {
                self.flush(table).await?;
            }
        }
        Ok(())
    }
}
