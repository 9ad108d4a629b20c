//! Which texts a batch of an embedding step asks for: per key, each attribute that the
//! attribute list marks `embeddable` for the key's type, when its value is a non-empty string
//! that is not a UUID.

use std::collections::HashMap;

use serde_json::Value as J;

use etl_core::step::roles::{ATTRIBUTES, ROWS};
use etl_core::{InputBatch, Key, Row, Value};

use super::target::Target;

/// `(key, its row, attribute, text)` for every text the batch's keys ask for.
pub fn texts_of(target: Target, batch: &InputBatch) -> Vec<(Key, &Row, String, String)> {
    let embeddable = embeddable_by_type(target, batch.role_rows(ATTRIBUTES));

    // The texts of each key.
    let rows = batch.role_rows_by_key(ROWS);
    let mut wanted: Vec<(Key, &Row, String, String)> = Vec::new();
    for key in &batch.keys {
        let Some(row) = rows.get(key).and_then(|r| r.first()) else {
            continue;
        };
        let Some(ty) = row.text(target.type_column()) else {
            continue;
        };
        let Some(Value::Json(J::Object(attributes))) = row.get("attributes") else {
            continue;
        };
        for name in embeddable.get(ty).into_iter().flatten() {
            if let Some(J::String(text)) = attributes.get(name) {
                if !text.trim().is_empty() && !is_uuid(text.trim()) {
                    wanted.push((key.clone(), *row, name.clone(), text.clone()));
                }
            }
        }
    }
    wanted
}

/// Of an attribute list, the attributes marked embeddable, by the type they belong to.
pub fn embeddable_by_type(target: Target, attributes: &[Row]) -> HashMap<String, Vec<String>> {
    let mut embeddable: HashMap<String, Vec<String>> = HashMap::new();
    for a in attributes {
        if matches!(a.get("embeddable"), Some(Value::Bool(true))) {
            if let (Some(owner), Some(name)) =
                (a.text(target.owner_column()), a.text("attribute_name"))
            {
                embeddable
                    .entry(owner.to_string())
                    .or_default()
                    .push(name.to_string());
            }
        }
    }
    embeddable
}

/// A UUID (8-4-4-4-12 hex digits) is an identifier, not a text worth embedding.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_not_texts() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("river otters"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }
}
