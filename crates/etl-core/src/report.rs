//! What a run did, per step: the summary `etl run` prints and its exit code is decided from.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::dag::StepKind;
use crate::step::ErrorClass;
use crate::store::PlanCounts;

/// Rows written to one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

impl TableCounts {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: &TableCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }

    pub fn written(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRunStatus {
    Succeeded,
    /// Ran to the end; some keys failed and are recorded for the next run.
    KeysFailed,
    /// Stopped: a fatal error, a persisting transient error, or a refused mass delete.
    Failed(String),
    /// Not run because a step it depends on failed.
    Skipped(String),
    /// Another process holds its lock.
    Locked(String),
    /// Not run because it is not configured (an optional source left unset); its tables are
    /// left as they are. Not a failure.
    NotConfigured(String),
    /// The run was asked to stop: the step finished its batches in flight (or never started).
    Interrupted(String),
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: String,
    pub kind: StepKind,
    pub status: StepRunStatus,
    pub keys_processed: u64,
    pub keys_failed: u64,
    pub tables: BTreeMap<String, TableCounts>,
    pub counters: BTreeMap<String, u64>,
    /// A few of the key failures, for the summary.
    pub failures: Vec<String>,
    /// For `etl plan`.
    pub plan: Option<PlanCounts>,
    /// When the step started (`None` if it never did: skipped, not configured, locked).
    pub started_at: Option<SystemTime>,
    pub elapsed: Duration,
    /// The class of the error a failed step stopped on.
    pub error_class: Option<ErrorClass>,
}

impl StepReport {
    pub fn new(step: &str, kind: StepKind) -> Self {
        StepReport {
            step: step.to_string(),
            kind,
            status: StepRunStatus::Succeeded,
            keys_processed: 0,
            keys_failed: 0,
            tables: BTreeMap::new(),
            counters: BTreeMap::new(),
            failures: Vec::new(),
            plan: None,
            started_at: None,
            elapsed: Duration::ZERO,
            error_class: None,
        }
    }

    pub fn rows_written(&self) -> u64 {
        self.tables.values().map(TableCounts::written).sum()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The run's id in the history (`None` for `etl plan`, or when it could not be recorded).
    pub run_id: Option<i64>,
    pub steps: Vec<StepReport>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn any_failed(&self) -> bool {
        self.steps.iter().any(|s| {
            !matches!(
                s.status,
                StepRunStatus::Succeeded | StepRunStatus::NotConfigured(_)
            )
        })
    }

    pub fn locked(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.status, StepRunStatus::Locked(_)))
    }

    pub fn step_failed(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.status,
                StepRunStatus::Failed(_) | StepRunStatus::Skipped(_)
            )
        })
    }

    /// Whether the run was asked to stop before all of its steps had run.
    pub fn interrupted(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.status, StepRunStatus::Interrupted(_)))
    }

    pub fn keys_failed(&self) -> bool {
        self.steps.iter().any(|s| s.keys_failed > 0)
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let status = match &s.status {
                StepRunStatus::Succeeded => "ok".to_string(),
                StepRunStatus::KeysFailed => format!("{} keys failed", s.keys_failed),
                StepRunStatus::Failed(e) => format!("FAILED: {e}"),
                StepRunStatus::Skipped(why) => format!("skipped: {why}"),
                StepRunStatus::Locked(why) => format!("locked: {why}"),
                StepRunStatus::NotConfigured(why) => {
                    format!("not run: {why}; its tables are left as they are")
                }
                StepRunStatus::Interrupted(why) => format!("interrupted: {why}"),
            };
            write!(
                f,
                "{:<24} {:<9} {:>8.2}s  {}",
                s.step,
                s.kind.as_str(),
                s.elapsed.as_secs_f64(),
                status
            )?;
            if s.kind != StepKind::Extract {
                write!(f, "  keys={}", s.keys_processed)?;
            }
            writeln!(f)?;
            for (table, c) in &s.tables {
                writeln!(
                    f,
                    "    {table:<28} +{} ~{} -{} ={}",
                    c.inserted, c.updated, c.deleted, c.unchanged
                )?;
            }
            for (name, n) in &s.counters {
                writeln!(f, "    {name}: {n}")?;
            }
            for failure in &s.failures {
                writeln!(f, "    error: {failure}")?;
            }
        }
        write!(f, "total {:.2}s", self.elapsed.as_secs_f64())?;
        if let Some(id) = self.run_id {
            write!(f, " (run {id}: etl history {id})")?;
        }
        Ok(())
    }
}
