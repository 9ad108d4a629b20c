//! Identifiers: fresh doc ids in Grist's style, Grist's sanitizing of table and column ids,
//! and making an id unique (`base`, `base2`, ...).

use rand::Rng;

const DOC_ID_ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A fresh doc id in Grist's style (22 characters).
pub fn new_doc_id() -> String {
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| char::from(DOC_ID_ALPHABET[rng.gen_range(0..DOC_ID_ALPHABET.len())]))
        .collect()
}

/// Grist's identifier sanitizing: runs of characters other than `[A-Za-z0-9_]` become `_`,
/// leading `_` go, a leading digit gets `prefix`, and table ids start upper-case.
pub fn sanitize_ident(raw: &str, prefix: &str, capitalize: bool) -> String {
    let mut out = String::new();
    let mut in_bad = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('_');
            in_bad = true;
        }
    }
    let mut out = out.trim_start_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("{prefix}{out}");
    }
    if out.is_empty() {
        out = prefix.to_string();
    }
    if capitalize {
        let mut chars = out.chars();
        if let Some(first) = chars.next() {
            out = first.to_ascii_uppercase().to_string() + chars.as_str();
        }
    }
    out
}

/// `base`, or `base2`, `base3`, ... : the first not taken.
pub(super) fn unique_ident(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|c| !taken(c))
        .unwrap_or_else(|| base.to_string())
}
