//! Several `etl worker` processes share a run through Postgres: the run publishes each
//! transform's batches, every worker (and the run itself) claims them under a lease, and the
//! result is the one a single process gives. A worker killed with `kill -9` loses its batch to
//! another once its lease ends, and the run still completes.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{config_with_batch_size, root, Run, Setup};

/// `etl worker` processes named `w1`, `w2`, ... with a short lease.
struct Workers {
    children: Vec<tokio::process::Child>,
}

/// Short, so a killed worker's batch comes back quickly; renewed every third of it.
const LEASE: &str = "3s";

impl Workers {
    async fn start(s: &Setup, config: &str, n: usize) -> Workers {
        let mut children = Vec::new();
        for i in 1..=n {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
            cmd.current_dir(root())
                .args(["--config", config, "worker"])
                .env("RUST_LOG", "warn")
                .env("ETL_WORKER_NAME", format!("w{i}"))
                .env("ETL_LEASE_TIMEOUT", LEASE)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            for (k, v) in &s.env {
                cmd.env(k, v);
            }
            children.push(cmd.spawn().unwrap());
        }
        let started = Instant::now();
        while s.count("SELECT count(*) FROM etl.workers").await < n as i64 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the workers did not register"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Workers { children }
    }

    /// SIGTERM to every worker; each must exit 0 after its batch.
    async fn stop(mut self) {
        for c in &self.children {
            let pid = c.id().unwrap().to_string();
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
        }
        for c in &mut self.children {
            let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .expect("a worker did not stop on SIGTERM")
                .unwrap();
            assert_eq!(status.code(), Some(0), "a worker's exit");
        }
    }
}

/// What a run leaves: tables, graph and embeddings.
async fn outcome(s: &Setup) -> Vec<String> {
    let mut out = s.table_nodes().await;
    out.extend(s.table_edges().await);
    out.extend(s.graph_nodes().await);
    out.extend(s.graph_edges().await);
    out.extend(
        s.db.texts(
            "SELECT node_id || ' ' || attribute_name || ' ' || md5(embedding::text)
               FROM rag_anchor_embeddings ORDER BY 1",
        )
        .await,
    );
    out.extend(
        s.db.texts(
            "SELECT from_node_id || ' ' || to_node_id || ' ' || edge_label || ' ' || attribute_name || ' ' || md5(embedding::text)
               FROM rag_edge_embeddings ORDER BY 1",
        )
        .await,
    );
    out
}

async fn run(s: &Setup, config: &str) -> Run {
    let r = s
        .etl(
            &["--config", config, "run"],
            &[("ETL_LEASE_TIMEOUT", LEASE)],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r}");
    r
}

/// What a run of one process, with no worker, leaves on the demo.
async fn one_process(config: &str) -> Vec<String> {
    let alone = Setup::demo().await;
    run(&alone, config).await;
    outcome(&alone).await
}

