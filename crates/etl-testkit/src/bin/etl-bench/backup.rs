//! The graph's backup and restore at a size, as the README's "Backups, written down" gives them:
//! `etl graph export`, `etl graph restore` into an empty graph (a new database on the same
//! server), the run after it, and `etl graph rebuild` with the run after it.

use std::path::Path;

use etl_testkit::graph::TestGraph;

use super::{measure, written};

/// Measures the graph commands on the loaded graph; returns a note for the report.
pub async fn graph_backup(
    command: impl Fn(&[&str]) -> tokio::process::Command,
    work: &Path,
    size: &str,
) -> String {
    let file = work.join("graph.cypherl");
    let file_arg = file.display().to_string();
    let export = measure(command(&["graph", "export", "--out", &file_arg])).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let elements: u64 = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("// etl graph export complete: "))
        .map(|l| {
            l.split(", ")
                .filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .expect("a complete export ends with its counts");
    let mb = text.len() as f64 / 1e6;
    drop(text);

    let empty = TestGraph::new().await;
    let in_empty = |args: &[&str]| {
        let mut c = command(args);
        c.env("MEMGRAPH_DATABASE", &empty.database);
        c
    };
    let restore = measure(in_empty(&["graph", "restore", &file_arg])).await;
    let after_restore = measure(in_empty(&["run"])).await;
    let rebuild = measure(command(&["graph", "rebuild"])).await;
    let after_rebuild = measure(command(&["run"])).await;
    let per_s = |d: std::time::Duration| elements as f64 / d.as_secs_f64().max(1e-9);
    format!(
        "{size}: graph export {:.2} s ({:.0} elements/s, {mb:.1} MB, {:.0} MiB peak); restore into an empty graph {:.2} s ({:.0} elements/s, {:.0} MiB peak), the run after it {:.2} s with {} graph writes; rebuild {:.2} s, the run after it {:.2} s with {} graph writes",
        export.wall.as_secs_f64(),
        per_s(export.wall),
        export.peak_mib,
        restore.wall.as_secs_f64(),
        per_s(restore.wall),
        restore.peak_mib,
        after_restore.wall.as_secs_f64(),
        written(&after_restore.stdout).1,
        rebuild.wall.as_secs_f64(),
        after_rebuild.wall.as_secs_f64(),
        written(&after_rebuild.stdout).1,
    )
}
