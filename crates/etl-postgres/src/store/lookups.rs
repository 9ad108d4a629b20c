//! Reads by key: the stored hashes of a batch's rows, the rows a transform's keys produced, the
//! live keys outside a snapshot, the input rows of a batch, and what a run would delete.

use std::collections::HashMap;

use etl_core::diff::Stored;
use etl_core::step::{InputBatch, InputRows};
use etl_core::store::{Store, StoreError, TargetDeletes};
use etl_core::{Key, Row, StepDef, TableDef};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::meta_table;

use super::sql::*;
use super::PgStore;

impl PgStore {
    pub(super) async fn stored_hashes(
        &self,
        table: &TableDef,
        keys: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let width = table.primary_key.len();
        // The keys go as arrays and come back as their positions in them: nothing to parse
        // but a number, a hash and the producer. One primary-key probe per key, whatever the
        // planner thinks of the table: `LIMIT 1` keeps the lookup a parameterized subquery.
        // (As a join, a table that grew in this run from nothing to 200,000 rows, its
        // statistics saying it is tiny, was scanned for every batch: 5 s over a run.)
        let sql = format!(
            "SELECT q.ord, m.hash, m.producer_key
               FROM unnest({}) WITH ORDINALITY AS q({}, ord)
               CROSS JOIN LATERAL (SELECT m.hash, m.producer_key FROM {} AS m
                                    WHERE {} AND m.delete_ts IS NULL LIMIT 1) AS m",
            text_array_params(1, width),
            key_names(width),
            meta_table(&table.name),
            join_on("m", &table.primary_key, "q")
        );
        let mut q = sqlx::query_as::<_, (i64, Option<Vec<u8>>, Option<String>)>(&sql);
        for c in key_columns(keys, width) {
            q = q.bind(c);
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db(format!("reading row metadata of `{}`", table.name), e))?;
        let mut out = HashMap::with_capacity(rows.len());
        for (ord, hash, producer) in rows {
            let Some(key) = usize::try_from(ord - 1).ok().and_then(|i| keys.get(i)) else {
                continue;
            };
            out.insert(
                key.clone(),
                Stored {
                    hash: hash_of(hash),
                    producer: producer.as_deref().and_then(Key::decode),
                },
            );
        }
        Ok(out)
    }

