//! The compile passes on the steps' order: no cycle through tables and `after`, and the steps
//! sorted so that every step comes after the steps it depends on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::PipelineConfig;

use super::StepDef;

/// Finds a cycle among the steps (step A -> step B when B reads a table A writes) and returns it
/// as a chain of step names that starts and ends with the same step.
pub(super) fn find_cycle(config: &PipelineConfig) -> Option<Vec<String>> {
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
pub(super) fn topological(mut steps: Vec<StepDef>) -> Vec<StepDef> {
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
