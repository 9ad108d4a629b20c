//! Owns Grist's generic cell-value rendering, as its JavaScript does it: `String(x)` and
//! `JSON.stringify(x)` of JSON values (JavaScript number formatting included), decoding Grist's
//! encoded values (`["L", ...]`, `["d", ts]`, `["E", name]`, ...), `formatUnknown`, and the
//! "prettier" CSV encoding of lists (`a, "b, c"`).

use serde_json::Value;

use crate::datefmt;

/// JavaScript's `Number.prototype.toString()` (shortest round-trip digits).
pub fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let (digits, point) = shortest_digits(x.abs());
    let sign = if x < 0.0 { "-" } else { "" };
    let k = digits.len() as i32;
    let n = point;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let exp = n - 1;
        let exp_sign = if exp >= 0 { "+" } else { "-" };
        let mantissa = if k == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mantissa}e{exp_sign}{}", exp.abs())
    };
    format!("{sign}{body}")
}

/// The shortest decimal digits of a positive finite `x` and the position of the decimal point:
/// `x = 0.DIGITS * 10^point`.
pub fn shortest_digits(x: f64) -> (String, i32) {
    let formatted = format!("{x:e}");
    let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_end_matches('0');
    let digits = if trimmed.is_empty() { "0" } else { trimmed };
    (digits.to_string(), exp + 1)
}

/// The number inside a JSON number, as JavaScript sees it.
pub fn as_f64(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(0.0)
}

