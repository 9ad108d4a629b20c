//! `etl run` (once, or `--every` interval) and `etl plan`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use etl_core::history::{Invocation, DEFAULT_RETENTION};
use etl_core::report::RunReport;
use etl_core::runner::Stop;
use etl_core::{RunOptions, Runner};

use crate::exit::Exit;
use crate::progress::Bars;
use crate::{RunArgs, SelectArgs};

pub async fn run(config: &Path, args: &RunArgs) -> Exit {
    let stop = crate::schedule::stop_on_signals();
    run_with(config, args, &stop).await
}

/// `etl run`, once or `--every`, stopped by `stop`.
pub async fn run_with(config: &Path, args: &RunArgs, stop: &Stop) -> Exit {
    match args.every.as_deref().filter(|e| !e.is_empty()) {
        None => run_once(config, args, stop).await,
        Some(every) => match crate::schedule::parse_duration(every) {
            Ok(interval) => run_every(config, args, interval, stop).await,
            Err(e) => {
                eprintln!("error: --every (ETL_EVERY): {e}");
                Exit::Config
            }
        },
    }
}

/// `etl run --every`: runs, waits the interval (more after failures), runs again, until asked
/// to stop; then exits 0. A failing run never ends the loop.
async fn run_every(config: &Path, args: &RunArgs, interval: Duration, stop: &Stop) -> Exit {
    let mut failures = 0u32;
    loop {
        let exit = run_once(config, args, stop).await;
        if stop.requested() {
            tracing::info!("stopped on request; the loop ends");
            return Exit::Ok;
        }
        failures = match exit {
            Exit::Ok | Exit::KeysFailed | Exit::Locked => 0,
            _ => failures.saturating_add(1),
        };
        let wait = crate::schedule::next_wait(interval, failures, crate::schedule::jitter());
        tracing::info!(
            wait_s = wait.as_secs(),
            failures_in_a_row = failures,
            "next run after the wait"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait() => {
                tracing::info!("stopped on request while waiting; the loop ends");
                return Exit::Ok;
            }
        }
    }
}

/// One run: the configuration read again, the run recorded in the history.
async fn run_once(config: &Path, args: &RunArgs, stop: &Stop) -> Exit {
    let (pipeline, _) = match super::load_selected(config, &args.select, true) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let retention = match history_retention() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: ETL_HISTORY_RETENTION: {e}");
            return Exit::Config;
        }
    };
    let lease = match super::worker::lease_timeout() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let store = match super::open_store(&pipeline, true).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let misfits = super::role_column_problems(&pipeline, &store).await;
    if !misfits.is_empty() {
        for m in misfits {
            eprintln!("error: {m}");
        }
        return Exit::Config;
    }
    let invocation = invocation(retention);
    let local = args.workers.map(usize::from);
    let queue = if super::worker::share_batches(&store, lease, local).await {
        Some(super::worker::queue_options(
            &store,
            &invocation,
            lease,
            local.unwrap_or(1),
        ))
    } else {
        None
    };
    let mut runner = Runner::new(store, Arc::new(pipeline));
    if std::io::stderr().is_terminal() {
        runner = runner.with_progress(Arc::new(Bars::default()));
    }
    let opts = RunOptions {
        selection: args.select.selection(),
        full_refresh: args.full_refresh,
        allow_mass_delete: args.allow_mass_delete,
        wait_for_locks: args.wait,
        stop: stop.clone(),
        invocation,
        queue,
        ..RunOptions::default()
    };
    let report = match runner.run(&opts).await {
        Ok(r) => r,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Exit::Config;
        }
    };
    println!("{report}");
    exit_of(&report)
}

/// Who runs this: the command line (arguments only: no environment, so no secret), the host,
/// the process, and the worker's name.
pub fn invocation(retention: Duration) -> Invocation {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let pid = std::process::id();
    let worker = std::env::var("ETL_WORKER_NAME")
        .ok()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| format!("{host}:{pid}"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    Invocation {
        command: format!("etl {}", args.join(" ")),
        host,
        pid,
        worker,
        retention,
    }
}

/// `ETL_HISTORY_RETENTION` (e.g. `30d`), default 90 days.
fn history_retention() -> Result<Duration, String> {
    match std::env::var("ETL_HISTORY_RETENTION") {
        Ok(v) if !v.is_empty() => crate::schedule::parse_duration(&v),
        _ => Ok(DEFAULT_RETENTION),
    }
}

pub fn exit_of(report: &RunReport) -> Exit {
    if report.interrupted() {
        Exit::Interrupted
    } else if report.locked() {
        Exit::Locked
    } else if report.step_failed() {
        Exit::StepFailed
    } else if report.keys_failed() {
        Exit::KeysFailed
    } else {
        Exit::Ok
    }
}

/// Where a step writes: its output tables, or what a sink holds outside.
fn targets(step: &etl_core::StepDef) -> Vec<String> {
    match &step.implementation {
        etl_core::StepImpl::Extract(_) => Vec::new(),
        etl_core::StepImpl::Transform(_) if !step.outputs.is_empty() => step
            .outputs
            .iter()
            .map(|t| format!("table `{t}`"))
            .collect(),
        etl_core::StepImpl::Transform(t) => vec![t.outside_target()],
    }
}

pub async fn plan(config: &Path, select: &SelectArgs) -> Exit {
    let (pipeline, _) = match super::load_selected(config, select, true) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let store = match super::open_store(&pipeline, true).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let runner = Runner::new(store, Arc::new(pipeline));
    let opts = RunOptions {
        selection: select.selection(),
        ..RunOptions::default()
    };
    let report = match runner.plan(&opts).await {
        Ok(r) => r,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Exit::Config;
        }
    };
    println!(
        "{:<24} {:<9} {:>8} {:>8} {:>8} {:>8}",
        "step", "kind", "new", "changed", "deleted", "failed"
    );
    for s in &report.steps {
        match (&s.plan, &s.status) {
            (Some(p), _) => {
                println!(
                    "{:<24} {:<9} {:>8} {:>8} {:>8} {:>8}{}",
                    s.step,
                    s.kind.as_str(),
                    p.new,
                    p.changed,
                    p.deleted,
                    p.failed_due,
                    if p.all_keys {
                        "  (configuration or code changed: every key, none deleted for it)"
                    } else {
                        ""
                    }
                );
                if let Some(step) = runner.pipeline().step(&s.step) {
                    for target in targets(step) {
                        println!(
                            "    {target}: rows of up to {} keys written, of {} keys removed",
                            p.new + p.changed + p.failed_due,
                            p.deleted
                        );
                    }
                }
                let c = |name: &str| s.counters.get(name).copied();
                if c(etl_core::runner::PLAN_PRODUCES_NOTHING).is_some() {
                    println!(
                        "    produces nothing from these keys (its side inputs say so): a run settles them unread, or only deletes what they wrote"
                    );
                }
                if let Some(texts) = c("texts_to_embed") {
                    println!(
                        "    texts to embed: {texts}, about {} tokens ({} more already in the embedding cache){}",
                        c("tokens_to_embed").unwrap_or(0),
                        c("texts_in_cache").unwrap_or(0),
                        if c("estimate_keys_capped").is_some() {
                            "; at least: only the first keys were looked at"
                        } else {
                            ""
                        }
                    );
                }
            }
            (None, status) => println!("{:<24} {:<9} {status:?}", s.step, s.kind.as_str()),
        }
    }
    println!("(transforms count the changes already stored; a run also picks up what its extracts bring)");
    if report.step_failed() {
        Exit::StepFailed
    } else {
        Exit::Ok
    }
}
