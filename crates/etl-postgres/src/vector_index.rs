//! The vector indexes of the embedding tables, as settings say (`EMBEDDINGS_INDEX` and its
//! parameters), and the embedding dimension: applied by `etl migrate`, idempotent and
//! restartable.
//!
//! Every table of the current schema with a `vector` column is an embedding table. For each,
//! [`apply`] leaves exactly the index asked for: it drops what a killed run left (an invalid
//! index), builds the new index concurrently beside the old one, then drops the old one and
//! gives the new one its name. Killed at any point, the next `etl migrate` completes the
//! change. A table whose indexes a bulk load has set aside (`etl.deferred_indexes`) is left
//! alone: its step's next run makes them again first.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row as _};

use crate::ident::quote_ident;

/// Which index, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKind {
    Hnsw { m: u32, ef_construction: u32 },
    IvfFlat { lists: u32 },
    None,
}

/// The index settings: the kind, and whether the index stores half-precision vectors
/// (`halfvec`, pgvector ≥ 0.7: half the memory; queries must cast to `halfvec(N)` to use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub kind: IndexKind,
    pub halfvec: bool,
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec {
            kind: IndexKind::Hnsw {
                m: 16,
                ef_construction: 64,
            },
            halfvec: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    Setting(String),
    #[error("database error while {what}: {source}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
}

fn db(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> IndexError {
    let what = what.into();
    move |source| IndexError::Database { what, source }
}

impl IndexSpec {
    /// From `EMBEDDINGS_INDEX` (`hnsw`, `ivfflat`, `none`), `EMBEDDINGS_HNSW_M`,
    /// `EMBEDDINGS_HNSW_EF_CONSTRUCTION`, `EMBEDDINGS_IVFFLAT_LISTS` and
    /// `EMBEDDINGS_INDEX_HALFVEC`, looked up by `var`; every problem at once.
    pub fn from_settings(var: impl Fn(&str) -> Option<String>) -> Result<Self, IndexError> {
        let mut problems = Vec::new();
        let mut number = |name: &str, default: u32, range: (u32, u32)| -> u32 {
            match var(name).filter(|v| !v.is_empty()) {
                None => default,
                Some(v) => match v.parse::<u32>() {
                    Ok(n) if n >= range.0 && n <= range.1 => n,
                    _ => {
                        problems.push(format!(
                            "{name}: `{v}` is not a whole number from {} to {}",
                            range.0, range.1
                        ));
                        default
                    }
                },
            }
        };
        let kind = match var("EMBEDDINGS_INDEX").filter(|v| !v.is_empty()).as_deref() {
            None | Some("hnsw") => IndexKind::Hnsw {
                m: number("EMBEDDINGS_HNSW_M", 16, (2, 100)),
                ef_construction: number("EMBEDDINGS_HNSW_EF_CONSTRUCTION", 64, (4, 1000)),
            },
            Some("ivfflat") => IndexKind::IvfFlat {
                lists: number("EMBEDDINGS_IVFFLAT_LISTS", 100, (1, 32768)),
            },
            Some("none") => IndexKind::None,
            Some(other) => {
                problems.push(format!(
                    "EMBEDDINGS_INDEX: `{other}` is not one of hnsw, ivfflat, none"
                ));
                IndexKind::None
            }
        };
        let halfvec = match var("EMBEDDINGS_INDEX_HALFVEC")
            .filter(|v| !v.is_empty())
            .as_deref()
        {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                problems.push(format!(
                    "EMBEDDINGS_INDEX_HALFVEC: `{other}` is not true or false"
                ));
                false
            }
        };
        if problems.is_empty() {
            Ok(IndexSpec { kind, halfvec })
        } else {
            Err(IndexError::Setting(problems.join("; ")))
        }
    }

    /// The index's name on `table`: `<table>_hnsw` for the default (Vedana's name).
    pub fn name(&self, table: &str) -> Option<String> {
        let kind = match self.kind {
            IndexKind::Hnsw { .. } => "hnsw",
            IndexKind::IvfFlat { .. } => "ivfflat",
            IndexKind::None => return None,
        };
        Some(match self.halfvec {
            false => format!("{table}_{kind}"),
            true => format!("{table}_{kind}_halfvec"),
        })
    }

    /// What [`Found`] says of an index made from this spec.
    fn found(&self) -> Option<Found> {
        let (method, options) = match self.kind {
            IndexKind::Hnsw { m, ef_construction } => (
                "hnsw",
                BTreeMap::from([("ef_construction".into(), ef_construction), ("m".into(), m)]),
            ),
            IndexKind::IvfFlat { lists } => ("ivfflat", BTreeMap::from([("lists".into(), lists)])),
            IndexKind::None => return None,
        };
        Some(Found {
            method: method.into(),
            halfvec: self.halfvec,
            options,
        })
    }

    /// `CREATE INDEX CONCURRENTLY` of this spec on `table`'s `column` of dimension `dim`.
    fn create(&self, name: &str, table: &str, column: &str, dim: i32) -> Option<String> {
        let found = self.found()?;
        let (expr, ops) = match self.halfvec {
            false => (quote_ident(column), "vector_cosine_ops"),
            true => (
                format!("({}::halfvec({dim}))", quote_ident(column)),
                "halfvec_cosine_ops",
            ),
        };
        let with = found
            .options
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "CREATE INDEX CONCURRENTLY {} ON {} USING {} ({expr} {ops}) WITH ({with})",
            quote_ident(name),
            quote_ident(table),
            found.method
        ))
    }

    /// For `etl status`: e.g. `hnsw (m=16, ef_construction=64)`.
    pub fn describe(&self) -> String {
        match self.found() {
            None => "none".into(),
            Some(f) => f.describe(),
        }
    }
}

