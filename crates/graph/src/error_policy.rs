//! The one table from the graph server's errors to what they mean for a run. The engine then
//! acts on the class: a transient error is retried (here, by [`crate::client`], and only here),
//! a data error is the batch's keys' fault (the batch is split to find them), a fatal error
//! stops the step at once.
//!
//! | what the server or the connection says | class | why |
//! | --- | --- | --- |
//! | an I/O error, a dropped connection | transient | the next attempt may get through |
//! | `Neo.TransientError.*`; "conflicting transactions" (Memgraph), "deadlock", "timed out" | transient | concurrent writers; retry |
//! | `Neo.ClientError.Schema.ConstraintValidationFailed`; "constraint violation", "duplicated key" | data | two rows claim one id |
//! | `Neo.ClientError.Statement.TypeError`/`ArgumentError`; "property" values it cannot store | data | a value of some row |
//! | anything else: no such database, a syntax it does not speak, security, an unknown procedure | fatal | no key is at fault: splitting the batch would only repeat it thousands of times |

/// What a graph error means for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Data,
    Fatal,
}

/// Classifies a neo4rs error by the table above.
pub fn classify(e: &neo4rs::Error) -> Class {
    match e {
        neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError => Class::Transient,
        neo4rs::Error::Neo4j(server) => classify_server(server.code(), server.message()),
        neo4rs::Error::StringTooLong
        | neo4rs::Error::MapTooBig
        | neo4rs::Error::BytesTooBig
        | neo4rs::Error::ListTooLong => Class::Data,
        other => classify_server("", &other.to_string()),
    }
}

/// Classifies a server's failure by its code and message.
pub fn classify_server(code: &str, message: &str) -> Class {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if code.contains(".TransientError.")
        || has(&["conflicting transactions", "deadlock", "timed out"])
    {
        Class::Transient
    } else if code.ends_with("Schema.ConstraintValidationFailed")
        || code.ends_with("Statement.TypeError")
        || code.ends_with("Statement.ArgumentError")
        || has(&[
            "constraint violation",
            "duplicated key",
            "already exists with label",
            "property value",
            "cannot be stored as a property",
        ])
    {
        Class::Data
    } else {
        Class::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table() {
        let cases = [
            ("Neo.TransientError.Transaction.DeadlockDetected", "", Class::Transient),
            (
                "Memgraph.TransientError.MemgraphError.MemgraphError",
                "Cannot resolve conflicting transactions. You can retry this transaction when the conflicting transaction is finished",
                Class::Transient,
            ),
            (
                "Neo.ClientError.Schema.ConstraintValidationFailed",
                "Node(1) already exists with label `person` and property `id` = 'p1'",
                Class::Data,
            ),
            (
                "Memgraph.ClientError.MemgraphError.MemgraphError",
                "Unable to commit due to unique constraint violation on :person(id)",
                Class::Data,
            ),
            ("Neo.ClientError.Statement.TypeError", "Property values can only be of primitive types", Class::Data),
            ("Neo.ClientError.Database.DatabaseNotFound", "Database does not exist: nope", Class::Fatal),
            ("Neo.ClientError.Statement.SyntaxError", "Invalid input 'ASSERT'", Class::Fatal),
            ("Neo.ClientError.Security.Forbidden", "Write operations are not allowed", Class::Fatal),
            ("", "Database 'nope' is not available", Class::Fatal),
            (
                "Memgraph.ClientError.MemgraphError.MemgraphError",
                "Index manipulation not allowed in multicommand transactions.",
                Class::Fatal,
            ),
        ];
        for (code, message, class) in cases {
            assert_eq!(classify_server(code, message), class, "{code}: {message}");
        }
        assert_eq!(classify(&neo4rs::Error::ConnectionError), Class::Transient);
        assert_eq!(classify(&neo4rs::Error::ListTooLong), Class::Data);
    }
}
