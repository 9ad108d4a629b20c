//! How long a transform's oldest unprocessed change has waited: the metric operators alert on
//! (a stuck step, a schedule that stopped). Read from the bookkeeping, writing nothing.

use sqlx::PgPool;

use etl_core::store::StoreError;
use etl_core::StepDef;

use crate::error::db;
use crate::schema::{keys_table, meta_table};

/// Seconds since the oldest change `step` has not processed yet was made, or `None` when it
/// has none. Changes not yet captured count from when their row changed; keys captured but
/// not processed (a run stopped or failed mid-way) count from the start of the run that
/// captured them, the latest moment they are known to have been waiting since.
pub async fn oldest_pending_age(pool: &PgPool, step: &StepDef) -> Result<Option<f64>, StoreError> {
    let what = || format!("reading the oldest pending change of step `{}`", step.name);
    let mut oldest: Option<f64> = None;
    for input in &step.inputs {
        let age: Option<f64> = sqlx::query_scalar(&format!(
            "SELECT extract(epoch FROM now() - min(coalesce(m.delete_ts, m.update_ts)))::float8
               FROM {} AS m
              WHERE m.seq > coalesce((SELECT last_seq FROM {book}.step_watermarks
                                       WHERE step = $1 AND input_table = $2), 0)",
            meta_table(&input.table),
            book = crate::namespace::book_schema()
        ))
        .bind(&step.name)
        .bind(&input.table)
        .fetch_one(pool)
        .await
        .map_err(|e| db(what(), e))?;
        oldest = max(oldest, age);
    }
    let captured: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT extract(epoch FROM now() - s.last_started)::float8
           FROM {book}.steps AS s
          WHERE s.step = $1
            AND EXISTS (SELECT 1 FROM {} WHERE pending AND is_success IS DISTINCT FROM false)",
        keys_table(&step.name),
        book = crate::namespace::book_schema()
    ))
    .bind(&step.name)
    .fetch_optional(pool)
    .await
    .map_err(|e| db(what(), e))?
    .flatten();
    Ok(max(oldest, captured))
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
