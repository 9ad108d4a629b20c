//! What the store records about runs: when a step's run started and how it ended, the steps'
//! memos, and `etl status`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::Row as _;

use etl_core::store::{Outcome, StepStatus, Store, StoreError};
use etl_core::{StepDef, StepKind, TableDef};

use crate::error::db;
use crate::ident::column_list;
use crate::schema::keys_table;
use crate::session::UNFLUSHED;

use super::sql::*;
use super::PgStore;

/// When a step's last run started and finished, how it ended, and its error.
type LastRun = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl PgStore {
    pub(super) async fn record_start(&self, step: &StepDef) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO {book}.steps (step, last_started) SELECT $1, now() FROM {UNFLUSHED}
             ON CONFLICT (step) DO UPDATE SET last_started = now()",
            book = crate::namespace::book_schema()
        ))
        .bind(&step.name)
        .execute(&self.pool)
        .await
        .map_err(|e| db("recording a step start", e))?;
        Ok(())
    }

    pub(super) async fn record_finish(
        &self,
        step: &StepDef,
        outcome: &Outcome,
        counters: &BTreeMap<String, u64>,
        elapsed: Duration,
    ) -> Result<(), StoreError> {
        let error = match outcome {
            Outcome::Failed(e) => Some(e.clone()),
            _ => None,
        };
        sqlx::query(
            &format!("INSERT INTO {book}.steps (step, last_finished, last_outcome, last_error, last_counters, last_elapsed_ms)
             SELECT $1, now(), $2, $3, $4, $5 FROM {UNFLUSHED}
             ON CONFLICT (step) DO UPDATE SET last_finished = now(), last_outcome = EXCLUDED.last_outcome,
                 last_error = EXCLUDED.last_error, last_counters = EXCLUDED.last_counters,
                 last_elapsed_ms = EXCLUDED.last_elapsed_ms", book = crate::namespace::book_schema()),
        )
        .bind(&step.name)
        .bind(outcome.label())
        .bind(error)
        .bind(serde_json::to_value(counters).unwrap_or_default())
        .bind(elapsed.as_millis() as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| db("recording a step end", e))?;
        Ok(())
    }

    pub(super) async fn read_memos(
        &self,
        steps: &[&StepDef],
    ) -> Result<HashMap<String, String>, StoreError> {
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let fingerprints: Vec<&str> = steps.iter().map(|s| s.fingerprint.as_str()).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT s.step, s.memo FROM {book}.steps AS s
               JOIN unnest($1::text[], $2::text[]) AS w(step, fingerprint)
                 ON w.step = s.step AND w.fingerprint = s.memo_fingerprint
              WHERE s.memo IS NOT NULL",
            book = crate::namespace::book_schema()
        ))
        .bind(&names)
        .bind(&fingerprints)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading the steps' memos", e))?;
        Ok(rows.into_iter().collect())
    }

    pub(super) async fn write_memo(
        &self,
        step: &StepDef,
        memo: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO {book}.steps (step, memo, memo_fingerprint) VALUES ($1, $2, $3)
             ON CONFLICT (step) DO UPDATE SET memo = EXCLUDED.memo,
                 memo_fingerprint = EXCLUDED.memo_fingerprint",
            book = crate::namespace::book_schema()
        ))
        .bind(&step.name)
        .bind(memo)
        .bind(memo.map(|_| step.fingerprint.as_str()))
        .execute(&self.pool)
        .await
        .map_err(|e| db(format!("recording the memo of step `{}`", step.name), e))?;
        Ok(())
    }

    pub(super) async fn step_status(&self, step: &StepDef) -> Result<StepStatus, StoreError> {
        let ctx = || format!("reading the status of step `{}`", step.name);
        let mut status = StepStatus::default();
        let row: Option<LastRun> = sqlx::query_as(
            &format!("SELECT to_char(last_started, 'YYYY-MM-DD HH24:MI:SS TZ'), to_char(last_finished, 'YYYY-MM-DD HH24:MI:SS TZ'),
                    last_outcome, last_error
               FROM {book}.steps WHERE step = $1", book = crate::namespace::book_schema()),
        )
        .bind(&step.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        if let Some((s, f, o, e)) = row {
            status.last_started = s;
            status.last_finished = f;
            status.last_outcome = o;
            status.last_error = e;
        }
        if step.kind == StepKind::Extract {
            for o in &step.outputs {
                let def = TableDef {
                    name: o.clone(),
                    primary_key: Vec::new(),
                };
                status.keys_total += self.count_live(&def).await?;
            }
            return Ok(status);
        }
        let keys = keys_table(&step.name);
        let (total, pending, failed): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE pending), count(*) FILTER (WHERE is_success = false) FROM {keys}"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        status.keys_total = total as u64;
        status.keys_pending = pending as u64;
        status.keys_failed = failed as u64;
        let width = step.key.len();
        let rows = sqlx::query(&format!(
            "SELECT {}, attempts, error FROM {keys} WHERE is_success = false ORDER BY process_ts DESC LIMIT 5",
            column_list(&step.key, None)
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        for r in rows {
            let key = key_of(&r, width).map_err(|e| db(ctx(), e))?;
            let attempts: i32 = r.try_get(width).map_err(|e| db(ctx(), e))?;
            let error: Option<String> = r.try_get(width + 1).map_err(|e| db(ctx(), e))?;
            status
                .latest_errors
                .push((key.encode(), attempts, error.unwrap_or_default()));
        }
        Ok(status)
    }
}
