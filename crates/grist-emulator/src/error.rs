//! Owns [`EmulatorError`], the one error type of the crate: loading doc folders, binding the
//! server, editing docs through the handle, and the API errors the handlers turn into answers.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the emulator.
///
/// The `Display` text of the API-facing variants ([`EmulatorError::UnknownDoc`],
/// [`EmulatorError::UnknownTable`], [`EmulatorError::BadRequest`]) is exactly the message Grist
/// puts in its JSON error body.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A file is JSON but not in the shape the Grist API returns.
    #[error("unexpected shape of {path}: {message}")]
    Shape { path: PathBuf, message: String },
    /// Two folders give the same doc id.
    #[error("doc id {doc} is given twice (second time by {path})")]
    DuplicateDoc { doc: String, path: PathBuf },
    /// The server could not bind its address.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No doc with this id.
    #[error("document not found")]
    UnknownDoc(String),
    /// No table with this id in the doc (ids are case-sensitive).
    #[error("Table not found \"{table}\"")]
    UnknownTable { doc: String, table: String },
    /// No column with this id in the table.
    #[error("Column not found \"{column}\"")]
    UnknownColumn { table: String, column: String },
    /// No record with this id in the table.
    #[error("Record {id} not found in table {table}")]
    UnknownRecord { table: String, id: i64 },
    /// A table with this id already exists.
    #[error("Table {table} already exists")]
    DuplicateTable { table: String },
    /// Bad input to an API call or to a handle method (answers 400).
    #[error("{0}")]
    BadRequest(String),
}

impl EmulatorError {
    /// The HTTP status Grist answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            EmulatorError::UnknownDoc(_)
            | EmulatorError::UnknownTable { .. }
            | EmulatorError::UnknownColumn { .. }
            | EmulatorError::UnknownRecord { .. } => 404,
            EmulatorError::BadRequest(_) | EmulatorError::DuplicateTable { .. } => 400,
            _ => 500,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        EmulatorError::BadRequest(message.into())
    }
}
