//! Settling a step's pending keys without reading them, for a transform that produces nothing
//! from them (see `Transform::produces_nothing`): one transaction of two statements on the
//! step's key bookkeeping instead of a batch per few thousand keys.

use etl_core::store::StoreError;
use etl_core::StepDef;

use crate::deletions::vanished_condition;
use crate::error::db;
use crate::ident::quote_ident;
use crate::schema::{keys_table, meta_table};

use super::PgStore;

impl PgStore {
    pub(super) async fn settle_pending(&self, step: &StepDef) -> Result<Option<u64>, StoreError> {
        if step.outputs.is_empty() {
            // A sink: what it holds is outside, and only its batches (and the guard) see it.
            return Ok(None);
        }
        let what = || format!("settling the pending keys of step `{}`", step.name);
        let mut tx = self.pool.begin().await.map_err(|e| db(what(), e))?;
        // Rows the step wrote before are deleted by batches only, which the guard watches: the
        // table first (its first row answers), then its metadata (live entries, not tombstones).
        for output in &step.outputs {
            let holds: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM {})
                     OR EXISTS (SELECT 1 FROM {} WHERE delete_ts IS NULL)",
                quote_ident(output),
                meta_table(output)
            ))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db(what(), e))?;
            if holds {
                return Ok(None);
            }
        }
        let keys = keys_table(&step.name);
        let mut forgotten = 0;
        if let Some(absent) = vanished_condition(step) {
            forgotten = sqlx::query(&format!(
                "DELETE FROM {keys} AS k WHERE k.pending AND {absent}"
            ))
            .execute(&mut *tx)
            .await
            .map_err(|e| db(what(), e))?
            .rows_affected();
        }
        let done = sqlx::query(&format!(
            "UPDATE {keys} SET pending = false, is_success = true, error = NULL, attempts = 0,
                    process_ts = now()
              WHERE pending"
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| db(what(), e))?
        .rows_affected();
        tx.commit().await.map_err(|e| db(what(), e))?;
        Ok(Some(forgotten + done))
    }
}
