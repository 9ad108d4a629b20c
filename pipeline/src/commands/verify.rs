//! `etl verify`: compares the graph with the `nodes`/`edges` tables, per label and per type,
//! plus a sample of node keys, and reports the drift. Exit 0 when they agree, 1 when they don't.

use std::path::Path;

use crate::exit::Exit;
use crate::steps::memgraph::{Against, Drift, EdgeSink, GraphConnection, NodeSink};

fn print(what: &str, drift: &Drift) {
    for (name, table, graph) in &drift.all {
        let mark = if table == graph { "" } else { "  <- differs" };
        println!("{what}: {name:<30} table {table:>9}  graph {graph:>9}{mark}");
    }
    for key in &drift.missing {
        println!("{what}: sampled key missing from the graph: {key}");
    }
    if drift.is_empty() {
        println!("{what}: the graph matches the table");
    }
}

pub async fn verify(config: &Path) -> Exit {
    let pipeline = match crate::load::load(config) {
        Ok(p) => p,
        Err(e) => {
            eprint!("error: {e}");
            return Exit::Config;
        }
    };
    let url = crate::load::database_url(&pipeline);
    let mut exit = Exit::Ok;
    let mut found = false;
    for (step, mut settings) in
        crate::load::step_settings(config, &["kg.graph_nodes", "kg.graph_edges"])
    {
        let connection = GraphConnection::from_settings(&mut settings, url.clone());
        let rows_table = crate::catalog::bound_table(&step, crate::steps::roles::ROWS);
        let drift = match step.uses.as_str() {
            "kg.graph_nodes" => {
                NodeSink {
                    connection,
                    rows_table,
                }
                .drift(&step.name, Against::Tables)
                .await
            }
            "kg.graph_edges" => {
                EdgeSink {
                    connection,
                    rows_table,
                }
                .drift(&step.name, Against::Tables)
                .await
            }
            _ => unreachable!("only graph sinks are listed"),
        };
        found = true;
        match drift {
            Ok(d) => {
                print(
                    if step.uses == "kg.graph_nodes" {
                        "nodes"
                    } else {
                        "edges"
                    },
                    &d,
                );
                if !d.is_empty() && exit == Exit::Ok {
                    exit = Exit::KeysFailed;
                }
            }
            Err(e) => {
                eprintln!("error: step {}: {}", step.name, e.chain());
                exit = Exit::Service;
            }
        }
    }
    if !found {
        eprintln!(
            "error: {} has no graph steps (kg.graph_nodes, kg.graph_edges)",
            config.display()
        );
        return Exit::Config;
    }
    exit
}
