//! Pruning tombstones: the metadata of deleted rows, kept so that the steps reading a table see
//! the deletion, and needed by nobody once every one of them has.
//!
//! A consumer sees a change when its capture moves its watermark past the change's `seq`; from
//! then on the deletion lives on as a pending key of that step, and the tombstone is not read
//! again (a full capture reads live rows only, and the diffs compare live rows). So a tombstone
//! whose `seq` is at or below the watermark of **every** step of the pipeline that reads the
//! table can go. A reader that has no watermark yet (a step never run, or skipped) keeps every
//! tombstone of its inputs. Pruning runs right after a consumer's capture has committed its
//! watermarks, under the step's locks: the table's writers are shut out (they lock it
//! exclusively) and the other readers' watermarks only grow, so none of them can need what is
//! pruned. After the commit, not inside it: of two readers capturing at once, each would see
//! the other's old watermark in its own transaction and neither would prune; the one that
//! commits last sees both.
//!
//! A pruned tombstone changes no outcome: a row that comes back is an insert either way, a row
//! still gone is deleted nowhere again, and the pending key a consumer holds for it still makes
//! the consumer delete what that row produced.

use sqlx::PgConnection;

use etl_core::store::StoreError;

use crate::error::db;
use crate::schema::meta_table;

use super::PgStore;

impl PgStore {
    /// Deletes the tombstones of `table` that every reader has seen; returns how many.
    pub(super) async fn prune_tombstones(
        &self,
        conn: &mut PgConnection,
        table: &str,
    ) -> Result<u64, StoreError> {
        let readers = self
            .consumers
            .read()
            .expect("consumers")
            .get(table)
            .cloned()
            .unwrap_or_default();
        if readers.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM {meta} AS m
              WHERE m.delete_ts IS NOT NULL
                AND m.seq <= (SELECT CASE WHEN count(*) = $2 THEN min(w.last_seq) ELSE 0 END
                                FROM {book}.step_watermarks AS w
                               WHERE w.input_table = $1 AND w.step = ANY($3))",
            meta = meta_table(table),
            book = crate::namespace::book_schema(),
        );
        let pruned = sqlx::query(&sql)
            .bind(table)
            .bind(readers.len() as i64)
            .bind(&readers)
            .execute(conn)
            .await
            .map_err(|e| db(format!("pruning the tombstones of `{table}`"), e))?
            .rows_affected();
        if pruned > 0 {
            tracing::debug!(
                table,
                tombstones = pruned,
                "pruned tombstones every reader has seen"
            );
        }
        Ok(pruned)
    }
}
