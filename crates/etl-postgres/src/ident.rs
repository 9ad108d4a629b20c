//! The one way identifiers reach SQL text: double-quoted, with inner quotes doubled.
//!
//! Table, column and schema names come from `pipelines.toml` and from the database's own
//! catalogue; whatever their source, they are spliced into SQL only through [`quote_ident`].
//! Values never are: they are always bind parameters.

/// Quotes an SQL identifier: `a"b` becomes `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `schema.name`, both quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A comma-separated list of quoted identifiers, each prefixed with `alias.` when given.
pub fn column_list(columns: &[String], alias: Option<&str>) -> String {
    columns
        .iter()
        .map(|c| match alias {
            Some(a) => format!("{a}.{}", quote_ident(c)),
            None => quote_ident(c),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_and_nothing_escapes() {
        assert_eq!(quote_ident("nodes"), "\"nodes\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert_eq!(qualified("etl", "meta__t"), "\"etl\".\"meta__t\"");
    }
}
