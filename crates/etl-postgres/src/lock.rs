//! Step locks: Postgres session advisory locks, held on a connection of their own.
//!
//! A step takes an exclusive lock on itself and on each table it writes, and a shared lock on
//! each table it reads, all in one global order (so two runs never deadlock). A second run can
//! therefore never process the same step, nor write a table that a running step reads. When the
//! holder dies (even by kill -9) its session ends and Postgres releases the locks.
//!
//! The connections come from a pool of their own ([`lock_pool`]): a step that releases its locks
//! (`pg_advisory_unlock_all`) hands its session to the next step, so a run opens a few lock
//! sessions instead of one per step. A lock dropped without being released (a panic, a run
//! cancelled part way) closes its session instead of returning it, so no lock ever outlives its
//! holder in a pooled session.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::{PgConnection, PgPool};

use etl_core::store::{StepLock, StoreError};
use etl_core::StepDef;

use crate::error::db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Shared,
    Exclusive,
}

/// The advisory lock id of a named resource (`step:x`, `table:y`) of the current pipeline:
/// advisory locks are the database's, so each pipeline hashes its own name in.
pub fn lock_id(resource: &str) -> i64 {
    let resource = crate::namespace::current().lock_resource(resource);
    let h = blake3::hash(format!("etl.lock.v1:{resource}").as_bytes());
    i64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn resources(step: &StepDef) -> Vec<(i64, Mode, String)> {
    let mut out: Vec<(i64, Mode, String)> = Vec::new();
    out.push((
        lock_id(&format!("step:{}", step.name)),
        Mode::Exclusive,
        format!("step {}", step.name),
    ));
    for o in &step.outputs {
        out.push((
            lock_id(&format!("table:{o}")),
            Mode::Exclusive,
            format!("table {o}"),
        ));
    }
    for i in &step.inputs {
        if !step.outputs.contains(&i.table) {
            out.push((
                lock_id(&format!("table:{}", i.table)),
                Mode::Shared,
                format!("table {}", i.table),
            ));
        }
    }
    out.sort_by_key(|(id, _, _)| *id);
    out.dedup_by_key(|(id, _, _)| *id);
    out
}

/// The pool lock sessions come from: opened lazily, one session per step holding its locks at
/// the same time, kept for the next steps. A lock session needs no setting beyond its
/// `application_name`, which `options` sends at startup (see [`crate::session`]).
pub fn lock_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        // Never the limit in practice: a step holds one session while it runs.
        .max_connections(256)
        .min_connections(0)
        .idle_timeout(Some(Duration::from_secs(300)))
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(options)
}

/// A step's locks, on the session that holds them.
pub struct PgStepLock {
    conn: Option<PoolConnection<Postgres>>,
}

impl PgStepLock {
    fn session(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a lock's session until it is released")
    }
}

impl Drop for PgStepLock {
    /// Not released: the session is closed, not pooled, and Postgres drops its locks.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

#[async_trait]
impl StepLock for PgStepLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(self.session())
            .await
            .map_err(|e| db("releasing a step lock", e));
        if unlocked.is_ok() {
            // Holding nothing now: back to the pool for the next step.
            drop(self.conn.take());
        }
        unlocked.map(|_| ())
    }
}

pub async fn acquire(pool: &PgPool, step: &StepDef, wait: bool) -> Result<PgStepLock, StoreError> {
    let conn = pool
        .acquire()
        .await
        .map_err(|e| db("connecting for a step lock", e))?;
    // From here on, an error or a cancelled future drops the guard, which closes the session.
    let mut lock = PgStepLock { conn: Some(conn) };
    let resources = resources(step);
    if !wait {
        // Every lock tried in one statement; if one is held elsewhere the guard's drop closes
        // the session, releasing those taken.
        if let Some(i) = try_all(lock.session(), &resources).await? {
            let (id, _, what) = &resources[i];
            let holder = holder(lock.session(), *id).await;
            return Err(StoreError::Locked {
                step: step.name.clone(),
                holder: format!("{what} is held by {holder}"),
            });
        }
        return Ok(lock);
    }
    for (id, mode, what) in resources {
        let conn = lock.session();
        let sql = match mode {
            Mode::Exclusive => "SELECT pg_advisory_lock($1)",
            Mode::Shared => "SELECT pg_advisory_lock_shared($1)",
        };
        if !try_lock(conn, id, mode).await? {
            tracing::info!(resource = %what, "waiting for another etl run to release its lock");
            sqlx::query(sql)
                .bind(id)
                .execute(conn)
                .await
                .map_err(|e| db(format!("waiting for the lock of {what}"), e))?;
        }
    }
    Ok(lock)
}

/// Tries every lock at once (without waiting, so the order cannot deadlock); the index of the
/// first one held elsewhere, if any.
async fn try_all(
    conn: &mut PgConnection,
    resources: &[(i64, Mode, String)],
) -> Result<Option<usize>, StoreError> {
    let ids: Vec<i64> = resources.iter().map(|(id, _, _)| *id).collect();
    let shared: Vec<bool> = resources
        .iter()
        .map(|(_, mode, _)| *mode == Mode::Shared)
        .collect();
    let refused: Option<i64> = sqlx::query_scalar(
        "SELECT min(w.ord) FROM unnest($1::bigint[], $2::bool[]) WITH ORDINALITY AS w(id, shared, ord)
          WHERE NOT CASE WHEN w.shared THEN pg_try_advisory_lock_shared(w.id)
                         ELSE pg_try_advisory_lock(w.id) END",
    )
    .bind(&ids)
    .bind(&shared)
    .fetch_one(conn)
    .await
    .map_err(|e| db("taking a step's locks", e))?;
    Ok(refused.map(|ord| ord as usize - 1))
}

async fn try_lock(conn: &mut PgConnection, id: i64, mode: Mode) -> Result<bool, StoreError> {
    let sql = match mode {
        Mode::Exclusive => "SELECT pg_try_advisory_lock($1)",
        Mode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
    };
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(|e| db("taking a step lock", e))
}

/// Who holds an advisory lock, as far as Postgres can tell.
async fn holder(conn: &mut PgConnection, id: i64) -> String {
    let row: Option<(i32, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT l.pid, a.application_name, to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.classid = (($1 >> 32) & x'ffffffff'::bigint)::oid
            AND l.objid = ($1 & x'ffffffff'::bigint)::oid
            AND l.objsubid = 1
            AND l.pid <> pg_backend_pid()
          LIMIT 1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .ok()
    .flatten();
    match row {
        Some((pid, app, since)) => format!(
            "database session {pid} ({}, connected since {})",
            app.filter(|a| !a.is_empty())
                .unwrap_or_else(|| "unnamed client".into()),
            since.unwrap_or_else(|| "?".into())
        ),
        None => "another session".into(),
    }
}
