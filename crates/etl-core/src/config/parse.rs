//! The structure of `pipelines.toml`, read by hand so that every problem is collected.
//!
//! ```toml
//! version = 1
//! [pipeline]                      # optional: a named pipeline keeps its tables apart
//! name = "sales"                  # (ETL_PIPELINE and --pipeline override it)
//! [database]
//! url = "${DB_CONN_URI}"
//! [defaults]                      # optional; per-step values override them
//! batch_size = 1000
//! concurrency = 1
//! max_delete_fraction = 0.5
//! [tables.nodes]
//! primary_key = ["node_id", "node_type"]
//! [steps.normalize_nodes]
//! kind = "transform"              # extract | transform | sink
//! uses = "kg.normalize_nodes"     # the implementation, from the binary's catalog
//! inputs = ["grist_nodes", { table = "dm_anchor_attributes", on = { node_type = "anchor" } }]
//! outputs = ["nodes"]
//! labels = { stage = "normalize" }
//! group = "normalize"             # optional: `--step normalize` selects every step of the group
//! after = ["other_step"]          # optional: run after these steps though no table links them
//! [steps.normalize_nodes.settings]  # the implementation's own settings
//! ```

use std::collections::BTreeMap;

use super::{is_valid_name, too_long, ConfigError, TABLE_NAME_OVERHEAD};
use crate::dag::StepKind;

pub const SUPPORTED_VERSION: i64 = 1;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub version: i64,
    /// `[database] url`, not yet interpolated.
    pub database_url: Option<String>,
    /// `[pipeline] name`: the pipeline's name when it shares its database with others.
    pub pipeline_name: Option<String>,
    pub tables: BTreeMap<String, TableConfig>,
    pub steps: BTreeMap<String, StepConfig>,
}

#[derive(Debug, Clone)]
pub struct TableConfig {
    pub name: String,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct InputConfig {
    /// The implementation's input role this table is bound to, when the config names it
    /// (`inputs = { rows = "nodes" }`); a list binds roles in the order the step declares them.
    pub role: Option<String>,
    pub table: String,
    /// Explicit join of the step's key columns to the input's columns: (key column, input column).
    pub on: Option<Vec<(String, String)>>,
    pub place: String,
}

#[derive(Debug, Clone)]
pub struct StepConfig {
    pub name: String,
    pub kind: StepKind,
    pub uses: String,
    /// A name several steps share, so that `--step GROUP` selects them all.
    pub group: Option<String>,
    /// Steps that must finish first although no table links them (a graph's nodes before its
    /// edges).
    pub after: Vec<String>,
    pub inputs: Vec<InputConfig>,
    pub outputs: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub batch_size: usize,
    pub concurrency: usize,
    pub max_delete_fraction: f64,
    /// Settings that make the step optional: when any of them is empty after interpolation (an
    /// optional doc left unset), the step does not run and its tables are left as they are.
    pub skip_if_empty: Vec<String>,
    pub settings: toml::Table,
}

/// Meta columns the engine keeps beside key columns; a key column may not take these names.
pub const RESERVED_COLUMNS: &[&str] = &[
    "hash",
    "producer_key",
    "create_ts",
    "update_ts",
    "process_ts",
    "delete_ts",
    "seq",
    "pending",
    "is_success",
    "error",
    "attempts",
];

pub(super) struct Reader {
    errors: Vec<ConfigError>,
}

impl Reader {
    pub(super) fn err(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(place, message));
    }

    pub(super) fn unknown_keys(&mut self, place: &str, table: &toml::Table, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let at = if place.is_empty() {
                    key.clone()
                } else {
                    format!("{place}.{key}")
                };
                self.err(
                    at,
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    pub(super) fn table<'a>(
        &mut self,
        place: &str,
        value: &'a toml::Value,
    ) -> Option<&'a toml::Table> {
        match value {
            toml::Value::Table(t) => Some(t),
            other => {
                self.err(
                    place,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, place: &str, value: &toml::Value) -> Vec<String> {
        match value {
            toml::Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => self.err(format!("{place}[{i}]"), "expected a string"),
                    }
                }
                out
            }
            other => {
                self.err(
                    place,
                    format!("expected a list of strings, found {}", other.type_str()),
                );
                Vec::new()
            }
        }
    }

