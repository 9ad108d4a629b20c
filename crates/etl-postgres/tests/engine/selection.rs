//! Selecting what runs: by step, downstream of a step, by label, and full refreshes.

use std::sync::Arc;

use etl_core::{RunOptions, Runner, Selection};

use crate::harness::{options, Harness};

#[tokio::test]
async fn selection_by_step_downstream_label_and_full_refresh() {
    let h = Harness::new().await;
    let only = |steps: &[&str], labels: &[(&str, &str)], downstream: bool| RunOptions {
        selection: Selection {
            steps: steps.iter().map(|s| s.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            downstream,
        },
        ..options()
    };
    let r = h.run_with(only(&["load"], &[], false)).await;
    assert_eq!(
        r.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        vec!["load"]
    );
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 0);

    let r = h.run_with(only(&[], &[("part", "nodes")], false)).await;
    assert_eq!(
        r.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        vec!["shape"]
    );
    assert_eq!(h.count("SELECT count(*) FROM nodes_out").await, 13);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 0);

    let r = h.run_with(only(&["load"], &[], true)).await;
    let mut names: Vec<_> = r.steps.iter().map(|s| s.step.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["load", "shape", "tags"]);
    assert_eq!(h.count("SELECT count(*) FROM node_tags").await, 15);

    h.shape.reset_calls();
    h.tags.reset_calls();
    let r = h
        .run_with(RunOptions {
            full_refresh: true,
            ..only(&["tags"], &[], false)
        })
        .await;
    assert!(!r.any_failed(), "{r}");
    assert_eq!(h.tags.keys_seen().len(), 13);
    assert_eq!(h.shape.calls(), 0);

    let pipeline = Arc::new(h.pipeline());
    let err = Runner::new(h.store.clone(), pipeline)
        .run(&only(&["nope"], &[], false))
        .await
        .unwrap_err();
    assert!(err[0].contains("no step or group named `nope`"), "{err:?}");
}
