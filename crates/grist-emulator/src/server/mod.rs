//! The emulator's HTTP server: [`Emulator`] (docs + API key, ready to serve),
//! [`RunningEmulator`] (the background server task) and the router that maps each endpoint to
//! its handler.
//!
//! Submodules:
//! * `gate` – the middleware every request passes: request log, injected faults, API-key check.
//! * `answers` – building responses, and Grist's `{"error": ...}` answers.
//! * `request` – reading query strings and JSON bodies.
//! * `doc_access` – reading a doc in place, or editing a copy that replaces it on success.
//! * `workspaces` – the workspace and doc endpoints (list, get, create, delete).
//! * `reads` – `GET` of tables, columns and records (with `filter`, `sort`, `limit`).
//! * `csv_download` – `GET /download/csv`.
//! * `changes` – the change feed: `GET /states` and `GET /compare`; `narrowing` – which rows of
//!   a changed table a comparison computes.
//! * `writes` – the endpoints that change tables, columns and records, and `/apply`.

mod answers;
mod changes;
mod csv_download;
mod doc_access;
mod gate;
mod narrowing;
mod reads;
mod request;
mod workspaces;
mod writes;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::docs::Docs;
use crate::error::EmulatorError;
use crate::load::load_dirs;
use crate::model::Doc;

use answers::not_found;
use changes::{get_compare, get_states};
use csv_download::get_csv;
use gate::gate;
use reads::{get_columns, get_records, get_tables};
use workspaces::{
    create_doc, delete_doc, get_doc, get_workspace, list_workspaces, list_workspaces_plain,
};
use writes::{
    apply, delete_column, delete_records, patch_columns, patch_records, post_columns, post_records,
    post_tables,
};

/// Seeding big tables posts big bodies.
const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

/// A fake Grist: docs in memory, an optional API key, ready to serve.
#[derive(Clone, Debug, Default)]
pub struct Emulator {
    docs: Docs,
}

impl Emulator {
    /// An emulator with no docs (create some through the API or the [`Docs`] handle).
    pub fn new() -> Emulator {
        Emulator::default()
    }

    /// An emulator serving these docs.
    pub fn with_docs(docs: Vec<Doc>) -> Emulator {
        Emulator {
            docs: Docs::new(docs),
        }
    }

    /// Loads doc folders (see the crate docs for the format); errors name the file.
    pub fn from_dirs<P: AsRef<Path>>(dirs: &[P]) -> Result<Emulator, EmulatorError> {
        Ok(Emulator::with_docs(load_dirs(dirs)?))
    }

    /// Requires `Authorization: Bearer <key>` on every request (`None`: no auth at all).
    pub fn with_api_key(self, key: Option<&str>) -> Emulator {
        self.docs.set_api_key(key.map(str::to_string));
        self
    }

    /// The handle on the docs, fault rules and request log, shared with the server.
    pub fn docs(&self) -> Docs {
        self.docs.clone()
    }

    /// The axum router answering the API (for embedding in another server).
    pub fn router(&self) -> Router {
        router(self.docs.clone())
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task.
    pub async fn serve(self, addr: SocketAddr) -> Result<RunningEmulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(self.docs.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "grist emulator stopped");
            }
        });
        tracing::info!(addr = %local, "grist emulator listening");
        Ok(RunningEmulator {
            addr: local,
            docs: self.docs,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A serving emulator; stops on [`RunningEmulator::shutdown`] or when dropped.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    docs: Docs,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (the loopback address when bound to all interfaces).
    pub fn url(&self) -> String {
        let ip = self.addr.ip();
        let host = if ip.is_unspecified() {
            match ip {
                std::net::IpAddr::V4(_) => "127.0.0.1".to_string(),
                std::net::IpAddr::V6(_) => "[::1]".to_string(),
            }
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("http://{host}:{}", self.addr.port())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handle on the served docs.
    pub fn docs(&self) -> &Docs {
        &self.docs
    }

    /// Stops accepting requests, lets the ones in flight finish (at most 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Serves until the server task ends (it ends only on shutdown or failure).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn router(docs: Docs) -> Router {
    Router::new()
        .route("/api/orgs/{org}/workspaces", get(list_workspaces))
        .route("/api/workspaces", get(list_workspaces_plain))
        .route("/api/workspaces/{ws}", get(get_workspace))
        .route("/api/workspaces/{ws}/docs", post(create_doc))
        .route("/api/docs/{doc}", get(get_doc).delete(delete_doc))
        .route("/api/docs/{doc}/tables", get(get_tables).post(post_tables))
        .route(
            "/api/docs/{doc}/tables/{table}/columns",
            get(get_columns).post(post_columns).patch(patch_columns),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/columns/{col}",
            delete(delete_column),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/records",
            get(get_records).post(post_records).patch(patch_records),
        )
        .route(
            "/api/docs/{doc}/tables/{table}/records/delete",
            post(delete_records),
        )
        .route("/api/docs/{doc}/download/csv", get(get_csv))
        .route("/api/docs/{doc}/states", get(get_states))
        .route("/api/docs/{doc}/compare", get(get_compare))
        .route("/api/docs/{doc}/apply", post(apply))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(docs.clone(), gate))
        .with_state(docs)
}