    /// One input: a table name, or `{ table = ..., on = { key column = input column } }`.
    pub(super) fn input(&mut self, place: &str, item: &toml::Value) -> Option<InputConfig> {
        match item {
            toml::Value::String(t) => Some(InputConfig {
                role: None,
                table: t.clone(),
                on: None,
                place: place.to_string(),
            }),
            toml::Value::Table(t) => {
                self.unknown_keys(place, t, &["table", "on"]);
                let Some(table) = t.get("table").and_then(|v| v.as_str()) else {
                    self.err(format!("{place}.table"), "is required (a table name)");
                    return None;
                };
                let on = match t.get("on") {
                    None => None,
                    Some(toml::Value::Table(on)) => {
                        let mut pairs = Vec::new();
                        for (k, v) in on {
                            match v.as_str() {
                                Some(col) => pairs.push((k.clone(), col.to_string())),
                                None => self.err(
                                    format!("{place}.on.{k}"),
                                    "expected the name of a column of the input table",
                                ),
                            }
                        }
                        Some(pairs)
                    }
                    Some(other) => {
                        self.err(
                            format!("{place}.on"),
                            format!(
                                "expected a table of key column = input column, found {}",
                                other.type_str()
                            ),
                        );
                        None
                    }
                };
                Some(InputConfig {
                    role: None,
                    table: table.to_string(),
                    on,
                    place: place.to_string(),
                })
            }
            other => {
                self.err(
                    place,
                    format!(
                        "expected a table name or {{ table = ..., on = {{...}} }}, found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn positive(
        &mut self,
        place: &str,
        value: Option<&toml::Value>,
        default: usize,
    ) -> usize {
        match value {
            None => default,
            Some(toml::Value::Integer(i)) if *i >= 1 && *i <= 1_000_000 => *i as usize,
            Some(toml::Value::Integer(i)) => {
                self.err(place, format!("must be between 1 and 1000000, found {i}"));
                default
            }
            Some(other) => {
                self.err(
                    place,
                    format!("expected an integer, found {}", other.type_str()),
                );
                default
            }
        }
    }

    pub(super) fn fraction(
        &mut self,
        place: &str,
        value: Option<&toml::Value>,
        default: f64,
    ) -> f64 {
        let f = match value {
            None => return default,
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(other) => {
                self.err(
                    place,
                    format!("expected a number, found {}", other.type_str()),
                );
                return default;
            }
        };
        if (0.0..=1.0).contains(&f) {
            f
        } else {
            self.err(place, format!("must be between 0 and 1, found {f}"));
            default
        }
    }
}

/// Parses the text of a `pipelines.toml`, returning the configuration and every structural
/// problem found (references between tables and steps are checked by [`crate::dag::compile`]).
pub fn parse(text: &str) -> (Option<PipelineConfig>, Vec<ConfigError>) {
    let root: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let place = match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                }
                None => String::new(),
            };
            return (
                None,
                vec![ConfigError::new(
                    place,
                    format!("not valid TOML: {}", e.message()),
                )],
            );
        }
    };
    let mut r = Reader { errors: Vec::new() };
    r.unknown_keys(
        "",
        &root,
        &[
            "version", "pipeline", "database", "defaults", "tables", "steps",
        ],
    );

    let version = match root.get("version") {
        Some(toml::Value::Integer(v)) if *v == SUPPORTED_VERSION => *v,
        Some(toml::Value::Integer(v)) => {
            r.err(
                "version",
                format!("unsupported version {v} (this etl reads version {SUPPORTED_VERSION})"),
            );
            *v
        }
        Some(other) => {
            r.err(
                "version",
                format!("expected an integer, found {}", other.type_str()),
            );
            0
        }
        None => {
            r.err(
                "version",
                format!("is required (add `version = {SUPPORTED_VERSION}` at the top)"),
            );
            0
        }
    };

