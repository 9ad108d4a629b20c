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

//!
//! | module | owns |
//! | --- | --- |
//! | this one | the run: steps in dependency order, each under its lock, with its report |
//! | `snapshot` | an extract's run: its snapshot diffed batch by batch, deletions at the end |
//! | `batches` | a transform's run: captured keys processed in batches, split on data errors |
//! | `drift` | the transforms' drift checks, started alongside the run's first steps |
//! | `plan` | `etl plan` for a transform: its counts and the cost it estimates |
//! | `queued` | a transform's batches shared through the work queue; a worker's loop |
//! | `stop` | the stop signal: steps finish their batch in flight and start nothing more |
//!
//! A run (not `etl plan`) records itself in the history as it goes: its invocation when it
//! begins, each step's report as the step ends, its outcome at the end.

mod batches;
mod drift;
mod plan;
mod queued;
mod snapshot;
mod stop;

use drift::DriftCheck;
pub use drift::DRIFT_REPAIRED;
pub use queued::QueueOptions;
pub use snapshot::SnapshotWriter;
pub use stop::{Stop, StopHandle};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::dag::{Pipeline, Selection, StepDef, StepKind};
use crate::history::{Invocation, RunOutcome};
use crate::report::{RunReport, StepReport, StepRunStatus};
use crate::retry::{retry, RetryPolicy};
use crate::step::{StepContext, StepImpl};
use crate::store::{Outcome, ProcessedKeys, Store};

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
    /// Asks the run to stop: steps finish their batch in flight and are reported interrupted.
    pub stop: Stop,
    /// Who started the run, for the history.
    pub invocation: Invocation,
    /// Share the transforms' batches with other workers through this queue (`None`: this
    /// process processes them all, as it lists them).
    pub queue: Option<QueueOptions>,
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
        let selected = self.pipeline.select(&opts.selection)?;
        if dry_run {
            return Ok(self.execute_steps(&selected, opts, true, None).await);
        }
        let run_id = match self.store.run_begun(&opts.invocation).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "could not record the run in the history; it runs unrecorded");
                None
            }
        };
        let span = tracing::info_span!("run", id = run_id.unwrap_or_default());
        let report = self
            .execute_steps(&selected, opts, false, run_id)
            .instrument(span.clone())
            .await;
        if !opts.stop.requested() {
            self.after_run(&report).instrument(span).await;
        }
        if let Some(id) = run_id {
            let outcome = RunOutcome::of(&report);
            if let Err(e) = self
                .store
                .run_ended(id, outcome, opts.invocation.retention)
                .await
            {
                tracing::warn!(error = %e, run = id, "could not record the end of the run in the history");
            }
        }
        Ok(report)
    }

    /// The store's upkeep once no step of the run is open (see [`Store::after_run`]): never
    /// a reason for the run to fail.
    async fn after_run(&self, report: &RunReport) {
        let processed: Vec<ProcessedKeys> = (report.steps.iter())
            .filter(|s| s.kind != StepKind::Extract)
            .filter_map(|s| {
                let keys = s.keys_processed + s.keys_failed;
                let step = self.pipeline.step(&s.step).filter(|_| keys > 0)?;
                Some(ProcessedKeys { step, keys })
            })
            .collect();
        if processed.is_empty() {
            return;
        }
        if let Err(e) = self.store.after_run(&processed).await {
            tracing::warn!(error = %e, "the store's upkeep after the run failed (autovacuum does it later); the run's outcome stands");
        }
    }

    async fn execute_steps(
        &self,
        selected: &[usize],
        opts: &RunOptions,
        dry_run: bool,
        run_id: Option<i64>,
    ) -> RunReport {
        let started = Instant::now();
        let selected = selected.to_vec();
        let selected_set: HashSet<usize> = selected.iter().copied().collect();
        let mut reports: HashMap<usize, StepReport> = HashMap::new();
        let mut running: FuturesUnordered<BoxFuture<'static, (usize, StepReport)>> =
            FuturesUnordered::new();
        let mut started_set: HashSet<usize> = HashSet::new();
        // The history's writes, off the path from one step to the next: awaited before the
        // run's report is returned (and so before the run is recorded as finished).
        let mut records: Vec<tokio::task::JoinHandle<()>> = Vec::new();

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
                let step = &self.pipeline.steps[i];
                if opts.stop.requested() {
                    let mut r = StepReport::new(&step.name, step.kind);
                    r.status =
                        StepRunStatus::Interrupted("not started: the run was asked to stop".into());
                    records.extend(self.record_step(run_id, &r));
                    reports.insert(i, r);
                    continue;
                }
                let failed_up = ups.iter().find(|u| {
                    !matches!(
                        reports[u].status,
                        StepRunStatus::Succeeded
                            | StepRunStatus::KeysFailed
                            | StepRunStatus::NotConfigured(_)
                    )
                });
                if let Some(why) = &step.skipped {
                    tracing::info!(step = %step.name, reason = %why, "step not configured: not run, its tables are left as they are");
                    let mut r = StepReport::new(&step.name, step.kind);
                    r.status = StepRunStatus::NotConfigured(why.clone());
                    records.extend(self.record_step(run_id, &r));
                    reports.insert(i, r);
                    continue;
                }
                if let Some(u) = failed_up {
                    let mut r = StepReport::new(&step.name, step.kind);
                    r.status = StepRunStatus::Skipped(format!(
                        "step `{}` it depends on did not finish",
                        self.pipeline.steps[*u].name
                    ));
                    records.extend(self.record_step(run_id, &r));
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
                        async move { this.run_step(i, &opts, ctx, drift, run_id).await }
                            .instrument(span),
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
                if !dry_run {
                    records.extend(self.record_step(run_id, &r));
                }
                reports.insert(i, r);
            }
        }

        for record in records {
            if let Err(e) = record.await {
                tracing::warn!(error = %e, "recording a step in the run's history panicked");
            }
        }
        let steps = selected
            .iter()
            .map(|i| reports.remove(i).expect("every step reported"))
            .collect();
        RunReport {
            run_id,
            steps,
            elapsed: started.elapsed(),
        }
    }

    /// Records a step's report in the run's history, in a task of its own (each record is a
    /// commit, and the next steps need not wait for it); failing to is not an error of the run.
    fn record_step(
        &self,
        run_id: Option<i64>,
        report: &StepReport,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let run = run_id?;
        let store = self.store.clone();
        let report = report.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = store.step_reported(run, &report).await {
                tracing::warn!(error = %e, step = %report.step, "could not record the step in the run's history");
            }
        }))
    }

    async fn run_step(
        &self,
        i: usize,
        opts: &RunOptions,
        ctx: StepContext,
        early_drift: Option<DriftCheck>,
        run_id: Option<i64>,
    ) -> StepReport {
        let step = &self.pipeline.steps[i];
        let dry_run = ctx.dry_run;
        let started = Instant::now();
        let mut report = StepReport::new(&step.name, step.kind);
        report.started_at = Some(SystemTime::now());

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
                self.run_transform(step, opts, &ctx, early_drift, run_id, &mut report)
                    .await
            }
            (StepImpl::Transform(_), true) => self.plan_transform(step, &ctx, &mut report).await,
        };
        report.counters = ctx.counters.snapshot();
        report.elapsed = started.elapsed();
        let outcome = match &result {
            Err(e) if e.interrupted => {
                report.status = StepRunStatus::Interrupted(
                    "the run was asked to stop: the batches in flight finished, the rest is pending"
                        .into(),
                );
                Outcome::Interrupted
            }
            Err(e) => {
                report.status = StepRunStatus::Failed(e.chain());
                report.error_class = Some(e.class);
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

/// The counter of the keys a step that produces nothing settled without reading them (see
/// [`crate::step::Transform::produces_nothing`]).
pub const KEYS_SETTLED_UNREAD: &str = "keys_settled_unread";

/// The counter `etl plan` sets (to 1) for a transform that says it produces nothing from its
/// pending keys: their cost is not estimated, since a run settles them without reading them, or
/// (when an output table still holds rows) runs batches that only delete.
pub const PLAN_PRODUCES_NOTHING: &str = "produces_nothing";
