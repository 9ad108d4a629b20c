//! `etl serve`: the web page of runs and lineage, `/metrics` and `/healthz` (crate `etl-web`),
//! on 127.0.0.1 by default; with `--every`, the schedule runs in the same process. SIGTERM
//! stops both: the run finishes its batches in flight, the server its requests.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use etl_web::{GraphProbe, LineageTables, Site};
use graph::steps::GraphConnection;

use crate::exit::Exit;
use crate::RunArgs;

/// The graph as the lineage page asks it: does it hold this node?
struct GraphNodes(GraphConnection);

#[async_trait]
impl GraphProbe for GraphNodes {
    async fn holds(&self, label: &str, id: &str) -> Result<bool, String> {
        if graph::cypher::check_name(label, "label").is_err() {
            return Err("the label cannot be a graph label".into());
        }
        let client = self.0.client().await.map_err(|e| e.to_string())?;
        let found = client
            .existing_ids(label, &[id.to_string()])
            .await
            .map_err(|e| e.to_string())?;
        Ok(found.contains(id))
    }
}

pub async fn serve(config: &Path, bind: IpAddr, port: u16, run: &RunArgs) -> Exit {
    let (pipeline, store) = match super::load_and_open(config, true).await {
        Ok((p, s)) => (Arc::new(p), s),
        Err(exit) => return exit,
    };
    let graph = super::graph::node_sink_connection(config)
        .map(|c| Arc::new(GraphNodes(c)) as Arc<dyn GraphProbe>);
    let site = Arc::new(Site {
        pool: store.pool().clone(),
        store: store.clone(),
        lineage: LineageTables::of(&pipeline),
        pipeline,
        graph,
        name: config.display().to_string(),
    });
    let addr = SocketAddr::new(bind, port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot serve on {addr}: {e} (is the port taken? try --port)");
            return Exit::Service;
        }
    };
    let stop = crate::schedule::stop_on_signals();
    let schedule = run.every.as_deref().filter(|e| !e.is_empty()).map(|_| {
        let (config, run, stop) = (config.to_path_buf(), run.clone(), stop.clone());
        tokio::spawn(async move { super::run::run_with(&config, &run, &stop).await })
    });
    let served = etl_web::serve(listener, site, stop.clone()).await;
    let scheduled = match schedule {
        // The server stops when asked to; so does the schedule, after its batches in flight.
        Some(task) => task.await.unwrap_or(Exit::StepFailed),
        None => Exit::Ok,
    };
    match served {
        Ok(()) => scheduled,
        Err(e) => {
            eprintln!("error: serving on {addr} failed: {e}");
            Exit::Service
        }
    }
}
