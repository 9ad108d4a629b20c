//! Owns number rendering for Numeric and Int columns, as Grist's `buildNumberFormat` does it
//! with `Intl.NumberFormat` in the `en-US` locale: the default plain format (no grouping, up to
//! 10 decimals), `numMode` decimal / percent / currency / scientific, `decimals`, `maxDecimals`
//! and `numSign: "parens"`. Rounding is half away from zero on the shortest decimal form.

use serde_json::Value;

use crate::cellvalue::shortest_digits;

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Plain,
    Decimal,
    Percent,
    Currency(String),
    Scientific,
}

/// A resolved number format.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberFormat {
    mode: Mode,
    min_frac: usize,
    max_frac: usize,
    parens: bool,
}

fn opt_number(opts: &Value, key: &str) -> Option<f64> {
    match opts.get(key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// (symbol, fraction digits) of a currency in `en-US` with `currencyDisplay: narrowSymbol`.
fn currency_info(code: &str) -> (String, usize) {
    let (symbol, digits) = match code {
        "USD" | "CAD" | "AUD" | "NZD" | "MXN" | "SGD" | "HKD" | "ARS" | "CLP" | "COP" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" | "CNY" => ("¥", 0),
        "KRW" => ("₩", 0),
        "INR" => ("₹", 2),
        "RUB" => ("₽", 2),
        "UAH" => ("₴", 2),
        "ILS" => ("₪", 2),
        "NGN" => ("₦", 2),
        "PHP" => ("₱", 2),
        "TRY" => ("₺", 2),
        "VND" => ("₫", 0),
        "BRL" => ("R$", 2),
        "PLN" => ("zł", 2),
        "THB" => ("฿", 2),
        _ => return (format!("{code}\u{a0}"), 2),
    };
    let digits = if matches!(code, "CLP") { 0 } else { digits };
    (symbol.to_string(), digits)
}

impl NumberFormat {
    /// The format of a Numeric (`is_int == false`) or Int column with these widget options.
    pub fn from_options(opts: &Value, is_int: bool) -> NumberFormat {
        let mode = match opts.get("numMode").and_then(Value::as_str) {
            Some("decimal") => Mode::Decimal,
            Some("percent") => Mode::Percent,
            Some("scientific") => Mode::Scientific,
            Some("currency") => {
                let code = opts
                    .get("currency")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .unwrap_or("USD");
                Mode::Currency(code.to_string())
            }
            _ => Mode::Plain,
        };
        // IntFormatter passes {decimals: 0, ...opts}: an explicit `decimals` (even null) wins.
        let decimals = match opts.get("decimals") {
            Some(_) => opt_number(opts, "decimals"),
            None if is_int => Some(0.0),
            None => None,
        };
        let (default_min, default_max) = match &mode {
            Mode::Plain | Mode::Decimal | Mode::Scientific => (0, 3),
            Mode::Percent => (0, 0),
            Mode::Currency(code) => {
                let digits = currency_info(code).1;
                (digits, digits)
            }
        };
        let min_frac = match decimals {
            Some(d) => d.clamp(0.0, 20.0) as usize,
            None => default_min,
        };
        let max_frac = match opt_number(opts, "maxDecimals") {
            Some(m) => (m.clamp(min_frac as f64, 20.0)) as usize,
            None if mode == Mode::Plain => 10.max(min_frac),
            None => default_max.max(min_frac),
        };
        NumberFormat {
            mode,
            min_frac,
            max_frac,
            parens: opts.get("numSign").and_then(Value::as_str) == Some("parens"),
        }
    }

    /// Renders a number (Grist's `NumericFormatter.format`).
    pub fn format(&self, x: f64) -> String {
        if self.parens && self.mode != Mode::Scientific {
            if x >= 0.0 || x.is_nan() {
                return format!(" {} ", self.format_signed(x));
            }
            return format!("({})", self.format_signed(-x));
        }
        self.format_signed(x)
    }

    fn format_signed(&self, x: f64) -> String {
        let negative = x.is_sign_negative() && !x.is_nan();
        let sign = if negative { "-" } else { "" };
        if x.is_nan() {
            return "NaN".into();
        }
        if x.is_infinite() {
            let body = match &self.mode {
                Mode::Percent => "∞%".to_string(),
                Mode::Currency(code) => format!("{}∞", currency_info(code).0),
                _ => "∞".to_string(),
            };
            return format!("{sign}{body}");
        }
        let (digits, point) = if x == 0.0 {
            ("0".to_string(), 1)
        } else {
            shortest_digits(x.abs())
        };
        match &self.mode {
            Mode::Plain => format!("{sign}{}", self.fixed(&digits, point, false)),
            Mode::Decimal => format!("{sign}{}", self.fixed(&digits, point, true)),
            Mode::Percent => format!("{sign}{}%", self.fixed(&digits, point + 2, true)),
            Mode::Currency(code) => {
                format!(
                    "{sign}{}{}",
                    currency_info(code).0,
                    self.fixed(&digits, point, true)
                )
            }
            Mode::Scientific => format!("{sign}{}", self.scientific(&digits, point, x == 0.0)),
        }
    }

    /// Fixed notation of `0.DIGITS * 10^point`, rounded to `max_frac`, padded to `min_frac`.
    fn fixed(&self, digits: &str, point: i32, grouping: bool) -> String {
        let (int_part, frac_part) = round_fixed(digits, point, self.max_frac);
        let mut frac = frac_part.trim_end_matches('0').to_string();
        while frac.len() < self.min_frac {
            frac.push('0');
        }
        let int_part = if grouping {
            group_thousands(&int_part)
        } else {
            int_part
        };
        if frac.is_empty() {
            int_part
        } else {
            format!("{int_part}.{frac}")
        }
    }

    fn scientific(&self, digits: &str, point: i32, zero: bool) -> String {
        if zero {
            let frac = "0".repeat(self.min_frac);
            return if frac.is_empty() {
                "0E0".into()
            } else {
                format!("0.{frac}E0")
            };
        }
        // mantissa = D.DDD, exponent = point - 1
        let mut exponent = point - 1;
        let (mut int_part, mut frac_part) = round_fixed(digits, 1, self.max_frac);
        if int_part.len() > 1 {
            // Rounding carried into a new digit (9.99 -> 10.0).
            exponent += 1;
            let all = format!("{int_part}{frac_part}");
            let (i, f) = round_fixed(all.trim_end_matches('0'), 1, self.max_frac);
            int_part = i;
            frac_part = f;
        }
        let mut frac = frac_part.trim_end_matches('0').to_string();
        while frac.len() < self.min_frac {
            frac.push('0');
        }
        let mantissa = if frac.is_empty() {
            int_part
        } else {
            format!("{int_part}.{frac}")
        };
        format!("{mantissa}E{exponent}")
    }
}

/// Rounds `0.DIGITS * 10^point` half away from zero to `frac` decimals; returns the integer
/// digits (at least "0") and exactly `frac` fraction digits.
fn round_fixed(digits: &str, point: i32, frac: usize) -> (String, String) {
    // Lay the digits out as integer + fraction strings.
    let mut int_digits: Vec<u8> = Vec::new();
    let mut frac_digits: Vec<u8> = Vec::new();
    let bytes: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    if point > 0 {
        let p = point as usize;
        for i in 0..p {
            int_digits.push(bytes.get(i).copied().unwrap_or(0));
        }
        frac_digits.extend(bytes.iter().skip(p));
    } else {
        frac_digits.extend(std::iter::repeat_n(0, (-point) as usize));
        frac_digits.extend(&bytes);
    }
    let round_up = frac_digits.get(frac).is_some_and(|d| *d >= 5);
    frac_digits.resize(frac, 0);
    let mut all: Vec<u8> = int_digits
        .iter()
        .chain(frac_digits.iter())
        .copied()
        .collect();
    if round_up {
        let mut i = all.len();
        loop {
            if i == 0 {
                all.insert(0, 1);
                break;
            }
            i -= 1;
            if all[i] == 9 {
                all[i] = 0;
            } else {
                all[i] += 1;
                break;
            }
        }
    }
    let split = all.len() - frac;
    let to_str = |d: &[u8]| d.iter().map(|x| char::from(b'0' + x)).collect::<String>();
    let int_str = to_str(&all[..split]);
    let int_str = int_str.trim_start_matches('0');
    let int_str = if int_str.is_empty() { "0" } else { int_str };
    (int_str.to_string(), to_str(&all[split..]))
}

fn group_thousands(int_part: &str) -> String {
    let len = int_part.len();
    let mut out = String::with_capacity(len + len / 3);
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (len - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(opts: Value, is_int: bool, x: f64) -> String {
        NumberFormat::from_options(&opts, is_int).format(x)
    }

    #[test]
    fn plain() {
        assert_eq!(fmt(json!({}), false, 1234.5), "1234.5");
        assert_eq!(fmt(json!({}), false, 0.1), "0.1");
        assert_eq!(fmt(json!({}), false, 0.1 + 0.2), "0.3");
        assert_eq!(fmt(json!({}), false, 1.0 / 3.0), "0.3333333333");
        assert_eq!(fmt(json!({}), false, 2.0 / 3.0), "0.6666666667");
        assert_eq!(fmt(json!({}), false, 1e21), "1000000000000000000000");
        assert_eq!(fmt(json!({}), false, -0.5), "-0.5");
        assert_eq!(fmt(json!({}), true, 15.0), "15");
        assert_eq!(fmt(json!({}), false, 0.00048828125), "0.0004882813");
        assert_eq!(fmt(json!({"decimals": 2}), false, 3.0), "3.00");
    }

    #[test]
    fn modes() {
        assert_eq!(
            fmt(json!({"numMode": "decimal"}), false, 1234567.891),
            "1,234,567.891"
        );
        assert_eq!(fmt(json!({"numMode": "percent"}), false, 0.256), "26%");
        assert_eq!(
            fmt(json!({"numMode": "currency"}), false, -1234.5),
            "-$1,234.50"
        );
        assert_eq!(
            fmt(json!({"numMode": "scientific"}), false, 1234.5),
            "1.235E3"
        );
        assert_eq!(
            fmt(json!({"numMode": "scientific"}), false, 0.00012),
            "1.2E-4"
        );
        assert_eq!(fmt(json!({"numSign": "parens"}), false, -3.0), "(3)");
        assert_eq!(fmt(json!({"numSign": "parens"}), false, 3.0), " 3 ");
    }
}
