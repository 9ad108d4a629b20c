//! How the engine's own connections start: the database URL parsed once, `application_name`
//! sent in the startup message, and the session's settings in one round trip.
//!
//! A run opens a connection per concurrent piece of work (the store's pool, one session per
//! step holding its locks); each costs a backend start on the server, so what a connection does
//! before its first statement is kept to one simple query, or none.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Executor;

use crate::namespace;

/// The name the engine's sessions show in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "etl";

/// The URL's options with the engine's `application_name`. Parsing errors never repeat the URL
/// (it may hold a password).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.application_name(APPLICATION_NAME))
}

/// The settings of a store session, as one simple query: the planner's page cost and, for a
/// named pipeline, its `search_path`.
///
/// The engine reads by key: batches of thousands of keys joined to a metadata table. With the
/// default `random_page_cost` (4, tuned for spinning disks) Postgres prefers hashing the whole
/// table to as many index probes: 100 ms instead of 20 ms for 5,000 keys against 200,000 rows,
/// and worse as tables grow. 1.1 is the usual setting for SSDs.
pub fn store_settings() -> String {
    let mut sql = String::from("SET random_page_cost = 1.1");
    if let Some(path) = namespace::current().search_path() {
        sql.push_str(&format!("; SET search_path = {path}"));
    }
    sql
}

/// A one-row `FROM` item that lets its statement commit without waiting for the disk (its
/// transaction's `synchronous_commit` off): for the records of runs and steps (`etl.runs`,
/// `etl.run_steps`, the status columns of `etl.steps`), which a database crash may then lose
/// for the last fraction of a second before it, as if written a moment later, and never
/// anything else: data, bookkeeping and memos keep the server's setting. A run writes a few
/// such records per step, each one otherwise a disk flush on the way from a step to the next.
pub const UNFLUSHED: &str = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed";

/// Applies `settings` (statements separated by `;`, no parameters) in one round trip.
/// (A query with no parameters goes as a simple query, which may hold several statements.)
pub async fn apply(conn: &mut PgConnection, settings: &str) -> Result<(), sqlx::Error> {
    conn.execute(settings).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_name_goes_in_the_startup_message() {
        let options = connect_options("postgres://u:secret@db.example:5433/etl").unwrap();
        assert_eq!(options.get_application_name(), Some(APPLICATION_NAME));
        assert_eq!(options.get_port(), 5433);
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        let e = connect_options("postgres://u:s3cr3t@db.example:notaport/etl").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn the_default_pipeline_sets_only_the_page_cost() {
        assert_eq!(store_settings(), "SET random_page_cost = 1.1");
    }
}
