//! Vacuuming the key tables a run rewrote, once all of its steps have ended.
//!
//! Marking a key done rewrites its row, and until a vacuum the old version stays in the table and
//! in the index of pending keys. The next run counts its pending keys through that index and
//! visits every such leftover in the heap before it learns that none is pending: after M's full
//! run, 60,000 visits per 200,000-key table, 20 to 74 ms each time in the no-op that followed, against
//! a few milliseconds once vacuumed. (The first capture builds the index after its batches, but
//! the other steps of the run still hold snapshots then, so the old versions are only "recently
//! dead" and go into the index too.) Autovacuum clears them a minute or more later; a schedule's
//! next run may come first, so the store vacuums as soon as no step of the run holds a
//! transaction, which is when the engine calls [`Store::after_run`](etl_core::store::Store).
//!
//! Only tables the run rewrote a large share of: below [`MIN_KEYS`] keys the leftovers cost the
//! next run less than a millisecond or two, and a vacuum scans the table's indexes whatever it
//! changed, so rewriting 1% of a 2,000,000-key table would pay more for the vacuum than it
//! saves. Vacuums skip a table another session holds (autovacuum, say) and run side by side.

use etl_core::store::StoreError;
use etl_core::StepDef;
use sqlx::PgPool;

use crate::error::db;
use crate::schema::keys_table;

/// Keys a step must have processed in the run for its key table to be vacuumed.
const MIN_KEYS: u64 = 10_000;
/// ...and the share of the table's rows they must be (its size as Postgres last estimated it).
const MIN_SHARE: f64 = 0.10;

/// Vacuums the key tables of the steps in `processed` (with the keys each processed or failed)
/// that the run rewrote a large share of; returns the tables vacuumed.
pub(super) async fn vacuum_rewritten(
    pool: &PgPool,
    processed: &[(&StepDef, u64)],
) -> Result<Vec<String>, StoreError> {
    let candidates: Vec<(String, u64)> = processed
        .iter()
        .filter(|(_, keys)| *keys >= MIN_KEYS)
        .map(|(step, keys)| (keys_table(&step.name), *keys))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = candidates.iter().map(|(t, _)| t.as_str()).collect();
    // -1 for a table never vacuumed nor analyzed, 0 for a missing one (a step without keys).
    let estimates: Vec<f32> = sqlx::query_scalar(
        "SELECT coalesce((SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass(t.name)), 0)
           FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) ORDER BY t.ord",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the sizes of the key tables to vacuum", e))?;
    let chosen: Vec<String> = candidates
        .into_iter()
        .zip(estimates)
        .filter(|((_, keys), rows)| {
            *rows < 0.0 || (*rows > 0.0 && *keys as f64 >= MIN_SHARE * f64::from(*rows))
        })
        .map(|((table, _), _)| table)
        .collect();
    let vacuums = chosen.iter().map(|table| async move {
        // VACUUM cannot run in a transaction block: one simple query, on its own.
        sqlx::raw_sql(&format!("VACUUM (SKIP_LOCKED) {table}"))
            .execute(pool)
            .await
            .map_err(|e| db(format!("vacuuming the key table {table}"), e))
    });
    for result in futures::future::join_all(vacuums).await {
        result?;
    }
    Ok(chosen)
}