/// JavaScript's `String(value)` for a JSON value.
pub fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(as_f64(n)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => js_string(v),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript's `JSON.stringify(value)` for a JSON value.
pub fn js_json(value: &Value) -> String {
    match value {
        Value::Number(n) => js_number(as_f64(n)),
        Value::String(s) => json_string(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(js_json).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}:{}", json_string(k), js_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// JavaScript's `\s`.
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// Grist's `csvEncodeCell`: quotes a list item holding a comma, quote, newline, or leading or
/// trailing whitespace.
pub fn csv_encode_cell(value: &str) -> String {
    let needs_quotes = value.contains([',', '\r', '\n', '"'])
        || value.starts_with(is_js_space)
        || value.ends_with(is_js_space);
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Grist's `csvEncodeRow(values, {prettier: true})`: items joined by `, `.
pub fn csv_encode_row_pretty(values: &[String]) -> String {
    values
        .iter()
        .map(|v| csv_encode_cell(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Grist cell value decoded like `decodeObject` in Grist's `objtypes.ts`.
#[derive(Clone, Debug)]
pub enum Decoded {
    Plain(Value),
    List(Vec<Decoded>),
    /// Keys sorted, as Grist's `mapValues(..., {sort: true})`.
    Dict(Vec<(String, Decoded)>),
    DateTime {
        seconds: Value,
        tz: String,
    },
    Date {
        seconds: Value,
    },
    Exception(Vec<Value>),
    Pending,
    Skip,
    Censored,
    Reference {
        table: String,
        id: Value,
    },
    ReferenceList {
        table: String,
        ids: Value,
    },
    Unknown(Value),
}

/// Grist's `decodeObject`.
pub fn decode(value: &Value) -> Decoded {
    let Value::Array(items) = value else {
        return Decoded::Plain(value.clone());
    };
    let code = items.first();
    let args = items.get(1..).unwrap_or(&[]);
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    match code.and_then(Value::as_str) {
        Some("D") => Decoded::DateTime {
            seconds: arg(0),
            tz: match args.get(1) {
                Some(v) => js_string(v),
                None => "undefined".into(),
            },
        },
        Some("d") => Decoded::Date { seconds: arg(0) },
        Some("E") if !args.is_empty() => Decoded::Exception(args.to_vec()),
        Some("E") => Decoded::Unknown(Value::String(
            "E()#Error(RaisedException requires a name as first element)".into(),
        )),
        Some("L") => Decoded::List(args.iter().map(decode).collect()),
        Some("O") => {
            let mut entries: Vec<(String, Decoded)> = match args.first() {
                Some(Value::Object(map)) => {
                    map.iter().map(|(k, v)| (k.clone(), decode(v))).collect()
                }
                _ => Vec::new(),
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Decoded::Dict(entries)
        }
        Some("P") => Decoded::Pending,
        Some("S") => Decoded::Skip,
        Some("C") => Decoded::Censored,
        Some("r") => Decoded::ReferenceList {
            table: js_string(&arg(0)),
            ids: arg(1),
        },
        Some("R") => Decoded::Reference {
            table: js_string(&arg(0)),
            id: arg(1),
        },
        Some("U") => Decoded::Unknown(arg(0)),
        _ => {
            let code = match code {
                Some(c) => js_string(c),
                None => "undefined".into(),
            };
            let args_json = js_json(&Value::Array(args.to_vec()));
            let inner = args_json
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or("");
            Decoded::Unknown(Value::String(format!("{code}({inner})")))
        }
    }
}

/// The text of a formula error, as Grist's `RaisedException.toString()`.
pub fn exception_text(args: &[Value]) -> String {
    let name = args.first().map(js_string).unwrap_or_default();
    let part = |i: usize| match args.get(i) {
        Some(v) => js_string(v),
        None => "undefined".into(),
    };
    match name.as_str() {
        "ZeroDivisionError" => "#DIV/0!".into(),
        "UnmarshallableError" => match args.get(2) {
            Some(v) if truthy(v) => js_string(v),
            _ => format!("#{name}"),
        },
        // `/records` gives only the name; Grist's text needs the type and value too.
        "InvalidTypedValue" if args.len() < 3 => format!("#{name}"),
        "InvalidTypedValue" => format!("#Invalid {}: {}", part(1), part(2)),
        _ => format!("#{name}"),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => as_f64(n) != 0.0,
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn seconds_to_ms(seconds: &Value) -> Option<f64> {
    match seconds {
        Value::Number(n) => Some(as_f64(n) * 1000.0),
        Value::Bool(b) => Some(if *b { 1000.0 } else { 0.0 }),
        Value::Null => Some(0.0),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|x| x * 1000.0),
        _ => None,
    }
}

impl Decoded {
    fn is_nested(&self) -> bool {
        matches!(self, Decoded::List(_) | Decoded::Dict(_))
    }

    /// JavaScript's `String(decoded)`.
    fn to_js_string(&self) -> String {
        match self {
            Decoded::Plain(v) | Decoded::Unknown(v) => js_string(v),
            Decoded::List(items) => items
                .iter()
                .map(|d| match d {
                    Decoded::Plain(Value::Null) => String::new(),
                    d => d.to_js_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            Decoded::Dict(_) => "[object Object]".into(),
            Decoded::DateTime { seconds, .. } => match seconds_to_ms(seconds) {
                Some(ms) => datefmt::iso_string(ms).unwrap_or_else(|| "Invalid Date".into()),
                None => "Invalid Date".into(),
            },
            Decoded::Date { seconds } => match seconds_to_ms(seconds) {
                Some(ms) => datefmt::iso_string(ms)
                    .map(|s| s.chars().take(10).collect())
                    .unwrap_or_else(|| "Invalid Date".into()),
                None => "Invalid Date".into(),
            },
            Decoded::Exception(args) => exception_text(args),
            Decoded::Pending => "Loading...".into(),
            Decoded::Skip => "...".into(),
            Decoded::Censored => "CENSORED".into(),
            Decoded::Reference { table, id } => format!("{table}[{}]", js_string(id)),
            Decoded::ReferenceList { table, ids } => format!("{table}[[{}]]", js_string(ids)),
        }
    }
}

/// Grist's `formatDecoded`.
pub fn format_decoded(value: &Decoded, top_level: bool) -> String {
    match value {
        Decoded::List(items) => {
            if !top_level || items.iter().any(Decoded::is_nested) {
                let inner: Vec<String> = items.iter().map(|v| format_decoded(v, false)).collect();
                format!("[{}]", inner.join(", "))
            } else {
                let inner: Vec<String> = items.iter().map(|v| format_decoded(v, true)).collect();
                csv_encode_row_pretty(&inner)
            }
        }
        Decoded::Dict(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", json_string(k), format_decoded(v, false)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Decoded::DateTime { seconds, tz } if top_level => match seconds_to_ms(seconds) {
            Some(ms) => datefmt::format_ms(ms, tz, "YYYY-MM-DD HH:mm:ssZ"),
            None => "Invalid date".into(),
        },
        Decoded::Plain(v) => {
            if top_level {
                match v {
                    Value::Null => String::new(),
                    v => js_string(v),
                }
            } else {
                js_json(v)
            }
        }
        other => other.to_js_string(),
    }
}

/// Grist's `formatUnknown`: how a value of no particular type shows in a cell or in CSV.
pub fn format_unknown(value: &Value) -> String {
    format_decoded(&decode(value), true)
}

/// Whether a value is an encoded list (`["L", ...]`).
pub fn is_list(value: &Value) -> bool {
    matches!(value, Value::Array(items) if items.first().and_then(Value::as_str) == Some("L"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn js_numbers() {
        for (x, s) in [
            (0.1, "0.1"),
            (1234.5, "1234.5"),
            (15.0, "15"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1.5e-10, "1.5e-10"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(js_number(x), s, "{x}");
        }
    }

    #[test]
    fn unknown_values() {
        assert_eq!(format_unknown(&json!(null)), "");
        assert_eq!(format_unknown(&json!(["L", "a", "b, c"])), "a, \"b, c\"");
        assert_eq!(format_unknown(&json!(["L", 1, ["L", 2]])), "[1, [2]]");
        assert_eq!(
            format_unknown(&json!(["E", "ZeroDivisionError"])),
            "#DIV/0!"
        );
        assert_eq!(format_unknown(&json!(["E", "NameError"])), "#NameError");
        assert_eq!(format_unknown(&json!(["R", "People", 2])), "People[2]");
        assert_eq!(format_unknown(&json!(["d", 1705276800])), "2024-01-15");
        assert_eq!(
            format_unknown(&json!(["O", {"b": 1, "a": "x"}])),
            "{\"a\": \"x\", \"b\": 1}"
        );
        assert_eq!(format_unknown(&json!(true)), "true");
        assert_eq!(format_unknown(&json!(["L", " x"])), "\" x\"");
    }
}