    let mut pipeline_name = None;
    if let Some(p) = root.get("pipeline").and_then(|v| r.table("pipeline", v)) {
        r.unknown_keys("pipeline", p, &["name"]);
        match p.get("name") {
            Some(toml::Value::String(s)) => pipeline_name = Some(s.clone()),
            Some(other) => r.err(
                "pipeline.name",
                format!("expected a string, found {}", other.type_str()),
            ),
            None => {}
        }
    }

    let mut database_url = None;
    if let Some(db) = root.get("database").and_then(|v| r.table("database", v)) {
        r.unknown_keys("database", db, &["url"]);
        match db.get("url") {
            Some(toml::Value::String(s)) => database_url = Some(s.clone()),
            Some(other) => r.err(
                "database.url",
                format!("expected a string, found {}", other.type_str()),
            ),
            None => {}
        }
    }

    let mut batch_size = 1000;
    let mut concurrency = 1;
    let mut max_delete_fraction = 0.5;
    if let Some(d) = root.get("defaults").and_then(|v| r.table("defaults", v)) {
        r.unknown_keys(
            "defaults",
            d,
            &["batch_size", "concurrency", "max_delete_fraction"],
        );
        batch_size = r.positive("defaults.batch_size", d.get("batch_size"), batch_size);
        concurrency = r.positive("defaults.concurrency", d.get("concurrency"), concurrency);
        max_delete_fraction = r.fraction(
            "defaults.max_delete_fraction",
            d.get("max_delete_fraction"),
            max_delete_fraction,
        );
    }

    let mut tables = BTreeMap::new();
    if let Some(ts) = root.get("tables").and_then(|v| r.table("tables", v)) {
        for (name, value) in ts {
            let place = format!("tables.{name}");
            if !is_valid_name(name) {
                r.err(
                    &place,
                    "table names are lowercase letters, digits and `_`, starting with a letter",
                );
            } else if let Some(why) =
                too_long(name, TABLE_NAME_OVERHEAD, "etl.meta__{}__tombstones")
            {
                r.err(&place, format!("the table name {why}"));
            }
            let Some(t) = r.table(&place, value) else {
                continue;
            };
            r.unknown_keys(&place, t, &["primary_key", "description"]);
            let primary_key = match t.get("primary_key") {
                Some(v) => r.string_list(&format!("{place}.primary_key"), v),
                None => {
                    r.err(format!("{place}.primary_key"), "is required");
                    Vec::new()
                }
            };
            if t.contains_key("primary_key") && primary_key.is_empty() {
                r.err(format!("{place}.primary_key"), "needs at least one column");
            }
            let mut seen = std::collections::BTreeSet::new();
            for col in &primary_key {
                if !seen.insert(col) {
                    r.err(
                        format!("{place}.primary_key"),
                        format!("column `{col}` is listed twice"),
                    );
                }
                if RESERVED_COLUMNS.contains(&col.as_str()) {
                    r.err(
                        format!("{place}.primary_key"),
                        format!(
                            "`{col}` is reserved for the engine's row metadata; rename the column"
                        ),
                    );
                }
            }
            tables.insert(
                name.clone(),
                TableConfig {
                    name: name.clone(),
                    primary_key,
                },
            );
        }
    }

    let steps =
        super::parse_steps::steps(&mut r, &root, batch_size, concurrency, max_delete_fraction);

    let config = PipelineConfig {
        version,
        database_url,
        pipeline_name,
        tables,
        steps,
    };
    (Some(config), r.errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        parse(text).1.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn names_whose_bookkeeping_would_pass_postgres_limit_are_refused_with_the_limit() {
        let table = |n: usize| "t".repeat(n);
        let config = |t: &str, s: &str| {
            format!(
                "version = 1\n[tables.{t}]\nprimary_key = [\"id\"]\n[steps.{s}]\nkind = \"extract\"\nuses = \"x\"\noutputs = [\"{t}\"]\n"
            )
        };
        assert!(errors_of(&config(&table(45), &"s".repeat(48))).is_empty());
        let errors = errors_of(&config(&table(46), &"s".repeat(49)));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.contains("the table name is 46 bytes; at most 45")
                && e.contains("63-byte limit")
                && e.contains("__tombstones")));
        assert!(errors
            .iter()
            .any(|e| e.contains("the step name is 49 bytes; at most 48")));
    }
}