/// The texts the model was sent more than once.
fn sent_twice(s: &Setup) -> Vec<String> {
    let mut texts = s.model.texts();
    texts.sort();
    let mut twice: Vec<String> = texts
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    twice.dedup();
    twice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_and_a_run_give_what_one_process_gives() {
    let config = config_with_batch_size(3);
    let config = config.to_str().unwrap();
    let expected = one_process(config).await;

    let s = Setup::demo().await;
    // Slow enough that the run's own task cannot take every embedding batch first.
    s.model.set_latency(Duration::from_millis(100));
    let workers = Workers::start(&s, config, 3).await;
    run(&s, config).await;
    assert_eq!(outcome(&s).await, expected);
    // The first captures left out each step's index of pending keys; the end of each step's
    // queued run made it again.
    assert_eq!(
        s.count(
            "SELECT count(*) FROM pg_tables t WHERE t.schemaname = 'etl' AND t.tablename LIKE 'keys\\_\\_%'
                AND to_regclass('etl.' || quote_ident(t.tablename || '__pending')) IS NULL"
        )
        .await,
        0
    );

    // Each batch was claimed once, by one worker; the run's history names who did what.
    assert_eq!(
        s.count("SELECT count(*) FROM etl.batches WHERE claims <> 1")
            .await,
        0
    );
    assert!(s.count("SELECT count(*) FROM etl.batches").await > 10);
    // Done batches keep who did them and what they did, not their keys.
    assert_eq!(
        s.count("SELECT count(*) FROM etl.batches WHERE keys <> '[]' OR result IS NULL")
            .await,
        0
    );
    let by_worker =
        s.db.texts("SELECT DISTINCT worker FROM etl.batches WHERE worker LIKE 'w_'")
            .await;
    assert!(
        by_worker.len() >= 2,
        "batches spread over the workers: {by_worker:?}"
    );
    let history = s.etl(&["history", "--last"], &[]).await;
    for w in &by_worker {
        assert!(
            history
                .stdout
                .lines()
                .any(|l| l.trim().starts_with(&format!("worker {w}: "))
                    && l.trim().ends_with(" batches")),
            "{history}"
        );
    }
    assert!(sent_twice(&s).is_empty(), "{:?}", sent_twice(&s));

    // `etl status` lists the live workers; SIGTERM stops each after its batch, exit 0.
    let status = s.etl(&["status"], &[("ETL_LEASE_TIMEOUT", LEASE)]).await;
    for w in ["w1", "w2", "w3"] {
        assert!(status.stdout.contains(&format!("worker {w}")), "{status}");
    }
    workers.stop().await;
    assert_eq!(s.count("SELECT count(*) FROM etl.workers").await, 0);
    // A run with no worker alive processes its batches alone, as before.
    let r = run(&s, config).await;
    assert!(r.processed_nothing(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_its_batch_and_the_run_still_completes() {
    let config = config_with_batch_size(3);
    let config = config.to_str().unwrap();
    let expected = one_process(config).await;

    let s = Setup::demo().await;
    s.model.set_latency(Duration::from_millis(200));
    let mut workers = Workers::start(&s, config, 3).await;
    let running = {
        let s = &s;
        async move { run(s, config).await }
    };
    let killer = async {
        // Kill w1 while it holds a batch of an embedding step (its model calls are slow).
        let started = Instant::now();
        loop {
            let holding = s
                .count(
                    "SELECT count(*) FROM etl.batches
                      WHERE worker = 'w1' AND state = 'leased' AND step LIKE 'embed_%'",
                )
                .await;
            if holding > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "w1 never took a batch"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        workers.children[0].start_kill().unwrap();
        workers.children[0].wait().await.unwrap();
    };
    let (r, ()) = tokio::join!(running, killer);
    assert!(r.stdout.contains("embed_nodes"), "{r}");
    assert_eq!(outcome(&s).await, expected);
    // The killed worker's batch went to another after its lease; no other batch was taken twice.
    let reclaimed =
        s.db.texts("SELECT step || ' ' || batch_id FROM etl.batches WHERE claims > 1")
            .await;
    assert!(
        !reclaimed.is_empty(),
        "the killed worker's batch was claimed again"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.batches WHERE claims > 2")
            .await,
        0
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.batches WHERE worker = 'w1' AND state = 'done' AND claims > 1")
            .await,
        0
    );
    // Only texts of the batches in flight at the kill were sent twice: a batch is 3 nodes.
    let twice = sent_twice(&s);
    assert!(twice.len() <= 3 * reclaimed.len() * 4, "{twice:?}");
    workers.children.remove(0);
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_workers_n_shares_its_batches_among_its_own_tasks() {
    let config = config_with_batch_size(3);
    let config = config.to_str().unwrap();
    let expected = one_process(config).await;

    let s = Setup::demo().await;
    s.model.set_latency(Duration::from_millis(20));
    let r = s
        .etl(
            &["--config", config, "run", "--workers", "3"],
            &[("ETL_WORKER_NAME", "solo")],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(outcome(&s).await, expected);
    assert!(s.count("SELECT count(*) FROM etl.batches").await > 10);
    assert_eq!(
        s.count("SELECT count(*) FROM etl.batches WHERE worker <> 'solo' OR claims <> 1 OR state <> 'done'")
            .await,
        0
    );
    let history = s.etl(&["history", "--last"], &[]).await;
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.trim().starts_with("worker solo: ") && l.trim().ends_with(" batches")),
        "{history}"
    );
    assert!(sent_twice(&s).is_empty());
}
