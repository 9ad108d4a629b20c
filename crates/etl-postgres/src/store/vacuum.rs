//! Vacuuming the key tables a run rewrote, once all of its steps have ended.
//!
//! Marking a key done rewrites its row, and until a vacuum the old version stays in the table and
//! in the index of pending keys. The next run counts its pending keys through that index and
//! visits every such leftover in the heap before it learns that none is pending: after M's full
//! run, 60,000 visits per 200,000-key table, 20 to 74 ms each time in the no-op that followed,
//! against well under a millisecond once vacuumed. (The first capture builds the index after its
//! batches, but the other steps of the run still hold snapshots then, so the old versions are
//! only "recently dead" and go into the index too.) Autovacuum clears them a minute or more
//! later; a schedule's next run may come first, so the store vacuums as soon as no step of the
//! run holds a transaction, which is when the engine calls
//! [`Store::after_run`](etl_core::store::Store::after_run).
//!
//! Only tables the run rewrote a large share of ([`worth_vacuuming`]): a vacuum reads the table's
//! indexes whole whatever it changed, so after rewriting 1% of a 2,000,000-key table it would
//! cost more than the few milliseconds the leftovers cost the next run. Vacuums skip a table
//! another session holds (autovacuum, say), and run two at a time, one per core of the machines
//! this was measured on.

use etl_core::store::{ProcessedKeys, StoreError};
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;

use crate::error::db;
use crate::schema::keys_table;

/// Keys a step must have processed in the run for its key table to be vacuumed.
const MIN_KEYS: u64 = 10_000;
/// ...and the share of the table's rows they must be (its size as Postgres last estimated it).
const MIN_SHARE: f64 = 0.10;
/// Vacuums running at once.
const SIDE_BY_SIDE: usize = 2;

/// Whether a key table of (as Postgres estimates) `rows` rows, of which the run processed
/// `keys`, is worth vacuuming now. A table never sized (`-1`) or last sized empty is.
pub(super) fn worth_vacuuming(keys: u64, rows: f32) -> bool {
    keys >= MIN_KEYS && (rows <= 0.0 || keys as f64 >= MIN_SHARE * f64::from(rows))
}

/// Vacuums the key tables of the steps in `processed` that are [`worth_vacuuming`]; returns the
/// tables it asked Postgres to vacuum (one it may not vacuum, not owning it, it only warns of).
pub(super) async fn vacuum_rewritten(
    pool: &PgPool,
    processed: &[ProcessedKeys<'_>],
) -> Result<Vec<String>, StoreError> {
    // Below MIN_KEYS no size makes a table worth it: no query for those.
    let candidates: Vec<(String, u64)> = processed
        .iter()
        .filter(|p| p.keys >= MIN_KEYS)
        .map(|p| (keys_table(&p.step.name), p.keys))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = candidates.iter().map(|(t, _)| t.as_str()).collect();
    // NULL for a missing table (a step whose keys were never recorded).
    let estimates: Vec<Option<f32>> = sqlx::query_scalar(
        "SELECT (SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass(t.name))
           FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) ORDER BY t.ord",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the sizes of the key tables to vacuum", e))?;
    let chosen: Vec<String> = candidates
        .into_iter()
        .zip(estimates)
        .filter_map(|((table, keys), rows)| worth_vacuuming(keys, rows?).then_some(table))
        .collect();
    futures::stream::iter(chosen.clone())
        .map(|table| async move {
            // VACUUM cannot run in a transaction block: one simple query, on its own.
            sqlx::raw_sql(&format!("VACUUM (SKIP_LOCKED) {table}"))
                .execute(pool)
                .await
                .map_err(|e| db(format!("vacuuming the key table {table}"), e))
        })
        .buffer_unordered(SIDE_BY_SIDE)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::worth_vacuuming;

    #[test]
    fn a_table_is_worth_vacuuming_after_many_keys_and_a_tenth_of_its_rows() {
        // A first capture, or a full refresh: every key.
        assert!(worth_vacuuming(200_000, 200_000.0));
        // A tenth of the table, and no fewer than 10,000 keys.
        assert!(worth_vacuuming(20_000, 200_000.0));
        assert!(!worth_vacuuming(19_999, 200_000.0));
        assert!(!worth_vacuuming(9_999, 9_999.0));
        // 1% of L's links.
        assert!(!worth_vacuuming(20_000, 2_000_000.0));
        // Never sized (-1), or last sized empty: the keys are all there is to go by.
        assert!(worth_vacuuming(10_000, -1.0));
        assert!(worth_vacuuming(10_000, 0.0));
        assert!(!worth_vacuuming(9_999, -1.0));
    }
}
