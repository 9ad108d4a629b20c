//! What the store knows about tables: the data tables' columns (read from the catalogue) and
//! the engine's bookkeeping tables beside them (created on demand).
//!
//! Both live in the pipeline's bookkeeping schema (`etl`, or `etl_<name>`: see [`crate::namespace`]).
//!
//! * `etl."meta__<table>"`: per primary key of a data table: `hash`, `producer_key`, `create_ts`,
//!   `update_ts`, `process_ts`, `delete_ts` and `seq` (the change number of its last change).
//!   Deleted rows stay as tombstones (`delete_ts` set) so that downstream steps see the deletion.
//! * `etl."keys__<step>"`: per transform key of a step: `pending`, `is_success`, `process_ts`,
//!   `error`, `attempts`.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;

use etl_core::store::StoreError;
use etl_core::{StepDef, TableDef};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::namespace::{self, book};

/// How values are written to a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Json,
    /// pgvector's `vector(N)`: written in binary (no float text to print or parse).
    Vector,
    /// Anything else: written as text and cast to `sql_type`.
    Other,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as Postgres prints it (`format_type`), e.g. `vector(384)`.
    pub sql_type: String,
    pub kind: ColumnKind,
}

/// A data table as configured and as found in the database.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub def: TableDef,
    pub columns: Vec<Column>,
}

impl TableInfo {
    pub fn data_table(&self) -> String {
        namespace::data(&self.def.name)
    }

    pub fn meta_table(&self) -> String {
        meta_table(&self.def.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

pub fn meta_table(table: &str) -> String {
    book(&format!("meta__{table}"))
}

pub fn keys_table(step: &str) -> String {
    book(&format!("keys__{step}"))
}

/// Reads a data table's columns and checks its primary key against the configuration.
pub async fn inspect(pool: &PgPool, def: &TableDef) -> Result<TableInfo, StoreError> {
    let mut found = read_columns(pool, std::slice::from_ref(def)).await?;
    table_info(def, found.remove(&def.name).unwrap_or_default())
}

/// Reads the data tables' columns and checks their primary keys, every table in one catalogue
/// query (a run's start costs one round trip, not two per table).
pub async fn inspect_all(pool: &PgPool, defs: &[TableDef]) -> Result<Vec<TableInfo>, StoreError> {
    let mut found = read_columns(pool, defs).await?;
    defs.iter()
        .map(|def| table_info(def, found.remove(&def.name).unwrap_or_default()))
        .collect()
}

/// A column as the catalogue gives it: name, type, and whether it is in the primary key.
type FoundColumn = (String, String, bool);

/// Per table, its columns in order (none if the table does not exist).
async fn read_columns(
    pool: &PgPool,
    defs: &[TableDef],
) -> Result<HashMap<String, Vec<FoundColumn>>, StoreError> {
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    let qualified: Vec<String> = defs.iter().map(|d| namespace::data(&d.name)).collect();
    let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT t.name, a.attname::text, format_type(a.atttypid, a.atttypmod),
                coalesce(a.attnum = ANY(i.indkey), false)
           FROM unnest($1::text[], $2::text[]) AS t(name, qualified)
           JOIN pg_attribute a
             ON a.attrelid = to_regclass(t.qualified) AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
          ORDER BY t.name, a.attnum",
    )
    .bind(&names)
    .bind(&qualified)
    .fetch_all(pool)
    .await
    .map_err(|e| {
        db(
            format!("reading the columns of tables {}", names.join(", ")),
            e,
        )
    })?;
    let mut found: HashMap<String, Vec<FoundColumn>> = HashMap::new();
    for (table, name, sql_type, in_key) in rows {
        found
            .entry(table)
            .or_default()
            .push((name, sql_type, in_key));
    }
    Ok(found)
}

/// A data table's [`TableInfo`] from its columns as found, checked against its definition.
fn table_info(def: &TableDef, found: Vec<FoundColumn>) -> Result<TableInfo, StoreError> {
    if found.is_empty() {
        return Err(StoreError::Schema {
            table: def.name.clone(),
            message: match namespace::current().pipeline() {
                None => {
                    "does not exist in the database: run `etl migrate` (or create it) first".into()
                }
                Some(p) => format!(
                    "does not exist in schema `{p}` (pipeline `{p}`): run `etl migrate` with the \
                     same ETL_PIPELINE (or create it there) first"
                ),
            },
        });
    }
    let pk: Vec<String> = found
        .iter()
        .filter(|(_, _, in_key)| *in_key)
        .map(|(name, _, _)| name.clone())
        .collect();
    let mut want = def.primary_key.clone();
    want.sort();
    let mut have = pk.clone();
    have.sort();
    if want != have {
        return Err(StoreError::Schema {
            table: def.name.clone(),
            message: format!(
                "pipelines.toml gives primary key ({}) but the database has ({}): make them agree",
                def.primary_key.join(", "),
                pk.join(", ")
            ),
        });
    }
    let columns: Vec<Column> = found
        .into_iter()
        .map(|(name, sql_type, _)| {
            let kind = match sql_type.as_str() {
                "text" | "character varying" => ColumnKind::Text,
                "jsonb" | "json" => ColumnKind::Json,
                t if t.starts_with("vector(") || t == "vector" => ColumnKind::Vector,
                _ => ColumnKind::Other,
            };
            Column {
                name,
                sql_type,
                kind,
            }
        })
        .collect();
    for k in &def.primary_key {
        let c = columns
            .iter()
            .find(|c| &c.name == k)
            .expect("primary key columns exist");
        if c.kind != ColumnKind::Text {
            return Err(StoreError::Schema {
                table: def.name.clone(),
                message: format!(
                    "key column `{k}` is {}, but managed tables have text keys",
                    c.sql_type
                ),
            });
        }
    }
    Ok(TableInfo {
        def: def.clone(),
        columns,
    })
}

/// The relations (tables and indexes) of the engine's schema, to create only what is missing:
/// a run on a prepared database then issues no DDL at all.
pub async fn existing_bookkeeping(pool: &PgPool) -> Result<HashSet<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1",
    )
    .bind(namespace::current().book_schema())
    .fetch_all(pool)
    .await
    .map_err(|e| db("listing the engine's bookkeeping tables", e))?;
    Ok(names.into_iter().collect())
}

