//! `etl graph export`, `restore` and `rebuild`: the graph backed up as cypherl, loaded back, or
//! written again from the `nodes`/`edges` tables, leaving the sinks ready for the next
//! `etl run` to write nothing.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use etl_core::store::Store;
use etl_core::{RunOptions, Runner, Selection};
use graph::dump::{self, DumpError, Element};
use graph::steps::GraphConnection;
use graph::GraphClient;

use crate::exit::Exit;

/// The implementations that write the graph: the sinks and the index steps.
const GRAPH_STEPS: [&str; 4] = [
    "kg.graph_anchor_indexes",
    "kg.graph_link_indexes",
    "kg.graph_nodes",
    "kg.graph_edges",
];

/// The graph connection of the pipeline's node sink, if it has one.
pub fn node_sink_connection(config: &Path) -> Option<GraphConnection> {
    crate::load::step_settings(config, &["kg.graph_nodes"])
        .into_iter()
        .next()
        .map(|(_, mut settings)| GraphConnection::from_settings(&mut settings))
}

fn connect(config: &Path) -> Result<GraphConnection, Exit> {
    node_sink_connection(config).ok_or_else(|| {
        eprintln!(
            "error: {} has no step with uses = \"kg.graph_nodes\": no graph to work on",
            config.display()
        );
        Exit::Config
    })
}

async fn client(connection: &GraphConnection) -> Result<&GraphClient, Exit> {
    connection.client().await.map_err(|e| {
        eprintln!("error: {}", e.chain());
        Exit::Service
    })
}

fn failed(e: DumpError) -> Exit {
    eprintln!("error: {e}");
    match e {
        DumpError::NotEmpty
        | DumpError::BadLine { .. }
        | DumpError::Short { .. }
        | DumpError::Incomplete => Exit::Config,
        _ => Exit::Service,
    }
}

fn file_error(what: &str, path: &Path, e: std::io::Error) -> Exit {
    eprintln!("error: cannot {what} {}: {e}", path.display());
    Exit::Config
}

pub async fn export(config: &Path, out: &Path) -> Exit {
    export_to(config, out).await.unwrap_or_else(|exit| exit)
}

async fn export_to(config: &Path, out: &Path) -> Result<Exit, Exit> {
    let connection = connect(config)?;
    let graph = client(&connection).await?;
    let started = Instant::now();
    // Written beside, then moved: a failed export never leaves half a file under the name.
    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial).map_err(|e| file_error("write", &partial, e))?;
    let mut writer = BufWriter::new(file);
    let dialect = graph.dialect;
    let indexes = |e: Element<'_>| match e {
        Element::Label(l) => dialect.create_anchor_indexes(l),
        Element::EdgeType(t) => dialect.create_link_indexes(t),
    };
    let counts = dump::export(graph, indexes, &mut writer)
        .await
        .map_err(failed)?;
    writer
        .flush()
        .and_then(|_| std::fs::rename(&partial, out))
        .map_err(|e| file_error("write", out, e))?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "exported {} nodes, {} edges and {} index statements to {} ({bytes} bytes) in {:.2}s",
        counts.nodes,
        counts.edges,
        counts.indexes,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(Exit::Ok)
}

pub async fn restore(config: &Path, file: &Path, force: bool) -> Exit {
    restore_from(config, file, force)
        .await
        .unwrap_or_else(|exit| exit)
}

async fn restore_from(config: &Path, file: &Path, force: bool) -> Result<Exit, Exit> {
    let connection = connect(config)?;
    let graph = client(&connection).await?;
    let input = std::fs::File::open(file).map_err(|e| file_error("read", file, e))?;
    let started = Instant::now();
    let counts = dump::restore(graph, BufReader::new(input), force)
        .await
        .map_err(failed)?;
    println!(
        "restored: the graph holds {} nodes and {} edges ({} index statements run) after {:.2}s",
        counts.nodes,
        counts.edges,
        counts.indexes,
        started.elapsed().as_secs_f64()
    );
    // The graph steps' memos describe the graph they last wrote; after a restore the next run
    // compares the graph with the tables in full, and writes only what differs (nothing, when
    // the file was taken from the same state).
    let (pipeline, store) = super::load_and_open(config, true).await?;
    for step in pipeline
        .steps
        .iter()
        .filter(|s| GRAPH_STEPS.contains(&s.uses.as_str()))
    {
        store.set_memo(step, None).await.map_err(|e| {
            eprintln!("error: {e}");
            Exit::Service
        })?;
    }
    Ok(Exit::Ok)
}

pub async fn rebuild(config: &Path) -> Exit {
    rebuild_from_tables(config)
        .await
        .unwrap_or_else(|exit| exit)
}

async fn rebuild_from_tables(config: &Path) -> Result<Exit, Exit> {
    let connection = connect(config)?;
    let graph = client(&connection).await?;
    let (pipeline, store) = super::load_and_open(config, true).await?;
    let steps: Vec<String> = pipeline
        .steps
        .iter()
        .filter(|s| GRAPH_STEPS.contains(&s.uses.as_str()))
        .map(|s| s.name.clone())
        .collect();
    let started = Instant::now();
    dump::empty(graph).await.map_err(failed)?;
    println!(
        "emptied the graph in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    // The graph steps alone, every key: no Grist read, no embedding call.
    let opts = RunOptions {
        selection: Selection {
            steps,
            ..Selection::default()
        },
        full_refresh: true,
        stop: crate::schedule::stop_on_signals(),
        invocation: super::run::invocation(etl_core::history::DEFAULT_RETENTION),
        ..RunOptions::default()
    };
    let report = Runner::new(store, Arc::new(pipeline))
        .run(&opts)
        .await
        .map_err(|errors| {
            for e in errors {
                eprintln!("error: {e}");
            }
            Exit::Config
        })?;
    println!("{report}");
    Ok(super::run::exit_of(&report))
}
