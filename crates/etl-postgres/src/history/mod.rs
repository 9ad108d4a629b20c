//! The run history in `etl.runs` and `etl.run_steps` (migration 0007): written by the store as
//! a run goes (see `etl_core::history`), read by `etl history`, `etl serve` and its metrics.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use sqlx::PgPool;

use etl_core::history::{Invocation, RunOutcome};
use etl_core::report::StepReport;
use etl_core::step::ErrorClass;
use etl_core::store::StoreError;

use crate::error::db;
use crate::session::UNFLUSHED;

pub mod summary;

/// Records that a run began; returns its id.
pub async fn run_begun(pool: &PgPool, invocation: &Invocation) -> Result<i64, StoreError> {
    sqlx::query_scalar(&format!(
        "INSERT INTO {book}.runs (command, host, pid, worker)
         SELECT $1, $2, $3, $4 FROM {UNFLUSHED}
         RETURNING run_id",
        book = crate::namespace::book_schema()
    ))
    .bind(&invocation.command)
    .bind(&invocation.host)
    .bind(invocation.pid as i32)
    .bind(&invocation.worker)
    .fetch_one(pool)
    .await
    .map_err(|e| db("recording the start of a run in etl.runs", e))
}

/// Records one step's report under `run`.
pub async fn step_reported(pool: &PgPool, run: i64, report: &StepReport) -> Result<(), StoreError> {
    let started = report.started_at.map(epoch_seconds);
    let tables: serde_json::Map<String, serde_json::Value> = report
        .tables
        .iter()
        .map(|(t, c)| {
            (
                t.clone(),
                serde_json::json!({
                    "inserted": c.inserted, "updated": c.updated,
                    "deleted": c.deleted, "unchanged": c.unchanged,
                }),
            )
        })
        .collect();
    sqlx::query(
        &format!("INSERT INTO {book}.run_steps (run_id, step, kind, started_at, outcome, reason, error_class,
             keys_processed, keys_failed, tables, counters, failures, elapsed_ms)
         SELECT $1, $2, $3, to_timestamp($4), $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM {UNFLUSHED}
         ON CONFLICT (run_id, step) DO UPDATE SET finished_at = now(),
             outcome = EXCLUDED.outcome, reason = EXCLUDED.reason,
             error_class = EXCLUDED.error_class, keys_processed = EXCLUDED.keys_processed,
             keys_failed = EXCLUDED.keys_failed, tables = EXCLUDED.tables,
             counters = EXCLUDED.counters, failures = EXCLUDED.failures,
             elapsed_ms = EXCLUDED.elapsed_ms", book = crate::namespace::book_schema()),
    )
    .bind(run)
    .bind(&report.step)
    .bind(report.kind.as_str())
    .bind(started)
    .bind(report.status.as_str())
    .bind(report.status.reason())
    .bind(report.error_class.map(class_name))
    .bind(report.keys_processed as i64)
    .bind(report.keys_failed as i64)
    .bind(serde_json::Value::Object(tables))
    .bind(serde_json::to_value(&report.counters).unwrap_or_default())
    .bind(serde_json::to_value(&report.failures).unwrap_or_default())
    .bind(report.elapsed.as_millis() as i64)
    .execute(pool)
    .await
    .map_err(|e| db("recording a step of the run in etl.run_steps", e))?;
    Ok(())
}

/// Records how `run` ended, then prunes the runs older than `retention`.
pub async fn run_ended(
    pool: &PgPool,
    run: i64,
    outcome: RunOutcome,
    retention: Duration,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE {book}.runs SET finished_at = now(), outcome = $2 FROM {UNFLUSHED}
          WHERE run_id = $1",
        book = crate::namespace::book_schema()
    ))
    .bind(run)
    .bind(outcome.as_str())
    .execute(pool)
    .await
    .map_err(|e| db("recording the end of a run in etl.runs", e))?;
    let pruned = sqlx::query(&format!(
        "DELETE FROM {book}.runs WHERE started_at < now() - make_interval(secs => $1)",
        book = crate::namespace::book_schema()
    ))
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await
    .map_err(|e| db("pruning the run history past its retention", e))?
    .rows_affected();
    if pruned > 0 {
        tracing::info!(runs = pruned, "pruned runs past the history's retention");
    }
    Ok(())
}

/// The word an error class is recorded under (the `class` label of the error metrics).
pub fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Transient => "transient",
        ErrorClass::Data => "data",
        ErrorClass::Fatal => "fatal",
    }
}

/// Seconds since the epoch, as `to_timestamp` takes them.
fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// One run as the history holds it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub run_id: i64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `None` while running, or when its process died.
    pub outcome: Option<String>,
    pub command: String,
    pub host: String,
    pub pid: i32,
    pub worker: String,
    pub elapsed_ms: Option<i64>,
}

/// One step of a run as the history holds it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StepRow {
    pub run_id: i64,
    pub step: String,
    pub kind: String,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub error_class: Option<String>,
    pub keys_processed: i64,
    pub keys_failed: i64,
    pub tables: serde_json::Value,
    pub counters: serde_json::Value,
    pub failures: serde_json::Value,
    pub elapsed_ms: i64,
}

const RUN_COLUMNS: &str = "run_id,
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS started_at,
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS finished_at,
    outcome, command, host, pid, worker,
    (extract(epoch FROM finished_at - started_at) * 1000)::bigint AS elapsed_ms";

const STEP_COLUMNS: &str = "run_id, step, kind,
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS started_at,
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS finished_at,
    outcome, reason, error_class, keys_processed, keys_failed, tables, counters, failures,
    elapsed_ms";

/// The most recent runs, newest first.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM {book}.runs ORDER BY run_id DESC LIMIT $1",
        book = crate::namespace::book_schema()
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the run history (etl.runs)", e))
}

/// One run, if the history still holds it.
pub async fn run(pool: &PgPool, run_id: i64) -> Result<Option<RunRow>, StoreError> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM {book}.runs WHERE run_id = $1",
        book = crate::namespace::book_schema()
    ))
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .map_err(|e| db("reading a run from the history (etl.runs)", e))
}

/// The steps of one or more runs, in the order they ended.
pub async fn steps_of(pool: &PgPool, run_ids: &[i64]) -> Result<Vec<StepRow>, StoreError> {
    sqlx::query_as(&format!(
        "SELECT {STEP_COLUMNS} FROM {book}.run_steps WHERE run_id = ANY($1)
         ORDER BY run_id DESC, finished_at, step",
        book = crate::namespace::book_schema()
    ))
    .bind(run_ids)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the steps of a run (etl.run_steps)", e))
}

/// SQL for the run in which the step named by `step` (a parameter, e.g. `$3`) wrote at `at`
/// (a timestamp expression, e.g. `m.update_ts`): the one whose step interval holds it. A step
/// never overlaps itself (its lock), so there is at most one; NULL before the history began.
pub fn run_of_write(step: &str, at: &str) -> String {
    format!(
        "(SELECT s.run_id FROM {book}.run_steps AS s
           WHERE s.step = {step} AND s.started_at <= {at} AND s.finished_at >= {at}
           ORDER BY s.run_id DESC LIMIT 1)",
        book = crate::namespace::book_schema()
    )
}
