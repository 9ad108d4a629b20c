//! [`PgQueue`]: the engine's [`WorkQueue`] in `etl.batches` and `etl.workers` (migration 0009).
//!
//! A claim is one statement: the oldest open batch (waiting, or leased past its lease) among the
//! steps the worker may process, locked with `FOR UPDATE SKIP LOCKED` so two claims never pick
//! the same row, and leased in the same `UPDATE`. Renewing extends every lease of the worker and
//! its heartbeat (a worker's row in `etl.workers`, a run's `heartbeat_at`). Completing is
//! conditional on still holding the lease. A batch done or closed forgets its keys (a sink's
//! batch of 10,000 edge keys is half a megabyte) and keeps who did it and what it did, for the
//! history, until its run is pruned.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use etl_core::queue::{BatchResult, ClaimedBatch, WorkQueue};
use etl_core::store::StoreError;
use etl_core::Key;

use crate::error::db;
use crate::namespace::book_schema;

pub struct PgQueue {
    pool: PgPool,
    host: String,
    pid: u32,
}

impl PgQueue {
    pub fn new(pool: PgPool, host: impl Into<String>, pid: u32) -> Self {
        PgQueue {
            pool,
            host: host.into(),
            pid,
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[async_trait]
impl WorkQueue for PgQueue {
    async fn publish(
        &self,
        run: i64,
        step: &str,
        fingerprint: &str,
        batches: Vec<Vec<Key>>,
    ) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        let keys: Vec<serde_json::Value> = batches
            .iter()
            .map(|b| serde_json::json!(b.iter().map(|k| k.parts()).collect::<Vec<_>>()))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO {book}.batches (run_id, step, fingerprint, keys)
             SELECT $1, $2, $3, k FROM unnest($4::jsonb[]) WITH ORDINALITY AS u(k, n) ORDER BY n",
            book = book_schema()
        ))
        .bind(run)
        .bind(step)
        .bind(fingerprint)
        .bind(keys)
        .execute(&self.pool)
        .await
        .map_err(|e| db(format!("publishing the batches of step `{step}`"), e))?;
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        only: Option<(i64, &str)>,
        steps: &[(String, String)],
    ) -> Result<Option<ClaimedBatch>, StoreError> {
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        let prints: Vec<&str> = steps.iter().map(|(_, f)| f.as_str()).collect();
        let (run, step) = match only {
            Some((r, s)) => (Some(r), Some(s)),
            None => (None, None),
        };
        let row: Option<(i64, i64, String, serde_json::Value)> = sqlx::query_as(&format!(
            "UPDATE {book}.batches AS b
                SET state = 'leased', worker = $1, lease_until = now() + make_interval(secs => $2),
                    claims = b.claims + 1
              WHERE b.batch_id = (
                    SELECT c.batch_id FROM {book}.batches AS c
                     WHERE (c.state = 'ready' OR (c.state = 'leased' AND c.lease_until < now()))
                       AND ($3::bigint IS NULL OR c.run_id = $3)
                       AND ($4::text IS NULL OR c.step = $4)
                       AND (c.step, c.fingerprint) IN (SELECT * FROM unnest($5::text[], $6::text[]))
                       AND EXISTS (SELECT 1 FROM {book}.runs AS r
                                    WHERE r.run_id = c.run_id AND r.finished_at IS NULL
                                      AND r.heartbeat_at > now() - make_interval(secs => $2))
                     ORDER BY c.batch_id
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED)
             RETURNING b.batch_id, b.run_id, b.step, b.keys",
            book = book_schema()
        ))
        .bind(worker)
        .bind(secs(lease))
        .bind(run)
        .bind(step)
        .bind(&names)
        .bind(&prints)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("claiming a batch from the work queue", e))?;
        let Some((id, run_id, step, keys)) = row else {
            return Ok(None);
        };
        let keys: Vec<Vec<String>> =
            serde_json::from_value(keys).map_err(|e| StoreError::Database {
                context: format!("reading the keys of batch {id} of step `{step}`"),
                transient: false,
                source: Box::new(e),
            })?;
        Ok(Some(ClaimedBatch {
            id,
            run_id,
            step,
            keys: keys.into_iter().map(Key).collect(),
        }))
    }

    async fn renew(
        &self,
        worker: &str,
        lease: Duration,
        run: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db("renewing the worker's leases", e))?;
        sqlx::query(&format!(
            "UPDATE {book}.batches SET lease_until = now() + make_interval(secs => $2)
              WHERE worker = $1 AND state = 'leased'",
            book = book_schema()
        ))
        .bind(worker)
        .bind(secs(lease))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("renewing the worker's leases", e))?;
        let alive = match run {
            Some(_) => format!(
                "UPDATE {book}.runs SET heartbeat_at = now() WHERE run_id = $1",
                book = book_schema()
            ),
            None => format!(
                "INSERT INTO {book}.workers (worker, host, pid) VALUES ($1, $2, $3)
                 ON CONFLICT (worker) DO UPDATE SET seen_at = now(), host = EXCLUDED.host, pid = EXCLUDED.pid",
                book = book_schema()
            ),
        };
        let statement = match run {
            Some(run) => sqlx::query(&alive).bind(run),
            None => sqlx::query(&alive)
                .bind(worker)
                .bind(&self.host)
                .bind(self.pid as i32),
        };
        statement
            .execute(&mut *tx)
            .await
            .map_err(|e| db("recording the heartbeat", e))?;
        tx.commit()
            .await
            .map_err(|e| db("renewing the worker's leases", e))
    }

    async fn complete(
        &self,
        batch: i64,
        worker: &str,
        result: &BatchResult,
    ) -> Result<bool, StoreError> {
        let result = serde_json::to_value(result).unwrap_or_default();
        let done = sqlx::query(&format!(
            "UPDATE {book}.batches
                SET state = 'done', result = $3, done_at = now(), lease_until = NULL, keys = '[]'
              WHERE batch_id = $1 AND worker = $2 AND state = 'leased'",
            book = book_schema()
        ))
        .bind(batch)
        .bind(worker)
        .bind(result)
        .execute(&self.pool)
        .await
        .map_err(|e| db("completing a batch of the work queue", e))?
        .rows_affected();
        Ok(done == 1)
    }

    async fn open(&self, run: i64, step: &str) -> Result<u64, StoreError> {
        let open: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {book}.batches
              WHERE run_id = $1 AND step = $2 AND state IN ('ready', 'leased')",
            book = book_schema()
        ))
        .bind(run)
        .bind(step)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(format!("counting the open batches of step `{step}`"), e))?;
        Ok(open as u64)
    }

    async fn results(&self, run: i64, step: &str) -> Result<Vec<BatchResult>, StoreError> {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT result FROM {book}.batches
              WHERE run_id = $1 AND step = $2 AND state = 'done' ORDER BY batch_id",
            book = book_schema()
        ))
        .bind(run)
        .bind(step)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db(format!("reading the batches of step `{step}`"), e))?;
        Ok(rows
            .into_iter()
            .map(|r| serde_json::from_value(r).unwrap_or_default())
            .collect())
    }

    async fn close(&self, run: i64, step: &str) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE {book}.batches SET state = 'closed', lease_until = NULL, keys = '[]'
              WHERE run_id = $1 AND step = $2 AND state <> 'done'",
            book = book_schema()
        ))
        .bind(run)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(|e| db(format!("closing the batches of step `{step}`"), e))?;
        Ok(())
    }

    async fn leave(&self, worker: &str) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE {book}.batches SET lease_until = now() WHERE worker = $1 AND state = 'leased'",
            book = book_schema()
        ))
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(|e| db("handing back the worker's batches", e))?;
        sqlx::query(&format!(
            "DELETE FROM {book}.workers WHERE worker = $1",
            book = book_schema()
        ))
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(|e| db("recording that the worker stopped", e))?;
        Ok(())
    }
}

