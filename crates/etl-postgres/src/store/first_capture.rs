//! A step's first capture into its empty key bookkeeping, loaded without the table's indexes.
//!
//! The first run of a step (or a run after its key changed) captures every key of its input.
//! Inserting 200,000 five-column keys into `keys__<step>` while Postgres maintains its primary
//! key and its index of pending keys took 3.5 to 4.1 s here; the same rows loaded into the bare
//! table, and the two indexes built after, 0.8 s. So when the table is empty, the capture drops
//! its indexes, loads the keys and makes the indexes again from Postgres's own definitions, all
//! in the capture's transaction: a failure rolls back to the empty table with its indexes, and
//! no other session sees the table without them (the transaction holds it exclusively until it
//! commits, which only `etl status` and the metrics, reading it, ever wait for).

use sqlx::{Postgres, Transaction};

use etl_core::store::StoreError;

use crate::error::db;
use crate::ident::quote_ident;

/// The indexes of an empty key table, set aside until [`SetAside::restore`].
pub(super) struct SetAside {
    table: String,
    /// `(name, definition)` of the primary key constraint.
    primary_key: Option<(String, String)>,
    /// `CREATE INDEX` statements of the other indexes.
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
/// them again.
pub(super) async fn set_aside(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
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
    let others: Vec<(String, String)> = sqlx::query_as(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE i.indrelid = $1::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| db(what(), e))?;
    for (name, _) in &others {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut **tx)
            .await
            .map_err(|e| db(what(), e))?;
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
        indexes: others.into_iter().map(|(_, def)| def).collect(),
    })
}

impl SetAside {
    /// Makes the indexes again, over the loaded keys.
    pub(super) async fn restore(
        self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<(), StoreError> {
        let table = &self.table;
        let what = || format!("making the indexes of {table} again after its first capture");
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
