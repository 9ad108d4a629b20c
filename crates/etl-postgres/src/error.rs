//! Classifying database errors: which are worth retrying, and how to say what failed. The one
//! table for Postgres (the engine then maps `StoreError` to its classes: a transient database
//! error is retried by the runner, a row that does not fit its table is the key's (data), the
//! rest is fatal):
//!
//! | what | class |
//! | --- | --- |
//! | I/O, pool timed out, worker crashed | transient |
//! | SQLSTATE `08*` connection, `40001` serialization, `40P01` deadlock, `53*` resources, `57P01`-`57P03` shutdown or restart | transient |
//! | writing rows: SQLSTATE `22*` (a value that does not fit its column) or `23*` (a constraint), as `StoreError::Row` | data |
//! | anything else: a constraint, a missing table or column, bad SQL, permissions | fatal |

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
        sqlx::Error::Database(d) => d.code().as_deref().is_some_and(is_transient_code),
        _ => false,
    }
}

/// An error writing rows: a value that does not fit its column (SQLSTATE class 22) or breaks a
/// constraint (23) is the rows' (`StoreError::Row`, said without the value: row values never
/// reach messages); anything else is the database's, transient or not.
pub fn row_error(table: &str, context: String, e: sqlx::Error) -> StoreError {
    let code = match &e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    };
    match code.as_deref() {
        Some(c) if c.starts_with("22") || c.starts_with("23") => {
            let what = if c.starts_with("22") {
                "a value does not fit its column's type".to_string()
            } else {
                match &e {
                    sqlx::Error::Database(d) => format!(
                        "a row breaks constraint `{}`",
                        d.constraint().unwrap_or("?")
                    ),
                    _ => "a row breaks a constraint".to_string(),
                }
            };
            StoreError::Row {
                table: table.to_string(),
                message: format!("writing rows failed (SQLSTATE {c}): {what}"),
            }
        }
        _ => db(context, e),
    }
}

/// Whether a SQLSTATE says the same statement may succeed later.
pub fn is_transient_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code == "40001" // serialization failure
        || code == "40P01" // deadlock detected
        || code.starts_with("53") // insufficient resources
        || code == "57P01" // admin shutdown
        || code == "57P02" // crash shutdown
        || code == "57P03" // cannot connect now
}

#[cfg(test)]
mod tests {
    use super::is_transient_code;

    #[test]
    fn every_row_of_the_table() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57P02", "57P03",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        // Unique violation, undefined table and column, syntax, permissions: fatal.
        for code in ["23505", "42P01", "42703", "42601", "42501", "22P02"] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
