//! The values, rows and keys that flow between steps and the store.
//!
//! A [`Row`] is a set of named [`Value`]s. A [`Key`] is the primary key of a row (or the key a
//! transform works on), held as text so that every table's metadata can store it the same way.

use std::collections::BTreeMap;
use std::fmt;

/// One cell. The variants are the types the engine can hash and store.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// A JSON document (`jsonb` in Postgres).
    Json(serde_json::Value),
    /// An embedding (`vector(N)` in Postgres).
    Vector(Vec<f32>),
}

impl Value {
    /// The value as key text, if it can be part of a key (text or integer).
    pub fn as_key_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Converts a JSON value read back from the store into a cell.
    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Text(s),
            other => Value::Json(other),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Self {
        Value::Json(j)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

/// A row: cells by column name. Column order never matters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(BTreeMap<String, Value>);

impl Row {
    pub fn new() -> Self {
        Row(BTreeMap::new())
    }

    /// Adds a cell, builder style.
    pub fn with(mut self, column: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(column.into(), value.into());
        self
    }

    pub fn set(&mut self, column: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(column.into(), value.into());
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.get(column)
    }

    /// The cell as text, or `None` when it is absent, null or not text.
    pub fn text(&self, column: &str) -> Option<&str> {
        self.0.get(column).and_then(Value::as_str)
    }

    pub fn remove(&mut self, column: &str) -> Option<Value> {
        self.0.remove(column)
    }

    pub fn columns(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds the key of this row from the given key columns, or says which column is missing.
    pub fn key(&self, key_columns: &[String]) -> Result<Key, MissingKeyColumn> {
        let mut parts = Vec::with_capacity(key_columns.len());
        for column in key_columns {
            match self.0.get(column).and_then(Value::as_key_text) {
                Some(text) => parts.push(text),
                None => {
                    return Err(MissingKeyColumn {
                        column: column.clone(),
                    })
                }
            }
        }
        Ok(Key(parts))
    }
}

impl FromIterator<(String, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Row(iter.into_iter().collect())
    }
}

/// A key column of a row was absent, null, or of a type that cannot be a key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("key column `{column}` is missing, null, or neither text nor integer")]
pub struct MissingKeyColumn {
    pub column: String,
}

/// A primary key (or transform key): its values as text, in the order of the key columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub Vec<String>);

impl Key {
    pub fn new<I, S>(parts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Key(parts.into_iter().map(Into::into).collect())
    }

    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// A stable text encoding of the key (a JSON array), used to record which transform key
    /// produced an output row.
    pub fn encode(&self) -> String {
        serde_json::to_string(&self.0).expect("a list of strings always serializes")
    }

    pub fn decode(text: &str) -> Option<Key> {
        serde_json::from_str::<Vec<String>>(text).ok().map(Key)
    }

    /// A 16-byte digest of the key, for compact sets of keys seen during a snapshot.
    pub fn digest(&self) -> [u8; 16] {
        let mut hasher = blake3::Hasher::new();
        for part in &self.0 {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        out
    }
}

impl fmt::Display for Key {
    /// Keys are shown by shape, not value: row values never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key#{}", hex16(&self.digest()[..4]))
    }
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
