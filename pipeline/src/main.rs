//! `etl`: the command line. Parses arguments, sets up logging, and hands each command to its
//! module; this is the only place where concrete steps, the store and the engine meet.

mod catalog;
mod commands;
mod exit;
mod load;
mod progress;
mod schedule;
mod steps;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::Exit;

#[derive(Parser, Debug)]
#[command(
    name = "etl",
    version,
    about = "Incremental ETL for the knowledge-graph pipeline"
)]
struct Cli {
    /// The pipeline configuration.
    #[arg(
        long,
        global = true,
        default_value = "pipelines.toml",
        env = "ETL_CONFIG"
    )]
    config: PathBuf,
    /// The pipeline, when several share one database: its data tables live in schema NAME and
    /// its bookkeeping in etl_NAME. Overrides `[pipeline] name`; unset, the default pipeline
    /// (schemas public and etl).
    #[arg(long, global = true, env = "ETL_PIPELINE", value_name = "NAME")]
    pipeline: Option<String>,
    /// Log lines as text or as JSON objects.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log lines (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pipeline (or the selected steps), doing only what changed.
    Run(RunArgs),
    /// Show what a run would do, per step, without writing anything.
    Plan(SelectArgs),
    /// Per step: keys total, pending and failed, the last run and the latest errors.
    Status(SelectArgs),
    /// The recent runs, or one run's steps (RUN, or --last).
    History {
        /// A run's id (the first column of `etl history`).
        run: Option<i64>,
        /// The most recent run.
        #[arg(long, conflicts_with = "run")]
        last: bool,
        /// How many recent runs to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take batches of this pipeline's runs from the work queue until SIGTERM (any number of
    /// workers, on any machine that reaches the database and the services).
    Worker,
    /// Serve the runs, per-key lineage, /metrics and /healthz over HTTP (read-only).
    Serve {
        /// The address to listen on: 127.0.0.1 unless a reverse proxy with auth is in front.
        #[arg(long, default_value = "127.0.0.1", env = "ETL_SERVE_BIND")]
        bind: std::net::IpAddr,
        #[arg(long, default_value_t = 8485, env = "ETL_SERVE_PORT")]
        port: u16,
        /// With --every: the schedule runs in this process too.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Apply the database migrations.
    Migrate {
        /// Dimension of the embedding columns (vector(N)).
        #[arg(long, env = "EMBEDDINGS_DIM", default_value_t = 1024)]
        embeddings_dim: u32,
    },
    /// Validate the configuration and reach every service it names.
    Check,
    /// Compare the graph with the nodes/edges tables and report any drift (exit 1 if any).
    Verify,
    /// Semantic search over the node embeddings, with the embedding step's model.
    Search {
        /// The text to search for, e.g. "who likes otters?".
        text: String,
        #[arg(long, default_value_t = 5)]
        limit: u32,
    },
    /// The graph kept safe: export to cypherl, restore, or rebuild from the tables.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Grist tooling around the doc folder format.
    #[command(subcommand)]
    Grist(GristCommand),
}

#[derive(Subcommand, Debug)]
enum GraphCommand {
    /// Write the graph as cypherl (indexes, nodes, edges; one statement per line).
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a file `etl graph export` wrote into an empty graph.
    Restore {
        file: PathBuf,
        /// Load even into a graph that holds nodes.
        #[arg(long)]
        force: bool,
    },
    /// Empty the graph and write it again from the nodes/edges tables (no Grist, no model).
    Rebuild,
}

#[derive(Subcommand, Debug)]
enum GristCommand {
    /// Serve doc folders over Grist's HTTP API on 127.0.0.1 (a local Grist for pipelines and CI).
    Serve {
        /// Doc folders (the folder name is the doc id), or folders of doc folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, default_value_t = 8484)]
        port: u16,
        /// Require this API key (Authorization: Bearer); default: any or none.
        #[arg(long, env = "GRIST_API_KEY")]
        api_key: Option<String>,
    },
    /// Snapshot a doc from a Grist server into a doc folder.
    Export {
        #[arg(long)]
        doc: String,
        #[arg(long)]
        out: PathBuf,
        /// The Grist server (its API key comes from GRIST_API_KEY).
        #[arg(long, env = "GRIST_SERVER_URL")]
        server: String,
    },
    /// Create docs in a Grist server from doc folders; prints `<folder> <doc id>` per doc.
    Seed {
        /// Doc folders (`<Table>.columns.json` + `<Table>.records.json` per table).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The Grist server (its API key comes from GRIST_API_KEY).
        #[arg(long, env = "GRIST_SERVER_URL")]
        server: String,
        /// The workspace to create the docs in (default: the first one the key can write to).
        #[arg(long)]
        workspace: Option<i64>,
        /// Also write GRIST_*_DOC_ID=... lines (by folder name) to this file.
        #[arg(long)]
        env_out: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Only this step (repeatable).
    #[arg(long = "step", value_name = "NAME")]
    steps: Vec<String>,
    /// Also every step that depends on the selected ones.
    #[arg(long)]
    downstream: bool,
    /// Only steps with this label (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Reprocess every key of the selected steps.
    #[arg(long)]
    full_refresh: bool,
    /// Let extracts delete more than their max_delete_fraction of a table.
    #[arg(long)]
    allow_mass_delete: bool,
    /// Wait for another run's locks instead of exiting.
    #[arg(long)]
    wait: bool,
    /// Run again and again, this long apart (e.g. 5m, 1h); SIGTERM ends the loop cleanly.
    #[arg(long, env = "ETL_EVERY", value_name = "DURATION")]
    every: Option<String>,
    /// Process the transforms' batches with N tasks of this process, through the work queue
    /// that `etl worker` processes share (without it, the queue is used when workers are alive).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

fn init_logging(format: LogFormat, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // Our own crates at info (debug with -v); dependencies at warn, so that a run's log is
    // its steps, not connection pools being made.
    const OURS: [&str; 8] = [
        "etl",
        "etl_core",
        "etl_postgres",
        "etl_web",
        "grist",
        "grist_emulator",
        "graph",
        "embeddings",
    ];
    let ours = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let default = match verbose {
        0 | 1 => std::iter::once("warn".to_string())
            .chain(OURS.iter().map(|c| format!("{c}={ours}")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "trace".to_string(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.compact().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    if let Err(e) = load::enter_pipeline(cli.pipeline.as_deref(), &cli.config) {
        eprintln!("error: {e}");
        return Exit::Config.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Service.into();
        }
    };
    let is_run = matches!(cli.command, Command::Run(_));
    let exit = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(&cli.config, &args).await,
            Command::Plan(select) => commands::run::plan(&cli.config, &select).await,
            Command::Status(select) => commands::status::status(&cli.config, &select).await,
            Command::Worker => commands::worker::worker(&cli.config).await,
            Command::Serve { bind, port, run } => {
                commands::serve::serve(&cli.config, bind, port, &run).await
            }
            Command::History {
                run,
                last,
                limit,
                json,
            } => commands::history::history(&cli.config, run, last, limit, json).await,
            Command::Migrate { embeddings_dim } => {
                commands::admin::migrate(&cli.config, embeddings_dim).await
            }
            Command::Check => commands::admin::check(&cli.config).await,
            Command::Verify => commands::verify::verify(&cli.config).await,
            Command::Search { text, limit } => {
                commands::search::search(&cli.config, &text, limit).await
            }
            Command::Graph(GraphCommand::Export { out }) => {
                commands::graph::export(&cli.config, &out).await
            }
            Command::Graph(GraphCommand::Restore { file, force }) => {
                commands::graph::restore(&cli.config, &file, force).await
            }
            Command::Graph(GraphCommand::Rebuild) => commands::graph::rebuild(&cli.config).await,
            Command::Grist(GristCommand::Serve {
                dirs,
                port,
                api_key,
            }) => {
                commands::grist::serve(&dirs, port, api_key.as_deref().filter(|k| !k.is_empty()))
                    .await
            }
            Command::Grist(GristCommand::Export { doc, out, server }) => {
                commands::grist::export(&doc, &out, &server).await
            }
            Command::Grist(GristCommand::Seed {
                dirs,
                server,
                workspace,
                env_out,
            }) => commands::grist::seed(&dirs, &server, workspace, env_out.as_deref()).await,
        }
    });
    if is_run {
        // A run has written all it keeps by now (its report is printed, its history recorded,
        // its steps awaited). What is left is freeing the runtime's pools and tasks one by one,
        // which took 10 ms of a 90 ms run that changed nothing; the sockets close with the
        // process all the same.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(i32::from(exit as u8));
    }
    exit.into()
}
