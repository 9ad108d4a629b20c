//! The pipeline as a validated graph: tables, steps in dependency order, and step selection.
//!
//! [`compile`] turns a parsed [`PipelineConfig`] and the binary's [`Catalog`] of implementations
//! into a [`Pipeline`], reporting every problem at once: unknown tables and implementations, two
//! steps writing one table, a table read but never written, joins that name unknown columns, and
//! cycles (with the chain printed).
//!
//! ## How a transform's inputs invalidate its keys
//! A transform works on keys (e.g. `(node_id, node_type)`). Each input is joined to the key by
//! pairs *key column = input column*, where the input columns are part of the input's primary key:
//! * a join that covers the whole key makes the input a **key source**: each changed row of it
//!   makes the key it joins stale;
//! * a join on part of the key makes it a **side input**: a changed row makes stale every known
//!   key that agrees on the joined columns. `{ table = "dm_anchor_attributes", on = { node_type =
//!   "anchor" } }` means: an edit to the attributes of anchor `interest` reprocesses the keys whose
//!   `node_type` is `interest`, and nothing else;
//! * an empty join (`on = {}`) makes it a **global input**: any change reprocesses every key.
//!
//! Without `on`, the implementation's default join is used, or else each key column joins the
//! input column of the same name when the input's primary key has one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

mod build;
mod order;
mod roles;

use crate::config::{ConfigError, EnvLookup, PipelineConfig, Settings, StepConfig};
use crate::step::{BuiltStep, StepImpl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Extract,
    Transform,
    Sink,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Extract => "extract",
            StepKind::Transform => "transform",
            StepKind::Sink => "sink",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct InputDef {
    /// The role the implementation reads this table as (see [`crate::step::InputRole`]).
    pub role: Option<String>,
    pub table: String,
    /// (key column, input column) pairs.
    pub join: Vec<(String, String)>,
    pub covers_key: bool,
}

#[derive(Debug, Clone)]
pub struct StepDef {
    pub name: String,
    pub kind: StepKind,
    pub uses: String,
    pub group: Option<String>,
    /// Steps that must finish first though no table links them.
    pub after: Vec<String>,
    pub inputs: Vec<InputDef>,
    pub outputs: Vec<String>,
    /// The transform key (empty for extracts).
    pub key: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub batch_size: usize,
    pub concurrency: usize,
    pub max_delete_fraction: f64,
    /// Hash of the implementation, its version, its wiring and its identity settings.
    pub fingerprint: String,
    pub implementation: StepImpl,
    /// Environment variables this step needs and that are not set.
    pub missing_env: Vec<ConfigError>,
    /// Why the step does not run at all (a `skip_if_empty` setting is empty), if it does not.
    pub skipped: Option<String>,
}

impl StepDef {
    /// The batch size for a run with `pending` keys: `batch_size`, or less when that would
    /// leave some of the step's `concurrency` idle (1,000 keys with a batch size of 2,000 and a
    /// concurrency of 2 are two batches of 500, written side by side).
    pub fn batch_size_for(&self, pending: u64) -> usize {
        balanced_batch_size(self.batch_size, self.concurrency, pending)
    }
}

/// See [`StepDef::batch_size_for`].
pub fn balanced_batch_size(batch_size: usize, concurrency: usize, pending: u64) -> usize {
    let lanes = concurrency.max(1) as u64;
    let batch = batch_size.max(1);
    if pending >= batch as u64 * lanes {
        return batch;
    }
    (pending.div_ceil(lanes) as usize).clamp(1, batch)
}

/// A validated pipeline; `steps` are in dependency order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub tables: BTreeMap<String, TableDef>,
    pub steps: Vec<StepDef>,
    /// `[database] url` after interpolation, if given.
    pub database_url: Option<String>,
}

