//! `etl migrate` and `etl check`.

use std::path::Path;

use etl_core::StepImpl;
use etl_postgres::vector_index::IndexSpec;

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
    let spec = match IndexSpec::from_settings(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    match etl_postgres::migrate(&url, embeddings_dim).await {
        Ok(applied) if applied.is_empty() => println!("migrations: up to date"),
        Ok(applied) => println!(
            "migrations: applied {} (embedding columns vector({embeddings_dim}))",
            applied
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Service;
        }
    }
    match vector_indexes(&url, embeddings_dim, &spec).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Service
        }
    }
}

/// The embedding tables' dimension and vector indexes, as the settings say.
async fn vector_indexes(url: &str, dim: u32, spec: &IndexSpec) -> Result<(), String> {
    use etl_postgres::vector_index::{self, Applied};
    let pool = etl_postgres::namespace::pool_options()
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to Postgres (check DB_CONN_URI): {e}"))?;
    for mut t in vector_index::vector_tables(&pool)
        .await
        .map_err(|e| e.to_string())?
    {
        if t.dim != dim as i32 {
            let dropped = vector_index::change_dimension(&pool, &t, dim)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}: {} vector({}) is now vector({dim}); {dropped} vectors dropped, the next `etl run` embeds again (texts already embedded at this dimension come from the cache)",
                t.table, t.column, t.dim
            );
            t.dim = dim as i32;
        }
        let what = match vector_index::apply(&pool, &t, spec)
            .await
            .map_err(|e| e.to_string())?
        {
            Applied::Unchanged => format!("{} (in place)", spec.describe()),
            Applied::Made(name) => format!("{} (made now: {name})", spec.describe()),
            Applied::Dropped(names) => format!("none (dropped {})", names.join(", ")),
            Applied::Deferred => "left as it is: a bulk load set its indexes aside; the embedding step's next run makes them again, then run `etl migrate` again".to_string(),
        };
        println!("{}: vector index {what}", t.table);
    }
    pool.close().await;
    Ok(())
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
