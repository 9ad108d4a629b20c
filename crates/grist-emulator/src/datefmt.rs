//! Owns date and time rendering as Grist does it with moment.js (English locale): the moment
//! format tokens Grist's date formats use (`YYYY-MM-DD`, `h:mma`, `MMMM Do, YYYY`, `HH:mm:ss z`,
//! ...), `[literal]` escapes, localized formats (`L`, `LT`, ...), time zones by IANA name, and
//! JavaScript's `Date.prototype.toISOString()`.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{OffsetName, Tz};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The calendar fields of one instant in one time zone.
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    /// 0 = Sunday.
    weekday: u32,
    ordinal: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    offset_secs: i32,
    abbreviation: String,
    unix_ms: i64,
}

fn utc_of(ms: f64) -> Option<DateTime<Utc>> {
    if !ms.is_finite() {
        return None;
    }
    let ms = ms.trunc();
    // JavaScript dates span +-8.64e15 ms.
    if ms.abs() > 8.64e15 {
        return None;
    }
    DateTime::from_timestamp_millis(ms as i64)
}

fn parts_in<T: TimeZone>(
    utc: &DateTime<Utc>,
    tz: &T,
    abbreviation: impl Fn(&T::Offset) -> String,
) -> Parts {
    let local = utc.with_timezone(tz);
    Parts {
        year: local.year(),
        month: local.month(),
        day: local.day(),
        weekday: local.weekday().num_days_from_sunday(),
        ordinal: local.ordinal(),
        hour: local.hour(),
        minute: local.minute(),
        second: local.second(),
        millis: local.timestamp_subsec_millis(),
        offset_secs: local.offset().fix().local_minus_utc(),
        abbreviation: abbreviation(local.offset()),
        unix_ms: utc.timestamp_millis(),
    }
}

fn parts(ms: f64, tz: &str) -> Option<Parts> {
    let utc = utc_of(ms)?;
    let zone: Tz = tz.parse().unwrap_or(Tz::UTC);
    Some(parts_in(&utc, &zone, |off| {
        off.abbreviation().unwrap_or("").to_string()
    }))
}

/// `moment.tz(ms, tz).format(format)`; an unknown zone is taken as UTC.
pub fn format_ms(ms: f64, tz: &str, format: &str) -> String {
    match parts(ms, tz) {
        Some(p) => render(&p, &expand_localized(format)),
        None => "Invalid date".into(),
    }
}

/// JavaScript's `new Date(ms).toISOString()` (`None` where JavaScript throws).
pub fn iso_string(ms: f64) -> Option<String> {
    let utc = utc_of(ms)?;
    let p = parts_in(&utc, &Utc, |_| String::new());
    let year = if (0..=9999).contains(&p.year) {
        format!("{:04}", p.year)
    } else {
        format!("{}{:06}", if p.year < 0 { '-' } else { '+' }, p.year.abs())
    };
    Some(format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.month, p.day, p.hour, p.minute, p.second, p.millis
    ))
}

fn long_format(token: &str) -> Option<&'static str> {
    Some(match token {
        "LTS" => "h:mm:ss A",
        "LT" => "h:mm A",
        "L" => "MM/DD/YYYY",
        "LL" => "MMMM D, YYYY",
        "LLL" => "MMMM D, YYYY h:mm A",
        "LLLL" => "dddd, MMMM D, YYYY h:mm A",
        "l" => "M/D/YYYY",
        "ll" => "MMM D, YYYY",
        "lll" => "MMM D, YYYY h:mm A",
        "llll" => "ddd, MMM D, YYYY h:mm A",
        _ => return None,
    })
}

