//! `etl verify`: compares the graph with the `nodes`/`edges` tables, per label and per type,
//! plus a sample of node keys, and reports the drift. Exit 0 when they agree, 1 when they don't.

use std::path::Path;

use crate::exit::Exit;
use etl_core::step::StepReads;
use etl_core::store::Expected;
use graph::steps::{Drift, Elements, GraphSink};

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
    let (pipeline, store) = match super::load_and_open(config, false).await {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let mut exit = Exit::Ok;
    let mut found = false;
    for (step, mut settings) in
        crate::load::step_settings(config, &["kg.graph_nodes", "kg.graph_edges"])
    {
        let elements = if step.uses == "kg.graph_nodes" {
            Elements::Nodes
        } else {
            Elements::Edges
        };
        let rows = crate::catalog::bound_table(&step, etl_core::step::roles::ROWS);
        let sink = GraphSink::from_settings(elements, rows, &mut settings);
        let Some(def) = pipeline.step(&step.name) else {
            continue;
        };
        let reads = StepReads::new(store.clone(), def.clone());
        let drift = sink.drift(&reads, Expected::Table).await;
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
