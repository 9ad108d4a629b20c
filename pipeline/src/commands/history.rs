//! `etl history`: the recent runs (one line each), or one run's steps (`etl history RUN`,
//! `--last`); `--json` for machines. Also the per-run summary the web page shows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use etl_postgres::history::summary::{millis, RunSummary};
use etl_postgres::history::{self, RunRow, StepRow};

use crate::exit::Exit;

#[derive(Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    run: &'a RunRow,
    summary: RunSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<&'a StepRow>>,
}

pub async fn history(config: &Path, run: Option<i64>, last: bool, limit: i64, json: bool) -> Exit {
    let (_, store) = match super::load_and_open(config, false).await {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let pool = store.pool();
    let one = match (run, last) {
        (Some(id), _) => Some(id),
        (None, true) => match history::recent_runs(pool, 1).await {
            Ok(runs) => match runs.first() {
                Some(r) => Some(r.run_id),
                None => {
                    eprintln!("no run recorded yet");
                    return Exit::Ok;
                }
            },
            Err(e) => return service(e),
        },
        (None, false) => None,
    };
    let runs = match one {
        Some(id) => match history::run(pool, id).await {
            Ok(Some(r)) => vec![r],
            Ok(None) => {
                eprintln!("error: no run {id} in the history (see `etl history` for the recent ones; runs past the retention are pruned)");
                return Exit::Config;
            }
            Err(e) => return service(e),
        },
        None => match history::recent_runs(pool, limit).await {
            Ok(r) => r,
            Err(e) => return service(e),
        },
    };
    let ids: Vec<i64> = runs.iter().map(|r| r.run_id).collect();
    let steps = match history::steps_of(pool, &ids).await {
        Ok(s) => s,
        Err(e) => return service(e),
    };
    let mut by_run: BTreeMap<i64, Vec<&StepRow>> = BTreeMap::new();
    for s in &steps {
        by_run.entry(s.run_id).or_default().push(s);
    }
    let empty = Vec::new();
    if json {
        let out: Vec<RunJson> = runs
            .iter()
            .map(|r| {
                let steps = by_run.get(&r.run_id).unwrap_or(&empty);
                RunJson {
                    run: r,
                    summary: RunSummary::of(steps),
                    steps: one.map(|_| steps.clone()),
                }
            })
            .collect();
        let text = match one {
            Some(_) => serde_json::to_string_pretty(&out[0]),
            None => serde_json::to_string_pretty(&out),
        };
        println!("{}", text.unwrap_or_default());
        return Exit::Ok;
    }
    match one {
        None => print_runs(&runs, &by_run),
        Some(id) => {
            let workers = match etl_postgres::queue::batches_by_worker(pool, id).await {
                Ok(w) => w,
                Err(e) => return service(e),
            };
            print_run(
                &runs[0],
                by_run.get(&runs[0].run_id).unwrap_or(&empty),
                &workers,
            )
        }
    }
    Exit::Ok
}

fn service(e: etl_core::store::StoreError) -> Exit {
    eprintln!("error: {e} (has `etl migrate` been run?)");
    Exit::Service
}

fn outcome(run: &RunRow) -> &str {
    run.outcome.as_deref().unwrap_or("running or died")
}

fn print_runs(runs: &[RunRow], by_run: &BTreeMap<i64, Vec<&StepRow>>) {
    if runs.is_empty() {
        println!("no run recorded yet");
        return;
    }
    println!(
        "{:>6}  {:<24} {:>9}  {:<16} {:<20} what it did",
        "run", "started (UTC)", "took", "outcome", "worker"
    );
    let empty = Vec::new();
    for r in runs {
        let summary = RunSummary::of(by_run.get(&r.run_id).unwrap_or(&empty));
        println!(
            "{:>6}  {:<24} {:>9}  {:<16} {:<20} {}",
            r.run_id,
            r.started_at,
            millis(r.elapsed_ms),
            outcome(r),
            r.worker,
            summary.line()
        );
    }
}

/// One run; `workers`: the batches each worker completed, when the run shared them.
fn print_run(run: &RunRow, steps: &[&StepRow], workers: &[(String, i64)]) {
    println!("run {}: {}", run.run_id, outcome(run));
    println!("  command:  {}", run.command);
    println!(
        "  started:  {}   finished: {}   took {}",
        run.started_at,
        run.finished_at.as_deref().unwrap_or("-"),
        millis(run.elapsed_ms)
    );
    println!("  host:     {} (pid {})", run.host, run.pid);
    println!("  summary:  {}", RunSummary::of(steps).line());
    if workers.is_empty() {
        println!("  worker {}: {} steps", run.worker, steps.len());
    }
    for (w, n) in workers {
        println!("  worker {w}: {n} batches");
    }
    println!();
    println!(
        "  {:<24} {:<9} {:>9} {:<14} {:>8} {:>7}",
        "step", "kind", "took", "outcome", "keys", "failed"
    );
    for s in steps {
        println!(
            "  {:<24} {:<9} {:>9} {:<14} {:>8} {:>7}",
            s.step,
            s.kind,
            millis(Some(s.elapsed_ms)),
            s.outcome,
            s.keys_processed,
            s.keys_failed
        );
        if let Some(reason) = &s.reason {
            println!("      {reason}");
        }
        if let Some(tables) = s.tables.as_object() {
            for (t, c) in tables {
                let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                println!(
                    "      {t:<28} +{} ~{} -{} ={}",
                    n("inserted"),
                    n("updated"),
                    n("deleted"),
                    n("unchanged")
                );
            }
        }
        if let Some(counters) = s.counters.as_object() {
            for (name, v) in counters {
                println!("      {name}: {v}");
            }
        }
        if let Some(failures) = s.failures.as_array() {
            for f in failures {
                println!("      failed: {}", f.as_str().unwrap_or_default());
            }
        }
    }
}
