//! The content-addressed embedding cache, `etl.embedding_cache`: one vector per (provider,
//! model, dimensions, blake3 of the exact text). A text already embedded is never sent again,
//! whichever node it belongs to and in whichever run. Entries are written as soon as a model
//! answers, in their own transaction, so that a later failure never loses what was paid for.

use std::collections::HashMap;

use pgvector::Vector;
use sqlx::PgPool;

use crate::provider::ModelId;

pub type TextHash = [u8; 32];

/// Of the entries of `$1` provider, `$2` model, `$3` dims, those of the hashes `$4` (and
/// `also`, a condition on the entry), their `columns`: one probe of the primary key per hash,
/// whatever the table's statistics. Written as `text_hash = ANY($4)`, a cache never yet analyzed
/// (a first run fills it faster than autovacuum samples it) was read by its key prefix, each
/// entry compared with every hash: a second per batch at 30,000 entries.
fn probe_sql(columns: &str, also: &str) -> String {
    format!(
        "SELECT c.* FROM unnest($4::bytea[]) AS q(h)
         CROSS JOIN LATERAL (SELECT {columns} FROM {book}.embedding_cache
                              WHERE provider = $1 AND model = $2 AND dims = $3
                                AND text_hash = q.h {also}
                             OFFSET 0) AS c",
        book = etl_postgres::namespace::book_schema()
    )
}

/// The lookup of a batch's hashes (see [`probe_sql`]); public so that a test can read its plan.
pub fn lookup_sql() -> String {
    probe_sql("text_hash, embedding", "")
}

pub fn text_hash(text: &str) -> TextHash {
    *blake3::hash(text.as_bytes()).as_bytes()
}

#[derive(Debug, thiserror::Error)]
#[error("embedding cache: {context}: {source}")]
pub struct CacheError {
    pub context: &'static str,
    #[source]
    pub source: sqlx::Error,
}

impl CacheError {
    pub fn is_transient(&self) -> bool {
        matches!(self.source, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
    }
}

#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    pool: PgPool,
}

impl EmbeddingCache {
    pub fn new(pool: PgPool) -> Self {
        EmbeddingCache { pool }
    }

    /// The cached vectors among `hashes`.
    pub async fn get_many(
        &self,
        id: &ModelId,
        hashes: &[TextHash],
    ) -> Result<HashMap<TextHash, Vec<f32>>, CacheError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
        let rows: Vec<(Vec<u8>, Vector)> = sqlx::query_as(&lookup_sql())
            .bind(&id.provider)
            .bind(&id.model)
            .bind(id.dims as i32)
            .bind(keys)
            .fetch_all(&self.pool)
            .await
            .map_err(|source| CacheError {
                context: "reading",
                source,
            })?;
        let hits: HashMap<TextHash, Vec<f32>> = rows
            .into_iter()
            .filter_map(|(h, v)| Some((<TextHash>::try_from(h.as_slice()).ok()?, v.to_vec())))
            .collect();
        if !hits.is_empty() {
            self.touch(id, hits.keys()).await?;
        }
        Ok(hits)
    }

    /// Marks entries as used now, for the age bound. An entry is touched at most once a day, so
    /// a run that hits the cache for every text does not rewrite it every time.
    async fn touch(
        &self,
        id: &ModelId,
        hashes: impl Iterator<Item = &TextHash>,
    ) -> Result<(), CacheError> {
        let keys: Vec<Vec<u8>> = hashes.map(|h| h.to_vec()).collect();
        sqlx::query(&format!(
            // The entries by probe, then updated by their row address.
            "UPDATE {book}.embedding_cache SET used_at = now() WHERE ctid = ANY (ARRAY({probe}))",
            book = etl_postgres::namespace::book_schema(),
            probe = probe_sql("ctid", "AND used_at < now() - interval '1 day'"),
        ))
        .bind(&id.provider)
        .bind(&id.model)
        .bind(id.dims as i32)
        .bind(keys)
        .execute(&self.pool)
        .await
        .map_err(|source| CacheError {
            context: "marking as used",
            source,
        })?;
        Ok(())
    }

    /// Forgets the entries (of every model) unused for `days` days; returns how many.
    pub async fn forget_unused(&self, days: u64) -> Result<u64, CacheError> {
        let gone = sqlx::query(&format!(
            "DELETE FROM {book}.embedding_cache WHERE used_at < now() - make_interval(days => $1)",
            book = etl_postgres::namespace::book_schema()
        ))
        .bind(days.min(i32::MAX as u64) as i32)
        .execute(&self.pool)
        .await
        .map_err(|source| CacheError {
            context: "bounding",
            source,
        })?
        .rows_affected();
        Ok(gone)
    }

    /// Stores vectors (an entry already there is kept).
    pub async fn put_many(
        &self,
        id: &ModelId,
        entries: &[(TextHash, Vec<f32>)],
    ) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let hashes: Vec<Vec<u8>> = entries.iter().map(|(h, _)| h.to_vec()).collect();
        let vectors: Vec<Vector> = entries
            .iter()
            .map(|(_, v)| Vector::from(v.clone()))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO {book}.embedding_cache (provider, model, dims, text_hash, embedding)
             SELECT $1, $2, $3, u.h, u.e FROM unnest($4::bytea[], $5::vector[]) AS u(h, e)
             ON CONFLICT DO NOTHING",
            book = etl_postgres::namespace::book_schema()
        ))
        .bind(&id.provider)
        .bind(&id.model)
        .bind(id.dims as i32)
        .bind(hashes)
        .bind(vectors)
        .execute(&self.pool)
        .await
        .map_err(|source| CacheError {
            context: "writing",
            source,
        })?;
        Ok(())
    }
}