/// A vector index as the catalogue shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub method: String,
    pub halfvec: bool,
    pub options: BTreeMap<String, u32>,
}

impl Found {
    pub fn describe(&self) -> String {
        let options = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{}{} ({options})",
            self.method,
            if self.halfvec { " on halfvec" } else { "" }
        )
    }
}

/// An embedding table: its vector column and dimension.
#[derive(Debug, Clone)]
pub struct VectorTable {
    pub table: String,
    pub column: String,
    pub dim: i32,
}

/// Every table of the current schema with a `vector` column.
pub async fn vector_tables(pool: &PgPool) -> Result<Vec<VectorTable>, IndexError> {
    let rows = sqlx::query(
        "SELECT c.relname::text, a.attname::text, a.atttypmod
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
          WHERE n.nspname = current_schema() AND c.relkind = 'r' AND t.typname = 'vector'
            AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .map_err(db("listing the tables with a vector column"))?;
    Ok(rows
        .iter()
        .map(|r| VectorTable {
            table: r.get(0),
            column: r.get(1),
            dim: r.get(2),
        })
        .collect())
}

/// The vector indexes (hnsw, ivfflat) of `table`, by name, with whether each is valid.
pub async fn indexes_of(
    pool: &PgPool,
    table: &str,
) -> Result<Vec<(String, Found, bool)>, IndexError> {
    let rows = sqlx::query(
        "SELECT ic.relname::text, am.amname::text, pg_get_indexdef(i.indexrelid),
                coalesce(ic.reloptions, '{}')::text[], i.indisvalid
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_class tc ON tc.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = tc.relnamespace
           JOIN pg_am am ON am.oid = ic.relam
          WHERE n.nspname = current_schema() AND tc.relname = $1
            AND am.amname IN ('hnsw', 'ivfflat')
          ORDER BY 1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(db(format!("reading the vector indexes of `{table}`")))?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let method: String = r.get(1);
        let definition: String = r.get(2);
        let reloptions: Vec<String> = r.get(3);
        let valid: bool = r.get(4);
        // pgvector's defaults, for an index made without WITH.
        let mut options: BTreeMap<String, u32> = match method.as_str() {
            "hnsw" => BTreeMap::from([("ef_construction".into(), 64), ("m".into(), 16)]),
            _ => BTreeMap::from([("lists".into(), 100)]),
        };
        for o in reloptions {
            if let Some((k, v)) = o.split_once('=') {
                if let Ok(v) = v.parse() {
                    options.insert(k.to_string(), v);
                }
            }
        }
        let found = Found {
            method,
            halfvec: definition.contains("halfvec"),
            options,
        };
        out.push((name, found, valid));
    }
    Ok(out)
}

/// What [`apply`] did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Made(String),
    Dropped(Vec<String>),
    /// A bulk load has set the table's indexes aside; its step's next run makes them again.
    Deferred,
}

