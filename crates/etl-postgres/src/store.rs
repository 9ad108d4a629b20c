//! [`PgStore`]: the engine's [`Store`] on Postgres.
//!
//! Every read and write is set-based: keys travel as one `text[]` parameter per key column and
//! are joined with `unnest`, rows as one `text[]` per column cast to the column's type, so a batch
//! of any size is a handful of statements, never a round trip per row.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row as _, Transaction};

use etl_core::diff::{Stored, Upsert};
use etl_core::row_hash::RowHash;
use etl_core::step::{InputBatch, InputRows};
use etl_core::store::{
    Capture, Commit, Outcome, PlanCounts, StepLock, StepStatus, Store, StoreError, TargetDeletes,
};
use etl_core::{Key, Pipeline, Row, StepDef, StepKind, TableDef, Value};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::{self, keys_table, meta_table, ColumnKind, TableInfo};

pub struct PgStore {
    pool: PgPool,
    url: String,
    tables: RwLock<HashMap<String, Arc<TableInfo>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects a pool. The URL is never part of an error message (it may hold a password).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // The engine reads by key: batches of thousands of keys joined to a
                    // metadata table. With the default random_page_cost (4, tuned for spinning
                    // disks) Postgres prefers hashing the whole table to as many index probes:
                    // 100 ms instead of 20 ms for 5,000 keys against 200,000 rows, and worse as
                    // tables grow. 1.1 is the usual setting for SSDs.
                    for setting in ["SET application_name = 'etl'", "SET random_page_cost = 1.1"] {
                        sqlx::query(setting).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| db("connecting to Postgres (check DB_CONN_URI)", e))?;
        Ok(PgStore {
            pool,
            url: url.to_string(),
            tables: RwLock::new(HashMap::new()),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// What `prepare` found of a table: its columns and key (none before `prepare`).
    pub fn table_info(&self, table: &str) -> Option<Arc<TableInfo>> {
        self.tables.read().expect("table cache").get(table).cloned()
    }

    fn info(&self, table: &str) -> Result<Arc<TableInfo>, StoreError> {
        self.tables
            .read()
            .expect("table cache")
            .get(table)
            .cloned()
            .ok_or_else(|| StoreError::Schema {
                table: table.to_string(),
                message: "is not prepared (a bug: prepare() runs before any read or write)".into(),
            })
    }
}

/// Key values column by column, for `unnest($1::text[], $2::text[], ...)`.
fn key_columns(keys: &[Key], width: usize) -> Vec<Vec<String>> {
    let mut cols = vec![Vec::with_capacity(keys.len()); width];
    for k in keys {
        for (i, part) in k.parts().iter().enumerate().take(width) {
            cols[i].push(part.clone());
        }
    }
    cols
}

/// `unnest($s::text[], $s+1::text[], ...) AS alias(k0, k1, ...)`
fn unnest_keys(first_param: usize, width: usize, alias: &str) -> String {
    format!(
        "unnest({}) AS {alias}({})",
        text_array_params(first_param, width),
        key_names(width)
    )
}

/// `$first::text[], $first+1::text[], ...` for `width` parameters.
fn text_array_params(first_param: usize, width: usize) -> String {
    (0..width)
        .map(|i| format!("${}::text[]", first_param + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k0, k1, ...`: the names `unnest` gives the key columns.
fn key_names(width: usize) -> String {
    (0..width)
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a.x = b.k0 AND a.y = b.k1 ...`
fn join_on(left_alias: &str, left_cols: &[String], right_alias: &str) -> String {
    left_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{left_alias}.{} = {right_alias}.k{i}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The input columns that give a step's key, in the key's order (for an input that covers it).
fn key_projection<'a>(step: &StepDef, input: &'a etl_core::dag::InputDef) -> Vec<&'a String> {
    step.key
        .iter()
        .map(|k| {
            &input
                .join
                .iter()
                .find(|(kk, _)| kk == k)
                .expect("an input that covers the key joins every key column")
                .1
        })
        .collect()
}

fn key_of(row: &PgRow, width: usize) -> Result<Key, sqlx::Error> {
    let mut parts = Vec::with_capacity(width);
    for i in 0..width {
        parts.push(row.try_get::<String, _>(i)?);
    }
    Ok(Key(parts))
}

fn hash_of(bytes: Option<Vec<u8>>) -> RowHash {
    let mut h = [0u8; 32];
    if let Some(b) = bytes {
        let n = b.len().min(32);
        h[..n].copy_from_slice(&b[..n]);
    }
    h
}

/// A value in the text form Postgres parses for the column's type.
fn value_text(value: &Value, kind: &ColumnKind) -> Option<String> {
    if *kind == ColumnKind::Json {
        return match value {
            Value::Null => None,
            Value::Json(j) => Some(j.to_string()),
            Value::Text(s) => Some(serde_json::Value::String(s.clone()).to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(serde_json::json!(f).to_string()),
            Value::Vector(v) => Some(serde_json::json!(v).to_string()),
        };
    }
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(if f.is_nan() {
            "NaN".into()
        } else if f.is_infinite() {
            if *f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        } else {
            f.to_string()
        }),
        Value::Text(s) => Some(s.clone()),
        Value::Json(j) => Some(j.to_string()),
        Value::Vector(v) => Some(format!(
            "[{}]",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )),
    }
}

fn row_from_json(json: serde_json::Value) -> Row {
    match json {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, Value::from_json(v)))
            .collect(),
        _ => Row::new(),
    }
}

impl PgStore {
    async fn write_upserts(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        info: &TableInfo,
        upserts: &[&Upsert],
    ) -> Result<(), StoreError> {
        if upserts.is_empty() {
            return Ok(());
        }
        let table = &info.def.name;
        // Data rows: one text[] per column.
        let mut columns: Vec<Vec<Option<String>>> =
            vec![Vec::with_capacity(upserts.len()); info.columns.len()];
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
                columns[i].push(u.row.get(&c.name).and_then(|v| value_text(v, &c.kind)));
            }
        }
        let names: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let params = (1..=names.len())
            .map(|i| format!("${i}::text[]"))
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
        for col in columns {
            q = q.bind(col);
        }
        q.execute(&mut **tx).await.map_err(|e| {
            let transient = crate::error::is_transient(&e);
            if transient {
                db(format!("writing rows of `{table}`"), e)
            } else {
                StoreError::Row {
                    table: table.clone(),
                    message: format!("writing rows failed: {e}"),
                }
            }
        })?;

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
             SELECT {kcols}, q.h, q.p, now(), now(), now(), NULL, nextval('etl.change_seq')
               FROM {unnest_with}
             ON CONFLICT ({pk}) DO UPDATE SET
               hash = EXCLUDED.hash, producer_key = EXCLUDED.producer_key,
               create_ts = CASE WHEN m.delete_ts IS NULL THEN m.create_ts ELSE now() END,
               update_ts = now(), process_ts = now(), delete_ts = NULL, seq = EXCLUDED.seq",
            meta = info.meta_table(),
        );
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

