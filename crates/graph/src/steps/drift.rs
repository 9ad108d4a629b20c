//! How the graph differs from what a sink should hold there: counts per label (edge type)
//! against an expected range, and a sample of node keys looked up one by one.

use std::collections::BTreeMap;

/// How the graph differs from the tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// (label or type, rows expected, in the graph) where they differ.
    pub counts: Vec<(String, i64, i64)>,
    /// Sampled node keys missing from the graph.
    pub missing: Vec<String>,
    /// Every label (type) with its rows expected and in the graph, for reports.
    pub all: Vec<(String, i64, i64)>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.missing.is_empty()
    }

    /// Compares the graph's counts with the expected ranges.
    pub fn of_counts(
        expected: &BTreeMap<String, (i64, i64)>,
        graph: &BTreeMap<String, i64>,
    ) -> Drift {
        let all = side_by_side(expected, graph);
        let counts = all
            .iter()
            .filter(|(name, _, g)| {
                let (lo, hi) = expected.get(name).copied().unwrap_or((0, 0));
                *g < lo || *g > hi
            })
            .cloned()
            .collect();
        Drift {
            counts,
            missing: Vec::new(),
            all,
        }
    }
}

/// Every name of either side, with its expected count (the upper bound) and the graph's.
fn side_by_side(
    expected: &BTreeMap<String, (i64, i64)>,
    graph: &BTreeMap<String, i64>,
) -> Vec<(String, i64, i64)> {
    let mut names: Vec<&String> = expected.keys().chain(graph.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                expected.get(n).map_or(0, |b| b.1),
                graph.get(n).copied().unwrap_or(0),
            )
        })
        .collect()
}

/// A number in [0, 1) that changes from run to run (no cryptographic needs here): where the
/// sample of keys starts.
pub fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_the_range_are_drift() {
        let expected: BTreeMap<String, (i64, i64)> =
            [("a".to_string(), (2, 4)), ("b".to_string(), (1, 1))].into();
        let graph: BTreeMap<String, i64> = [("a".to_string(), 3), ("c".to_string(), 1)].into();
        let d = Drift::of_counts(&expected, &graph);
        assert_eq!(
            d.counts,
            vec![("b".to_string(), 1, 0), ("c".to_string(), 0, 1)]
        );
        assert_eq!(d.all.len(), 3);
    }
}
