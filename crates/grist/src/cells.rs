//! One typing of Grist cells, for every column type, whichever endpoint a table is read through.
//!
//! | column | value |
//! | --- | --- |
//! | `Text`, `Choice` | string |
//! | `Int` | integer |
//! | `Numeric` | float |
//! | `Bool` | boolean |
//! | `Date` | `YYYY-MM-DD` |
//! | `DateTime` | `YYYY-MM-DDTHH:MM:SSZ` (UTC) |
//! | `ChoiceList` | array of strings |
//! | `Ref` | the referenced row's display value |
//! | `RefList` | array of the referenced rows' display values |
//! | formula (`Any`) | the computed value's own JSON type (lists, dates and references as above) |
//!
//! Never values: blanks (`null`, `""`, a `Ref` of 0, an empty list item), formula errors
//! (`/records` gives `null` and names the exception under `errors`; CSV renders `#DIV/0!`), and
//! Grist's own columns (`manualSort`, `gristHelper_*`).
//!
//! * [`record_cell`] types a `/records` cell (dates as epoch seconds, lists as `["L", ...]`,
//!   references as row ids, values of `Any` columns in Grist's cell encoding).
//! * [`csv_cell`] types a CSV cell of a column that [`is_exact_in_csv`]: only there does the CSV
//!   text carry the value exactly. A reader picks its endpoint per table with [`ReadPath::for_columns`].

use chrono::{DateTime, Utc};
use serde_json::Value as J;

use crate::api::{Column, ColumnType};

/// Looks up the display value of a referenced row: (table, row id) -> value.
pub trait RefResolver {
    fn display(&self, table: &str, row_id: i64) -> Option<J>;
}

impl<F: Fn(&str, i64) -> Option<J>> RefResolver for F {
    fn display(&self, table: &str, row_id: i64) -> Option<J> {
        self(table, row_id)
    }
}

/// How a table's cells are read: through the CSV download (compact, streamed) or `/records`
/// (typed JSON, with row ids and formula values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    Csv,
    Records,
}

impl ReadPath {
    /// CSV when every column read is exact in CSV, `/records` otherwise.
    pub fn for_columns<'a>(columns: impl IntoIterator<Item = &'a Column>) -> ReadPath {
        if columns.into_iter().all(is_exact_in_csv) {
            ReadPath::Csv
        } else {
            ReadPath::Records
        }
    }
}

/// Whether a column's CSV text gives its value exactly. The CSV download renders cells with the
/// column's display format: a formula may compute any type or an error (`#DIV/0!`), a `Numeric`
/// shows at most 10 decimals (or a currency, a percentage), dates follow their format, and
/// references and lists show display text. Plain data columns of type `Text`, `Choice`, `Bool`,
/// and `Int` without a number format come through as they are.
pub fn is_exact_in_csv(column: &Column) -> bool {
    if column.fields.is_formula {
        return false;
    }
    match column.column_type() {
        ColumnType::Text | ColumnType::Choice | ColumnType::Bool => true,
        ColumnType::Int => !has_number_format(&column.fields.widget_options),
        _ => false,
    }
}

/// Whether widget options change how a number is shown (`numMode`, decimals, sign).
fn has_number_format(widget_options: &J) -> bool {
    let parsed;
    let options = match widget_options {
        J::String(text) => match serde_json::from_str::<J>(text) {
            Ok(J::Object(o)) => {
                parsed = o;
                &parsed
            }
            _ => return false,
        },
        J::Object(o) => o,
        _ => return false,
    };
    ["numMode", "numSign", "decimals", "maxDecimals", "currency"]
        .iter()
        .any(|k| options.get(*k).is_some_and(|v| !v.is_null()))
}

/// Types the CSV cell of a column that [`is_exact_in_csv`].
pub fn csv_cell(text: &str, ty: &ColumnType) -> J {
    if text.is_empty() {
        return J::Null;
    }
    match ty {
        ColumnType::Bool => match text {
            "true" => J::Bool(true),
            "false" => J::Bool(false),
            other => J::String(other.to_string()),
        },
        ColumnType::Int => match text.parse::<i64>() {
            Ok(i) => J::from(i),
            Err(_) => J::String(text.to_string()),
        },
        ColumnType::Numeric => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => J::from(f),
            _ => J::String(text.to_string()),
        },
        _ => J::String(text.to_string()),
    }
}

