//! `pipelines.toml`: parsing, environment interpolation and validation.
//!
//! Loading never stops at the first problem: every problem found is collected as a
//! [`ConfigError`] with the place it was found (`steps.embed.batch_size`), and the caller gets
//! them all at once. [`parse`] checks the file's structure; [`crate::dag::compile`] then checks
//! what needs the whole file (references, cycles, writers) and builds the steps.

mod env;
mod parse;
mod parse_steps;
mod settings;

pub use env::{interpolate, referenced_variables, Interpolation};
pub use parse::{parse, InputConfig, PipelineConfig, StepConfig, TableConfig};
pub use settings::{EnvLookup, Settings, SettingsReport};

use std::fmt;

/// One problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// A dotted path into the file, e.g. `steps.embed.inputs[1]`.
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            place: place.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{} has {} problem{}:",
            self.file,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// Postgres's limit on identifiers, in bytes: a longer name is silently cut, so two long names
/// could share one bookkeeping table.
pub const IDENTIFIER_LIMIT: usize = 63;

/// The longest name the store derives from a table's name: `meta__<table>__tombstones`.
pub const TABLE_NAME_OVERHEAD: usize = "meta____tombstones".len();

/// The longest name the store derives from a step's name: `keys__<step>__pending`.
pub const STEP_NAME_OVERHEAD: usize = "keys____pending".len();

/// Names of tables and steps: they become parts of identifiers in the store, so they are kept
/// to a plain, portable shape (lowercase letters, digits and `_`, starting with a letter).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Why a table or step name is too long for the store's bookkeeping names, if it is.
pub fn too_long(name: &str, overhead: usize, derived: &str) -> Option<String> {
    let max = IDENTIFIER_LIMIT - overhead;
    (name.len() > max).then(|| {
        format!(
            "is {} bytes; at most {max}: the bookkeeping name `{}` must fit Postgres's {IDENTIFIER_LIMIT}-byte limit for identifiers (a longer one is cut, and two names could then share a table)",
            name.len(),
            derived.replace("{}", name)
        )
    })
}
