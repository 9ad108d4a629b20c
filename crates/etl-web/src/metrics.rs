//! `/metrics`: Prometheus text exposition, computed at each scrape from the database, so that
//! every process that runs the pipeline (a cron `etl run`, `etl run --every`, workers) counts,
//! not only this one. Gauges are the state now (keys pending and failed, the oldest pending
//! change's age, the last success); counters and histograms sum the run history, which keeps
//! `ETL_HISTORY_RETENTION` of it (runs pruned past it make a counter go down: Prometheus
//! takes that as a reset).

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use std::sync::atomic::AtomicU64;

use etl_core::store::Store;
use etl_core::{Pipeline, StepKind};

use crate::WebError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepL {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableL {
    step: String,
    table: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpL {
    step: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassL {
    step: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeL {
    outcome: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// One step of a recorded run, as the metrics read it.
#[derive(sqlx::FromRow)]
struct StepRun {
    step: String,
    outcome: String,
    error_class: Option<String>,
    elapsed_ms: i64,
    keys_processed: i64,
    keys_failed: i64,
    started: bool,
    finished: Option<f64>,
}

/// Seconds: from a no-op (tens of ms) to a full build of a large graph (an hour).
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

fn durations() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

/// The counters the history sums, by the name a step reports them under.
const COUNTERS: &[(&str, &str, &str)] = &[
    (
        "etl_embedding_texts",
        "texts_embedded",
        "Texts sent to the embedding model",
    ),
    (
        "etl_embedding_tokens",
        "tokens_embedded",
        "Tokens sent to the embedding model (as estimated)",
    ),
    (
        "etl_embedding_cache_hits",
        "embedding_cache_hits",
        "Texts whose vector came from the cache",
    ),
    (
        "etl_embedding_requests",
        "embedding_requests",
        "Requests made to the embedding model",
    ),
    (
        "etl_grist_requests",
        "grist_requests",
        "Requests made to Grist",
    ),
    ("etl_grist_bytes", "grist_bytes", "Bytes read from Grist"),
];

/// The whole exposition, as text.
pub async fn render(
    pool: &PgPool,
    store: &dyn Store,
    pipeline: &Pipeline,
) -> Result<String, WebError> {
    // A named pipeline's series carry its name, so one Prometheus tells pipelines apart; the
    // default pipeline's stay as they always were.
    let mut registry = match etl_postgres::namespace::current().pipeline() {
        None => Registry::default(),
        Some(name) => Registry::with_labels(std::iter::once((
            std::borrow::Cow::Borrowed("pipeline"),
            std::borrow::Cow::Owned(name.to_string()),
        ))),
    };
    state_now(&mut registry, pool, store, pipeline).await?;
    from_history(&mut registry, pool).await?;
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|e| WebError::Render(e.to_string()))?;
    Ok(out)
}

/// Gauges: what is pending and failed now, and how old the oldest pending change is.
async fn state_now(
    registry: &mut Registry,
    pool: &PgPool,
    store: &dyn Store,
    pipeline: &Pipeline,
) -> Result<(), WebError> {
    let pending = Family::<StepL, FGauge>::default();
    let failed = Family::<StepL, FGauge>::default();
    let oldest = Family::<StepL, FGauge>::default();
    for step in pipeline
        .steps
        .iter()
        .filter(|s| s.kind != StepKind::Extract)
    {
        let l = StepL {
            step: step.name.clone(),
        };
        let status = store.status(step).await.map_err(WebError::Store)?;
        let plan = store.plan(step).await.map_err(WebError::Store)?;
        pending
            .get_or_create(&l)
            .set(plan.total().max(status.keys_pending) as f64);
        failed.get_or_create(&l).set(status.keys_failed as f64);
        let age = etl_postgres::pending::oldest_pending_age(pool, step)
            .await
            .map_err(WebError::Store)?;
        oldest.get_or_create(&l).set(age.unwrap_or(0.0));
    }
    registry.register(
        "etl_keys_pending",
        "Keys the next run of the step would process (changed inputs, and failed keys due again)",
        pending,
    );
    registry.register(
        "etl_keys_failed",
        "Keys whose last attempt failed; retried by the next run",
        failed,
    );
    registry.register(
        "etl_oldest_pending_age_seconds",
        "How long the step's oldest unprocessed change has waited (0: none)",
        oldest,
    );
    Ok(())
}

/// Counters, histograms and last-success times, from the run history.
async fn from_history(registry: &mut Registry, pool: &PgPool) -> Result<(), WebError> {
    let db = |what: &'static str| move |e| WebError::db(what.to_string(), e);

    let last_run = FGauge::default();
    let runs = Family::<OutcomeL, Counter>::default();
    let run_durations = durations();
    let rows: Vec<(Option<String>, Option<f64>, Option<f64>)> = sqlx::query_as(&format!(
        "SELECT outcome, extract(epoch FROM finished_at - started_at)::float8,
                extract(epoch FROM finished_at)::float8
           FROM {book}.runs WHERE finished_at IS NOT NULL",
        book = etl_postgres::namespace::book_schema()
    ))
    .fetch_all(pool)
    .await
    .map_err(db("reading etl.runs for the metrics"))?;
    let mut last_success = 0.0f64;
    for (outcome, took, finished) in rows {
        let outcome = outcome.unwrap_or_default();
        runs.get_or_create(&OutcomeL {
            outcome: outcome.clone(),
        })
        .inc();
        if let Some(t) = took {
            run_durations.observe(t);
        }
        if outcome == "succeeded" {
            last_success = last_success.max(finished.unwrap_or_default());
        }
    }
    last_run.set(last_success);
    registry.register("etl_runs", "Runs recorded, by outcome", runs);
    registry.register(
        "etl_run_duration_seconds",
        "How long runs took",
        run_durations,
    );
    registry.register(
        "etl_last_successful_run_timestamp_seconds",
        "When the last run that succeeded in full ended (Unix time; 0: never)",
        last_run,
    );

    let step_durations = Family::<StepL, Histogram>::new_with_constructor(durations);
    let step_success = Family::<StepL, FGauge>::default();
    let keys = Family::<StepL, Counter>::default();
    let errors = Family::<ClassL, Counter>::default();
    let rows: Vec<StepRun> = sqlx::query_as(
        &format!("SELECT step, outcome, error_class, elapsed_ms, keys_processed, keys_failed,
                started_at IS NOT NULL AS started, extract(epoch FROM finished_at)::float8 AS finished
           FROM {book}.run_steps", book = etl_postgres::namespace::book_schema()),
    )
    .fetch_all(pool)
    .await
    .map_err(db("reading etl.run_steps for the metrics"))?;
    for StepRun {
        step,
        outcome,
        error_class: class,
        elapsed_ms,
        keys_processed: processed,
        keys_failed,
        started,
        finished,
    } in rows
    {
        let l = StepL { step: step.clone() };
        if started {
            step_durations
                .get_or_create(&l)
                .observe(elapsed_ms as f64 / 1000.0);
        }
        keys.get_or_create(&l).inc_by(processed.max(0) as u64);
        if outcome == "succeeded" || outcome == "keys_failed" {
            let g = step_success.get_or_create(&l);
            g.set(g.get().max(finished.unwrap_or_default()));
        }
        if let Some(class) = class {
            errors
                .get_or_create(&ClassL {
                    step: step.clone(),
                    class,
                })
                .inc();
        }
        if keys_failed > 0 {
            errors
                .get_or_create(&ClassL {
                    step,
                    class: "data".into(),
                })
                .inc_by(keys_failed as u64);
        }
    }
    registry.register(
        "etl_step_duration_seconds",
        "How long each step's runs took",
        step_durations,
    );
    registry.register(
        "etl_step_last_success_timestamp_seconds",
        "When the step last ran to its end (Unix time)",
        step_success,
    );
    registry.register("etl_keys_processed", "Keys the step processed", keys);
    registry.register(
        "etl_errors",
        "Errors by class: a step stopped (fatal, transient) or keys failed (data)",
        errors,
    );

    let written = Family::<TableL, Counter>::default();
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(&format!(
        "SELECT s.step, t.key, c.key, sum(c.value::bigint)::bigint
           FROM {book}.run_steps AS s, jsonb_each(s.tables) AS t, jsonb_each_text(t.value) AS c
          WHERE c.key IN ('inserted', 'updated', 'deleted')
          GROUP BY 1, 2, 3",
        book = etl_postgres::namespace::book_schema()
    ))
    .fetch_all(pool)
    .await
    .map_err(db("reading etl.run_steps for the metrics"))?;
    for (step, table, op, n) in rows {
        written
            .get_or_create(&TableL { step, table, op })
            .inc_by(n.max(0) as u64);
    }
    registry.register(
        "etl_rows_written",
        "Rows the step inserted, updated or deleted, per table (op)",
        written,
    );

    let sums: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT s.step, c.key, sum(c.value::bigint)::bigint
           FROM {book}.run_steps AS s, jsonb_each_text(s.counters) AS c
          WHERE c.value ~ '^[0-9]+$'
          GROUP BY 1, 2",
        book = etl_postgres::namespace::book_schema()
    ))
    .fetch_all(pool)
    .await
    .map_err(db("reading etl.run_steps for the metrics"))?;
    let mut by_counter: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for (step, counter, n) in &sums {
        by_counter
            .entry(counter.as_str())
            .or_default()
            .push((step.as_str(), (*n).max(0) as u64));
    }
    for (metric, counter, help) in COUNTERS {
        let family = Family::<StepL, Counter>::default();
        for (step, n) in by_counter.get(counter).into_iter().flatten() {
            family
                .get_or_create(&StepL {
                    step: step.to_string(),
                })
                .inc_by(*n);
        }
        registry.register(*metric, *help, family);
    }
    let graph = Family::<OpL, Counter>::default();
    for (counter, op) in [
        ("graph_nodes_written", "nodes_written"),
        ("graph_nodes_deleted", "nodes_deleted"),
        ("graph_edges_written", "edges_written"),
        ("graph_edges_deleted", "edges_deleted"),
    ] {
        for (step, n) in by_counter.get(counter).into_iter().flatten() {
            graph
                .get_or_create(&OpL {
                    step: step.to_string(),
                    op: op.into(),
                })
                .inc_by(*n);
        }
    }
    registry.register(
        "etl_graph_writes",
        "Nodes and edges written to or removed from the graph (op)",
        graph,
    );
    Ok(())
}
