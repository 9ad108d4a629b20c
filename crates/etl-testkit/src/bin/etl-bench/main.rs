//! `etl-bench`: the scale benchmark. Generates synthetic docs of the demo's shape (persons,
//! interests, person-likes-interest links, with names) at sizes S (the demo's size), M (10,000 /
//! 20,000 / 100,000) and L (100,000 / 200,000 / 1,000,000); serves them with `etl grist serve`;
//! and times whole `etl run` processes: the first full run, a run with no change (and the median
//! of five more, the steady state of a schedule), a run after editing 1% of the names, and a run
//! after deleting 1% of the links. For each: wall time, peak memory, rows written, texts sent to the fake embedding server (50 ms a request) and graph
//! writes, and what the run asked of Grist (requests, bytes, rows read by id through the change
//! feed); plus plain downloads of the same tables' CSVs from the same server, so a no-op run can
//! be read as a ratio to the cost of reading the source. Then the bookkeeping's bytes per data
//! row, and the graph's export, restore and rebuild (`ETL_BENCH_NO_BACKUP` leaves them out). Embeddings have 1024 dimensions, as in
//! production settings (`ETL_BENCH_DIM` to change); uniformly random by default, the costly case
//! for an HNSW index, or with `ETL_BENCH_VECTORS=words` shaped like a text model's (a sum of
//! one vector per word: texts sharing words lie close). The runs after the first wait until
//! Postgres's autovacuum has finished with the load.
//!
//! `etl-bench workers` instead measures texts embedded per second with 1, 2 and 4 workers.
//!
//! Needs the services (`scripts/services start`) and a release build of etl:
//! `cargo build --release -p etl && cargo run --release -p etl-testkit --bin etl-bench -- S M`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod backup;
mod docs;
mod workers;

use docs::{generate, SIZES};
use etl_testkit::fake_openai::FakeOpenAi;
use etl_testkit::graph::TestGraph;

struct Measure {
    wall: Duration,
    peak_mib: f64,
    stdout: String,
}

/// Runs a command to its end, sampling its peak resident memory (VmHWM) as it goes.
async fn measure(mut cmd: tokio::process::Command) -> Measure {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start etl");
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut s = String::new();
        let mut out = stdout;
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let mut peak_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        // Sample every 20 ms, but see the exit at once (the wall time is not rounded up).
        let exited = tokio::select! {
            status = child.wait() => Some(status.expect("wait for etl")),
            _ = tokio::time::sleep(Duration::from_millis(20)) => None,
        };
        if let Some(status) = exited {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut err).await;
                }
                let out = reader.await.unwrap_or_default();
                panic!("etl failed ({status}):\n{out}\n{err}");
            }
            break;
        }
    }
    Measure {
        wall: started.elapsed(),
        peak_mib: peak_kib as f64 / 1024.0,
        stdout: reader.await.unwrap_or_default(),
    }
}