    async fn write_deletes(
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
            "UPDATE {} AS t SET delete_ts = now(), update_ts = now(), hash = NULL, seq = nextval('etl.change_seq')
               FROM {} WHERE {} AND t.delete_ts IS NULL",
            info.meta_table(),
            unnest_keys(1, width, "d"),
            join_on("t", &info.def.primary_key, "d")
        );
        let mut q = sqlx::query(&sql);
        for c in &cols {
            q = q.bind(c);
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| db(format!("marking deleted rows of `{table}`"), e))?;
        Ok(())
    }

    async fn write_key_bookkeeping(
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

    /// Keys of a bookkeeping table matching `filter`, in key order after `after`, at most `limit`
    /// (keyset pagination: each page is an index range scan, however deep).
    async fn page_of_keys(
        &self,
        table: &str,
        key: &[String],
        filter: &str,
        after: Option<&Key>,
        limit: usize,
        what: &str,
    ) -> Result<Vec<Key>, StoreError> {
        let width = key.len();
        let cols = column_list(key, None);
        let (cond, params) = match after {
            Some(_) => (
                format!(
                    "AND ({cols}) > ({})",
                    (1..=width)
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                width,
            ),
            None => (String::new(), 0),
        };
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {filter} {cond} ORDER BY {cols} LIMIT ${}",
            params + 1
        );
        let mut q = sqlx::query(&sql);
        if let Some(a) = after {
            for p in a.parts() {
                q = q.bind(p.clone());
            }
        }
        let rows = q
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db(what, e))?;
        rows.iter()
            .map(|r| key_of(r, width))
            .collect::<Result<_, _>>()
            .map_err(|e| db(what, e))
    }

    async fn watermark(&self, step: &str, input: &str) -> Result<i64, StoreError> {
        let wm: Option<i64> = sqlx::query_scalar(
            "SELECT last_seq FROM etl.step_watermarks WHERE step = $1 AND input_table = $2",
        )
        .bind(step)
        .bind(input)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("reading a watermark", e))?;
        Ok(wm.unwrap_or(0))
    }

    async fn recorded_fingerprint(&self, step: &str) -> Result<Option<String>, StoreError> {
        let fp: Option<Option<String>> =
            sqlx::query_scalar("SELECT fingerprint FROM etl.steps WHERE step = $1")
                .bind(step)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db("reading a step fingerprint", e))?;
        Ok(fp.flatten())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn prepare(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        // Every table and step at once: on a prepared database this is catalogue reads only.
        let existing = schema::existing_bookkeeping(&self.pool).await?;
        let existing = &existing;
        let infos = futures::future::try_join_all(pipeline.tables.values().map(|def| async move {
            let info = schema::inspect(&self.pool, def).await?;
            schema::ensure_meta(&self.pool, def, existing).await?;
            Ok::<_, StoreError>((def.name.clone(), Arc::new(info)))
        }))
        .await?;
        futures::future::try_join_all(
            pipeline
                .steps
                .iter()
                .filter(|s| s.kind != StepKind::Extract)
                .map(|step| schema::ensure_keys(&self.pool, step, existing)),
        )
        .await?;
        *self.tables.write().expect("table cache") = infos.into_iter().collect();
        Ok(())
    }

    async fn lock(&self, step: &StepDef, wait: bool) -> Result<Box<dyn StepLock>, StoreError> {
        Ok(Box::new(crate::lock::acquire(&self.url, step, wait).await?))
    }

    async fn stored(
        &self,
        table: &TableDef,
        keys: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let width = table.primary_key.len();
        // The keys go as arrays and come back as their positions in them: nothing to parse
        // but a number, a hash and the producer.
        let sql = format!(
            "SELECT q.ord, m.hash, m.producer_key FROM {} AS m
               JOIN unnest({}) WITH ORDINALITY AS q({}, ord) ON {}
              WHERE m.delete_ts IS NULL",
            meta_table(&table.name),
            text_array_params(1, width),
            key_names(width),
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

    async fn stored_by_producer(
        &self,
        table: &TableDef,
        producers: &[Key],
    ) -> Result<HashMap<Key, Stored>, StoreError> {
        if producers.is_empty() {
            return Ok(HashMap::new());
        }
        let width = table.primary_key.len();
        let sql = format!(
            "SELECT {}, m.hash, m.producer_key FROM {} AS m WHERE m.producer_key = ANY($1::text[]) AND m.delete_ts IS NULL",
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

    async fn live_keys_not_in(
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

    async fn count_live(&self, table: &TableDef) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE delete_ts IS NULL",
            meta_table(&table.name)
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(format!("counting rows of `{}`", table.name), e))?;
        Ok(n as u64)
    }

    async fn commit(&self, step: &StepDef, commit: Commit) -> Result<(), StoreError> {
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

    async fn capture(&self, step: &StepDef, full_refresh: bool) -> Result<Capture, StoreError> {
        let keys = keys_table(&step.name);
        let kcols = column_list(&step.key, None);
        let ctx = || format!("capturing the changes of step `{}`", step.name);
        let mut tx = self.pool.begin().await.map_err(|e| db(ctx(), e))?;
        let recorded: Option<Option<String>> =
            sqlx::query_scalar("SELECT fingerprint FROM etl.steps WHERE step = $1 FOR UPDATE")
                .bind(&step.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?;
        let full = full_refresh || recorded.flatten().as_deref() != Some(step.fingerprint.as_str());
        if full {
            sqlx::query(&format!(
                "UPDATE {keys} SET pending = true WHERE NOT pending"
            ))
            .execute(&mut *tx)
            .await
            .map_err(|e| db(ctx(), e))?;
        }
        for input in &step.inputs {
            let meta = meta_table(&input.table);
            let wm: i64 = if full {
                0
            } else {
                sqlx::query_scalar::<_, i64>(
                    "SELECT last_seq FROM etl.step_watermarks WHERE step = $1 AND input_table = $2",
                )
                .bind(&step.name)
                .bind(&input.table)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?
                .unwrap_or(0)
            };
            let max: i64 = sqlx::query_scalar(&format!("SELECT coalesce(max(seq), 0) FROM {meta}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?;
            if max > wm {
                let key_cols: Vec<String> = input.join.iter().map(|(k, _)| k.clone()).collect();
                let in_cols: Vec<String> = input.join.iter().map(|(_, c)| c.clone()).collect();
                if input.covers_key {
                    // Projected to the key's column order.
                    let projected = key_projection(step, input)
                        .iter()
                        .map(|c| format!("m.{}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let filter = if full {
                        "m.delete_ts IS NULL"
                    } else {
                        "m.seq > $1"
                    };
                    let sql = format!(
                        "INSERT INTO {keys} ({kcols}) SELECT DISTINCT {projected} FROM {meta} AS m WHERE {filter}
                         ON CONFLICT ({kcols}) DO UPDATE SET pending = true"
                    );
                    let q = sqlx::query(&sql);
                    let q = if full { q } else { q.bind(wm) };
                    q.execute(&mut *tx).await.map_err(|e| db(ctx(), e))?;
                } else if !full && input.join.is_empty() {
                    sqlx::query(&format!(
                        "UPDATE {keys} SET pending = true WHERE NOT pending"
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db(ctx(), e))?;
                } else if !full {
                    let sel = in_cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("m.{} AS k{i}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "UPDATE {keys} AS t SET pending = true
                           FROM (SELECT DISTINCT {sel} FROM {meta} AS m WHERE m.seq > $1) AS c
                          WHERE NOT t.pending AND {}",
                        join_on("t", &key_cols, "c")
                    );
                    sqlx::query(&sql)
                        .bind(wm)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db(ctx(), e))?;
                }
            }
            sqlx::query(
                "INSERT INTO etl.step_watermarks (step, input_table, last_seq) VALUES ($1, $2, $3)
                 ON CONFLICT (step, input_table) DO UPDATE SET last_seq = EXCLUDED.last_seq",
            )
            .bind(&step.name)
            .bind(&input.table)
            .bind(max)
            .execute(&mut *tx)
            .await
            .map_err(|e| db(ctx(), e))?;
        }
        sqlx::query(
            "INSERT INTO etl.steps (step, fingerprint) VALUES ($1, $2)
             ON CONFLICT (step) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
        )
        .bind(&step.name)
        .bind(&step.fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(|e| db(ctx(), e))?;
        let pending: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {keys} WHERE pending"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?;
        tx.commit().await.map_err(|e| db(ctx(), e))?;
        Ok(Capture {
            pending: pending as u64,
            full,
        })
    }

    async fn pending_keys(
        &self,
        step: &StepDef,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        self.page_of_keys(
            &keys_table(&step.name),
            &step.key,
            "pending",
            after,
            limit,
            &format!("listing pending keys of step `{}`", step.name),
        )
        .await
    }

    async fn read_inputs(&self, step: &StepDef, keys: &[Key]) -> Result<InputBatch, StoreError> {
        let mut inputs = Vec::with_capacity(step.inputs.len());
        for input in &step.inputs {
            let ctx = || format!("reading input `{}` of step `{}`", input.table, step.name);
            let table = quote_ident(&input.table);
            let rows: Vec<serde_json::Value> = if input.join.is_empty() {
                sqlx::query_scalar(&format!("SELECT to_jsonb(t.*) FROM {table} AS t"))
                    .fetch_all(&self.pool)
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
                q.fetch_all(&self.pool).await.map_err(|e| db(ctx(), e))?
            };
            inputs.push(InputRows {
                role: input.role.clone(),
                table: input.table.clone(),
                join: input.join.clone(),
                covers_key: input.covers_key,
                rows: rows.into_iter().map(row_from_json).collect(),
            });
        }
        Ok(InputBatch {
            key_columns: step.key.clone(),
            keys: keys.to_vec(),
            inputs,
            present: Default::default(),
        })
    }

    async fn deletion_preview(
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
                self.count_live(def).await?
            };
            out.push(TargetDeletes {
                target: format!("table `{table}`"),
                live,
                deleting,
            });
        }
        Ok(out)
    }

    async fn plan(&self, step: &StepDef) -> Result<PlanCounts, StoreError> {
        let keys = keys_table(&step.name);
        let width = step.key.len();
        let ctx = || format!("planning step `{}`", step.name);
        let full = self.recorded_fingerprint(&step.name).await?.as_deref()
            != Some(step.fingerprint.as_str());
        let failed_due: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {keys} WHERE pending AND is_success = false"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        let kn: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
        let mut parts = Vec::new();
        let mut binds = Vec::new();
        for input in &step.inputs {
            let meta = meta_table(&input.table);
            let wm = if full {
                -1
            } else {
                self.watermark(&step.name, &input.table).await?
            };
            if input.covers_key {
                let sel = key_projection(step, input)
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("m.{} AS k{i}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                binds.push(wm);
                let filter = if full {
                    "m.delete_ts IS NULL".to_string()
                } else {
                    format!("m.seq > ${}", binds.len())
                };
                parts.push(format!("SELECT {sel}, m.delete_ts IS NOT NULL AS deleted FROM {meta} AS m WHERE {filter}"));
            } else if !full {
                binds.push(wm);
                let p = binds.len();
                if input.join.is_empty() {
                    parts.push(format!(
                        "SELECT {}, false FROM {keys} AS t WHERE EXISTS (SELECT 1 FROM {meta} WHERE seq > ${p})",
                        column_list(&step.key, Some("t"))
                    ));
                } else {
                    let key_cols: Vec<String> = input.join.iter().map(|(k, _)| k.clone()).collect();
                    let sel = input
                        .join
                        .iter()
                        .enumerate()
                        .map(|(i, (_, c))| format!("m.{} AS k{i}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    parts.push(format!(
                        "SELECT {}, false FROM {keys} AS t JOIN (SELECT DISTINCT {sel} FROM {meta} AS m WHERE m.seq > ${p}) AS c ON {}",
                        column_list(&step.key, Some("t")),
                        join_on("t", &key_cols, "c")
                    ));
                }
            }
        }
        if full {
            parts.push(format!(
                "SELECT {}, false FROM {keys} AS t",
                column_list(&step.key, Some("t"))
            ));
        } else {
            parts.push(format!(
                "SELECT {}, false FROM {keys} AS t WHERE t.pending AND t.is_success IS DISTINCT FROM false",
                column_list(&step.key, Some("t"))
            ));
        }
        let union = parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!(
            "WITH cand AS (
                SELECT {kl}, bool_and(deleted) AS deleted FROM ({union}) AS x({kl}, deleted) GROUP BY {kl}
             )
             SELECT count(*) FILTER (WHERE t.{k0} IS NULL AND NOT c.deleted),
                    count(*) FILTER (WHERE t.{k0} IS NOT NULL AND NOT c.deleted),
                    count(*) FILTER (WHERE c.deleted AND t.{k0} IS NOT NULL)
               FROM cand AS c LEFT JOIN {keys} AS t ON {on}
              WHERE NOT coalesce(t.pending AND t.is_success = false, false)",
            kl = kn.join(", "),
            k0 = quote_ident(&step.key[0]),
            on = join_on("t", &step.key, "c"),
        );
        let mut q = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let (new, changed, deleted) = q.fetch_one(&self.pool).await.map_err(|e| db(ctx(), e))?;
        Ok(PlanCounts {
            new: new as u64,
            changed: changed as u64,
            deleted: deleted as u64,
            failed_due: failed_due as u64,
            all_keys: full,
        })
    }

    async fn run_started(&self, step: &StepDef) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO etl.steps (step, last_started) VALUES ($1, now())
             ON CONFLICT (step) DO UPDATE SET last_started = now()",
        )
        .bind(&step.name)
        .execute(&self.pool)
        .await
        .map_err(|e| db("recording a step start", e))?;
        Ok(())
    }

    async fn run_finished(
        &self,
        step: &StepDef,
        outcome: &Outcome,
        counters: &BTreeMap<String, u64>,
        elapsed: Duration,
    ) -> Result<(), StoreError> {
        let error = match outcome {
            Outcome::Failed(e) => Some(e.clone()),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO etl.steps (step, last_finished, last_outcome, last_error, last_counters, last_elapsed_ms)
             VALUES ($1, now(), $2, $3, $4, $5)
             ON CONFLICT (step) DO UPDATE SET last_finished = now(), last_outcome = EXCLUDED.last_outcome,
                 last_error = EXCLUDED.last_error, last_counters = EXCLUDED.last_counters,
                 last_elapsed_ms = EXCLUDED.last_elapsed_ms",
        )
        .bind(&step.name)
        .bind(outcome.label())
        .bind(error)
        .bind(serde_json::to_value(counters).unwrap_or_default())
        .bind(elapsed.as_millis() as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| db("recording a step end", e))?;
        Ok(())
    }

    async fn memos(&self, steps: &[&StepDef]) -> Result<HashMap<String, String>, StoreError> {
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let fingerprints: Vec<&str> = steps.iter().map(|s| s.fingerprint.as_str()).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.step, s.memo FROM etl.steps AS s
               JOIN unnest($1::text[], $2::text[]) AS w(step, fingerprint)
                 ON w.step = s.step AND w.fingerprint = s.memo_fingerprint
              WHERE s.memo IS NOT NULL",
        )
        .bind(&names)
        .bind(&fingerprints)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading the steps' memos", e))?;
        Ok(rows.into_iter().collect())
    }

    async fn set_memo(&self, step: &StepDef, memo: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO etl.steps (step, memo, memo_fingerprint) VALUES ($1, $2, $3)
             ON CONFLICT (step) DO UPDATE SET memo = EXCLUDED.memo,
                 memo_fingerprint = EXCLUDED.memo_fingerprint",
        )
        .bind(&step.name)
        .bind(memo)
        .bind(memo.map(|_| step.fingerprint.as_str()))
        .execute(&self.pool)
        .await
        .map_err(|e| db(format!("recording the memo of step `{}`", step.name), e))?;
        Ok(())
    }

    async fn status(&self, step: &StepDef) -> Result<StepStatus, StoreError> {
        let ctx = || format!("reading the status of step `{}`", step.name);
        let mut status = StepStatus::default();
        let row: Option<(Option<String>, Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT to_char(last_started, 'YYYY-MM-DD HH24:MI:SS TZ'), to_char(last_finished, 'YYYY-MM-DD HH24:MI:SS TZ'),
                    last_outcome, last_error
               FROM etl.steps WHERE step = $1",
        )
        .bind(&step.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        if let Some((s, f, o, e)) = row {
            status.last_started = s;
            status.last_finished = f;
            status.last_outcome = o;
            status.last_error = e;
        }
        if step.kind == StepKind::Extract {
            for o in &step.outputs {
                let def = TableDef {
                    name: o.clone(),
                    primary_key: Vec::new(),
                };
                status.keys_total += self.count_live(&def).await?;
            }
            return Ok(status);
        }
        let keys = keys_table(&step.name);
        let (total, pending, failed): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE pending), count(*) FILTER (WHERE is_success = false) FROM {keys}"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        status.keys_total = total as u64;
        status.keys_pending = pending as u64;
        status.keys_failed = failed as u64;
        let width = step.key.len();
        let rows = sqlx::query(&format!(
            "SELECT {}, attempts, error FROM {keys} WHERE is_success = false ORDER BY process_ts DESC LIMIT 5",
            column_list(&step.key, None)
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        for r in rows {
            let key = key_of(&r, width).map_err(|e| db(ctx(), e))?;
            let attempts: i32 = r.try_get(width).map_err(|e| db(ctx(), e))?;
            let error: Option<String> = r.try_get(width + 1).map_err(|e| db(ctx(), e))?;
            status
                .latest_errors
                .push((key.encode(), attempts, error.unwrap_or_default()));
        }
        Ok(status)
    }
}

fn stored_rows(
    rows: Vec<PgRow>,
    width: usize,
    table: &str,
) -> Result<HashMap<Key, Stored>, StoreError> {
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let key =
            key_of(&r, width).map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        let hash: Option<Vec<u8>> = r
            .try_get(width)
            .map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        let producer: Option<String> = r
            .try_get(width + 1)
            .map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        out.insert(
            key,
            Stored {
                hash: hash_of(hash),
                producer: producer.as_deref().and_then(Key::decode),
            },
        );
    }
    Ok(out)
}
