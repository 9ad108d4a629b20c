//! Grist cells as typed values.
//!
//! * [`csv_cell`]: a CSV cell (text) typed by its column: blank is NULL (never the string
//!   "nan"), `Bool` is a boolean, `Numeric` a float, `Int` an integer; everything else text.
//! * [`record_cell`]: a `/records` cell as JSON: lists (`["L", ...]`) become arrays, dates
//!   (epoch seconds) ISO strings, references the referenced row's display value (through a
//!   resolver), formula errors (`null`) null.

use chrono::{DateTime, Utc};
use serde_json::Value as J;

use etl_core::Value;

use crate::api::ColumnType;

/// Types a CSV cell.
pub fn csv_cell(text: &str, ty: &ColumnType) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    match ty {
        ColumnType::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::Text(other.to_string()),
        },
        ColumnType::Numeric => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => Value::Text(text.to_string()),
        },
        ColumnType::Int => match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => match text.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.is_finite() => Value::Int(f as i64),
                _ => Value::Text(text.to_string()),
            },
        },
        _ => Value::Text(text.to_string()),
    }
}

/// Looks up the display value of a referenced row: (table, row id) -> value.
pub trait RefResolver {
    fn display(&self, table: &str, row_id: i64) -> Option<J>;
}

impl<F: Fn(&str, i64) -> Option<J>> RefResolver for F {
    fn display(&self, table: &str, row_id: i64) -> Option<J> {
        self(table, row_id)
    }
}

fn list_items(json: &J) -> Option<&[J]> {
    match json {
        J::Array(items) if items.first().and_then(J::as_str) == Some("L") => Some(&items[1..]),
        _ => None,
    }
}

fn date(secs: f64, with_time: bool) -> J {
    match DateTime::<Utc>::from_timestamp(secs.floor() as i64, 0) {
        Some(dt) if with_time => J::String(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Some(dt) => J::String(dt.format("%Y-%m-%d").to_string()),
        None => J::Null,
    }
}

/// Types a `/records` cell as JSON.
pub fn record_cell(json: &J, ty: &ColumnType, refs: &dyn RefResolver) -> J {
    match (ty, json) {
        (_, J::Null) => J::Null,
        (ColumnType::Text | ColumnType::Choice, J::String(s)) if s.is_empty() => J::Null,
        (ColumnType::Numeric, J::Number(n)) => n.as_f64().map_or(J::Null, |f| serde_json::json!(f)),
        (ColumnType::Int, J::Number(n)) => match n.as_i64() {
            Some(i) => J::from(i),
            None => J::Number(n.clone()),
        },
        (ColumnType::Date, J::Number(n)) => date(n.as_f64().unwrap_or_default(), false),
        (ColumnType::DateTime, J::Number(n)) => date(n.as_f64().unwrap_or_default(), true),
        (ColumnType::Ref(table), J::Number(n)) => match n.as_i64() {
            Some(0) | None => J::Null,
            Some(id) => refs.display(table, id).unwrap_or(J::Null),
        },
        (ColumnType::RefList(table), list) => match list_items(list) {
            Some(items) => J::Array(
                items
                    .iter()
                    .filter_map(|i| i.as_i64())
                    .filter_map(|id| refs.display(table, id))
                    .collect(),
            ),
            None => J::Null,
        },
        (_, list) if list_items(list).is_some() => {
            J::Array(list_items(list).unwrap_or_default().to_vec())
        }
        (_, other) => other.clone(),
    }
}

/// The row ids a reference cell points at (`Ref`: one id, `RefList`: several; 0 is none).
pub fn referenced_ids(json: &J) -> Vec<i64> {
    match json {
        J::Number(n) => n.as_i64().filter(|id| *id > 0).into_iter().collect(),
        other => list_items(other)
            .map(|items| {
                items
                    .iter()
                    .filter_map(J::as_i64)
                    .filter(|id| *id > 0)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_are_typed_and_blanks_are_null() {
        assert_eq!(csv_cell("", &ColumnType::Text), Value::Null);
        assert_eq!(csv_cell("true", &ColumnType::Bool), Value::Bool(true));
        assert_eq!(csv_cell("0.8", &ColumnType::Numeric), Value::Float(0.8));
        assert_eq!(csv_cell("15", &ColumnType::Int), Value::Int(15));
        assert_eq!(
            csv_cell("nan", &ColumnType::Text),
            Value::Text("nan".into())
        );
        assert_eq!(
            csv_cell("#NameError", &ColumnType::Any),
            Value::Text("#NameError".into())
        );
    }

    #[test]
    fn record_cells_become_json() {
        let refs = |table: &str, id: i64| (table == "People" && id == 2).then(|| json!("Bob"));
        assert_eq!(
            record_cell(&json!(["L", "a", "b"]), &ColumnType::ChoiceList, &refs),
            json!(["a", "b"])
        );
        assert_eq!(
            record_cell(&json!(2), &ColumnType::Ref("People".into()), &refs),
            json!("Bob")
        );
        assert_eq!(
            record_cell(&json!(0), &ColumnType::Ref("People".into()), &refs),
            J::Null
        );
        assert_eq!(
            record_cell(&json!(99), &ColumnType::Ref("People".into()), &refs),
            J::Null
        );
        assert_eq!(
            record_cell(
                &json!(["L", 2, 99]),
                &ColumnType::RefList("People".into()),
                &refs
            ),
            json!(["Bob"])
        );
        assert_eq!(
            record_cell(&json!(1700000000), &ColumnType::Date, &refs),
            json!("2023-11-14")
        );
        assert_eq!(
            record_cell(&json!(1700000000), &ColumnType::DateTime, &refs),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(record_cell(&json!(""), &ColumnType::Text, &refs), J::Null);
        assert_eq!(referenced_ids(&json!(["L", 3, 0, 4])), vec![3, 4]);
        assert_eq!(
            record_cell(&json!(0), &ColumnType::Numeric, &refs),
            json!(0.0)
        );
        assert!(record_cell(&json!(0), &ColumnType::Numeric, &refs).is_f64());
    }
}