/// moment's `expandFormat`: replaces localized tokens (outside `[...]`), a few times over.
fn expand_localized(format: &str) -> String {
    let mut current = format.to_string();
    for _ in 0..5 {
        let chars: Vec<char> = current.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut changed = false;
        while i < chars.len() {
            if let Some(len) = bracket_len(&chars[i..]) {
                out.extend(&chars[i..i + len]);
                i += len;
                continue;
            }
            if chars[i] == '\\' && i + 1 < chars.len() {
                out.push(chars[i]);
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            let rest: String = chars[i..].iter().take(4).collect();
            let candidates = [
                "LTS", "LT", "LLLL", "LLL", "LL", "L", "llll", "lll", "ll", "l",
            ];
            if let Some(tok) = candidates.iter().find(|t| rest.starts_with(*t)) {
                if let Some(expanded) = long_format(tok) {
                    out.push_str(expanded);
                    changed = true;
                }
                i += tok.chars().count();
                continue;
            }
            out.push(chars[i]);
            i += 1;
        }
        current = out;
        if !changed {
            break;
        }
    }
    current
}

/// Length of a `[...]` literal at the start of `chars` (regex `\[[^\[]*\]`).
fn bracket_len(chars: &[char]) -> Option<usize> {
    if chars.first() != Some(&'[') {
        return None;
    }
    for (i, c) in chars.iter().enumerate().skip(1) {
        match c {
            ']' => return Some(i + 1),
            '[' => return None,
            _ => {}
        }
    }
    None
}

/// The moment token at the start of `s` (same alternation order as moment's regex).
fn match_token(s: &[char]) -> usize {
    let at = |i: usize| s.get(i).copied();
    let run = |c: char, max: usize| s.iter().take(max).take_while(|x| **x == c).count();
    let starts = |t: &str| {
        let t: Vec<char> = t.chars().collect();
        s.len() >= t.len() && s[..t.len()] == t[..]
    };
    for t in ["hmmss", "Hmmss", "hmm", "Hmm"] {
        if starts(t) {
            return t.len();
        }
    }
    if starts("Mo") {
        return 2;
    }
    if at(0) == Some('M') {
        return run('M', 4);
    }
    if starts("Do") {
        return 2;
    }
    if starts("DDDo") {
        return 4;
    }
    if at(0) == Some('D') {
        return run('D', 4);
    }
    if starts("ddd") {
        return run('d', 4);
    }
    if starts("dd") {
        return 2;
    }
    if starts("do") {
        return 2;
    }
    if at(0) == Some('d') {
        return 1;
    }
    if at(0) == Some('w') || at(0) == Some('W') {
        return if at(1) == Some('o') || at(1) == at(0) {
            2
        } else {
            1
        };
    }
    if starts("Qo") {
        return 2;
    }
    if at(0) == Some('N') {
        return run('N', 5);
    }
    if at(0) == Some('Y') {
        let n = run('Y', 6);
        return match n {
            4..=6 => n,
            2 | 3 => 2,
            _ => 1,
        };
    }
    if at(0) == Some('y') {
        let n = run('y', 4);
        if n >= 2 {
            return n;
        }
        return if at(1) == Some('o') { 2 } else { 1 };
    }
    for c in ['g', 'G'] {
        if at(0) == Some(c) {
            let n = run(c, 5);
            return match n {
                5 => 5,
                4 => 4,
                2 | 3 => 2,
                _ => 1,
            };
        }
    }
    if let Some(c @ ('h' | 'H' | 'k' | 'm' | 's' | 'Z' | 'z')) = at(0) {
        return run(c, 2);
    }
    if at(0) == Some('S') {
        return run('S', 9);
    }
    1
}

fn ordinal(n: i64) -> String {
    let suffix = if (n % 100) / 10 == 1 {
        "th"
    } else {
        match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

fn zero_fill(n: i64, width: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{:0width$}", n.abs())
}

fn weekday_of(year: i32, month: u32, day: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(day.saturating_sub(1)))))
        .map_or(0, |d| i64::from(d.weekday().num_days_from_sunday()))
}

fn days_in_year(year: i32) -> i64 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