/// What the catalog made of a step's `uses`.
pub enum Built {
    Step(BuiltStep),
    /// The catalog knows the name, but the settings had problems (reported to [`Settings`]).
    Invalid,
    Unknown,
}

/// The implementations a binary offers, by name (`uses = "..."`).
pub trait Catalog {
    fn build(&self, step: &StepConfig, settings: &mut Settings) -> Built;
    fn names(&self) -> Vec<String>;
}

/// Which steps a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub steps: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub downstream: bool,
}

impl Pipeline {
    pub fn step(&self, name: &str) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Indexes of the steps that write the inputs of step `i`.
    pub fn upstream_of(&self, i: usize) -> Vec<usize> {
        let producers = self.producers();
        let mut out: Vec<usize> = self.steps[i]
            .inputs
            .iter()
            .filter_map(|inp| producers.get(inp.table.as_str()).copied())
            .chain(
                self.steps[i]
                    .after
                    .iter()
                    .filter_map(|name| self.steps.iter().position(|s| &s.name == name)),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn producers(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            for o in &s.outputs {
                m.insert(o.as_str(), i);
            }
        }
        m
    }

    /// The steps a selection names, in dependency order. Unknown names are errors.
    pub fn select(&self, sel: &Selection) -> Result<Vec<usize>, Vec<String>> {
        let mut errors = Vec::new();
        let mut chosen = BTreeSet::new();
        if sel.steps.is_empty() && sel.labels.is_empty() {
            chosen.extend(0..self.steps.len());
        }
        for name in &sel.steps {
            // A step's name, or a group of steps.
            let matching: Vec<usize> = (0..self.steps.len())
                .filter(|i| {
                    &self.steps[*i].name == name || self.steps[*i].group.as_ref() == Some(name)
                })
                .collect();
            if matching.is_empty() {
                let mut known: Vec<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
                known.extend(self.steps.iter().filter_map(|s| s.group.as_deref()));
                known.sort_unstable();
                known.dedup();
                errors.push(format!(
                    "no step or group named `{name}` (known: {})",
                    known.join(", ")
                ));
            }
            chosen.extend(matching);
        }
        if !sel.labels.is_empty() {
            let before = chosen.len();
            for (i, s) in self.steps.iter().enumerate() {
                if sel.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
                    chosen.insert(i);
                }
            }
            if chosen.len() == before && sel.steps.is_empty() {
                errors.push(format!(
                    "no step has the label{} {}",
                    if sel.labels.len() == 1 { "" } else { "s" },
                    sel.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if sel.downstream {
            // Steps are in dependency order, so one forward pass finds every dependent.
            for i in 0..self.steps.len() {
                if !chosen.contains(&i) && self.upstream_of(i).iter().any(|u| chosen.contains(u)) {
                    chosen.insert(i);
                }
            }
        }
        Ok(chosen.into_iter().collect())
    }
}

/// Builds and validates the pipeline, in passes that each report every problem they find:
///
/// 1. [`table_defs`]: the declared tables;
/// 2. [`database_url`]: `[database] url`, interpolated;
/// 3. [`writers_of`]: each table's one writer, and outputs that name no table;
/// 4. `build::build_step`, per step: implementation, settings, kind, key, inputs and their
///    roles, fingerprint;
/// 5. [`check_references`]: `after` and `group` names;
/// 6. `order::find_cycle`, then `order::topological` for the steps' order.
pub fn compile(
    config: &PipelineConfig,
    catalog: &dyn Catalog,
    env: EnvLookup,
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let tables = table_defs(config);
    let database_url = database_url(config, &env, &mut errors);
    let writers = writers_of(config, &tables, &mut errors);
    let steps: Vec<StepDef> = config
        .steps
        .values()
        .filter_map(|s| build::build_step(s, catalog, &env, &tables, &writers, &mut errors))
        .collect();
    check_references(config, &mut errors);
    if let Some(chain) = order::find_cycle(config) {
        errors.push(ConfigError::new(
            "steps",
            format!("the steps form a cycle: {}", chain.join(" -> ")),
        ));
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.place.cmp(&b.place));
        errors.dedup();
        return Err(errors);
    }
    Ok(Pipeline {
        tables,
        steps: order::topological(steps),
        database_url,
    })
}

/// Pass 1: the declared tables.
pub fn table_defs(config: &PipelineConfig) -> BTreeMap<String, TableDef> {
    config
        .tables
        .values()
        .map(|t| {
            (
                t.name.clone(),
                TableDef {
                    name: t.name.clone(),
                    primary_key: t.primary_key.clone(),
                },
            )
        })
        .collect()
}

/// Pass 2: `[database] url` after interpolation (`None` when a variable is unset: the CLI then
/// takes `DB_CONN_URI`, or reports a missing database).
pub fn database_url(
    config: &PipelineConfig,
    env: &EnvLookup,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    let raw = config.database_url.as_ref()?;
    match crate::config::interpolate(raw, &**env) {
        Ok(i) if i.missing.is_empty() => Some(i.value),
        Ok(_) => None,
        Err(m) => {
            errors.push(ConfigError::new("database.url", m));
            None
        }
    }
}

/// Pass 3: the steps writing each table; a table has one writer, and outputs name tables.
pub fn writers_of<'c>(
    config: &'c PipelineConfig,
    tables: &BTreeMap<String, TableDef>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<&'c str, Vec<&'c str>> {
    let mut writers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in config.steps.values() {
        for (i, o) in s.outputs.iter().enumerate() {
            if !tables.contains_key(o) {
                errors.push(ConfigError::new(
                    format!("steps.{}.outputs[{i}]", s.name),
                    format!("unknown table `{o}` (declare it under [tables.{o}])"),
                ));
            }
            writers.entry(o.as_str()).or_default().push(s.name.as_str());
        }
    }
    for (table, ws) in &writers {
        if ws.len() > 1 {
            errors.push(ConfigError::new(
                format!("tables.{table}"),
                format!(
                    "is written by {} steps ({}); a table has one writer",
                    ws.len(),
                    ws.join(", ")
                ),
            ));
        }
    }
    writers
}

/// Pass 5: `after` names steps, and a group's name is not a step's.
pub fn check_references(config: &PipelineConfig, errors: &mut Vec<ConfigError>) {
    for s in config.steps.values() {
        for (i, a) in s.after.iter().enumerate() {
            if !config.steps.contains_key(a) {
                errors.push(ConfigError::new(
                    format!("steps.{}.after[{i}]", s.name),
                    format!("no step named `{a}`"),
                ));
            }
        }
        if let Some(g) = &s.group {
            if config.steps.contains_key(g) {
                errors.push(ConfigError::new(
                    format!("steps.{}.group", s.name),
                    format!("`{g}` is also a step's name: a group needs a name of its own"),
                ));
            }
        }
    }
}

/// Why an optional step is off: the first of its `skip_if_empty` settings that interpolates to
/// an empty value, with the variables it reads.
fn skip_reason(step: &StepConfig, env: &EnvLookup) -> Option<String> {
    step.skip_if_empty.iter().find_map(|key| {
        let raw = step.settings.get(key)?.as_str()?;
        let value = crate::config::interpolate(raw, &**env).ok()?;
        if !value.value.trim().is_empty() {
            return None;
        }
        let vars = crate::config::referenced_variables(raw);
        Some(if vars.is_empty() {
            format!("setting `{key}` is empty")
        } else {
            format!("{} unset or empty (setting `{key}`)", vars.join(", "))
        })
    })
}

fn built_default_join(built: &BuiltStep, table: &str) -> Option<Vec<(String, String)>> {
    match &built.implementation {
        StepImpl::Transform(t) => t.default_join(table),
        StepImpl::Extract(_) => None,
    }
}

#[cfg(test)]
mod tests;