/// Creates the row metadata of a table if missing (`existing`: see [`existing_bookkeeping`]).
pub async fn ensure_meta(
    pool: &PgPool,
    def: &TableDef,
    existing: &HashSet<String>,
    found_keys: &BookkeepingKeys,
) -> Result<(), StoreError> {
    let meta = meta_table(&def.name);
    let keys = def
        .primary_key
        .iter()
        .map(|k| format!("{} text NOT NULL", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let pk = column_list(&def.primary_key, None);
    let base = format!("meta__{}", def.name);
    let statements = [
        format!(
            "CREATE TABLE IF NOT EXISTS {meta} ({keys}, hash bytea, producer_key text,
                create_ts timestamptz NOT NULL, update_ts timestamptz NOT NULL,
                process_ts timestamptz NOT NULL, delete_ts timestamptz, seq bigint NOT NULL,
                PRIMARY KEY ({pk}))"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {meta} (seq)",
            quote_ident(&format!("{base}__seq"))
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {meta} (producer_key) WHERE producer_key IS NOT NULL",
            quote_ident(&format!("{base}__producer"))
        ),
        // Tombstones by change number, for pruning them (`store::tombstones`) without a scan.
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {meta} (seq) WHERE delete_ts IS NOT NULL",
            quote_ident(&format!("{base}__tombstones"))
        ),
    ];
    let names = [
        base.clone(),
        format!("{base}__seq"),
        format!("{base}__producer"),
        format!("{base}__tombstones"),
    ];
    check_key_columns(found_keys, &base, &def.primary_key, &def.name)?;
    if !names.iter().all(|n| existing.contains(n)) {
        run_ddl(pool, &def.name, &statements).await?;
    }
    Ok(())
}

