//! `${VAR}` and `${VAR:-default}` in configuration strings.
//!
//! Secrets (API keys) live in the environment, never in the file; this module only substitutes
//! them. Values are never logged or echoed back in errors: an error names the variable only.

use std::collections::BTreeSet;

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolation {
    pub value: String,
    /// Variables that were referenced without a default and are not set.
    pub missing: BTreeSet<String>,
    /// Whether any variable was referenced (such values are treated as possibly secret).
    pub from_env: bool,
}

/// Substitutes `${VAR}` / `${VAR:-default}`; `$$` is a literal `$`. A default may itself refer
/// to variables (`${GDS_TABLE_NAME:-${GRIST_TEST_SET_TABLE:-Gds}}`: the first that is set).
pub fn interpolate(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolation, String> {
    let mut out = String::with_capacity(raw.len());
    let mut missing = BTreeSet::new();
    let mut from_env = false;
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| "unclosed `${` in value".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            from_env = true;
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None => match default {
                    Some(d) => {
                        let inner = interpolate(d, lookup)?;
                        out.push_str(&inner.value);
                        missing.extend(inner.missing);
                    }
                    None => {
                        missing.insert(name.to_string());
                    }
                },
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Interpolation {
        value: out,
        missing,
        from_env,
    })
}

/// The position of the `}` that closes a `${` whose body starts `body`, past nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The variables a configuration string refers to (`${VAR}`, `${VAR:-default}`), in order.
pub fn referenced_variables(raw: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.find("${") {
        let body = &rest[pos + 2..];
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        rest = body;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_reports_missing() {
        let i = interpolate("a ${KEY} b ${NOPE:-dflt} ${EMPTY:-e} $$ ${GONE}", &env).unwrap();
        assert_eq!(i.value, "a s3cret b dflt e $ ");
        assert_eq!(i.missing.into_iter().collect::<Vec<_>>(), vec!["GONE"]);
        assert!(i.from_env);
    }

    #[test]
    fn defaults_may_name_other_variables() {
        let i = interpolate(
            "${NOPE:-${KEY:-x}}/${NOPE:-${GONE:-y}}/${NOPE:-${GONE}}",
            &env,
        )
        .unwrap();
        assert_eq!(i.value, "s3cret/y/");
        assert_eq!(i.missing.into_iter().collect::<Vec<_>>(), vec!["GONE"]);
        assert_eq!(
            referenced_variables("${A:-${B:-c}} ${A}"),
            vec!["A".to_string(), "B".to_string()]
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(interpolate("${oops", &env).is_err());
        assert!(interpolate("${a-b}", &env).is_err());
    }
}
