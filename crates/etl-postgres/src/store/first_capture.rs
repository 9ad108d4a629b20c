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
//! (`Store::batches_done` on [`PgStore`](super::PgStore)). Meanwhile every key is pending and the run pages
//! through them in primary-key order anyway, and with no index on `pending` and the keys loaded
//! into half-full pages, marking a key done is a heap-only update: its row is rewritten in its
//! own page and no index changes (200,000 keys: 1.7 s instead of 3.8 s). When the index is made,
//! the table is sampled (`ANALYZE`) too: autovacuum may not reach it for minutes, and without
//! statistics the next run would count its pending keys by scanning the table. A run that dies
//! before the end leaves the index to the next run's `prepare`, which makes every missing one.

use sqlx::{Postgres, Transaction};

use etl_core::store::StoreError;

use crate::error::db;

/// Heap pages the keys are loaded into are filled to this percentage, leaving each key's row
/// room to be rewritten in its own page when the run marks it done.
const LOAD_FILLFACTOR: u32 = 50;

/// The indexes of an empty key table, set aside until [`SetAside::load_and_restore`].
pub(super) struct SetAside {
    table: String,
    /// The statements that make them again, but the index of pending keys: the primary key
    /// first.
    restore: Vec<String>,
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
    let what = format!("setting aside the indexes of {table} for its first capture");
    // Per index: how to drop it, how to make it again (Postgres's own texts for both), and
    // whether it is the index of pending keys. The primary key comes first.
    let indexes: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT CASE WHEN k.conname IS NULL THEN 'DROP INDEX ' || i.indexrelid::regclass::text
                     ELSE 'ALTER TABLE ' || $1 || ' DROP CONSTRAINT ' || quote_ident(k.conname) END,
                CASE WHEN k.conname IS NULL THEN pg_get_indexdef(i.indexrelid)
                     ELSE 'ALTER TABLE ' || $1 || ' ADD CONSTRAINT ' || quote_ident(k.conname)
                          || ' ' || pg_get_constraintdef(k.oid) END,
                i.indexrelid = to_regclass($2)
           FROM pg_index i
           LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype = 'p'
          WHERE i.indrelid = $1::regclass
          ORDER BY k.conname IS NULL",
    )
    .bind(table)
    .bind(pending_index)
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| db(&what, e))?;
    // The other indexes before the primary key they may lean on.
    let drops: Vec<String> = indexes.iter().rev().map(|(d, _, _)| d.clone()).collect();
    execute(tx, &drops, &what).await?;
    Ok(SetAside {
        table: table.to_string(),
        restore: indexes
            .into_iter()
            .filter(|(_, _, pending)| !pending)
            .map(|(_, make, _)| make)
            .collect(),
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
        let mut statements = vec![
            format!("ALTER TABLE {table} SET (fillfactor = {LOAD_FILLFACTOR})"),
            load.to_string(),
            // Later inserts fill their pages again; the loaded pages keep their room.
            format!("ALTER TABLE {table} RESET (fillfactor)"),
        ];
        statements.extend(self.restore);
        execute(
            tx,
            &statements,
            &format!("loading the first capture into {table}"),
        )
        .await
    }
}

async fn execute(
    tx: &mut Transaction<'_, Postgres>,
    statements: &[String],
    what: &str,
) -> Result<(), StoreError> {
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut **tx)
            .await
            .map_err(|e| db(what, e))?;
    }
    Ok(())
}
