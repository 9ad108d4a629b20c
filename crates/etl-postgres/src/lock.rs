//! Step locks: Postgres session advisory locks, held on a dedicated connection.
//!
//! A step takes an exclusive lock on itself and on each table it writes, and a shared lock on
//! each table it reads, all in one global order (so two runs never deadlock). A second run can
//! therefore never process the same step, nor write a table that a running step reads. When the
//! holder dies (even by kill -9) its session ends and Postgres releases the locks.

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};

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

pub struct PgStepLock {
    conn: PgConnection,
}

#[async_trait]
impl StepLock for PgStepLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut self.conn)
            .await
            .map_err(|e| db("releasing a step lock", e))?;
        self.conn
            .close()
            .await
            .map_err(|e| db("closing the lock connection", e))
    }
}

pub async fn acquire(
    database_url: &str,
    step: &StepDef,
    wait: bool,
) -> Result<PgStepLock, StoreError> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .map_err(|e| db("connecting for a step lock", e))?;
    sqlx::query("SET application_name = 'etl'")
        .execute(&mut conn)
        .await
        .map_err(|e| db("naming the lock session", e))?;
    for (id, mode, what) in resources(step) {
        if wait {
            let sql = match mode {
                Mode::Exclusive => "SELECT pg_advisory_lock($1)",
                Mode::Shared => "SELECT pg_advisory_lock_shared($1)",
            };
            if !try_lock(&mut conn, id, mode).await? {
                tracing::info!(resource = %what, "waiting for another etl run to release its lock");
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| db(format!("waiting for the lock of {what}"), e))?;
            }
        } else if !try_lock(&mut conn, id, mode).await? {
            let holder = holder(&mut conn, id).await;
            sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut conn)
                .await
                .ok();
            return Err(StoreError::Locked {
                step: step.name.clone(),
                holder: format!("{what} is held by {holder}"),
            });
        }
    }
    Ok(PgStepLock { conn })
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