/// Sums of the run summary: rows written to tables, and graph writes.
/// Waits (at most two minutes) until no autovacuum worker is busy on the database: after a
/// full load of millions of rows it vacuums for a while, and a run then measures that too. A run
/// on a schedule starts long after.
async fn settle(admin: &str, db: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .unwrap();
    for _ in 0..240 {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'autovacuum worker'",
        )
        .bind(db)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A scheduled run that finds nothing usually follows another such run, not a full load: five
/// more no-ops, as one more row of their median wall time and peak memory and their summed
/// writes, texts and Grist traffic (all zero but the `/states` requests, when nothing changed).
async fn steady_no_ops(
    command: &impl Fn(&[&str]) -> tokio::process::Command,
    model: &FakeOpenAi,
    size: &str,
) {
    const RUNS: usize = 5;
    let (mut walls, mut peaks) = (Vec::new(), Vec::new());
    let (mut rows, mut graph_writes, mut requests, mut bytes, mut by_id) = (0, 0, 0, 0, 0);
    model.reset_counts();
    for _ in 0..RUNS {
        let m = measure(command(&["run"])).await;
        walls.push(m.wall.as_secs_f64());
        peaks.push(m.peak_mib);
        let (r, g) = written(&m.stdout);
        rows += r;
        graph_writes += g;
        requests += counter(&m.stdout, "grist_requests");
        bytes += counter(&m.stdout, "grist_bytes");
        by_id += counter(&m.stdout, "rows_read_by_id");
    }
    walls.sort_by(f64::total_cmp);
    peaks.sort_by(f64::total_cmp);
    println!(
        "| {size} | no change, median of {RUNS} more | {:.2} | {:.0} | {rows} | {} | {graph_writes} | {requests} | {:.0} | {by_id} |",
        walls[RUNS / 2],
        peaks[RUNS / 2],
        model.texts().len(),
        bytes as f64 / 1024.0,
    );
}

/// The sum of a counter over every step of a run's summary.
fn counter(stdout: &str, name: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix(name)?.strip_prefix(": "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

fn written(stdout: &str) -> (u64, u64) {
    let mut rows = 0;
    let mut graph = 0;
    for line in stdout.lines() {
        let t = line.trim_start();
        if line.starts_with("    ")
            && t.split_whitespace()
                .nth(1)
                .is_some_and(|w| w.starts_with('+'))
        {
            for w in t.split_whitespace().skip(1) {
                if let Some(n) = w
                    .strip_prefix('+')
                    .or(w.strip_prefix('~'))
                    .or(w.strip_prefix('-'))
                {
                    rows += n.parse::<u64>().unwrap_or(0);
                }
            }
        }
        if let Some((name, n)) = t.split_once(": ") {
            if name.starts_with("graph_")
                && (name.ends_with("_written") || name.ends_with("_deleted"))
            {
                graph += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (rows, graph)
}

async fn http(method: reqwest::Method, url: String, body: Value) {
    let r = reqwest::Client::new()
        .request(method, &url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// The engine's bookkeeping beside the data, after the runs: bytes per live data row, with and
/// without the embedding cache.
async fn bookkeeping(db: &str, size: &str) -> String {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let (all, cache) = etl_postgres::sizes::schema_bytes(&pool).await.unwrap();
    let metas: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'etl' AND c.relkind = 'r' AND c.relname LIKE 'meta\\_\\_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let tables: Vec<String> = metas
        .iter()
        .map(|m| m.trim_start_matches("meta__").to_string())
        .collect();
    let sizes = etl_postgres::sizes::table_sizes(&pool, &tables)
        .await
        .unwrap();
    let rows: i64 = sizes.iter().map(|t| t.live_rows).sum();
    let data: i64 = sizes.iter().map(|t| t.data_bytes).sum();
    pool.close().await;
    format!(
        "{size}: bookkeeping {:.0} bytes per data row ({:.0} without the embedding cache) over {rows} rows; data tables {:.0} bytes per row",
        all as f64 / rows.max(1) as f64,
        (all - cache) as f64 / rows.max(1) as f64,
        data as f64 / rows.max(1) as f64,
    )
}

#[tokio::main]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let wanted = if wanted.is_empty() {
        vec!["S".to_string(), "M".to_string()]
    } else {
        wanted
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let etl = std::env::var("ETL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target/release/etl"));
    assert!(
        etl.exists(),
        "build etl first: cargo build --release -p etl ({} missing)",
        etl.display()
    );
    let admin = std::env::var("DB_CONN_URI")
        .unwrap_or_else(|_| etl_testkit::postgres::DEFAULT_URL.to_string());

    let dim = std::env::var("ETL_BENCH_DIM").unwrap_or_else(|_| "1024".into());
    if wanted == ["workers"] {
        workers::bench(&admin, &etl, &repo, &dim).await;
        return;
    }
    let word_sums = match std::env::var("ETL_BENCH_VECTORS").as_deref() {
        Ok("words") => true,
        Ok("uniform") | Err(_) => false,
        Ok(other) => {
            panic!("ETL_BENCH_VECTORS is `uniform` (the default) or `words`, not `{other}`")
        }
    };
    // Vector index inserts depend on whether the index fits in Postgres's buffers: say how big.
    let shared_buffers = match sqlx::PgPool::connect(&admin).await {
        Ok(pool) => sqlx::query_scalar::<_, String>("SHOW shared_buffers")
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})")),
        Err(e) => format!("unknown ({e})"),
    };
    println!(
        "embedding dimensions: {dim}, vectors {}; Grist: the emulator (`etl grist serve`); Postgres shared_buffers {shared_buffers}",
        if word_sums {
            "summed per word"
        } else {
            "uniformly random"
        }
    );
    println!();
    println!("| size | run | wall s | peak MiB | rows written | texts embedded | graph writes | Grist requests | Grist KiB | rows read by id |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut notes = Vec::new();
    for size in SIZES.iter().filter(|s| wanted.iter().any(|w| w == s.name)) {
        let mut services = Services::start(size, &admin, &etl, &dim).await;
        let (grist, db, db_name, work) = (
            services.grist.clone(),
            services.db.clone(),
            services.db_name.clone(),
            services.work.clone(),
        );
        let model = &services.model;
        model.answer_word_sums(word_sums);
        let command = |args: &[&str]| services.command(&etl, &repo, args);
        measure(command(&["migrate"])).await;

        // Plain downloads of the CSVs of every table the run reads, one after another, for
        // the ratio.
        let started = Instant::now();
        for (doc, table) in [
            ("bench-data-model", "Anchors"),
            ("bench-data-model", "Anchor_attributes"),
            ("bench-data-model", "Links"),
            ("bench-data-model", "Link_attributes"),
            ("bench-data-model", "Queries"),
            ("bench-data-model", "Prompts"),
            ("bench-data-model", "ConversationLifecycle"),
            ("bench-data", "Anchor_person"),
            ("bench-data", "Anchor_interest"),
            ("bench-data", "Link_person_has_interest"),
            ("bench-test-set", "Gds"),
        ] {
            let body = reqwest::get(format!(
                "{grist}/api/docs/{doc}/download/csv?tableId={table}&header=colId"
            ))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
            assert!(!body.is_empty());
        }
        let download = started.elapsed();

        let persons_edit: Vec<Value> = (1..=size.persons.div_ceil(100))
            .map(|i| json!({"id": i * 100 - 99, "fields": {"person_name": format!("Renamed person {i}")}}))
            .collect();
        let links_delete: Vec<usize> = (1..=size.links.div_ceil(100))
            .map(|i| i * 100 - 50)
            .filter(|i| *i <= size.links)
            .collect();
        let mut no_op = Duration::ZERO;
        for phase in ["full", "no change", "1% names edited", "1% links deleted"] {
            match phase {
                "1% names edited" => http(reqwest::Method::PATCH, format!("{grist}/api/docs/bench-data/tables/Anchor_person/records"), json!({"records": persons_edit})).await,
                "1% links deleted" => http(reqwest::Method::POST, format!("{grist}/api/docs/bench-data/tables/Link_person_has_interest/records/delete"), json!(links_delete)).await,
                _ => {}
            }
            if phase != "full" {
                settle(&admin, &db_name).await;
            }
            model.reset_counts();
            let m = measure(command(&["run"])).await;
            if phase == "no change" {
                no_op = m.wall;
            }
            // The run's own summary, per step, for reading the figures.
            let _ = std::fs::write(
                work.join(format!("run-{}.txt", phase.replace([' ', '%'], "-"))),
                &m.stdout,
            );
            let (rows, graph_writes) = written(&m.stdout);
            println!(
                "| {} | {phase} | {:.2} | {:.0} | {rows} | {} | {graph_writes} | {} | {:.0} | {} |",
                size.name,
                m.wall.as_secs_f64(),
                m.peak_mib,
                model.texts().len(),
                counter(&m.stdout, "grist_requests"),
                counter(&m.stdout, "grist_bytes") as f64 / 1024.0,
                counter(&m.stdout, "rows_read_by_id"),
            );
            if phase == "no change" {
                steady_no_ops(&command, model, size.name).await;
            }
        }
        if std::env::var_os("ETL_BENCH_HOLD").is_some() {
            // For profiling by hand: keep the services of this size up, and say how to reach them.
            for (k, v) in &services.env {
                println!("export {k}='{v}'");
            }
            println!("holding; interrupt to end");
            tokio::signal::ctrl_c().await.ok();
        }
        notes.push(bookkeeping(&db, size.name).await);
        if std::env::var_os("ETL_BENCH_NO_BACKUP").is_none() {
            notes.push(backup::graph_backup(&command, &work, size.name).await);
        }
        notes.push(format!(
            "{}: plain download of the source CSVs {:.2} s; no-op run / download = {:.2}",
            size.name,
            download.as_secs_f64(),
            no_op.as_secs_f64() / download.as_secs_f64().max(1e-9)
        ));
        let _ = services.serve.kill().await;
    }
    println!();
    for n in notes {
        println!("{n}");
    }
}

/// A size's services: its docs served by `etl grist serve`, the fake embedding server (50 ms a
/// request), a graph database and a fresh Postgres database; and the environment that reaches
/// them.
struct Services {
    serve: tokio::process::Child,
    grist: String,
    model: FakeOpenAi,
    _graph: TestGraph,
    db: String,
    db_name: String,
    work: PathBuf,
    env: Vec<(String, String)>,
}

impl Services {
    async fn start(size: &docs::Size, admin: &str, etl: &Path, dim: &str) -> Services {
        let work = tempfile_dir(&format!("etl-bench-{}", size.name));
        generate(&work, size);
        // A port per size (M and L once shared one, and a leftover server answered for both).
        let port = 18500 + SIZES.iter().position(|s| s.name == size.name).unwrap_or(0) as u16;
        let serve = tokio::process::Command::new(etl)
            .args(["grist", "serve", "--port", &port.to_string()])
            .args(["bench-data-model", "bench-data", "bench-test-set"].map(|d| work.join(d)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let grist = format!("http://127.0.0.1:{port}");
        for _ in 0..600 {
            if reqwest::get(format!("{grist}/api/docs/bench-data/tables"))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let model = FakeOpenAi::start(0).await;
        model.set_latency(Duration::from_millis(50));
        let graph = TestGraph::new().await;
        let db_name = format!("etl_bench_{}", size.name.to_lowercase());
        let mut admin_conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin_conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin_conn)
            .await
            .unwrap();
        let db = etl_testkit::postgres::with_database(admin, &db_name);
        let mut env: Vec<(String, String)> = vec![
            ("DB_CONN_URI".into(), db.clone()),
            ("GRIST_SERVER_URL".into(), grist.clone()),
            ("GRIST_DATA_MODEL_DOC_ID".into(), "bench-data-model".into()),
            ("GRIST_DATA_DOC_ID".into(), "bench-data".into()),
            ("GRIST_TEST_SET_DOC_ID".into(), "bench-test-set".into()),
            ("EMBEDDINGS_PROVIDER".into(), "openai".into()),
            ("OPENAI_BASE_URL".into(), model.base_url()),
            ("OPENAI_API_KEY".into(), "bench".into()),
            ("EMBEDDINGS_MODEL".into(), "fake".into()),
            ("EMBEDDINGS_DIM".into(), dim.to_string()),
            ("RUST_LOG".into(), "error".into()),
        ];
        env.extend(graph.env());
        Services {
            serve,
            grist,
            model,
            _graph: graph,
            db,
            db_name,
            work,
            env,
        }
    }

    /// `etl ARGS` with the services' environment.
    fn command(&self, etl: &Path, repo: &Path, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(etl);
        c.current_dir(repo)
            .args(args)
            .envs(self.env.clone())
            .env_remove("GRIST_API_KEY");
        c
    }
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
