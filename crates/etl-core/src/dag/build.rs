//! The compile pass that builds one step: its implementation from the catalog (with its
//! settings), its kind, key and inputs (joins, roles, which inputs list keys), and its
//! fingerprint. Every problem goes to `errors`; a step that cannot be built is `None`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{ConfigError, EnvLookup, Settings, StepConfig};
use crate::step::StepImpl;

use super::{
    built_default_join, roles, skip_reason, Built, Catalog, InputDef, StepDef, StepKind, TableDef,
};

/// Builds `s`, reporting its problems.
pub(super) fn build_step(
    s: &StepConfig,
    catalog: &dyn Catalog,
    env: &EnvLookup,
    tables: &BTreeMap<String, TableDef>,
    writers: &BTreeMap<&str, Vec<&str>>,
    errors: &mut Vec<ConfigError>,
) -> Option<StepDef> {
    let place = format!("steps.{}", s.name);
    let mut settings = Settings::new(format!("{place}.settings"), s.settings.clone(), env.clone());
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

    let built = built?;
    let (key, kind_ok) = match (&built.implementation, s.kind) {
        (StepImpl::Extract(_), StepKind::Extract) => (Vec::new(), true),
        (StepImpl::Transform(t), StepKind::Transform | StepKind::Sink) => (t.key_columns(), true),
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
        return None;
    }

    let declared_outputs = match &built.implementation {
        StepImpl::Transform(t) => t.outputs(),
        StepImpl::Extract(x) => x.outputs(),
    };
    roles::check_outputs(
        &place,
        &s.uses,
        &declared_outputs,
        &s.outputs,
        tables,
        errors,
    );

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
        let roles = roles::bind(&place, &s.uses, &declared, &s.inputs, tables, errors);
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
            // In the key's order: keys built from an input's rows must match the step's keys
            // column for column (an explicit `on` comes sorted by name).
            let mut join = join;
            join.sort_by_key(|(k, _)| key.iter().position(|x| x == k).unwrap_or(usize::MAX));
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

    Some(StepDef {
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
        skipped: skip_reason(s, env),
    })
}