    pub(super) async fn produced_by(
        &self,
        table: &TableDef,
        producers: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        if producers.is_empty() {
            return Ok(HashMap::new());
        }
        let width = table.primary_key.len();
        // One probe of the producer index per producer (`OFFSET 0` keeps the subquery apart,
        // as in `stored_hashes`).
        let sql = format!(
            "SELECT m.*
               FROM unnest($1::text[]) AS p(key)
               CROSS JOIN LATERAL (SELECT {}, m.hash, m.producer_key FROM {} AS m
                                    WHERE m.producer_key = p.key AND m.delete_ts IS NULL
                                   OFFSET 0) AS m",
            column_list(&table.primary_key, Some("m")),
            meta_table(&table.name),
        );
        let encoded: Vec<String> = producers.iter().map(Key::encode).collect();
        let rows = sqlx::query(&sql)
            .bind(encoded)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db(format!("reading row metadata of `{}`", table.name), e))?;
        stored_rows(rows, width, &table.name)
    }

    pub(super) async fn live_keys_outside(
        &self,
        table: &TableDef,
        keep: &(dyn for<'k> Fn(&'k Key) -> bool + Sync),
    ) -> Result<(u64, Vec<Key>), StoreError> {
        use futures::TryStreamExt;
        let width = table.primary_key.len();
        let sql = format!(
            "SELECT {} FROM {} WHERE delete_ts IS NULL",
            column_list(&table.primary_key, None),
            meta_table(&table.name)
        );
        let what = || format!("listing keys of `{}`", table.name);
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let (mut live, mut gone) = (0u64, Vec::new());
        while let Some(row) = rows.try_next().await.map_err(|e| db(what(), e))? {
            let key = key_of(&row, width).map_err(|e| db(what(), e))?;
            live += 1;
            if !keep(&key) {
                gone.push(key);
            }
        }
        Ok((live, gone))
    }

    /// Every row of `table`: an input joined on nothing, or a side input read whole
    /// ([`etl_core::store::StoreReads::whole_input`]).
    pub(crate) async fn whole_table(&self, table: &str) -> Result<Vec<Row>, sqlx::Error> {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t.*) FROM {} AS t",
            quote_ident(table)
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row_from_json).collect())
    }

    pub(super) async fn input_rows(
        &self,
        step: &StepDef,
        keys: &[Key],
    ) -> Result<InputBatch, StoreError> {
        let mut inputs = Vec::with_capacity(step.inputs.len());
        for input in &step.inputs {
            let ctx = || format!("reading input `{}` of step `{}`", input.table, step.name);
            let table = quote_ident(&input.table);
            let rows: Vec<Row> = if input.join.is_empty() {
                self.whole_table(&input.table)
                    .await
                    .map_err(|e| db(ctx(), e))?
            } else {
                // Distinct values of the joined key columns.
                let positions: Vec<usize> = input
                    .join
                    .iter()
                    .map(|(k, _)| {
                        step.key
                            .iter()
                            .position(|kk| kk == k)
                            .expect("join uses key columns")
                    })
                    .collect();
                let mut projected: Vec<Key> = keys
                    .iter()
                    .map(|k| Key(positions.iter().map(|p| k.parts()[*p].clone()).collect()))
                    .collect();
                projected.sort();
                projected.dedup();
                let in_cols: Vec<String> = input.join.iter().map(|(_, c)| c.clone()).collect();
                let sql = format!(
                    "SELECT to_jsonb(t.*) FROM {table} AS t JOIN {} ON {}",
                    unnest_keys(1, in_cols.len(), "q"),
                    join_on("t", &in_cols, "q")
                );
                let mut q = sqlx::query_scalar(&sql);
                for c in key_columns(&projected, in_cols.len()) {
                    q = q.bind(c);
                }
                let rows: Vec<serde_json::Value> =
                    q.fetch_all(&self.pool).await.map_err(|e| db(ctx(), e))?;
                rows.into_iter().map(row_from_json).collect()
            };
            inputs.push(InputRows {
                role: input.role.clone(),
                table: input.table.clone(),
                join: input.join.clone(),
                covers_key: input.covers_key,
                rows,
            });
        }
        Ok(InputBatch {
            key_columns: step.key.clone(),
            keys: keys.to_vec(),
            inputs,
            present: Default::default(),
        })
    }

    pub(super) async fn deletions_preview(
        &self,
        step: &StepDef,
        outside: &str,
    ) -> Result<Vec<TargetDeletes>, StoreError> {
        let vanished = crate::deletions::vanished_pending(&self.pool, step).await?;
        let mut out = Vec::new();
        if step.outputs.is_empty() {
            let (live, deleting) = if vanished.is_empty() {
                (0, 0)
            } else {
                crate::deletions::held_keys(&self.pool, step, &vanished).await?
            };
            out.push(TargetDeletes {
                target: outside.to_string(),
                live,
                deleting,
            });
        }
        for table in &step.outputs {
            let info = self.info(table)?;
            let def = &info.def;
            let deleting = if vanished.is_empty() {
                0
            } else {
                crate::deletions::count_by_producer(&self.pool, def, &vanished).await?
            };
            let live = if deleting == 0 {
                0
            } else {
                let enough = etl_core::guard::live_needed(deleting, step.max_delete_fraction);
                self.count_live_to(def, enough).await?
            };
            out.push(TargetDeletes {
                target: format!("table `{table}`"),
                live,
                deleting,
            });
        }
        Ok(out)
    }
}
