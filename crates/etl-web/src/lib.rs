//! `etl-web`: what `etl serve` serves, read-only. Server-rendered HTML (maud), no JavaScript.
//!
//! | module | owns |
//! | --- | --- |
//! | this one | the routes, the site's state, its errors, and serving until asked to stop |
//! | [`pages`] | the run list (`/`) and a run's page (`/runs/{id}`) |
//! | [`lineage`] | what the pipeline holds of a node id, and where each row came from |
//! | [`lineage_page`] | `/lineage?node=<id>`: that, as a page |
//! | [`metrics`] | `/metrics`: Prometheus text exposition, computed from the database |
//! | [`layout`] | the page frame and the few styles every page shares |
//!
//! `/healthz` answers 200 when the database answers, 503 otherwise (for probes).

pub mod layout;
pub mod lineage;
pub mod lineage_page;
pub mod metrics;
pub mod pages;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sqlx::PgPool;

use etl_core::runner::Stop;
use etl_core::store::{Store, StoreError};
use etl_core::Pipeline;

pub use lineage::{GraphProbe, LineageTables};

/// What every page reads from.
pub struct Site {
    pub pool: PgPool,
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    pub lineage: LineageTables,
    pub graph: Option<Arc<dyn GraphProbe>>,
    /// Shown in every page's title (the pipeline's name).
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("database error while {what}: {source}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rendering the page: {0}")]
    Render(String),
}

impl WebError {
    pub fn db(what: String, source: sqlx::Error) -> Self {
        WebError::Database { what, source }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "a page failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            layout::page(
                "error",
                maud::html! {
                    h1 { "Something failed" }
                    p { (self.to_string()) }
                    p { "Check that Postgres is up and that " code { "etl migrate" } " has run." }
                },
            ),
        )
            .into_response()
    }
}

/// The routes of `etl serve`.
pub fn router(site: Arc<Site>) -> Router {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{id}", get(run))
        .route("/lineage", get(lineage))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(site)
}

/// Serves the site on `listener` until `stop` is asked.
pub async fn serve(
    listener: tokio::net::TcpListener,
    site: Arc<Site>,
    stop: Stop,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving the run history, lineage and /metrics");
    axum::serve(listener, router(site))
        .with_graceful_shutdown(async move { stop.wait().await })
        .await
}

async fn runs(State(site): State<Arc<Site>>) -> Result<maud::Markup, WebError> {
    pages::runs(&site).await
}

async fn run(State(site): State<Arc<Site>>, Path(id): Path<i64>) -> Result<Response, WebError> {
    match pages::run(&site, id).await? {
        Some(page) => Ok(page.into_response()),
        None => Ok((StatusCode::NOT_FOUND, pages::no_such_run(id)).into_response()),
    }
}

#[derive(Deserialize)]
struct LineageQuery {
    #[serde(default)]
    node: String,
}

async fn lineage(
    State(site): State<Arc<Site>>,
    Query(q): Query<LineageQuery>,
) -> Result<maud::Markup, WebError> {
    lineage_page::page(&site, q.node.trim()).await
}

async fn metrics(State(site): State<Arc<Site>>) -> Result<Response, WebError> {
    let text = metrics::render(&site.pool, site.store.as_ref(), &site.pipeline).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn healthz(State(site): State<Arc<Site>>) -> Response {
    match sqlx::query("SELECT 1").execute(&site.pool).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database does not answer: {e}\n"),
        )
            .into_response(),
    }
}
