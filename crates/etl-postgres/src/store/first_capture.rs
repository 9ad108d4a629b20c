//! A step's first capture into its empty key bookkeeping, loaded without the table's indexes.
//!
//! The first run of a step (or a run after its key changed) captures every key of its input.
//! Inserting 200,000 five-column keys into `keys__<step>` while Postgres maintains its primary
//! key and its index of pending keys took 3.5 to 4.1 s here; the same rows loaded into the bare
//! table, and the indexes built after, 0.8 s. So when the table is empty, the capture drops its
//! indexes, loads the keys and makes the primary key again, all in the capture's transaction: a
//! failure rolls back to the empty table with its indexes, and no other session sees the table
//! without them (the transaction holds it exclusively until it commits, which only `etl status`
//! and the metrics, reading it, ever wait for).
//!
//! The index of pending keys waits until the run has processed its batches
//! ([`PgStore::batches_done`](super::PgStore)). Meanwhile every key is pending and the run pages
//! through them in primary-key order anyway, and with no index on `pending` and the keys loaded
//! into half-full pages, marking a key done is a heap-only update: its row is rewritten in its
//! own page and no index changes (200,000 keys: 1.7 s instead of 3.8 s). A run that dies before
//! the end leaves the index to the next run's `prepare`, which makes every missing one.

use sqlx::{Postgres, Transaction};

use etl_core::store::StoreError;

use crate::error::db;
use crate::ident::quote_ident;

/// Heap pages the keys are loaded into are filled to this percentage, leaving each key's row
/// room to be rewritten in its own page when the run marks it done.
const LOAD_FILLFACTOR: u32 = 50;

/// The indexes of an empty key table, set aside until [`SetAside::restore`].
pub(super) struct SetAside {
    table: String,
    /// `(name, definition)` of the primary key constraint.
    primary_key: Option<(String, String)>,
    /// `CREATE INDEX` statements of the other indexes but the one of pending keys.
    indexes: Vec<String>,
}

/// Whether the key table `table` (qualified and quoted) has no rows.
pub(super) async fn is_empty(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(&format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"))
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| db(format!("checking whether {table} is empty"), e))
}

/// Drops the indexes of the key table `table` (qualified and quoted), remembering how to make
/// them again, all but `pending_index` (qualified and quoted), which the end of the run makes.
pub(super) async fn set_aside(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    pending_index: &str,
) -> Result<SetAside, StoreError> {
    let what = || format!("setting aside the indexes of {table} for its first capture");
    let primary_key: Option<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = $1::regclass AND contype = 'p'",
    )
    .bind(table)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| db(what(), e))?;
    let others: Vec<(i64, String)> = sqlx::query_as(
        "SELECT i.indexrelid::bigint, pg_get_indexdef(i.indexrelid)
           FROM pg_index i
          WHERE i.indrelid = $1::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| db(what(), e))?;
    let pending_oid: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
        .bind(pending_index)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| db(what(), e))?;
    let mut indexes = Vec::new();
    for (oid, definition) in others {
        let name: String = sqlx::query_scalar("SELECT $1::bigint::oid::regclass::text")
            .bind(oid)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| db(what(), e))?;
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut **tx)
            .await
            .map_err(|e| db(what(), e))?;
        if Some(oid) != pending_oid {
            indexes.push(definition);
        }
    }
    if let Some((name, _)) = &primary_key {
        sqlx::query(&format!(
            "ALTER TABLE {table} DROP CONSTRAINT {}",
            quote_ident(name)
        ))
        .execute(&mut **tx)
        .await
        .map_err(|e| db(what(), e))?;
    }
    Ok(SetAside {
        table: table.to_string(),
        primary_key,
        indexes,
    })
}

impl SetAside {
    /// Runs `load` (the capture's `INSERT`) into the bare table, its pages filled to
    /// [`LOAD_FILLFACTOR`], then makes the indexes again but the one of pending keys.
    pub(super) async fn load_and_restore(
        self,
        tx: &mut Transaction<'_, Postgres>,
        load: &str,
    ) -> Result<(), StoreError> {
        let table = &self.table;
        let what = || format!("loading the first capture into {table}");
        for statement in [
            format!("ALTER TABLE {table} SET (fillfactor = {LOAD_FILLFACTOR})"),
            load.to_string(),
            // Later inserts fill their pages again; the loaded pages keep their room.
            format!("ALTER TABLE {table} RESET (fillfactor)"),
        ] {
            sqlx::query(&statement)
                .execute(&mut **tx)
                .await
                .map_err(|e| db(what(), e))?;
        }
        if let Some((name, definition)) = &self.primary_key {
            // Postgres's own text for the constraint (pg_get_constraintdef).
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {definition}",
                quote_ident(name)
            ))
            .execute(&mut **tx)
            .await
            .map_err(|e| db(what(), e))?;
        }
        for definition in &self.indexes {
            // Postgres's own text for the index (pg_get_indexdef).
            sqlx::query(definition)
                .execute(&mut **tx)
                .await
                .map_err(|e| db(what(), e))?;
        }
        Ok(())
    }
}
