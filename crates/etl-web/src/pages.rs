//! The run list (`/`) and a run's page (`/runs/{id}`): outcome, duration and what each step
//! did, the failures a run recorded, and the keys failing now with their attempts.

use std::collections::BTreeMap;

use maud::{html, Markup};

use etl_postgres::history::summary::{bytes, millis, RunSummary};
use etl_postgres::history::{self, StepRow};

use crate::layout::{outcome, page};
use crate::{Site, WebError};

/// How many runs the list shows.
const RECENT: i64 = 50;

pub async fn runs(site: &Site) -> Result<Markup, WebError> {
    let runs = history::recent_runs(&site.pool, RECENT).await?;
    let ids: Vec<i64> = runs.iter().map(|r| r.run_id).collect();
    let steps = history::steps_of(&site.pool, &ids).await?;
    let mut by_run: BTreeMap<i64, Vec<&StepRow>> = BTreeMap::new();
    for s in &steps {
        by_run.entry(s.run_id).or_default().push(s);
    }
    let empty = Vec::new();
    Ok(page(
        "runs",
        html! {
            h1 { "Recent runs of " (site.name) }
            @if runs.is_empty() {
                p { "No run recorded yet: " code { "etl run" } " records each run here." }
            } @else {
                table #runs {
                    thead { tr {
                        th { "run" } th { "started (UTC)" } th.n { "took" } th { "outcome" }
                        th { "worker" } th { "what it did" }
                    } }
                    tbody {
                        @for r in &runs {
                            @let steps = by_run.get(&r.run_id).unwrap_or(&empty);
                            tr {
                                td { a href={"/runs/" (r.run_id)} { "run " (r.run_id) } }
                                td { (r.started_at) }
                                td.n { (millis(r.elapsed_ms)) }
                                td { (outcome(r.outcome.as_deref())) }
                                td { (r.worker) }
                                td { (RunSummary::of(steps).line()) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub fn no_such_run(id: i64) -> Markup {
    page(
        "no such run",
        html! {
            h1 { "No run " (id) }
            p { "The history does not hold it: it never was, or it is older than the retention." }
            p { a href="/" { "The recent runs" } }
        },
    )
}

pub async fn run(site: &Site, id: i64) -> Result<Option<Markup>, WebError> {
    let Some(r) = history::run(&site.pool, id).await? else {
        return Ok(None);
    };
    let steps = history::steps_of(&site.pool, &[id]).await?;
    let refs: Vec<&StepRow> = steps.iter().collect();
    let summary = RunSummary::of(&refs);
    let mut failing_now = Vec::new();
    for s in &steps {
        if let Some(def) = site.pipeline.step(&s.step) {
            if s.keys_failed > 0 {
                let status = site.store.status(def).await?;
                failing_now.push((s.step.clone(), status.latest_errors));
            }
        }
    }
    Ok(Some(page(
        &format!("run {id}"),
        html! {
            h1 { "Run " (id) " " (outcome(r.outcome.as_deref())) }
            table #run {
                tr { th { "command" } td { code { (r.command) } } }
                tr { th { "started (UTC)" } td { (r.started_at) } }
                tr { th { "finished (UTC)" } td { (r.finished_at.as_deref().unwrap_or("-")) } }
                tr { th { "took" } td { (millis(r.elapsed_ms)) } }
                tr { th { "host" } td { (r.host) " (pid " (r.pid) ")" } }
                tr { th { "worker" } td { (r.worker) } }
                tr { th { "what it did" } td #summary { (summary.line()) } }
            }
            h2 { "Steps" }
            table #steps {
                thead { tr {
                    th { "step" } th { "kind" } th.n { "took" } th { "outcome" }
                    th.n { "keys" } th.n { "failed" } th { "rows (+new ~changed -deleted)" }
                    th { "counters" }
                } }
                tbody {
                    @for s in &steps {
                        tr.step data-step=(s.step) {
                            td { (s.step) }
                            td { (s.kind) }
                            td.n { (millis(Some(s.elapsed_ms))) }
                            td {
                                (outcome(Some(&s.outcome)))
                                @if let Some(reason) = &s.reason { br; span.muted { (reason) } }
                            }
                            td.n { (s.keys_processed) }
                            td.n { (s.keys_failed) }
                            td { (tables(s)) }
                            td { (counters(s)) }
                        }
                    }
                }
            }
            @let recorded: Vec<(&str, &str)> = steps.iter().flat_map(|s| {
                s.failures.as_array().into_iter().flatten()
                    .filter_map(|f| f.as_str()).map(move |f| (s.step.as_str(), f))
            }).collect();
            @if !recorded.is_empty() {
                h2 { "Keys that failed in this run" }
                table #failures {
                    thead { tr { th { "step" } th { "key: error" } } }
                    tbody { @for (step, f) in &recorded { tr { td { (step) } td { code { (f) } } } } }
                }
            }
            @if failing_now.iter().any(|(_, e)| !e.is_empty()) {
                h2 { "Keys failing now" }
                p.muted { "Their last attempt failed; the next run tries them again." }
                table #failing {
                    thead { tr { th { "step" } th { "key" } th.n { "attempts" } th { "error" } } }
                    tbody {
                        @for (step, errors) in &failing_now {
                            @for (key, attempts, error) in errors {
                                tr { td { (step) } td { code { (key) } } td.n { (attempts) } td { (error) } }
                            }
                        }
                    }
                }
            }
        },
    )))
}

fn tables(s: &StepRow) -> Markup {
    html! {
        @if let Some(tables) = s.tables.as_object() {
            @for (t, c) in tables {
                @let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                div { code { (t) } " +" (n("inserted")) " ~" (n("updated")) " -" (n("deleted")) }
            }
        }
    }
}

fn counters(s: &StepRow) -> Markup {
    html! {
        @if let Some(counters) = s.counters.as_object() {
            @for (name, v) in counters {
                @let n = v.as_u64().unwrap_or(0);
                div {
                    (name) ": "
                    @if name.ends_with("_bytes") { (bytes(n)) } @else { (n) }
                }
            }
        }
    }
}