/// Creates the key bookkeeping of a transform or sink step if missing. Its key columns follow
/// the step's key; if the key changed, the old bookkeeping is replaced (the fingerprint changed
/// too, so every key is reprocessed anyway).
pub async fn ensure_keys(
    pool: &PgPool,
    step: &StepDef,
    existing: &HashSet<String>,
    found_keys: &BookkeepingKeys,
) -> Result<(), StoreError> {
    let base = format!("keys__{}", step.name);
    let table = keys_table(&step.name);
    if check_key_columns(found_keys, &base, &step.key, &step.name).is_err() {
        run_ddl(pool, &step.name, &[format!("DROP TABLE IF EXISTS {table}")]).await?;
    } else if existing.contains(&base) && existing.contains(&pending_index_name(&step.name)) {
        return Ok(());
    }
    let keys = step
        .key
        .iter()
        .map(|k| format!("{} text NOT NULL", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let pk = column_list(&step.key, None);
    let statements = [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} ({keys}, pending boolean NOT NULL DEFAULT true,
                is_success boolean, process_ts timestamptz, error text,
                attempts integer NOT NULL DEFAULT 0, PRIMARY KEY ({pk}))"
        ),
        create_pending_index(step),
    ];
    run_ddl(pool, &step.name, &statements).await
}

/// The name of the index of a step's pending keys, in the bookkeeping schema.
fn pending_index_name(step: &str) -> String {
    format!("keys__{step}__pending")
}

/// The name of the index of a step's pending keys, qualified and quoted.
pub fn pending_index(step: &str) -> String {
    book(&pending_index_name(step))
}

/// `CREATE INDEX IF NOT EXISTS` of the index of a step's pending keys (what the runs page
/// through), partial: a key done leaves it.
pub fn create_pending_index(step: &StepDef) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE pending",
        quote_ident(&pending_index_name(&step.name)),
        keys_table(&step.name),
        column_list(&step.key, None)
    )
}

async fn run_ddl(pool: &PgPool, what: &str, statements: &[String]) -> Result<(), StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| db("starting a transaction", e))?;
    // Two runs preparing at once would race on CREATE ... IF NOT EXISTS: serialize them.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(crate::lock::lock_id("ddl"))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("serializing bookkeeping DDL", e))?;
    for s in statements {
        sqlx::query(s)
            .execute(&mut *tx)
            .await
            .map_err(|e| db(format!("creating the bookkeeping of `{what}`"), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| db("committing bookkeeping DDL", e))
}

/// The key columns, in key order, of the bookkeeping tables that exist, by table name
/// (`meta__<table>`, `keys__<step>`).
pub type BookkeepingKeys = HashMap<String, Vec<String>>;

/// Reads the key columns of the named bookkeeping tables, all in one catalogue query.
pub async fn bookkeeping_keys(
    pool: &PgPool,
    names: &[String],
) -> Result<BookkeepingKeys, StoreError> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT b.name, array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
           FROM unnest($2::text[]) AS b(name)
           JOIN pg_index i
             ON i.indrelid = to_regclass(quote_ident($1) || '.' || quote_ident(b.name))
            AND i.indisprimary
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
          GROUP BY b.name",
    )
    .bind(namespace::current().book_schema())
    .bind(names)
    .fetch_all(pool)
    .await
    .map_err(|e| db("reading the keys of the engine's bookkeeping tables", e))?;
    Ok(rows.into_iter().collect())
}

/// Checks that a bookkeeping table's key columns are the expected ones (if it exists).
fn check_key_columns(
    keys: &BookkeepingKeys,
    base: &str,
    expected: &[String],
    owner: &str,
) -> Result<(), StoreError> {
    let cols = keys.get(base).map(Vec::as_slice).unwrap_or_default();
    if cols.is_empty() || cols == expected {
        Ok(())
    } else {
        let schema = namespace::current().book_schema();
        Err(StoreError::Schema {
            table: owner.to_string(),
            message: format!(
                "its bookkeeping ({schema}.{base}) is keyed by ({}) but the configuration says ({}); \
                 if the key really changed, drop {schema}.{base} and rerun (everything is reloaded)",
                cols.join(", "),
                expected.join(", ")
            ),
        })
    }
}
