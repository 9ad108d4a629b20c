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

/// Builds and validates the pipeline. Returns every problem found.
pub fn compile(
    config: &PipelineConfig,
    catalog: &dyn Catalog,
    env: EnvLookup,
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let tables: BTreeMap<String, TableDef> = config
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
        .collect();

    let database_url = config.database_url.as_ref().and_then(|raw| {
        match crate::config::interpolate(raw, &*env) {
            Ok(i) if i.missing.is_empty() => Some(i.value),
            Ok(_) => None, // DB_CONN_URI may still be given; the CLI reports a missing database.
            Err(m) => {
                errors.push(ConfigError::new("database.url", m));
                None
            }
        }
    });

    // Writers of each table.
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

    let mut steps = Vec::new();
    for s in config.steps.values() {
        let place = format!("steps.{}", s.name);
        let mut settings =
            Settings::new(format!("{place}.settings"), s.settings.clone(), env.clone());
        let built = catalog.build(s, &mut settings);
        let report = settings.finish();
        errors.extend(report.errors);
        let built = match built {
            Built::Step(b) => Some(b),
            Built::Invalid => {
                // A step is never dropped silently: say why it could not be built.
                if !errors
                    .iter()
                    .any(|e| e.place.starts_with(&format!("{place}.")))
                {
                    if report.missing_env.is_empty() {
                        errors.push(ConfigError::new(
                            format!("{place}.settings"),
                            "the step could not be built from these settings",
                        ));
                    } else {
                        errors.extend(report.missing_env.iter().cloned());
                    }
                }
                None
            }
            Built::Unknown => {
                errors.push(ConfigError::new(
                    format!("{place}.uses"),
                    format!(
                        "unknown implementation `{}` (known: {})",
                        s.uses,
                        catalog.names().join(", ")
                    ),
                ));
                None
            }
        };

        match s.kind {
            StepKind::Extract => {
                if !s.inputs.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{place}.inputs"),
                        "an extract reads a source, not tables: remove `inputs`",
                    ));
                }
                if s.outputs.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{place}.outputs"),
                        "an extract needs at least one output table",
                    ));
                }
            }
            StepKind::Transform => {
                if s.inputs.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{place}.inputs"),
                        "a transform needs at least one input table",
                    ));
                }
                if s.outputs.is_empty() {
                    errors.push(ConfigError::new(format!("{place}.outputs"), "a transform needs at least one output table (a step without outputs is a sink)"));
                }
            }
            StepKind::Sink => {
                if s.inputs.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{place}.inputs"),
                        "a sink needs at least one input table",
                    ));
                }
                if !s.outputs.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{place}.outputs"),
                        "a sink writes outside the database: remove `outputs`",
                    ));
                }
            }
        }

        let mut seen_inputs = BTreeSet::new();
        for inp in &s.inputs {
            if !seen_inputs.insert(inp.table.as_str()) {
                errors.push(ConfigError::new(
                    &inp.place,
                    format!("table `{}` is listed twice", inp.table),
                ));
            }
            if !tables.contains_key(&inp.table) {
                errors.push(ConfigError::new(
                    &inp.place,
                    format!(
                        "unknown table `{}` (declare it under [tables.{}])",
                        inp.table, inp.table
                    ),
                ));
            } else if !writers.contains_key(inp.table.as_str()) {
                errors.push(ConfigError::new(
                    &inp.place,
                    format!("table `{}` is read here but no step writes it", inp.table),
                ));
            }
        }

        let Some(built) = built else { continue };
        let (key, kind_ok) = match (&built.implementation, s.kind) {
            (StepImpl::Extract(_), StepKind::Extract) => (Vec::new(), true),
            (StepImpl::Transform(t), StepKind::Transform | StepKind::Sink) => {
                (t.key_columns(), true)
            }
            (StepImpl::Extract(_), _) => (Vec::new(), false),
            (StepImpl::Transform(t), _) => (t.key_columns(), false),
        };
        if !kind_ok {
            let actual = match built.implementation {
                StepImpl::Extract(_) => "an extract",
                StepImpl::Transform(_) => "a transform or sink",
            };
            errors.push(ConfigError::new(
                format!("{place}.kind"),
                format!("`{}` is {actual}, not a {}", s.uses, s.kind.as_str()),
            ));
            continue;
        }

        if s.kind != StepKind::Extract && key.is_empty() {
            errors.push(ConfigError::new(
                format!("{place}.uses"),
                format!("`{}` declares no key columns (a bug in the step)", s.uses),
            ));
        }
        let mut inputs = Vec::new();
        if s.kind != StepKind::Extract {
            let declared = match &built.implementation {
                StepImpl::Transform(t) => t.inputs(),
                StepImpl::Extract(_) => Vec::new(),
            };
            let roles = roles::bind(&place, &s.uses, &declared, &s.inputs, &tables, &mut errors);
            for (inp, role) in s.inputs.iter().zip(roles) {
                let Some(table) = tables.get(&inp.table) else {
                    continue;
                };
                let join = match &inp.on {
                    Some(on) => {
                        for (k, c) in on {
                            if !key.contains(k) {
                                errors.push(ConfigError::new(
                                    format!("{}.on.{k}", inp.place),
                                    format!(
                                        "`{k}` is not a key column of this step (its key: {})",
                                        key.join(", ")
                                    ),
                                ));
                            }
                            if !table.primary_key.contains(c) {
                                errors.push(ConfigError::new(
                                    format!("{}.on.{k}", inp.place),
                                    format!(
                                        "`{c}` is not in the primary key of `{}` ({}); joins use key columns",
                                        table.name,
                                        table.primary_key.join(", ")
                                    ),
                                ));
                            }
                        }
                        on.clone()
                    }
                    None => match built_default_join(&built, &inp.table) {
                        Some(j) => j,
                        None => key
                            .iter()
                            .filter(|k| table.primary_key.contains(k))
                            .map(|k| (k.clone(), k.clone()))
                            .collect(),
                    },
                };
                let joined: BTreeSet<&String> = join.iter().map(|(k, _)| k).collect();
                let covers_key = key.iter().all(|k| joined.contains(k));
                inputs.push(InputDef {
                    role,
                    table: inp.table.clone(),
                    join,
                    covers_key,
                });
            }
            if !inputs.is_empty() && !inputs.iter().any(|i| i.covers_key) {
                errors.push(ConfigError::new(
                    format!("{place}.inputs"),
                    format!(
                        "no input joins the whole key ({}): one input must list the step's keys; use `on` to join it",
                        key.join(", ")
                    ),
                ));
            }
        }

        let fingerprint = {
            let mut h = blake3::Hasher::new();
            h.update(b"etl.step.v1\0");
            let mut put = |s: &str| {
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            };
            put(&s.uses);
            put(&built.version.to_string());
            put(s.kind.as_str());
            for k in &key {
                put(k);
            }
            // Roles bound by name are part of the wiring; a list's roles follow its order, which
            // the tables' order below already gives.
            let named = s.inputs.iter().any(|i| i.role.is_some());
            for i in &inputs {
                if let Some(role) = i.role.as_ref().filter(|_| named) {
                    put(role);
                }
                put(&i.table);
                for (k, c) in &i.join {
                    put(k);
                    put(c);
                }
            }
            for o in &s.outputs {
                put(o);
            }
            for (k, v) in &report.identity {
                put(k);
                put(v);
            }
            h.finalize().to_hex()[..32].to_string()
        };

        steps.push(StepDef {
            name: s.name.clone(),
            kind: s.kind,
            uses: s.uses.clone(),
            group: s.group.clone(),
            after: s.after.clone(),
            inputs,
            outputs: s.outputs.clone(),
            key,
            labels: s.labels.clone(),
            batch_size: s.batch_size,
            concurrency: s.concurrency,
            max_delete_fraction: s.max_delete_fraction,
            fingerprint,
            implementation: built.implementation,
            missing_env: report.missing_env,
            skipped: skip_reason(s, &env),
        });
    }

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

    if let Some(chain) = find_cycle(config) {
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
    let steps = topological(steps);
    Ok(Pipeline {
        tables,
        steps,
        database_url,
    })
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

/// Finds a cycle among the steps (step A -> step B when B reads a table A writes) and returns it
/// as a chain of step names that starts and ends with the same step.
fn find_cycle(config: &PipelineConfig) -> Option<Vec<String>> {
    let mut producer: HashMap<&str, &str> = HashMap::new();
    for s in config.steps.values() {
        for o in &s.outputs {
            producer.entry(o.as_str()).or_insert(s.name.as_str());
        }
    }
    // Edges: step -> steps that read its outputs.
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in config.steps.values() {
        next.entry(s.name.as_str()).or_default();
        for i in &s.inputs {
            if let Some(p) = producer.get(i.table.as_str()) {
                next.entry(p).or_default().insert(s.name.as_str());
            }
        }
        for a in &s.after {
            if let Some((name, _)) = config.steps.get_key_value(a) {
                next.entry(name.as_str())
                    .or_default()
                    .insert(s.name.as_str());
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = next.keys().map(|k| (*k, Mark::New)).collect();
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        mark: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        mark.insert(node, Mark::Active);
        path.push(node);
        for n in next.get(node).into_iter().flatten() {
            match mark.get(n).copied().unwrap_or(Mark::Done) {
                Mark::Active => {
                    let start = path.iter().position(|p| p == n).unwrap_or(0);
                    let mut chain: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    chain.push(n.to_string());
                    return Some(chain);
                }
                Mark::New => {
                    if let Some(c) = visit(n, next, mark, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark.insert(node, Mark::Done);
        None
    }
    let nodes: Vec<&str> = next.keys().copied().collect();
    for n in nodes {
        if mark[n] == Mark::New {
            if let Some(c) = visit(n, &next, &mut mark, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Orders steps so that every step comes after the steps that write its inputs (ties by name).
fn topological(mut steps: Vec<StepDef>) -> Vec<StepDef> {
    steps.sort_by(|a, b| a.name.cmp(&b.name));
    let mut producer: HashMap<String, usize> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        for o in &s.outputs {
            producer.insert(o.clone(), i);
        }
    }
    let position: HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let deps: Vec<BTreeSet<usize>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.inputs
                .iter()
                .filter_map(|inp| producer.get(&inp.table).copied())
                .chain(s.after.iter().filter_map(|a| position.get(a).copied()))
                .filter(|p| *p != i)
                .collect()
        })
        .collect();
    let mut done = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let before = order.len();
        for i in 0..steps.len() {
            if !done[i] && deps[i].iter().all(|d| done[*d]) {
                done[i] = true;
                order.push(i);
            }
        }
        assert!(order.len() > before, "cycles are rejected before ordering");
    }
    let mut slots: Vec<Option<StepDef>> = steps.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each step once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::config::parse;
    use crate::step::{
        BatchOutput, Extract, InputBatch, SnapshotSink, StepContext, StepError, Transform,
    };

    struct NoExtract;
    #[async_trait]
    impl Extract for NoExtract {
        async fn extract(
            &self,
            _: &StepContext,
            _: &mut dyn SnapshotSink,
        ) -> Result<(), StepError> {
            Ok(())
        }
    }
    struct KeyedBy(Vec<String>);
    #[async_trait]
    impl Transform for KeyedBy {
        fn key_columns(&self) -> Vec<String> {
            self.0.clone()
        }
        async fn process(&self, _: &StepContext, _: InputBatch) -> Result<BatchOutput, StepError> {
            Ok(BatchOutput::default())
        }
    }

    /// `src` is an extract; `by_id` and `by_node` are transforms keyed by `id` and by
    /// `(node_id, node_type)`.
    struct Cat;
    impl Catalog for Cat {
        fn build(&self, step: &StepConfig, _: &mut Settings) -> Built {
            let implementation = match step.uses.as_str() {
                "src" => StepImpl::Extract(Arc::new(NoExtract)),
                "by_id" => StepImpl::Transform(Arc::new(KeyedBy(vec!["id".into()]))),
                "by_node" => StepImpl::Transform(Arc::new(KeyedBy(vec![
                    "node_id".into(),
                    "node_type".into(),
                ]))),
                _ => return Built::Unknown,
            };
            Built::Step(BuiltStep {
                implementation,
                version: 1,
            })
        }
        fn names(&self) -> Vec<String> {
            vec!["src".into(), "by_id".into(), "by_node".into()]
        }
    }

    fn compile_text(text: &str) -> Result<Pipeline, Vec<String>> {
        let (config, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        compile(&config.unwrap(), &Cat, Arc::new(|_: &str| None))
            .map_err(|es| es.into_iter().map(|e| e.to_string()).collect())
    }

    const TABLES: &str = r#"
version = 1
[tables.a]
primary_key = ["id"]
[tables.b]
primary_key = ["id"]
[tables.c]
primary_key = ["id"]
[tables.n]
primary_key = ["node_id", "node_type"]
[tables.attrs]
primary_key = ["anchor", "attribute_name"]
[tables.out]
primary_key = ["node_id", "node_type"]
"#;

    #[test]
    fn a_cycle_through_several_steps_is_printed_as_a_chain() {
        let errors = compile_text(&format!(
            "{TABLES}
[steps.s0]
kind = \"extract\"
uses = \"src\"
outputs = [\"n\"]
[steps.x]
kind = \"transform\"
uses = \"by_id\"
inputs = [\"a\"]
outputs = [\"b\"]
[steps.y]
kind = \"transform\"
uses = \"by_id\"
inputs = [\"b\"]
outputs = [\"c\"]
[steps.z]
kind = \"transform\"
uses = \"by_id\"
inputs = [\"c\"]
outputs = [\"a\"]
"
        ))
        .unwrap_err();
        assert!(
            errors.contains(&"steps: the steps form a cycle: x -> y -> z -> x".to_string()),
            "{errors:?}"
        );
    }

    #[test]
    fn joins_sinks_and_unwritten_tables_are_checked_together() {
        let errors = compile_text(&format!(
            "{TABLES}
[steps.load]
kind = \"extract\"
uses = \"src\"
outputs = [\"n\", \"attrs\"]
inputs = [\"a\"]
[steps.shape]
kind = \"transform\"
uses = \"by_node\"
inputs = [\"n\", {{ table = \"attrs\", on = {{ node_type = \"description\", colour = \"anchor\" }} }}]
outputs = [\"out\"]
[steps.only_side]
kind = \"sink\"
uses = \"by_node\"
inputs = [{{ table = \"attrs\", on = {{ node_type = \"anchor\" }} }}]
outputs = [\"b\"]
[steps.reads_nothing_written]
kind = \"sink\"
uses = \"by_id\"
inputs = [\"c\"]
"
        ))
        .unwrap_err();
        for expected in [
            "steps.load.inputs: an extract reads a source, not tables: remove `inputs`",
            "steps.load.inputs[0]: table `a` is read here but no step writes it",
            "steps.shape.inputs[1].on.colour: `colour` is not a key column of this step (its key: node_id, node_type)",
            "steps.shape.inputs[1].on.node_type: `description` is not in the primary key of `attrs` (anchor, attribute_name); joins use key columns",
            "steps.only_side.outputs: a sink writes outside the database: remove `outputs`",
            "steps.only_side.inputs: no input joins the whole key (node_id, node_type): one input must list the step's keys; use `on` to join it",
            "steps.reads_nothing_written.inputs[0]: table `c` is read here but no step writes it",
        ] {
            assert!(errors.iter().any(|e| e == expected), "missing `{expected}` in {errors:#?}");
        }
    }

    #[test]
    fn joins_default_to_same_named_key_columns_and_steps_come_in_dependency_order() {
        let p = compile_text(&format!(
            "{TABLES}
[steps.zz_load]
kind = \"extract\"
uses = \"src\"
outputs = [\"n\", \"attrs\"]
[steps.aa_shape]
kind = \"transform\"
uses = \"by_node\"
inputs = [\"n\", {{ table = \"attrs\", on = {{ node_type = \"anchor\" }} }}]
outputs = [\"out\"]
"
        ))
        .unwrap();
        assert_eq!(
            p.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec!["zz_load", "aa_shape"]
        );
        let shape = p.step("aa_shape").unwrap();
        assert!(shape.inputs[0].covers_key);
        assert_eq!(
            shape.inputs[0].join,
            vec![
                ("node_id".to_string(), "node_id".to_string()),
                ("node_type".to_string(), "node_type".to_string())
            ]
        );
        assert!(!shape.inputs[1].covers_key);
        assert_eq!(
            shape.inputs[1].join,
            vec![("node_type".to_string(), "anchor".to_string())]
        );
        let downstream = p
            .select(&Selection {
                steps: vec!["zz_load".into()],
                labels: vec![],
                downstream: true,
            })
            .unwrap();
        assert_eq!(downstream, vec![0, 1]);
    }
}
