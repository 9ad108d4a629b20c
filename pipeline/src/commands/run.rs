//! `etl run` and `etl plan`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use etl_core::report::RunReport;
use etl_core::{RunOptions, Runner};
use tracing::Instrument;

use crate::exit::Exit;
use crate::progress::Bars;
use crate::{RunArgs, SelectArgs};

pub async fn run(config: &Path, args: &RunArgs) -> Exit {
    let (pipeline, _) = match super::load_selected(config, &args.select, true) {
        Ok(p) => p,
        Err(exit) => return exit,
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
    let mut runner = Runner::new(store, Arc::new(pipeline));
    if std::io::stderr().is_terminal() {
        runner = runner.with_progress(Arc::new(Bars::default()));
    }
    let opts = RunOptions {
        selection: args.select.selection(),
        full_refresh: args.full_refresh,
        allow_mass_delete: args.allow_mass_delete,
        wait_for_locks: args.wait,
        ..RunOptions::default()
    };
    let report = match runner
        .run(&opts)
        .instrument(tracing::info_span!("run", id = %run_id()))
        .await
    {
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

/// A short id for the run, to tie its log lines together.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}", (nanos as u64) ^ u64::from(std::process::id()))
}

pub fn exit_of(report: &RunReport) -> Exit {
    if report.locked() {
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
