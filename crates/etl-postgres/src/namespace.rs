//! Which pipeline this process serves, and so which schemas hold its tables.
//!
//! The default pipeline keeps Vedana's layout: data tables in `public`, bookkeeping in `etl`.
//! A named pipeline (`ETL_PIPELINE=sales`) keeps its data tables in schema `sales` and its
//! bookkeeping in `etl_sales`, so several pipelines share one database without ever reading or
//! changing each other's rows, memos, locks or history.
//!
//! A process serves one pipeline. The binary [`enter`]s it once, before any connection is made;
//! every statement then names bookkeeping tables through [`book`], and every connection sets
//! its `search_path` through [`configure`] so a data table's bare name is the pipeline's own.

use std::sync::OnceLock;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgConnection;

use crate::ident::{qualified, quote_ident};

/// The longest pipeline name: its bookkeeping schema (`etl_<name>`) and the bookkeeping tables'
/// names must stay within Postgres's 63 bytes per identifier with room to spare.
pub const MAX_NAME_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    pipeline: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error(
        "pipeline name `{0}` is not allowed: use 1 to {MAX_NAME_LEN} lowercase letters, digits \
         and underscores, starting with a letter, and not `public`, `etl` or a name starting \
         with `pg_` (check ETL_PIPELINE, --pipeline or [pipeline] name)"
    )]
    Invalid(String),
    #[error(
        "this process already serves pipeline `{0}` and cannot switch to `{1}`: start another \
         process for the other pipeline"
    )]
    Switched(String, String),
}

impl Namespace {
    /// The default pipeline (`None`) or a named one.
    pub fn new(pipeline: Option<&str>) -> Result<Self, NamespaceError> {
        match pipeline {
            None => Ok(Namespace { pipeline: None }),
            Some(name) if valid_name(name) => Ok(Namespace {
                pipeline: Some(name.to_string()),
            }),
            Some(name) => Err(NamespaceError::Invalid(name.to_string())),
        }
    }

    /// The pipeline's name, `None` for the default one.
    pub fn pipeline(&self) -> Option<&str> {
        self.pipeline.as_deref()
    }

    /// How pages and reports name the pipeline.
    pub fn label(&self) -> &str {
        self.pipeline.as_deref().unwrap_or("default")
    }

    /// The schema of the data tables.
    pub fn data_schema(&self) -> &str {
        self.pipeline.as_deref().unwrap_or("public")
    }

    /// The schema of the bookkeeping.
    pub fn book_schema(&self) -> String {
        match &self.pipeline {
            None => "etl".to_string(),
            Some(name) => format!("etl_{name}"),
        }
    }

    /// The `search_path` a connection of a named pipeline takes: its data schema, then `public`
    /// for the extensions' types (pgvector's `vector`). The default pipeline leaves it alone.
    pub fn search_path(&self) -> Option<String> {
        self.pipeline
            .as_deref()
            .map(|name| format!("{}, public", quote_ident(name)))
    }

    /// The key the advisory locks of this pipeline hash, so two pipelines never wait on each
    /// other (the default pipeline's keys are those of earlier releases).
    pub fn lock_resource(&self, resource: &str) -> String {
        match &self.pipeline {
            None => resource.to_string(),
            Some(name) => format!("pipeline:{name}:{resource}"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    starts_with_letter
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(name, "public" | "etl" | "information_schema")
        && !name.starts_with("pg_")
}

static CURRENT: OnceLock<Namespace> = OnceLock::new();

/// Fixes the pipeline this process serves. Entering the same pipeline again is fine; another
/// one is an error (a process cannot move its connections to other schemas).
pub fn enter(pipeline: Option<&str>) -> Result<&'static Namespace, NamespaceError> {
    let wanted = Namespace::new(pipeline)?;
    let current = CURRENT.get_or_init(|| wanted.clone());
    if *current == wanted {
        Ok(current)
    } else {
        Err(NamespaceError::Switched(
            current.label().to_string(),
            wanted.label().to_string(),
        ))
    }
}

/// The pipeline this process serves (the default one until [`enter`] says otherwise).
pub fn current() -> &'static Namespace {
    CURRENT.get_or_init(Namespace::default)
}

/// The current pipeline's bookkeeping schema, quoted (`"etl"`), for statements that name
/// several of its tables.
pub fn book_schema() -> String {
    quote_ident(&current().book_schema())
}

/// A bookkeeping table (or sequence) of the current pipeline, quoted: `"etl"."steps"`.
pub fn book(name: &str) -> String {
    qualified(&current().book_schema(), name)
}

/// A data table of the current pipeline, quoted: the default pipeline's bare name (found on the
/// connection's `search_path`, as always), a named pipeline's with its schema: `"sales"."nodes"`.
pub fn data(name: &str) -> String {
    match current().pipeline() {
        None => quote_ident(name),
        Some(schema) => qualified(schema, name),
    }
}

/// Points a new connection at the current pipeline's data schema.
pub async fn configure(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    if let Some(path) = current().search_path() {
        sqlx::query(&format!("SET search_path = {path}"))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Pool options whose every connection is [`configure`]d.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new().after_connect(|conn, _| Box::pin(async move { configure(conn).await }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pipeline_keeps_vedanas_schemas() {
        let ns = Namespace::new(None).unwrap();
        assert_eq!(ns.data_schema(), "public");
        assert_eq!(ns.book_schema(), "etl");
        assert_eq!(ns.search_path(), None);
        assert_eq!(ns.lock_resource("step:x"), "step:x");
    }

    #[test]
    fn a_named_pipeline_has_schemas_of_its_own() {
        let ns = Namespace::new(Some("sales_2")).unwrap();
        assert_eq!(ns.data_schema(), "sales_2");
        assert_eq!(ns.book_schema(), "etl_sales_2");
        assert_eq!(ns.search_path().unwrap(), "\"sales_2\", public");
        assert_ne!(ns.lock_resource("step:x"), "step:x");
    }

    #[test]
    fn names_that_could_reach_other_schemas_are_refused() {
        for bad in [
            "",
            "public",
            "etl",
            "pg_catalog",
            "Sales",
            "1a",
            "a-b",
            "a\"b",
            "a.b",
            "a b",
            "information_schema",
        ] {
            assert!(Namespace::new(Some(bad)).is_err(), "{bad:?} was accepted");
        }
        assert!(Namespace::new(Some(&"a".repeat(MAX_NAME_LEN + 1))).is_err());
        assert!(Namespace::new(Some(&"a".repeat(MAX_NAME_LEN))).is_ok());
    }
}