/// A worker that renewed its heartbeat within the lease, with the batches it holds.
#[derive(Debug, Clone)]
pub struct LiveWorker {
    pub worker: String,
    pub host: String,
    pub pid: i32,
    pub seen_secs_ago: f64,
    /// (step, batch id) of each lease it holds.
    pub leases: Vec<(String, i64)>,
}

/// A worker's row, with the steps and ids of the batches it holds.
type LiveRow = (
    String,
    String,
    i32,
    f64,
    Option<Vec<String>>,
    Option<Vec<i64>>,
);

/// The workers alive now: seen within `lease`.
pub async fn live_workers(pool: &PgPool, lease: Duration) -> Result<Vec<LiveWorker>, StoreError> {
    let rows: Vec<LiveRow> = sqlx::query_as(&format!(
        "SELECT w.worker, w.host, w.pid, extract(epoch FROM now() - w.seen_at)::float8,
                    array_agg(b.step ORDER BY b.batch_id) FILTER (WHERE b.batch_id IS NOT NULL),
                    array_agg(b.batch_id ORDER BY b.batch_id) FILTER (WHERE b.batch_id IS NOT NULL)
               FROM {book}.workers AS w
               LEFT JOIN {book}.batches AS b
                 ON b.worker = w.worker AND b.state = 'leased' AND b.lease_until > now()
              WHERE w.seen_at > now() - make_interval(secs => $1)
              GROUP BY w.worker, w.host, w.pid, w.seen_at
              ORDER BY w.worker",
        book = book_schema()
    ))
    .bind(secs(lease))
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the live workers", e))?;
    Ok(rows
        .into_iter()
        .map(|(worker, host, pid, seen, steps, ids)| LiveWorker {
            worker,
            host,
            pid,
            seen_secs_ago: seen,
            leases: steps
                .unwrap_or_default()
                .into_iter()
                .zip(ids.unwrap_or_default())
                .collect(),
        })
        .collect())
}

/// Per worker, the batches of `run` it completed.
pub async fn batches_by_worker(pool: &PgPool, run: i64) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as(&format!(
        "SELECT worker, count(*) FROM {book}.batches
          WHERE run_id = $1 AND state = 'done' GROUP BY worker ORDER BY worker",
        book = book_schema()
    ))
    .bind(run)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the workers of a run", e))
}