fn first_week_offset(year: i32, dow: i64, doy: i64) -> i64 {
    let fwd = 7 + dow - doy;
    let fwdlw = (7 + weekday_of(year, 1, fwd as u32) - dow) % 7;
    -fwdlw + fwd - 1
}

fn weeks_in_year(year: i32, dow: i64, doy: i64) -> i64 {
    let offset = first_week_offset(year, dow, doy);
    let next = first_week_offset(year + 1, dow, doy);
    (days_in_year(year) - offset + next) / 7
}

/// moment's `weekOfYear`: (week, week-year).
fn week_of_year(p: &Parts, dow: i64, doy: i64) -> (i64, i32) {
    let offset = first_week_offset(p.year, dow, doy);
    let week = (i64::from(p.ordinal) - offset - 1).div_euclid(7) + 1;
    if week < 1 {
        (week + weeks_in_year(p.year - 1, dow, doy), p.year - 1)
    } else if week > weeks_in_year(p.year, dow, doy) {
        (week - weeks_in_year(p.year, dow, doy), p.year + 1)
    } else {
        (week, p.year)
    }
}

fn offset_text(secs: i32, sep: &str) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let mins = secs.abs() / 60;
    format!("{sign}{:02}{sep}{:02}", mins / 60, mins % 60)
}

fn token_text(p: &Parts, tok: &str) -> Option<String> {
    let h12 = match p.hour % 12 {
        0 => 12,
        h => h,
    };
    let year = i64::from(p.year);
    let iso_weekday = match p.weekday {
        0 => 7,
        d => d,
    };
    Some(match tok {
        "M" => p.month.to_string(),
        "Mo" => ordinal(i64::from(p.month)),
        "MM" => format!("{:02}", p.month),
        "MMM" => MONTHS[(p.month - 1) as usize][..3].to_string(),
        "MMMM" => MONTHS[(p.month - 1) as usize].to_string(),
        "Q" => ((p.month - 1) / 3 + 1).to_string(),
        "Qo" => ordinal(i64::from((p.month - 1) / 3 + 1)),
        "D" => p.day.to_string(),
        "Do" => ordinal(i64::from(p.day)),
        "DD" => format!("{:02}", p.day),
        "DDD" => p.ordinal.to_string(),
        "DDDo" => ordinal(i64::from(p.ordinal)),
        "DDDD" => format!("{:03}", p.ordinal),
        "d" | "e" => p.weekday.to_string(),
        "do" => ordinal(i64::from(p.weekday)),
        "dd" => WEEKDAYS[p.weekday as usize][..2].to_string(),
        "ddd" => WEEKDAYS[p.weekday as usize][..3].to_string(),
        "dddd" => WEEKDAYS[p.weekday as usize].to_string(),
        "E" => iso_weekday.to_string(),
        "w" => week_of_year(p, 0, 6).0.to_string(),
        "wo" => ordinal(week_of_year(p, 0, 6).0),
        "ww" => zero_fill(week_of_year(p, 0, 6).0, 2),
        "W" => week_of_year(p, 1, 4).0.to_string(),
        "Wo" => ordinal(week_of_year(p, 1, 4).0),
        "WW" => zero_fill(week_of_year(p, 1, 4).0, 2),
        "gg" => zero_fill(i64::from(week_of_year(p, 0, 6).1) % 100, 2),
        "gggg" => zero_fill(i64::from(week_of_year(p, 0, 6).1), 4),
        "ggggg" => zero_fill(i64::from(week_of_year(p, 0, 6).1), 5),
        "GG" => zero_fill(i64::from(week_of_year(p, 1, 4).1) % 100, 2),
        "GGGG" => zero_fill(i64::from(week_of_year(p, 1, 4).1), 4),
        "GGGGG" => zero_fill(i64::from(week_of_year(p, 1, 4).1), 5),
        "Y" | "YYYY" if year <= 9999 => zero_fill(year, 4),
        "Y" | "YYYY" => format!("+{year}"),
        "YY" => zero_fill(year.rem_euclid(100), 2),
        "YYYYY" => zero_fill(year, 5),
        "YYYYYY" => format!(
            "{}{}",
            if year < 0 { '-' } else { '+' },
            zero_fill(year.abs(), 6)
        ),
        "y" | "yy" | "yyy" | "yyyy" => year.to_string(),
        "yo" => ordinal(year),
        "N" | "NN" | "NNN" | "NNNNN" => (if year > 0 { "AD" } else { "BC" }).to_string(),
        "NNNN" => (if year > 0 {
            "Anno Domini"
        } else {
            "Before Christ"
        })
        .to_string(),
        "H" => p.hour.to_string(),
        "HH" => format!("{:02}", p.hour),
        "h" => h12.to_string(),
        "hh" => format!("{h12:02}"),
        "k" => (if p.hour == 0 { 24 } else { p.hour }).to_string(),
        "kk" => format!("{:02}", if p.hour == 0 { 24 } else { p.hour }),
        "hmm" => format!("{h12}{:02}", p.minute),
        "hmmss" => format!("{h12}{:02}{:02}", p.minute, p.second),
        "Hmm" => format!("{}{:02}", p.hour, p.minute),
        "Hmmss" => format!("{}{:02}{:02}", p.hour, p.minute, p.second),
        "m" => p.minute.to_string(),
        "mm" => format!("{:02}", p.minute),
        "s" => p.second.to_string(),
        "ss" => format!("{:02}", p.second),
        "a" => (if p.hour < 12 { "am" } else { "pm" }).to_string(),
        "A" => (if p.hour < 12 { "AM" } else { "PM" }).to_string(),
        "Z" => offset_text(p.offset_secs, ":"),
        "ZZ" => offset_text(p.offset_secs, ""),
        "z" | "zz" => p.abbreviation.clone(),
        "X" => p.unix_ms.div_euclid(1000).to_string(),
        "x" => p.unix_ms.to_string(),
        t if t.starts_with('S') => {
            let n = t.len();
            let text = format!("{:03}", p.millis);
            if n <= 3 {
                text[..n].to_string()
            } else {
                format!("{text}{}", "0".repeat(n - 3))
            }
        }
        _ => return None,
    })
}

