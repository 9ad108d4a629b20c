//! Reading request inputs: percent-decoding, query-string pairs and parameters, Grist's
//! `isAffirmative` for flag parameters, and JSON bodies.

use axum::body::Bytes;
use serde_json::Value;

use crate::error::EmulatorError;

pub(super) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, EmulatorError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| EmulatorError::bad_request(format!("Invalid JSON body: {e}")))
}

/// Grist's `isAffirmative`.
pub(super) fn affirmative(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes"))
}
