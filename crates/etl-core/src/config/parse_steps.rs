//! The steps pass of parsing `pipelines.toml`: each `[steps.NAME]` table into a
//! [`StepConfig`], every problem collected with its place.

use std::collections::BTreeMap;

use super::is_valid_name;
use super::parse::{Reader, StepConfig};
use super::{too_long, STEP_NAME_OVERHEAD};
use crate::dag::StepKind;

/// Reads `[steps]`, with the `[defaults]` given.
pub(super) fn steps(
    r: &mut Reader,
    root: &toml::Table,
    batch_size: usize,
    concurrency: usize,
    max_delete_fraction: f64,
) -> BTreeMap<String, StepConfig> {
    let mut steps = BTreeMap::new();
    if let Some(ss) = root.get("steps").and_then(|v| r.table("steps", v)) {
        for (name, value) in ss {
            let place = format!("steps.{name}");
            if !is_valid_name(name) {
                r.err(
                    &place,
                    "step names are lowercase letters, digits and `_`, starting with a letter",
                );
            } else if let Some(why) = too_long(name, STEP_NAME_OVERHEAD, "etl.keys__{}__pending") {
                r.err(&place, format!("the step name {why}"));
            }
            let Some(s) = r.table(&place, value) else {
                continue;
            };
            r.unknown_keys(
                &place,
                s,
                &[
                    "kind",
                    "uses",
                    "group",
                    "after",
                    "inputs",
                    "outputs",
                    "labels",
                    "batch_size",
                    "concurrency",
                    "max_delete_fraction",
                    "skip_if_empty",
                    "settings",
                ],
            );
            let kind = match s.get("kind").map(|v| v.as_str()) {
                Some(Some("extract")) => Some(StepKind::Extract),
                Some(Some("transform")) => Some(StepKind::Transform),
                Some(Some("sink")) => Some(StepKind::Sink),
                Some(_) => {
                    r.err(
                        format!("{place}.kind"),
                        "expected \"extract\", \"transform\" or \"sink\"",
                    );
                    None
                }
                None => {
                    r.err(
                        format!("{place}.kind"),
                        "is required (\"extract\", \"transform\" or \"sink\")",
                    );
                    None
                }
            };
            let uses = match s.get("uses") {
                Some(toml::Value::String(u)) => u.clone(),
                Some(other) => {
                    r.err(
                        format!("{place}.uses"),
                        format!("expected a string, found {}", other.type_str()),
                    );
                    String::new()
                }
                None => {
                    r.err(
                        format!("{place}.uses"),
                        "is required: the name of the step's implementation",
                    );
                    String::new()
                }
            };
            let group = match s.get("group") {
                None => None,
                Some(toml::Value::String(g)) if is_valid_name(g) => Some(g.clone()),
                Some(_) => {
                    r.err(
                        format!("{place}.group"),
                        "a group is a name: lowercase letters, digits and `_`",
                    );
                    None
                }
            };
            let mut inputs = Vec::new();
            match s.get("inputs") {
                None => {}
                Some(toml::Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let iplace = format!("{place}.inputs[{i}]");
                        inputs.extend(r.input(&iplace, item));
                    }
                }
                Some(toml::Value::Table(roles)) => {
                    for (role, item) in roles {
                        let iplace = format!("{place}.inputs.{role}");
                        if let Some(mut input) = r.input(&iplace, item) {
                            input.role = Some(role.clone());
                            inputs.push(input);
                        }
                    }
                }
                Some(other) => r.err(
                    format!("{place}.inputs"),
                    format!(
                        "expected a list of tables, or a table of role = table, found {}",
                        other.type_str()
                    ),
                ),
            }
            let after = s
                .get("after")
                .map(|v| r.string_list(&format!("{place}.after"), v))
                .unwrap_or_default();
            let outputs = s
                .get("outputs")
                .map(|v| r.string_list(&format!("{place}.outputs"), v))
                .unwrap_or_default();
            let mut labels = BTreeMap::new();
            if let Some(l) = s
                .get("labels")
                .and_then(|v| r.table(&format!("{place}.labels"), v))
            {
                for (k, v) in l {
                    match v.as_str() {
                        Some(val) => {
                            labels.insert(k.clone(), val.to_string());
                        }
                        None => r.err(format!("{place}.labels.{k}"), "label values are strings"),
                    }
                }
            }
            let batch = r.positive(
                &format!("{place}.batch_size"),
                s.get("batch_size"),
                batch_size,
            );
            let conc = r.positive(
                &format!("{place}.concurrency"),
                s.get("concurrency"),
                concurrency,
            );
            let mdf = r.fraction(
                &format!("{place}.max_delete_fraction"),
                s.get("max_delete_fraction"),
                max_delete_fraction,
            );
            let settings = match s.get("settings") {
                None => toml::Table::new(),
                Some(v) => r
                    .table(&format!("{place}.settings"), v)
                    .cloned()
                    .unwrap_or_default(),
            };
            let skip_if_empty = match s.get("skip_if_empty") {
                None => Vec::new(),
                Some(toml::Value::String(one)) => vec![one.clone()],
                Some(v) => r.string_list(&format!("{place}.skip_if_empty"), v),
            };
            for (i, key) in skip_if_empty.iter().enumerate() {
                if !matches!(settings.get(key), Some(toml::Value::String(_))) {
                    r.err(
                        format!("{place}.skip_if_empty[{i}]"),
                        format!("names `{key}`, which is not a string setting of the step (under [{place}.settings])"),
                    );
                }
            }
            if let Some(kind) = kind {
                steps.insert(
                    name.clone(),
                    StepConfig {
                        name: name.clone(),
                        kind,
                        uses,
                        group,
                        after,
                        inputs,
                        outputs,
                        labels,
                        batch_size: batch,
                        concurrency: conc,
                        max_delete_fraction: mdf,
                        skip_if_empty,
                        settings,
                    },
                );
            }
        }
    }
    steps
}
