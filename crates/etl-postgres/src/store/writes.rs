//! A batch's commit: new and changed rows upserted with `unnest`, vanished rows deleted (their
//! metadata kept as tombstones), and the step's key bookkeeping, in one transaction.

use sqlx::{Postgres, Transaction};

use etl_core::diff::Upsert;
use etl_core::store::{Commit, StoreError};
use etl_core::{Key, StepDef, StepKind};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::{keys_table, ColumnKind, TableInfo};

use super::sql::*;
use super::PgStore;

impl PgStore {
    pub(super) async fn write_upserts(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        info: &TableInfo,
        upserts: &[&Upsert],
    ) -> Result<(), StoreError> {
        if upserts.is_empty() {
            return Ok(());
        }
        let table = &info.def.name;
        // Data rows: one text[] per column, vectors one vector[] in binary.
        let mut columns: Vec<Vec<Option<String>>> =
            vec![Vec::with_capacity(upserts.len()); info.columns.len()];
        let mut vectors: Vec<Vec<Option<pgvector::Vector>>> = vec![Vec::new(); info.columns.len()];
        for u in upserts {
            for (name, _) in u.row.columns() {
                if info.column(name).is_none() {
                    return Err(StoreError::Row {
                        table: table.clone(),
                        message: format!(
                            "a row has column `{name}`, which the table does not have (columns: {})",
                            info.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
            }
            for (i, c) in info.columns.iter().enumerate() {
                match (&c.kind, u.row.get(&c.name)) {
                    (ColumnKind::Vector, Some(etl_core::Value::Vector(v))) => {
                        vectors[i].push(Some(pgvector::Vector::from(v.clone())))
                    }
                    (ColumnKind::Vector, None | Some(etl_core::Value::Null)) => {
                        vectors[i].push(None)
                    }
                    (ColumnKind::Vector, Some(other)) => {
                        let floats: Option<Vec<f32>> = match other {
                            etl_core::Value::Json(serde_json::Value::Array(items)) => {
                                items.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
                            }
                            _ => None,
                        };
                        let Some(floats) = floats else {
                            return Err(StoreError::Row {
                                table: table.clone(),
                                message: format!(
                                    "column `{}` is a vector, and a row gives it something else",
                                    c.name
                                ),
                            });
                        };
                        vectors[i].push(Some(pgvector::Vector::from(floats)))
                    }
                    (kind, v) => columns[i].push(v.and_then(|v| value_text(v, kind))),
                }
            }
        }
        let names: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let params = info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match c.kind {
                ColumnKind::Vector => format!("${}::vector[]", i + 1),
                _ => format!("${}::text[]", i + 1),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let aliases = (0..names.len())
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Types come from the catalogue (format_type), never from configuration.
        let casts = info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match c.kind {
                ColumnKind::Text => format!("u.c{i}"),
                // The array's elements are `vector`; the column's typmod checks the dimensions.
                ColumnKind::Vector => format!("u.c{i}::{}", c.sql_type),
                _ => format!("u.c{i}::{}", c.sql_type),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let non_key: Vec<&String> = names
            .iter()
            .filter(|n| !info.def.primary_key.contains(n))
            .collect();
        let conflict = if non_key.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!(
                "DO UPDATE SET {}",
                non_key
                    .iter()
                    .map(|n| format!("{q} = EXCLUDED.{q}", q = quote_ident(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let sql = format!(
            "INSERT INTO {} ({}) SELECT {casts} FROM unnest({params}) AS u({aliases}) ON CONFLICT ({}) {conflict}",
            info.data_table(),
            column_list(&names, None),
            column_list(&info.def.primary_key, None),
        );
        let mut q = sqlx::query(&sql);
        for (i, (col, vecs)) in columns.into_iter().zip(vectors).enumerate() {
            q = match info.columns[i].kind {
                ColumnKind::Vector => q.bind(vecs),
                _ => q.bind(col),
            };
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| crate::error::row_error(table, format!("writing rows of `{table}`"), e))?;

        // Row metadata.
        let width = info.def.primary_key.len();
        let keys: Vec<Key> = upserts.iter().map(|u| u.key.clone()).collect();
        let hashes: Vec<Vec<u8>> = upserts.iter().map(|u| u.hash.to_vec()).collect();
        let producers: Vec<Option<String>> = upserts
            .iter()
            .map(|u| u.producer.as_ref().map(Key::encode))
            .collect();
        let pk = column_list(&info.def.primary_key, None);
        let unnest_with = format!(
            "unnest({}, ${}::bytea[], ${}::text[]) AS q({}, h, p)",
            text_array_params(1, width),
            width + 1,
            width + 2,
            key_names(width)
        );
        let kcols = (0..width)
            .map(|i| format!("q.k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {meta} AS m ({pk}, hash, producer_key, create_ts, update_ts, process_ts, delete_ts, seq)
             SELECT {kcols}, q.h, q.p, now(), now(), now(), NULL, nextval('{book}.change_seq')
               FROM {unnest_with}
             ON CONFLICT ({pk}) DO UPDATE SET
               hash = EXCLUDED.hash, producer_key = EXCLUDED.producer_key,
               create_ts = CASE WHEN m.delete_ts IS NULL THEN m.create_ts ELSE now() END,
               update_ts = now(), process_ts = now(), delete_ts = NULL, seq = EXCLUDED.seq",
            meta = info.meta_table(),
        book = crate::namespace::book_schema());
        let mut q = sqlx::query(&sql);
        for col in key_columns(&keys, width) {
            q = q.bind(col);
        }
        q.bind(hashes)
            .bind(producers)
            .execute(&mut **tx)
            .await
            .map_err(|e| db(format!("writing row metadata of `{table}`"), e))?;
        Ok(())
    }

    pub(super) async fn write_deletes(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        info: &TableInfo,
        deletes: &[Key],
    ) -> Result<(), StoreError> {
        if deletes.is_empty() {
            return Ok(());
        }
        let table = &info.def.name;
        let width = info.def.primary_key.len();
        let cols = key_columns(deletes, width);
        let sql = format!(
            "DELETE FROM {} AS t USING {} WHERE {}",
            info.data_table(),
            unnest_keys(1, width, "d"),
            join_on("t", &info.def.primary_key, "d")
        );
        let mut q = sqlx::query(&sql);
        for c in &cols {
            q = q.bind(c);
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| db(format!("deleting rows of `{table}`"), e))?;
        let sql = format!(
            "UPDATE {} AS t SET delete_ts = now(), update_ts = now(), hash = NULL, seq = nextval('{book}.change_seq')
               FROM {} WHERE {} AND t.delete_ts IS NULL",
            info.meta_table(),
            unnest_keys(1, width, "d"),
            join_on("t", &info.def.primary_key, "d")
        , book = crate::namespace::book_schema());
        let mut q = sqlx::query(&sql);
        for c in &cols {
            q = q.bind(c);
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| db(format!("marking deleted rows of `{table}`"), e))?;
        Ok(())
    }

    pub(super) async fn write_key_bookkeeping(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        step: &StepDef,
        commit: &Commit,
    ) -> Result<(), StoreError> {
        let table = keys_table(&step.name);
        let width = step.key.len();
        let ctx = || format!("recording the keys of step `{}`", step.name);
        if !commit.processed.is_empty() {
            let sql = format!(
                "UPDATE {table} AS t SET pending = false, is_success = true, error = NULL, attempts = 0, process_ts = now()
                   FROM {} WHERE {}",
                unnest_keys(1, width, "d"),
                join_on("t", &step.key, "d")
            );
            let mut q = sqlx::query(&sql);
            for c in key_columns(&commit.processed, width) {
                q = q.bind(c);
            }
            q.execute(&mut **tx).await.map_err(|e| db(ctx(), e))?;
        }
        if !commit.vanished.is_empty() {
            let sql = format!(
                "DELETE FROM {table} AS t USING {} WHERE {}",
                unnest_keys(1, width, "d"),
                join_on("t", &step.key, "d")
            );
            let mut q = sqlx::query(&sql);
            for c in key_columns(&commit.vanished, width) {
                q = q.bind(c);
            }
            q.execute(&mut **tx).await.map_err(|e| db(ctx(), e))?;
        }
        if !commit.failed.is_empty() {
            let keys: Vec<Key> = commit.failed.iter().map(|(k, _)| k.clone()).collect();
            let errors: Vec<String> = commit.failed.iter().map(|(_, e)| e.clone()).collect();
            let params = text_array_params(1, width);
            let names = key_names(width);
            let sql = format!(
                "UPDATE {table} AS t SET pending = true, is_success = false, error = d.err,
                        attempts = t.attempts + 1, process_ts = now()
                   FROM unnest({params}, ${}::text[]) AS d({names}, err) WHERE {}",
                width + 1,
                join_on("t", &step.key, "d")
            );
            let mut q = sqlx::query(&sql);
            for c in key_columns(&keys, width) {
                q = q.bind(c);
            }
            q.bind(errors)
                .execute(&mut **tx)
                .await
                .map_err(|e| db(ctx(), e))?;
        }
        Ok(())
    }

    pub(super) async fn commit_batch(
        &self,
        step: &StepDef,
        commit: Commit,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db("starting a transaction", e))?;
        for (table, d) in &commit.tables {
            let info = self.info(table)?;
            let upserts: Vec<&Upsert> = d.upserts().collect();
            self.write_upserts(&mut tx, &info, &upserts).await?;
            self.write_deletes(&mut tx, &info, &d.deletes).await?;
        }
        if step.kind != StepKind::Extract {
            self.write_key_bookkeeping(&mut tx, step, &commit).await?;
        }
        tx.commit()
            .await
            .map_err(|e| db(format!("committing a batch of step `{}`", step.name), e))
    }
}
