//! Applying the SQL migrations in `migrations/` (embedded at build time).
//!
//! The embedding tables take their dimension from the session setting `etl.embeddings_dim`, set
//! here from the caller's `EMBEDDINGS_DIM` before the migrations run on the same connection.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to Postgres to migrate (check DB_CONN_URI): {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot set the embedding dimension: {0}")]
    Setting(#[source] sqlx::Error),
}

/// Applies pending migrations. Returns the versions applied now.
pub async fn migrate(database_url: &str, embeddings_dim: u32) -> Result<Vec<i64>, MigrateError> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .map_err(MigrateError::Connect)?;
    sqlx::query("SELECT set_config('etl.embeddings_dim', $1, false)")
        .bind(embeddings_dim.to_string())
        .execute(&mut conn)
        .await
        .map_err(MigrateError::Setting)?;
    let applied_before: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    MIGRATOR.run(&mut conn).await?;
    let now: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied_before.contains(v))
        .collect();
    conn.close().await.ok();
    Ok(now)
}

/// A digest of the embedded migrations, to name test template databases.
pub fn migrations_digest() -> String {
    let mut h = blake3::Hasher::new();
    for m in MIGRATOR.iter() {
        h.update(&m.version.to_le_bytes());
        h.update(&m.checksum);
    }
    h.finalize().to_hex()[..12].to_string()
}
