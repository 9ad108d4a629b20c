//! The content-addressed embedding cache, `etl.embedding_cache`: one vector per (provider,
//! model, dimensions, blake3 of the exact text). A text already embedded is never sent again,
//! whichever node it belongs to and in whichever run. Entries are written as soon as a model
//! answers, in their own transaction, so that a later failure never loses what was paid for.

use std::collections::HashMap;

use pgvector::Vector;
use sqlx::PgPool;

use crate::provider::ModelId;

pub type TextHash = [u8; 32];

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
        let rows: Vec<(Vec<u8>, Vector)> = sqlx::query_as(
            "SELECT text_hash, embedding FROM etl.embedding_cache
              WHERE provider = $1 AND model = $2 AND dims = $3 AND text_hash = ANY($4)",
        )
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
        Ok(rows
            .into_iter()
            .filter_map(|(h, v)| Some((<TextHash>::try_from(h.as_slice()).ok()?, v.to_vec())))
            .collect())
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
        sqlx::query(
            "INSERT INTO etl.embedding_cache (provider, model, dims, text_hash, embedding)
             SELECT $1, $2, $3, u.h, u.e FROM unnest($4::bytea[], $5::vector[]) AS u(h, e)
             ON CONFLICT DO NOTHING",
        )
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
