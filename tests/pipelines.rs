//! Several pipelines in one database: `ETL_PIPELINE=<name>` keeps a pipeline's data tables in
//! schema `<name>` and its bookkeeping in `etl_<name>`. Two pipelines on different docs, sharing
//! a database and a graph, never read or change each other's rows, bookkeeping or nodes: not by
//! a run, a full refresh, or a mass delete.

mod support;

use std::collections::BTreeMap;

use grist_emulator::Emulator;
use support::{canonical, root, Run, Setup};

/// The demo docs and the fidelity docs in one emulator: two knowledge graphs with no label in
/// common.
fn two_doc_sets() -> Emulator {
    let dir = root().join("fixtures/grist");
    Emulator::from_dirs(&[
        dir.join("demo-data-model"),
        dir.join("demo-data"),
        dir.join("demo-test-set"),
        dir.join("fidelity-data-model"),
        dir.join("fidelity-data"),
    ])
    .unwrap()
}

/// The environment of pipeline `beta`: the fidelity docs.
const BETA: &[(&str, &str)] = &[
    ("ETL_PIPELINE", "beta"),
    ("GRIST_DATA_MODEL_DOC_ID", "fidelity-data-model"),
    ("GRIST_DATA_DOC_ID", "fidelity-data"),
];
const ALPHA: &[(&str, &str)] = &[("ETL_PIPELINE", "alpha")];

async fn ok(s: &Setup, args: &[&str], env: &[(&str, &str)]) -> Run {
    let r = s.etl(args, env).await;
    assert_eq!(r.code, Some(0), "etl {args:?} with {env:?}: {r}");
    r
}

/// Every table of the pipeline's two schemas, by name, as (rows, digest of every row's text).
async fn tables_of(s: &Setup, pipeline: &str) -> BTreeMap<String, String> {
    let tables =
        s.db.texts(&format!(
            "SELECT schemaname || '.' || tablename FROM pg_tables
              WHERE schemaname IN ('{pipeline}', 'etl_{pipeline}') ORDER BY 1"
        ))
        .await;
    let mut out = BTreeMap::new();
    for t in tables {
        let (schema, name) = t.split_once('.').unwrap();
        let digest = s
            .db
            .text(&format!(
                "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))
                   FROM \"{schema}\".\"{name}\" AS x"
            ))
            .await
            .unwrap();
        out.insert(t, digest);
    }
    out
}

/// The graph's nodes and edges whose label (type) is one of `labels`, sorted.
async fn graph_of(s: &Setup, labels: &[String]) -> Vec<String> {
    let graph = s.graph_client().await;
    let nodes = graph
        .rows(
            "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props",
            &["labels", "props"],
        )
        .await
        .unwrap();
    let edges = graph
        .rows(
            "MATCH (a)-[r]->(b) RETURN type(r) AS t, a.id AS a, b.id AS b, properties(r) AS props",
            &["t", "a", "b", "props"],
        )
        .await
        .unwrap();
    let is_ours = |v: &serde_json::Value| match v {
        serde_json::Value::Array(ls) => ls.iter().any(|l| labels.iter().any(|x| l == x)),
        serde_json::Value::String(l) => labels.contains(l),
        _ => false,
    };
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|r| is_ours(&r[0]))
        .map(|r| format!("node {} {}", r[0], canonical(&r[1])))
        .chain(
            edges
                .iter()
                .filter(|r| is_ours(&r[0]))
                .map(|r| format!("edge {} {}->{} {}", r[0], r[1], r[2], canonical(&r[3]))),
        )
        .collect();
    out.sort();
    out
}

