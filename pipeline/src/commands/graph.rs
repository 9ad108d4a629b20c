//! `etl graph export`, `restore` and `rebuild`: the graph backed up as cypherl, loaded back, or
//! written again from the `nodes`/`edges` tables, leaving the sinks ready for the next
//! `etl run` to write nothing.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use etl_core::store::Store;
use etl_core::{Pipeline, RunOptions, Runner, Selection};
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

/// The graph connection of the pipeline's node sink.
async fn connect(config: &Path) -> Result<GraphConnection, Exit> {
    let Some((_, mut settings)) = crate::load::step_settings(config, &["kg.graph_nodes"])
        .into_iter()
        .next()
    else {
        eprintln!(
            "error: {} has no step with uses = \"kg.graph_nodes\": no graph to work on",
            config.display()
        );
        return Err(Exit::Config);
    };
    Ok(GraphConnection::from_settings(&mut settings))
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

pub async fn export(config: &Path, out: &Path) -> Exit {
    let connection = match connect(config).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let graph = match client(&connection).await {
        Ok(g) => g,
        Err(exit) => return exit,
    };
    let started = Instant::now();
    // Written beside, then moved: a failed export never leaves half a file under the name.
    let partial = out.with_extension("partial");
    let file = match std::fs::File::create(&partial) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", partial.display());
            return Exit::Config;
        }
    };
    let mut writer = BufWriter::new(file);
    let dialect = graph.dialect;
    let indexes = |e: Element<'_>| match e {
        Element::Label(l) => dialect.create_anchor_indexes(l),
        Element::EdgeType(t) => dialect.create_link_indexes(t),
    };
    let counts = match dump::export(graph, indexes, &mut writer).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    if let Err(e) = writer.flush().and_then(|_| std::fs::rename(&partial, out)) {
        eprintln!("error: cannot write {}: {e}", out.display());
        return Exit::Config;
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "exported {} nodes, {} edges and {} index statements to {} ({bytes} bytes) in {:.2}s",
        counts.nodes,
        counts.edges,
        counts.indexes,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Exit::Ok
}

pub async fn restore(config: &Path, file: &Path, force: bool) -> Exit {
    let connection = match connect(config).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let graph = match client(&connection).await {
        Ok(g) => g,
        Err(exit) => return exit,
    };
    let input = match std::fs::File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Exit::Config;
        }
    };
    let started = Instant::now();
    let counts = match dump::restore(graph, input, force).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    println!(
        "restored: the graph holds {} nodes and {} edges ({} index statements run) after {:.2}s",
        counts.nodes,
        counts.edges,
        counts.indexes,
        started.elapsed().as_secs_f64()
    );
    forget_graph_memos(config).await
}

/// The graph steps' memos describe the graph they last wrote; after a restore the next run
/// compares the graph with the tables in full, and writes only what differs (nothing, when the
/// file was taken from the same state).
async fn forget_graph_memos(config: &Path) -> Exit {
    let (pipeline, store) = match pipeline_and_store(config).await {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    for step in pipeline
        .steps
        .iter()
        .filter(|s| GRAPH_STEPS.contains(&s.uses.as_str()))
    {
        if let Err(e) = store.set_memo(step, None).await {
            eprintln!("error: {e}");
            return Exit::Service;
        }
    }
    Exit::Ok
}

async fn pipeline_and_store(
    config: &Path,
) -> Result<(Arc<Pipeline>, Arc<etl_postgres::PgStore>), Exit> {
    let pipeline = crate::load::load(config).map_err(|e| {
        eprint!("error: {e}");
        Exit::Config
    })?;
    let store = super::open_store(&pipeline, true).await?;
    Ok((Arc::new(pipeline), store))
}

pub async fn rebuild(config: &Path) -> Exit {
    let connection = match connect(config).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let graph = match client(&connection).await {
        Ok(g) => g,
        Err(exit) => return exit,
    };
    let (pipeline, store) = match pipeline_and_store(config).await {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let steps: Vec<String> = pipeline
        .steps
        .iter()
        .filter(|s| GRAPH_STEPS.contains(&s.uses.as_str()))
        .map(|s| s.name.clone())
        .collect();
    let started = Instant::now();
    if let Err(e) = dump::empty(graph).await {
        return failed(e);
    }
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
    let runner = Runner::new(store, pipeline);
    match runner.run(&opts).await {
        Ok(report) => {
            println!("{report}");
            super::run::exit_of(&report)
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            Exit::Config
        }
    }
}
