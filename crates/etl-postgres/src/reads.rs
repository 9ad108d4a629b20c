//! [`StoreReads`] on Postgres: what a sink compares its outside target with, read from a step's
//! key bookkeeping and its input table, so that no step queries `etl."keys__*"` itself.

use std::collections::BTreeMap;

use async_trait::async_trait;

use etl_core::store::{Expected, StoreError, StoreReads};
use etl_core::{Key, Row, StepDef};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::keys_table;
use crate::store::PgStore;

/// `k.a = t.a AND ...` over the step's key.
fn on_key(step: &StepDef) -> String {
    step.key
        .iter()
        .map(|k| format!("k.{q} = t.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[async_trait]
impl StoreReads for PgStore {
    async fn expected_by_name(
        &self,
        step: &StepDef,
        table: &str,
        name_column: &str,
        expected: Expected,
    ) -> Result<BTreeMap<String, (i64, i64)>, StoreError> {
        let (name, keys, table) = (
            quote_ident(name_column),
            keys_table(&step.name),
            quote_ident(table),
        );
        let on = on_key(step);
        let sql = match expected {
            Expected::Table => format!(
                "SELECT t.{name}, count(*), count(*) FROM {table} AS t
                  WHERE NOT EXISTS (SELECT 1 FROM {keys} AS k WHERE {on} AND k.is_success = false)
                  GROUP BY 1"
            ),
            Expected::Written => format!(
                "SELECT k.{name}, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {table} AS t WHERE {on})), count(*)
                   FROM {keys} AS k WHERE k.is_success GROUP BY 1"
            ),
        };
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(|e| db(format!("counting what step `{}` holds", step.name), e))?;
        Ok(rows.into_iter().map(|(n, lo, hi)| (n, (lo, hi))).collect())
    }

    async fn sample_keys(
        &self,
        step: &StepDef,
        table: &str,
        expected: Expected,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Key>, StoreError> {
        let sql = match expected {
            Expected::Table => format!(
                "SELECT {} FROM {} AS t
                  WHERE NOT EXISTS (SELECT 1 FROM {} AS k WHERE {} AND k.is_success = false)
                  OFFSET $1 LIMIT $2",
                column_list(&step.key, Some("t")),
                quote_ident(table),
                keys_table(&step.name),
                on_key(step)
            ),
            // Written keys whose rows still exist must be held.
            Expected::Written => format!(
                "SELECT {} FROM {} AS k JOIN {} AS t ON {} WHERE k.is_success OFFSET $1 LIMIT $2",
                column_list(&step.key, Some("k")),
                keys_table(&step.name),
                quote_ident(table),
                on_key(step)
            ),
        };
        let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(&sql)
            .bind(offset)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(|e| db(format!("sampling the keys of step `{}`", step.name), e))?;
        keys_of(step, &rows)
    }

    async fn sample_written_keys(
        &self,
        step: &StepDef,
        table: &str,
        wanted: i64,
        total: i64,
    ) -> Result<Vec<Key>, StoreError> {
        // SYSTEM sampling reads whole random pages: three times the share wanted, so that a
        // sample rarely comes back short.
        let percent = (300.0 * wanted as f64 / total.max(1) as f64).clamp(0.0001, 100.0);
        let sql = format!(
            "SELECT {} FROM {} AS k TABLESAMPLE SYSTEM ($1::float8) JOIN {} AS t ON {}
              WHERE k.is_success LIMIT $2",
            column_list(&step.key, Some("k")),
            keys_table(&step.name),
            quote_ident(table),
            on_key(step)
        );
        let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(&sql)
            .bind(percent)
            .bind(wanted)
            .fetch_all(self.pool())
            .await
            .map_err(|e| db(format!("sampling the keys of step `{}`", step.name), e))?;
        keys_of(step, &rows)
    }

    async fn written_names(
        &self,
        step: &StepDef,
        name_column: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(&format!(
            "SELECT DISTINCT {} FROM {} WHERE is_success",
            quote_ident(name_column),
            keys_table(&step.name)
        ))
        .fetch_all(self.pool())
        .await
        .map_err(|e| db(format!("listing what step `{}` wrote", step.name), e))
    }

    async fn succeeded_keys(&self, step: &StepDef) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE is_success",
            keys_table(&step.name)
        ))
        .fetch_one(self.pool())
        .await
        .map_err(|e| db(format!("counting the keys of step `{}`", step.name), e))?;
        Ok(n as u64)
    }

    async fn whole_input(&self, step: &StepDef, table: &str) -> Result<Vec<Row>, StoreError> {
        if !step.inputs.iter().any(|i| i.table == table) {
            return Err(StoreError::Schema {
                table: table.to_string(),
                message: format!(
                    "is not an input of step `{}` (a bug in the step: it reads only its inputs)",
                    step.name
                ),
            });
        }
        self.whole_table(table).await.map_err(|e| {
            db(
                format!("reading input `{table}` of step `{}`", step.name),
                e,
            )
        })
    }
}

/// The keys in `rows`, whose first columns are `step`'s key.
fn keys_of(step: &StepDef, rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Key>, StoreError> {
    rows.iter()
        .map(|r| {
            use sqlx::Row as _;
            (0..step.key.len())
                .map(|i| r.try_get::<String, _>(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Key)
                .map_err(|e| db(format!("reading the keys of step `{}`", step.name), e))
        })
        .collect()
}
