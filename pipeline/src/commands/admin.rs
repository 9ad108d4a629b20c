//! `etl migrate` and `etl check`.

use std::path::Path;

use etl_core::StepImpl;

use crate::exit::Exit;
use crate::SelectArgs;

pub async fn migrate(config: &Path, embeddings_dim: u32) -> Exit {
    // The configuration may name a database; DB_CONN_URI alone is enough.
    let url = match std::env::var("DB_CONN_URI").ok().filter(|v| !v.is_empty()) {
        Some(u) => Some(u),
        None => crate::load::load(config)
            .ok()
            .and_then(|p| crate::load::database_url(&p)),
    };
    let Some(url) = url else {
        eprintln!("error: no database: set DB_CONN_URI (or [database] url in the configuration)");
        return Exit::Config;
    };
    match etl_postgres::migrate(&url, embeddings_dim).await {
        Ok(applied) if applied.is_empty() => {
            println!("migrations: up to date");
            Exit::Ok
        }
        Ok(applied) => {
            println!(
                "migrations: applied {} (embedding columns vector({embeddings_dim}))",
                applied
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Service
        }
    }
}

pub async fn check(config: &Path) -> Exit {
    let (pipeline, selected) = match super::load_selected(config, &SelectArgs::default(), true) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    println!(
        "configuration: ok ({} tables, {} steps)",
        pipeline.tables.len(),
        selected.len()
    );
    let mut exit = Exit::Ok;
    match super::open_store(&pipeline, false).await {
        Ok(store) => {
            let mut problems = Vec::new();
            for def in pipeline.tables.values() {
                if let Err(e) = etl_postgres::schema::inspect(store.pool(), def).await {
                    problems.push(e.to_string());
                }
            }
            if problems.is_empty() {
                println!("database: ok");
            } else {
                for p in problems {
                    println!("database: {p}");
                }
                exit = Exit::Service;
            }
            let misfits = super::role_column_problems(&pipeline, &store).await;
            for m in &misfits {
                eprintln!("error: {m}");
            }
            if !misfits.is_empty() {
                return Exit::Config;
            }
        }
        Err(e) => return e,
    }
    for step in &pipeline.steps {
        if let Some(why) = &step.skipped {
            println!("step {}: will not run: {why}", step.name);
            continue;
        }
        let result = match &step.implementation {
            StepImpl::Extract(x) => x.check().await,
            StepImpl::Transform(t) => t.check().await,
        };
        match result {
            Ok(()) => println!("step {}: ok", step.name),
            Err(e) => {
                println!("step {}: {}", step.name, e.chain());
                exit = Exit::Service;
                continue;
            }
        }
        if let StepImpl::Extract(x) = &step.implementation {
            match x.problems().await {
                Ok(found) => {
                    for p in found {
                        println!("step {}: warning: {p}", step.name);
                    }
                }
                Err(e) => println!(
                    "step {}: cannot look for mistakes: {}",
                    step.name,
                    e.chain()
                ),
            }
        }
    }
    exit
}
