//! Classifying database errors: which are worth retrying, and how to say what failed.

use etl_core::store::StoreError;

/// Wraps an sqlx error with what was being done, deciding whether it is transient.
pub fn db(context: impl Into<String>, e: sqlx::Error) -> StoreError {
    StoreError::Database {
        context: context.into(),
        transient: is_transient(&e),
        source: Box::new(e),
    }
}

/// Connection loss, pool exhaustion, serialization failures, deadlocks and server restarts pass;
/// anything else (a constraint, a missing table, bad SQL) will fail the same way again.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some(code) => {
                code.starts_with("08") // connection exception
                    || code == "40001" // serialization failure
                    || code == "40P01" // deadlock detected
                    || code.starts_with("53") // insufficient resources
                    || code == "57P01" // admin shutdown
                    || code == "57P02" // crash shutdown
                    || code == "57P03" // cannot connect now
            }
            None => false,
        },
        _ => false,
    }
}
