//! `etl-bench workers`: texts embedded per second by 1, 2 and 4 workers sharing a run (the run
//! itself, plus `etl worker` processes), at size M.
//!
//! The fake embedding server answers each request after 50 ms, and a process keeps at most 4
//! requests in flight (the step's `max_requests_in_flight`) of 16 texts each, so one process
//! is the limit: what more workers buy is what this measures. Each round embeds every node
//! under another model name, so the cache never answers. The embedding table has no vector
//! index (`EMBEDDINGS_INDEX=none`): its build after a bulk load (20 s at 1024 dimensions) would
//! be the same whatever the workers.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::docs::SIZES;
use super::{measure, Services};

pub async fn bench(admin: &str, etl: &Path, repo: &Path, dim: &str) {
    let size = SIZES.iter().find(|s| s.name == "M").expect("size M");
    let services = Services::start(size, admin, etl, dim).await;
    let command = |args: &[&str], model: &str| {
        let mut c = services.command(etl, repo, args);
        c.env("EMBEDDINGS_MODEL", model)
            .env("EMBEDDINGS_MAX_BATCH_SIZE", "16")
            // No vector index: its build after a bulk load is the same whatever the workers.
            .env("EMBEDDINGS_INDEX", "none")
            .env("ETL_LEASE_TIMEOUT", "10s");
        c
    };
    measure(command(&["migrate"], "fake")).await;
    measure(command(
        &[
            "run",
            "--step",
            "grist_data_model",
            "--step",
            "grist_graph",
            "--step",
            "nodes",
        ],
        "fake",
    ))
    .await;
    println!("embedding dimensions: {dim}, no vector index; the fake server: 50 ms a request, 16 texts a request, 4 requests in flight per process");
    println!();
    println!("| workers | wall s | texts embedded | texts/s |");
    println!("| ---: | ---: | ---: | ---: |");
    let pool = sqlx::PgPool::connect(&services.db).await.unwrap();
    for n in [1usize, 2, 4] {
        let model = format!("fake-{n}-workers");
        let mut workers = Vec::new();
        for i in 1..n {
            let mut c = command(&["worker"], &model);
            c.env("ETL_WORKER_NAME", format!("bench-worker-{i}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            workers.push(c.spawn().unwrap());
        }
        loop {
            let live: i64 = sqlx::query_scalar("SELECT count(*) FROM etl.workers")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
            if live >= (n - 1) as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        services.model.reset_counts();
        let m = measure(command(&["run", "--step", "embed_nodes"], &model)).await;
        let texts = services.model.texts().len();
        println!(
            "| {n} | {:.2} | {texts} | {:.0} |",
            m.wall.as_secs_f64(),
            texts as f64 / m.wall.as_secs_f64()
        );
        for w in &workers {
            let pid = w.id().unwrap().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
        }
        for mut w in workers {
            let _ = w.wait().await;
        }
    }
}
