//! The SQL pieces every statement of the store is built from: keys travel as one `text[]`
//! parameter per key column and are joined with `unnest`; values travel as text in the form
//! Postgres parses for their column.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::Row as _;

use etl_core::diff::Stored;
use etl_core::row_hash::RowHash;
use etl_core::store::StoreError;
use etl_core::{Key, Row, StepDef, Value};

use crate::error::db;
use crate::ident::quote_ident;
use crate::schema::ColumnKind;

/// Key values column by column, for `unnest($1::text[], $2::text[], ...)`.
pub(super) fn key_columns(keys: &[Key], width: usize) -> Vec<Vec<String>> {
    let mut cols = vec![Vec::with_capacity(keys.len()); width];
    for k in keys {
        for (i, part) in k.parts().iter().enumerate().take(width) {
            cols[i].push(part.clone());
        }
    }
    cols
}

/// `unnest($s::text[], $s+1::text[], ...) AS alias(k0, k1, ...)`
pub(super) fn unnest_keys(first_param: usize, width: usize, alias: &str) -> String {
    format!(
        "unnest({}) AS {alias}({})",
        text_array_params(first_param, width),
        key_names(width)
    )
}

/// `$first::text[], $first+1::text[], ...` for `width` parameters.
pub(super) fn text_array_params(first_param: usize, width: usize) -> String {
    (0..width)
        .map(|i| format!("${}::text[]", first_param + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k0, k1, ...`: the names `unnest` gives the key columns.
pub(super) fn key_names(width: usize) -> String {
    (0..width)
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a.x = b.k0 AND a.y = b.k1 ...`
pub(super) fn join_on(left_alias: &str, left_cols: &[String], right_alias: &str) -> String {
    left_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{left_alias}.{} = {right_alias}.k{i}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The input columns that give a step's key, in the key's order (for an input that covers it).
pub(super) fn key_projection<'a>(
    step: &StepDef,
    input: &'a etl_core::dag::InputDef,
) -> Vec<&'a String> {
    step.key
        .iter()
        .map(|k| {
            &input
                .join
                .iter()
                .find(|(kk, _)| kk == k)
                .expect("an input that covers the key joins every key column")
                .1
        })
        .collect()
}

pub(super) fn key_of(row: &PgRow, width: usize) -> Result<Key, sqlx::Error> {
    let mut parts = Vec::with_capacity(width);
    for i in 0..width {
        parts.push(row.try_get::<String, _>(i)?);
    }
    Ok(Key(parts))
}

pub(super) fn hash_of(bytes: Option<Vec<u8>>) -> RowHash {
    let mut h = [0u8; 32];
    if let Some(b) = bytes {
        let n = b.len().min(32);
        h[..n].copy_from_slice(&b[..n]);
    }
    h
}

/// A value in the text form Postgres parses for the column's type.
pub(super) fn value_text(value: &Value, kind: &ColumnKind) -> Option<String> {
    if *kind == ColumnKind::Json {
        return match value {
            Value::Null => None,
            Value::Json(j) => Some(j.to_string()),
            Value::Text(s) => Some(serde_json::Value::String(s.clone()).to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(serde_json::json!(f).to_string()),
            Value::Vector(v) => Some(serde_json::json!(v).to_string()),
        };
    }
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(if f.is_nan() {
            "NaN".into()
        } else if f.is_infinite() {
            if *f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        } else {
            f.to_string()
        }),
        Value::Text(s) => Some(s.clone()),
        Value::Json(j) => Some(j.to_string()),
        Value::Vector(v) => Some(format!(
            "[{}]",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )),
    }
}

pub(super) fn row_from_json(json: serde_json::Value) -> Row {
    match json {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, Value::from_json(v)))
            .collect(),
        _ => Row::new(),
    }
}

pub(super) fn stored_rows(
    rows: Vec<PgRow>,
    width: usize,
    table: &str,
) -> Result<HashMap<Key, Stored>, StoreError> {
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let key =
            key_of(&r, width).map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        let hash: Option<Vec<u8>> = r
            .try_get(width)
            .map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        let producer: Option<String> = r
            .try_get(width + 1)
            .map_err(|e| db(format!("reading row metadata of `{table}`"), e))?;
        out.insert(
            key,
            Stored {
                hash: hash_of(hash),
                producer: producer.as_deref().and_then(Key::decode),
            },
        );
    }
    Ok(out)
}
