//! The Postgres connections an embedding step opens for its own work (the cache, the vector
//! indexes), besides the engine's store: a small pool, opened on first use, in the pipeline's
//! schemas (`etl_postgres::namespace`).

use sqlx::PgPool;

use etl_core::StepError;

/// Connects a step's pool; `needed_for` says what for, in messages (the URL never appears).
pub async fn connect(database_url: Option<&str>, needed_for: &str) -> Result<PgPool, StepError> {
    let url = database_url.ok_or_else(|| {
        StepError::fatal(format!("{needed_for} needs the database: set DB_CONN_URI"))
    })?;
    etl_postgres::namespace::pool_options()
        .max_connections(2)
        .connect(url)
        .await
        .map_err(|e| StepError::transient(format!("connecting to Postgres for {needed_for}: {e}")))
}
