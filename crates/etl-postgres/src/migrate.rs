//! Applying the SQL migrations in `migrations/` (embedded at build time).
//!
//! The embedding tables take their dimension from the session setting `etl.embeddings_dim`, set
//! here from the caller's `EMBEDDINGS_DIM` before the migrations run on the same connection.
//!
//! A named pipeline (see [`crate::namespace`]) runs the same migrations in its own schemas: the
//! connection's `search_path` puts the data tables (and sqlx's `_sqlx_migrations`) in schema
//! `<name>`, and [`for_pipeline`] names its bookkeeping schema `etl_<name>` where the files say
//! `etl`. The default pipeline runs the files as they are.

use std::borrow::Cow;

use sqlx::migrate::{Migration, Migrator};
use sqlx::{Connection, PgConnection};

use crate::ident::quote_ident;
use crate::namespace;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to Postgres to migrate (check DB_CONN_URI): {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the migration's connection (schema, extension, settings): {0}")]
    Setting(#[source] sqlx::Error),
}

/// Applies pending migrations. Returns the versions applied now.
pub async fn migrate(database_url: &str, embeddings_dim: u32) -> Result<Vec<i64>, MigrateError> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .map_err(MigrateError::Connect)?;
    let ns = namespace::current();
    if let Some(pipeline) = ns.pipeline() {
        // Extensions belong to the database: pgvector's types stay in `public`, which every
        // pipeline's search_path ends with.
        for statement in [
            format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(pipeline)),
            "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public".to_string(),
        ] {
            sqlx::query(&statement)
                .execute(&mut conn)
                .await
                .map_err(MigrateError::Setting)?;
        }
        namespace::configure(&mut conn)
            .await
            .map_err(MigrateError::Setting)?;
    }
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
    let migrator = for_pipeline(&ns.book_schema());
    migrator.run(&mut conn).await?;
    let now: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied_before.contains(v))
        .collect();
    conn.close().await.ok();
    Ok(now)
}

/// The migrations with their bookkeeping schema named `book` (the files say `etl`).
pub fn for_pipeline(book: &str) -> Migrator {
    if book == "etl" {
        return Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ..Migrator::DEFAULT
        };
    }
    let migrations: Vec<Migration> = MIGRATOR
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                m.description.clone(),
                m.migration_type,
                Cow::Owned(in_schema(&m.sql, book)),
                m.no_tx,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// A migration's SQL with the schema `etl` renamed `book`: the schema's creation and every
/// name qualified by it (`etl.steps`, `nextval('etl.change_seq')`). Session settings
/// (`current_setting('etl.embeddings_dim')`) are not schema names and stay.
fn in_schema(sql: &str, book: &str) -> String {
    let quoted = quote_ident(book);
    let sql = sql.replace(
        "CREATE SCHEMA IF NOT EXISTS etl;",
        &format!("CREATE SCHEMA IF NOT EXISTS {quoted};"),
    );
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql.as_str();
    while let Some(at) = rest.find("etl.") {
        let before = rest[..at].chars().last();
        let is_name =
            !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '"');
        let is_setting = rest[at..].starts_with("etl.embeddings_dim");
        out.push_str(&rest[..at]);
        if is_name && !is_setting {
            out.push_str(&quoted);
            out.push('.');
        } else {
            out.push_str("etl.");
        }
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_pipelines_migrations_name_only_its_bookkeeping_schema() {
        let migrator = for_pipeline("etl_sales");
        for m in migrator.iter() {
            for (at, _) in m.sql.match_indices("etl.") {
                assert!(
                    m.sql[at..].starts_with("etl.embeddings_dim"),
                    "migration {} still names schema etl: {}",
                    m.version,
                    &m.sql[at..m.sql.len().min(at + 30)]
                );
            }
        }
        let first = migrator.iter().next().unwrap();
        assert!(first
            .sql
            .contains("CREATE SCHEMA IF NOT EXISTS \"etl_sales\";"));
        assert!(first.sql.contains("\"etl_sales\".steps"));
        assert!(!first.sql.contains(" etl.steps"));
    }

    #[test]
    fn the_default_pipelines_migrations_are_the_files_as_they_are() {
        let migrator = for_pipeline("etl");
        for (a, b) in migrator.iter().zip(MIGRATOR.iter()) {
            assert_eq!(a.checksum, b.checksum);
        }
    }
}