/// Leaves exactly the index `spec` asks for on `t`.
pub async fn apply(
    pool: &PgPool,
    t: &VectorTable,
    spec: &IndexSpec,
) -> Result<Applied, IndexError> {
    let deferred: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {book}.deferred_indexes WHERE table_name = $1",
        book = crate::namespace::book_schema()
    ))
    .bind(&t.table)
    .fetch_one(pool)
    .await
    .map_err(db("reading etl.deferred_indexes"))?;
    if deferred > 0 {
        return Ok(Applied::Deferred);
    }
    let mut present = indexes_of(pool, &t.table).await?;
    // A killed CREATE INDEX CONCURRENTLY leaves an invalid index: drop it.
    for (name, _, valid) in &present {
        if !valid {
            drop_index(pool, name).await?;
        }
    }
    present.retain(|(_, _, valid)| *valid);
    let (Some(wanted), Some(name)) = (spec.found(), spec.name(&t.table)) else {
        let names: Vec<String> = present.into_iter().map(|(n, _, _)| n).collect();
        for n in &names {
            drop_index(pool, n).await?;
        }
        return Ok(if names.is_empty() {
            Applied::Unchanged
        } else {
            Applied::Dropped(names)
        });
    };
    // The index to keep: one as asked for (the one with the final name first).
    present.sort_by_key(|(n, _, _)| *n != name);
    let keep = present
        .iter()
        .find(|(_, f, _)| *f == wanted)
        .map(|(n, _, _)| n.clone());
    let made = keep.is_none();
    let keep = match keep {
        Some(k) => k,
        None => {
            let building = format!("{name}_new");
            if present.iter().any(|(n, _, _)| *n == building) {
                drop_index(pool, &building).await?;
            }
            let sql = spec
                .create(&building, &t.table, &t.column, t.dim)
                .expect("an index kind");
            sqlx::query(&sql)
                .execute(pool)
                .await
                .map_err(db(format!("making the vector index of `{}`", t.table)))?;
            building
        }
    };
    for (n, _, _) in &present {
        if *n != keep {
            drop_index(pool, n).await?;
        }
    }
    if keep != name {
        sqlx::query(&format!(
            "ALTER INDEX {} RENAME TO {}",
            quote_ident(&keep),
            quote_ident(&name)
        ))
        .execute(pool)
        .await
        .map_err(db(format!("naming the vector index of `{}`", t.table)))?;
    }
    Ok(if made {
        Applied::Made(name)
    } else {
        Applied::Unchanged
    })
}

async fn drop_index(pool: &PgPool, name: &str) -> Result<(), IndexError> {
    sqlx::query(&format!(
        "DROP INDEX CONCURRENTLY IF EXISTS {}",
        quote_ident(name)
    ))
    .execute(pool)
    .await
    .map_err(db(format!("dropping the vector index `{name}`")))?;
    Ok(())
}

/// Changes the dimension of `t`'s vector column to `dim`: its vectors are dropped (they are
/// derived data, and the embedding cache keeps them), the column altered, and the embedding
/// steps' changed fingerprint (the dimension is part of it) makes their next run embed every
/// key again. Its vector indexes are dropped first; [`apply`] makes them again.
pub async fn change_dimension(pool: &PgPool, t: &VectorTable, dim: u32) -> Result<u64, IndexError> {
    for (name, _, _) in indexes_of(pool, &t.table).await? {
        drop_index(pool, &name).await?;
    }
    let mut tx = pool.begin().await.map_err(db("starting a transaction"))?;
    let dropped = sqlx::query(&format!("DELETE FROM {}", quote_ident(&t.table)))
        .execute(&mut *tx)
        .await
        .map_err(db(format!("dropping the vectors of `{}`", t.table)))?
        .rows_affected();
    sqlx::query(&format!(
        "ALTER TABLE {} ALTER COLUMN {} TYPE vector({dim})",
        quote_ident(&t.table),
        quote_ident(&t.column)
    ))
    .execute(&mut *tx)
    .await
    .map_err(db(format!("changing the dimension of `{}`", t.table)))?;
    tx.commit()
        .await
        .map_err(db("committing the new dimension"))?;
    Ok(dropped)
}