/// The node types and edge labels a pipeline's tables hold.
async fn labels_of(s: &Setup, pipeline: &str) -> Vec<String> {
    s.db.texts(&format!(
        "SELECT node_type FROM \"{pipeline}\".nodes UNION SELECT edge_label FROM \"{pipeline}\".edges ORDER BY 1"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_in_one_database_never_touch_each_others_rows_bookkeeping_or_graph() {
    let s = Setup::new(
        two_doc_sets(),
        ["demo-data-model", "demo-data", "demo-test-set"],
    )
    .await;
    let default_before = tables_of_default(&s).await;
    for env in [ALPHA, BETA] {
        ok(&s, &["migrate"], env).await;
        ok(&s, &["migrate"], env).await;
        ok(&s, &["run"], env).await;
    }
    // Each built its own tables, from its own docs.
    let alpha_types = labels_of(&s, "alpha").await;
    let beta_types = labels_of(&s, "beta").await;
    assert!(
        alpha_types.contains(&"person".to_string()),
        "{alpha_types:?}"
    );
    assert!(beta_types.contains(&"author".to_string()), "{beta_types:?}");
    assert!(
        alpha_types.iter().all(|t| !beta_types.contains(t)),
        "the two doc sets must not share a label for this test to mean anything"
    );
    for (p, types) in [("alpha", &alpha_types), ("beta", &beta_types)] {
        let embedded = s
            .count(&format!(
                "SELECT count(*) FROM \"{p}\".rag_anchor_embeddings"
            ))
            .await;
        assert!(embedded > 0, "pipeline {p} embedded nothing");
        assert!(
            !graph_of(&s, types).await.is_empty(),
            "pipeline {p} wrote no graph"
        );
    }
    // The default pipeline's schemas saw none of it.
    assert_eq!(tables_of_default(&s).await, default_before);
    assert_eq!(s.count("SELECT count(*) FROM public.nodes").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM etl.runs").await, 0);

    let beta_tables = tables_of(&s, "beta").await;
    let beta_graph = graph_of(&s, &beta_types).await;
    assert!(
        beta_tables.keys().any(|t| t == "etl_beta.runs"),
        "{beta_tables:?}"
    );
    let beta_unchanged = |what: &'static str| {
        let s = &s;
        let beta_tables = &beta_tables;
        let beta_graph = &beta_graph;
        let beta_types = &beta_types;
        async move {
            assert_eq!(
                &tables_of(s, "beta").await,
                beta_tables,
                "after {what} in alpha"
            );
            assert_eq!(
                &graph_of(s, beta_types).await,
                beta_graph,
                "after {what} in alpha"
            );
        }
    };

    // A run of alpha that changes something.
    let person = s.docs().records("demo-data", "Anchor_person").unwrap()[0].id;
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            person,
            serde_json::json!({"person_name": "Renamed in alpha"}),
        )
        .unwrap();
    let r = ok(&s, &["run"], ALPHA).await;
    assert!(r.written("nodes").1 >= 1, "{r}");
    beta_unchanged("a run").await;

    // A full refresh of alpha.
    ok(&s, &["run", "--full-refresh"], ALPHA).await;
    beta_unchanged("a full refresh").await;

    // A mass delete in alpha: most of its graph goes, none of beta's.
    for table in ["Anchor_person", "Anchor_interest"] {
        for r in s.docs().records("demo-data", table).unwrap() {
            s.docs().delete_record("demo-data", table, r.id).unwrap();
        }
    }
    let refused = s.etl(&["run"], ALPHA).await;
    assert_eq!(refused.code, Some(2), "{refused}");
    ok(&s, &["run", "--allow-mass-delete"], ALPHA).await;
    assert!(
        s.count("SELECT count(*) FROM alpha.nodes WHERE node_type = 'person'")
            .await
            == 0,
        "alpha's mass delete did not go through"
    );
    beta_unchanged("a mass delete").await;

    // Beta still runs as a no-op, and its status says which pipeline it is.
    let r = ok(&s, &["run"], BETA).await;
    assert!(r.processed_nothing(), "{r}");
    let status = ok(&s, &["status"], BETA).await;
    assert!(
        status.stdout.starts_with(
            "pipeline: beta (data tables in schema beta, bookkeeping in schema etl_beta)"
        ),
        "{status}"
    );
}

/// The default pipeline's tables (schemas `public` and `etl`), as [`tables_of`] gives them.
async fn tables_of_default(s: &Setup) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in
        s.db.texts(
            "SELECT schemaname || '.' || tablename FROM pg_tables
              WHERE schemaname IN ('public', 'etl') AND tablename <> '_sqlx_migrations' ORDER BY 1",
        )
        .await
    {
        let digest = s
            .db
            .text(&format!(
                "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} AS x"
            ))
            .await
            .unwrap();
        out.insert(t, digest);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_name_that_could_reach_another_schema_is_refused() {
    let s = Setup::demo().await;
    for bad in [
        "public",
        "etl",
        "pg_catalog",
        "Sales",
        "a\"; DROP SCHEMA public; --",
    ] {
        let r = s.etl(&["status"], &[("ETL_PIPELINE", bad)]).await;
        assert_eq!(r.code, Some(4), "{r}");
        assert!(r.stderr.contains("is not allowed"), "{r}");
    }
    // A named pipeline that was never migrated says so instead of reading the default's tables.
    let r = s.etl(&["run"], &[("ETL_PIPELINE", "never_migrated")]).await;
    assert_ne!(r.code, Some(0), "{r}");
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("etl migrate"),
        "{r}"
    );
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 0);
}