/// The items of a `["L", ...]` list.
fn list_items(json: &J) -> Option<&[J]> {
    match json {
        J::Array(items) if items.first().and_then(J::as_str) == Some("L") => Some(&items[1..]),
        _ => None,
    }
}

fn date(secs: f64, with_time: bool) -> J {
    if !secs.is_finite() {
        return J::Null;
    }
    match DateTime::<Utc>::from_timestamp(secs.floor() as i64, 0) {
        Some(dt) if with_time => J::String(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Some(dt) => J::String(dt.format("%Y-%m-%d").to_string()),
        None => J::Null,
    }
}

/// Types a `/records` cell as JSON; `null` is "no value".
pub fn record_cell(json: &J, ty: &ColumnType, refs: &dyn RefResolver) -> J {
    match (ty, json) {
        (_, J::Null) => J::Null,
        (_, J::String(s)) if s.is_empty() => J::Null,
        (ColumnType::Numeric, J::Number(n)) => n.as_f64().map_or(J::Null, |f| serde_json::json!(f)),
        (ColumnType::Int, J::Number(n)) => match n.as_i64() {
            Some(i) => J::from(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => J::from(f as i64),
                _ => J::Number(n.clone()),
            },
        },
        (ColumnType::Date, J::Number(n)) => date(n.as_f64().unwrap_or(f64::NAN), false),
        (ColumnType::DateTime, J::Number(n)) => date(n.as_f64().unwrap_or(f64::NAN), true),
        (ColumnType::Ref(table), J::Number(n)) => match n.as_i64() {
            Some(id) if id > 0 => refs.display(table, id).unwrap_or(J::Null),
            _ => J::Null,
        },
        (ColumnType::RefList(table), list) => match list_items(list) {
            Some(items) => J::Array(
                items
                    .iter()
                    .filter_map(J::as_i64)
                    .filter_map(|id| refs.display(table, id))
                    .collect(),
            ),
            None => J::Null,
        },
        (_, J::Array(_)) => encoded_cell(json, refs),
        (_, other) => other.clone(),
    }
}

/// A value in Grist's cell encoding, as formula (`Any`) columns give it: `["L", ...]` a list,
/// `["d", secs]` a date, `["D", secs, tz]` a datetime, `["R", table, id]` a reference,
/// `["r", table, [ids]]` references, `["O", {...}]` a dict; `["E", ...]` an error and
/// `["P"]`/`["C"]`/`["U", ...]` (pending, censored, unmarshallable) are no value.
fn encoded_cell(json: &J, refs: &dyn RefResolver) -> J {
    let J::Array(items) = json else {
        return json.clone();
    };
    let code = items.first().and_then(J::as_str);
    let arg = |i: usize| items.get(i).unwrap_or(&J::Null);
    match code {
        Some("L") => J::Array(
            items[1..]
                .iter()
                .map(|item| match item {
                    J::Array(_) => encoded_cell(item, refs),
                    other => other.clone(),
                })
                .filter(|v| !v.is_null())
                .collect(),
        ),
        Some("d") => date(arg(1).as_f64().unwrap_or(f64::NAN), false),
        Some("D") => date(arg(1).as_f64().unwrap_or(f64::NAN), true),
        Some("R") => match (arg(1).as_str(), arg(2).as_i64()) {
            (Some(table), Some(id)) if id > 0 => refs.display(table, id).unwrap_or(J::Null),
            _ => J::Null,
        },
        Some("r") => match (arg(1).as_str(), list_items(arg(2))) {
            (Some(table), Some(ids)) => J::Array(
                ids.iter()
                    .filter_map(J::as_i64)
                    .filter_map(|id| refs.display(table, id))
                    .collect(),
            ),
            _ => J::Null,
        },
        Some("O") => arg(1).clone(),
        Some("E" | "P" | "C" | "U" | "S") => J::Null,
        _ => json.clone(),
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

    fn column(ty: &str, formula: bool, widget_options: &str) -> Column {
        serde_json::from_value(json!({"id": "c", "fields": {
            "type": ty, "isFormula": formula, "widgetOptions": widget_options}}))
        .unwrap()
    }

    #[test]
    fn csv_cells_are_typed_and_blanks_are_null() {
        assert_eq!(csv_cell("", &ColumnType::Text), J::Null);
        assert_eq!(csv_cell("true", &ColumnType::Bool), json!(true));
        assert_eq!(csv_cell("15", &ColumnType::Int), json!(15));
        assert_eq!(csv_cell("nan", &ColumnType::Text), json!("nan"));
    }

    #[test]
    fn only_plain_data_columns_are_read_from_csv() {
        assert!(is_exact_in_csv(&column("Text", false, "")));
        assert!(is_exact_in_csv(&column("Choice", false, "")));
        assert!(is_exact_in_csv(&column("Bool", false, "")));
        assert!(is_exact_in_csv(&column("Int", false, "")));
        assert!(is_exact_in_csv(&column(
            "Int",
            false,
            r#"{"alignment":"right"}"#
        )));
        assert!(!is_exact_in_csv(&column(
            "Int",
            false,
            r#"{"numMode":"decimal"}"#
        )));
        // A formula can compute anything, or fail; Numeric shows at most 10 decimals.
        assert!(!is_exact_in_csv(&column("Any", true, "")));
        assert!(!is_exact_in_csv(&column("Numeric", true, "")));
        assert!(!is_exact_in_csv(&column("Text", true, "")));
        assert!(!is_exact_in_csv(&column("Numeric", false, "")));
        assert!(!is_exact_in_csv(&column("Date", false, "")));
        assert!(!is_exact_in_csv(&column("Ref:People", false, "")));
        assert!(!is_exact_in_csv(&column("ChoiceList", false, "")));
        let plain = [column("Text", false, ""), column("Int", false, "")];
        assert_eq!(ReadPath::for_columns(&plain), ReadPath::Csv);
        let computed = [column("Text", false, ""), column("Any", true, "")];
        assert_eq!(ReadPath::for_columns(&computed), ReadPath::Records);
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
        assert_eq!(record_cell(&json!(""), &ColumnType::Any, &refs), J::Null);
        assert_eq!(referenced_ids(&json!(["L", 3, 0, 4])), vec![3, 4]);
        assert!(record_cell(&json!(0), &ColumnType::Numeric, &refs).is_f64());
        assert_eq!(record_cell(&json!(5.0), &ColumnType::Int, &refs), json!(5));
    }

    #[test]
    fn formula_values_keep_their_own_type_and_errors_are_no_value() {
        let refs = |table: &str, id: i64| (table == "People" && id == 2).then(|| json!("Bob"));
        let any = ColumnType::Any;
        assert_eq!(record_cell(&json!(12.5), &any, &refs), json!(12.5));
        assert_eq!(record_cell(&json!(3), &any, &refs), json!(3));
        assert_eq!(record_cell(&json!(true), &any, &refs), json!(true));
        assert_eq!(record_cell(&json!("x"), &any, &refs), json!("x"));
        assert_eq!(
            record_cell(&json!(["E", "ZeroDivisionError"]), &any, &refs),
            J::Null
        );
        assert_eq!(
            record_cell(&json!(["d", 1705276800]), &any, &refs),
            json!("2024-01-15")
        );
        assert_eq!(
            record_cell(&json!(["D", 1705314645, "UTC"]), &any, &refs),
            json!("2024-01-15T10:30:45Z")
        );
        assert_eq!(
            record_cell(&json!(["R", "People", 2]), &any, &refs),
            json!("Bob")
        );
        assert_eq!(
            record_cell(&json!(["r", "People", ["L", 2, 7]]), &any, &refs),
            json!(["Bob"])
        );
        assert_eq!(
            record_cell(&json!(["L", 1, ["d", 0], "a"]), &any, &refs),
            json!([1, "1970-01-01", "a"])
        );
        assert_eq!(
            record_cell(&json!(["O", {"k": 1}]), &any, &refs),
            json!({"k": 1})
        );
        assert_eq!(record_cell(&json!(["P"]), &any, &refs), J::Null);
        // A Numeric formula that failed: null in /records.
        assert_eq!(record_cell(&J::Null, &ColumnType::Numeric, &refs), J::Null);
    }
}
