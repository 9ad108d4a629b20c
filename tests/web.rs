//! `etl serve` over HTTP: the Prometheus metrics, the lineage and run pages, and the schedule
//! run in the same process. The built binary, the demo docs in a Grist emulator, real Postgres
//! and the Bolt graph server; every test reads back the series and pages it asserts.

mod support;

use std::time::Duration;

use serde_json::json;

use support::serve::Served;
use support::{wait_for, Setup};

const DATA: &str = "demo-data";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_carry_every_series() {
    let s = Setup::demo().await;
    s.model.poison("Ada Brook");
    s.etl(&["run"], &[]).await;
    s.model.cure();
    s.run().await;
    // Something pending: a rename not yet run.
    s.docs()
        .update_record(
            DATA,
            "Anchor_person",
            2,
            json!({"person_name": "Ben Renamed"}),
        )
        .unwrap();
    s.etl(&["run", "--step", "grist_graph"], &[]).await;

    let served = Served::start(&s, &[]).await;
    let (status, text) = served.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|m| m.metric == name && labels.iter().all(|(k, v)| m.labels.get(k) == Some(*v)))
            .map(|m| match &m.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
    };
    // Pending now: the rename waits in `nodes` and the steps after it.
    assert_eq!(
        value("etl_keys_pending", &[("step", "nodes")]),
        Some(1.0),
        "{text}"
    );
    assert!(value("etl_oldest_pending_age_seconds", &[("step", "nodes")]).unwrap() > 0.0);
    assert_eq!(
        value("etl_oldest_pending_age_seconds", &[("step", "graph_edges")]),
        Some(0.0)
    );
    assert_eq!(
        value("etl_keys_failed", &[("step", "embed_nodes")]),
        Some(0.0)
    );
    assert!(value("etl_last_successful_run_timestamp_seconds", &[]).unwrap() > 1.7e9);
    assert!(
        value(
            "etl_step_last_success_timestamp_seconds",
            &[("step", "graph_edges")]
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(
        value("etl_runs_total", &[("outcome", "keys_failed")]),
        Some(1.0)
    );
    assert_eq!(
        value("etl_runs_total", &[("outcome", "succeeded")]),
        Some(2.0)
    );
    assert_eq!(
        value("etl_run_duration_seconds_count", &[]),
        Some(3.0),
        "{text}"
    );
    assert!(
        value(
            "etl_step_duration_seconds_count",
            &[("step", "embed_nodes")]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        value(
            "etl_rows_written_total",
            &[("step", "nodes"), ("table", "nodes"), ("op", "inserted")]
        ),
        Some(34.0)
    );
    assert!(value("etl_embedding_texts_total", &[("step", "embed_nodes")]).unwrap() > 30.0);
    assert!(value("etl_embedding_tokens_total", &[("step", "embed_nodes")]).unwrap() > 30.0);
    assert!(value("etl_embedding_cache_hits_total", &[("step", "embed_nodes")]).is_some());
    assert!(
        value(
            "etl_graph_writes_total",
            &[("step", "graph_nodes"), ("op", "nodes_written")]
        )
        .unwrap()
            >= 34.0
    );
    assert!(value("etl_grist_requests_total", &[("step", "grist_graph")]).unwrap() > 0.0);
    assert!(value("etl_grist_bytes_total", &[("step", "grist_graph")]).unwrap() > 0.0);
    assert_eq!(
        value(
            "etl_errors_total",
            &[("step", "embed_nodes"), ("class", "data")]
        ),
        Some(1.0)
    );
    // Nothing secret in it.
    assert!(!text.contains(support::MODEL_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lineage_page_of_a_renamed_person_shows_both_runs() {
    let s = Setup::demo().await;
    s.run().await;
    s.docs()
        .update_record(
            DATA,
            "Anchor_person",
            3,
            json!({"person_name": "Chloe Renamed"}),
        )
        .unwrap();
    s.run().await;
    let runs =
        s.db.texts("SELECT run_id::text FROM etl.runs ORDER BY run_id")
            .await;
    assert_eq!(runs.len(), 2);

    let served = Served::start(&s, &[]).await;
    let (status, page) = served.get("/lineage?node=person%3A3").await;
    assert_eq!(status, 200, "{page}");
    // The node rows: created by the first run, changed by the second; the source row named.
    for table in ["grist_nodes", "nodes", "rag_anchor_embeddings"] {
        let section = section_of(&page, table);
        assert!(
            section.contains(&format!("href=\"/runs/{}\"", runs[0])),
            "{table}: {section}"
        );
        assert!(
            section.contains(&format!("href=\"/runs/{}\"", runs[1])),
            "{table}: {section}"
        );
    }
    assert!(page.contains("Chloe Renamed"));
    assert!(
        page.contains("Anchor_person")
            && page.contains("the row whose <code>person_id</code> is <code>person:3</code>"),
        "{page}"
    );
    // In the graph, and its edges both ways linked to the nodes at their other ends.
    assert!(
        page.contains(
            "<ul id=\"in-graph\"><li><code>person</code>: <span class=\"outcome succeeded\">yes"
        ),
        "{page}"
    );
    assert!(page.contains("href=\"/lineage?node=city%3A1\""), "{page}");
    // A node nobody has, and an id that is markup, are answered plainly.
    let (_, none) = served
        .get("/lineage?node=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(none.contains("id=\"not-found\""));
    assert!(!none.contains("<script>alert(1)</script>") && none.contains("&lt;script&gt;"));
    // The run page of the rename says what it did.
    let (status, run) = served.get(&format!("/runs/{}", runs[1])).await;
    assert_eq!(status, 200);
    assert!(
        run.contains("data-step=\"embed_nodes\"") && run.contains("texts_embedded: 1"),
        "{run}"
    );
    let (status, _) = served.get("/runs/999999").await;
    assert_eq!(status, 404);
    drop(served);
}

/// The part of a lineage page about one table.
fn section_of<'a>(page: &'a str, table: &str) -> &'a str {
    let start = page
        .find(&format!("data-table=\"{table}\""))
        .unwrap_or_else(|| panic!("no section for {table}"));
    let rest = &page[start..];
    let end = rest.find("</section>").unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_every_runs_the_schedule_and_sigterm_stops_both() {
    let s = Setup::demo().await;
    let served = Served::start(&s, &["--every", "1s"]).await;
    wait_for("two scheduled runs", Duration::from_secs(60), async || {
        s.count("SELECT count(*) FROM etl.runs WHERE outcome = 'succeeded'")
            .await
            >= 2
    })
    .await;
    let (_, page) = served.get("/").await;
    assert!(page.contains("href=\"/runs/2\""), "{page}");
    assert_eq!(served.stop().await, Some(0));
    let runs = s.count("SELECT count(*) FROM etl.runs").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.count("SELECT count(*) FROM etl.runs").await,
        runs,
        "no run after the stop"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM etl.runs WHERE finished_at IS NULL")
            .await,
        0
    );
}
