//! Owns per-column value formatters, following Grist's `ValueFormatter.ts`: which formatter a
//! column type gets (Numeric, Int, Bool, Date, DateTime, Ref, RefList, row id, or the generic
//! one), how a Ref column formats through its visible column's formatter (or as `Table[id]`
//! without one), and the fallback to the generic rendering for values of the wrong type.

use serde_json::Value;

use crate::cellvalue::{
    as_f64, csv_encode_row_pretty, decode, format_unknown, is_list, js_number, js_string, Decoded,
};
use crate::datefmt;
use crate::model::{base_type, referenced_table, type_arg, Column, Doc};
use crate::number::NumberFormat;

/// How to turn a cell value of one column into text.
#[derive(Clone, Debug)]
pub enum Formatter {
    /// `formatUnknown` for every value (Text, Choice, ChoiceList, Any, ...).
    Any,
    Bool,
    Number(NumberFormat),
    /// Date and DateTime: a moment format and the zone of the column.
    Date {
        format: String,
        tz: String,
    },
    /// Row ids, shown as `Table[id]` (blank for 0).
    Id {
        table: String,
    },
    Ref(Box<Formatter>),
    RefList(Box<Formatter>),
}

fn opt_str<'a>(opts: &'a Value, key: &str) -> Option<&'a str> {
    opts.get(key).and_then(Value::as_str)
}

impl Formatter {
    /// Grist's `createFormatter(type, widgetOptions)` (Ref types without a visible column
    /// show row ids).
    pub fn for_type(col_type: &str, opts: &Value) -> Formatter {
        match base_type(col_type) {
            "Numeric" => Formatter::Number(NumberFormat::from_options(opts, false)),
            "Int" => Formatter::Number(NumberFormat::from_options(opts, true)),
            "Bool" => Formatter::Bool,
            "Date" => Formatter::Date {
                format: date_format(opts),
                tz: "UTC".into(),
            },
            "DateTime" => {
                let time = match opts.get("timeFormat") {
                    None => "h:mma".to_string(),
                    Some(v) => js_string(v),
                };
                Formatter::Date {
                    format: format!("{} {time}", date_format(opts)),
                    tz: type_arg(col_type).to_string(),
                }
            }
            "Id" => Formatter::Id {
                table: opt_str(opts, "tableId").unwrap_or("").to_string(),
            },
            "Ref" => Formatter::Ref(Box::new(id_formatter(col_type))),
            "RefList" => Formatter::RefList(Box::new(id_formatter(col_type))),
            _ => Formatter::Any,
        }
    }

    /// Grist's `createFullFormatterFromDocData`: for a Ref/RefList column, values format
    /// through the formatter of its visible column (found by colRef anywhere in the doc).
    pub fn for_column(doc: &Doc, col: &Column) -> Formatter {
        let col_type = col.col_type();
        let opts = col.widget_options();
        if referenced_table(col_type).is_none() {
            return Formatter::for_type(col_type, &opts);
        }
        let visible = match visible_column(doc, col) {
            Some(vcol) => Formatter::for_type(vcol.col_type(), &vcol.widget_options()),
            None => id_formatter(col_type),
        };
        match base_type(col_type) {
            "RefList" => Formatter::RefList(Box::new(visible)),
            _ => Formatter::Ref(Box::new(visible)),
        }
    }

    /// Grist's `formatAny`: the column's rendering for values of its type, the generic one
    /// for other values.
    pub fn format(&self, value: &Value) -> String {
        match self {
            Formatter::Any => format_unknown(value),
            Formatter::Bool => match value {
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if as_f64(n) == 0.0 || as_f64(n) == 1.0 => js_number(as_f64(n)),
                other => format_unknown(other),
            },
            Formatter::Number(nf) => match value {
                Value::Null => String::new(),
                Value::Number(n) => nf.format(as_f64(n)),
                Value::Bool(b) => nf.format(if *b { 1.0 } else { 0.0 }),
                other => format_unknown(other),
            },
            Formatter::Date { format, tz } => format_date(value, format, tz),
            Formatter::Id { table } => match value {
                Value::Number(n) if as_f64(n) > 0.0 => format!("{table}[{}]", js_number(as_f64(n))),
                Value::Bool(true) => format!("{table}[true]"),
                Value::Number(_) | Value::Bool(false) => String::new(),
                other => format_unknown(other),
            },
            Formatter::Ref(visible) => match invalid_ref_text(value) {
                Some(text) => text,
                None => visible.format(value),
            },
            Formatter::RefList(visible) => {
                if let Some(text) = invalid_ref_text(value) {
                    return text;
                }
                let Value::Array(items) = value else {
                    return format_unknown(value);
                };
                let nested = match decode(value) {
                    Decoded::List(decoded) => decoded
                        .iter()
                        .any(|d| matches!(d, Decoded::List(_) | Decoded::Dict(_))),
                    _ => false,
                };
                if !is_list(value) || nested {
                    return format_unknown(value);
                }
                let parts: Vec<String> = items[1..].iter().map(|v| visible.format(v)).collect();
                csv_encode_row_pretty(&parts)
            }
        }
    }
}

fn date_format(opts: &Value) -> String {
    match opt_str(opts, "dateFormat") {
        Some(f) if !f.is_empty() => f.to_string(),
        _ => "YYYY-MM-DD".into(),
    }
}

fn id_formatter(col_type: &str) -> Formatter {
    let table = referenced_table(col_type).unwrap_or("");
    // Grist shows hidden tables' row ids without a table name.
    let table = if table.starts_with("GristHidden_") {
        ""
    } else {
        table
    };
    Formatter::Id {
        table: table.to_string(),
    }
}

/// The visible column of a Ref/RefList column: its `visibleCol` colRef, looked up in the
/// referenced table first, then anywhere in the doc.
pub fn visible_column<'a>(doc: &'a Doc, col: &Column) -> Option<&'a Column> {
    let col_ref = col.visible_col();
    if col_ref <= 0 {
        return None;
    }
    referenced_table(col.col_type())
        .and_then(|t| doc.table(t))
        .and_then(|t| t.column_by_ref(col_ref))
        .or_else(|| doc.column_by_ref(col_ref).map(|(_, c)| c))
}

/// `["E", "InvalidTypedValue", "Ref...", text]`: a Ref cell holding text shows the text.
fn invalid_ref_text(value: &Value) -> Option<String> {
    let Value::Array(items) = value else {
        return None;
    };
    let is_invalid = items.first().and_then(Value::as_str) == Some("E")
        && items.get(1).and_then(Value::as_str) == Some("InvalidTypedValue")
        && items
            .get(2)
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("Ref"));
    if !is_invalid {
        return None;
    }
    Some(match items.get(3) {
        Some(v) => js_string(v),
        None => "undefined".into(),
    })
}

fn format_date(value: &Value, format: &str, tz: &str) -> String {
    match value {
        Value::Null => String::new(),
        Value::Number(n) => datefmt::format_ms(as_f64(n) * 1000.0, tz, format),
        Value::Array(items)
            if matches!(items.first().and_then(Value::as_str), Some("d") | Some("D")) =>
        {
            let zone = match items.get(2) {
                Some(Value::String(z)) if !z.is_empty() => z.as_str(),
                _ => tz,
            };
            match items.get(1) {
                Some(Value::Number(n)) => datefmt::format_ms(as_f64(n) * 1000.0, zone, format),
                Some(Value::Null) | None => datefmt::format_ms(0.0, zone, format),
                Some(_) => "Invalid date".into(),
            }
        }
        other => format_unknown(other),
    }
}