fn render(p: &Parts, format: &str) -> String {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = bracket_len(&chars[i..]) {
            out.extend(&chars[i + 1..i + len - 1]);
            i += len;
            continue;
        }
        if chars[i] == '\\' && i + 1 < chars.len() {
            let len = match_token(&chars[i + 1..]);
            out.extend(&chars[i + 1..i + 1 + len]);
            i += 1 + len;
            continue;
        }
        let len = match_token(&chars[i..]);
        let tok: String = chars[i..i + len].iter().collect();
        match token_text(p, &tok) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&tok),
        }
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grist_defaults() {
        assert_eq!(
            format_ms(1705276800000.0, "UTC", "YYYY-MM-DD"),
            "2024-01-15"
        );
        assert_eq!(
            format_ms(1705314645000.0, "UTC", "YYYY-MM-DD h:mma"),
            "2024-01-15 10:30am"
        );
        assert_eq!(
            format_ms(1709214300000.0, "UTC", "YYYY-MM-DD h:mma"),
            "2024-02-29 1:45pm"
        );
        assert_eq!(
            format_ms(
                1705314645000.0,
                "America/New_York",
                "YYYY-MM-DD HH:mm:ssZ z"
            ),
            "2024-01-15 05:30:45-05:00 EST"
        );
        assert_eq!(
            format_ms(1705314645000.0, "UTC", "MMMM Do, YYYY [at] LT"),
            "January 15th, 2024 at 10:30 AM"
        );
        assert_eq!(
            iso_string(1705314645123.0).as_deref(),
            Some("2024-01-15T10:30:45.123Z")
        );
    }
}
