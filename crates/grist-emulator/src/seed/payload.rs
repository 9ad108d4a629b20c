//! Reading the JSON payloads of the write endpoints and actions: the `400` error they answer
//! with, named lists (`{"tables": [...]}`), column specs, row ids, and field values the API
//! accepts in several forms.

use serde_json::Value;

use crate::error::EmulatorError;
use crate::model::{object_fields, Fields};

pub(super) fn bad(message: impl Into<String>) -> EmulatorError {
    EmulatorError::bad_request(message)
}

/// A column spec of the API: `{"id": c, "fields": {...}}` (fields may also sit beside `id`,
/// as in `/apply` `AddTable`).
pub(super) struct ColumnSpec {
    pub(super) id: Option<String>,
    pub(super) fields: Fields,
}

pub(super) fn column_spec(value: &Value) -> Result<ColumnSpec, EmulatorError> {
    let Value::Object(map) = value else {
        return Err(bad(format!("invalid column: {value}")));
    };
    let id = match map.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => return Err(bad(format!("invalid column id: {other}"))),
    };
    let mut fields: Fields = match map.get("fields") {
        Some(f) => object_fields(f.clone())?,
        None => Fields::new(),
    };
    for (k, v) in map {
        if k != "id" && k != "fields" {
            fields.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(ColumnSpec { id, fields })
}

pub(super) fn list_of<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, EmulatorError> {
    body.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("Invalid payload: expected a \"{key}\" list")))
}

/// Normalizes a field value the API accepts in several forms (`widgetOptions` as an object).
pub(super) fn normalize_field(key: &str, value: Value) -> Value {
    match (key, value) {
        ("widgetOptions", v @ Value::Object(_)) => Value::String(v.to_string()),
        ("widgetOptions", Value::Null) => Value::String(String::new()),
        (_, v) => v,
    }
}

pub(super) fn record_id(value: Option<&Value>) -> Result<i64, EmulatorError> {
    value
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("Invalid payload: records need an integer \"id\""))
}
