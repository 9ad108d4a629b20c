//! Drop-in fidelity: awkward docs (`fixtures/grist/fidelity-*`, made by `make_fidelity.py`) give
//! the rows the README's fidelity section promises, asserted row by row; optional inputs are
//! optional; Vedana's own settings run the pipeline.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use grist_emulator::Emulator;
use support::{root, Setup};

fn fidelity_docs() -> Emulator {
    let dir = root().join("fixtures/grist");
    Emulator::from_dirs(&[
        dir.join("fidelity-data-model"),
        dir.join("fidelity-data"),
        dir.join("demo-test-set"),
    ])
    .unwrap()
}

async fn fidelity() -> Setup {
    Setup::new(
        fidelity_docs(),
        ["fidelity-data-model", "fidelity-data", "demo-test-set"],
    )
    .await
}

/// `SELECT key, attributes FROM <table>` as a map.
async fn attributes_by_key(s: &Setup, sql: &str) -> BTreeMap<String, Value> {
    let mut c = s.db.connect().await;
    sqlx::query_as::<_, (String, Value)>(sql)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

const EDGES_SQL: &str = "SELECT from_node_id || '(' || from_node_type || ') -' || edge_label || '-> ' || to_node_id || '(' || to_node_type || ')', attributes";

fn expected_edges() -> BTreeMap<String, Value> {
    let dune =
        json!({"role": "author", "royalty_pct": 12.5, "share": 12.5, "signed": "1963-05-01"});
    let messiah = json!({"role": "author", "royalty_pct": 10.0});
    let earthsea = json!({"role": "author", "royalty_pct": 15.0, "share": 15});
    let knows = json!({"since": 1970});
    [
        // Given by the `wrote` reference column and by link rows: the first link row's
        // attributes, both ways (the link is undirected); the later duplicate (an editor) lost.
        (
            "author:herbert(author) -AUTHOR_wrote_BOOK-> book:dune(book)",
            dune.clone(),
        ),
        (
            "book:dune(book) -AUTHOR_wrote_BOOK-> author:herbert(author)",
            dune,
        ),
        // The share formula failed for this row: the attribute is left out.
        (
            "author:herbert(author) -AUTHOR_wrote_BOOK-> book:messiah(book)",
            messiah.clone(),
        ),
        (
            "book:messiah(book) -AUTHOR_wrote_BOOK-> author:herbert(author)",
            messiah,
        ),
        // A link row written from the book's side still wins over the reference column.
        (
            "book:earthsea(book) -AUTHOR_wrote_BOOK-> author:leguin(author)",
            earthsea.clone(),
        ),
        (
            "author:leguin(author) -AUTHOR_wrote_BOOK-> book:earthsea(book)",
            earthsea,
        ),
        // Only the reference column gives this one: no attributes.
        (
            "author:leguin(author) -AUTHOR_wrote_BOOK-> book:lathe(book)",
            json!({}),
        ),
        (
            "book:lathe(book) -AUTHOR_wrote_BOOK-> author:leguin(author)",
            json!({}),
        ),
        // A plain link table (CSV): the first row wins over its duplicate and over a later row
        // that is its reverse.
        (
            "author:herbert(author) -AUTHOR_knows_AUTHOR-> author:leguin(author)",
            knows.clone(),
        ),
        (
            "author:leguin(author) -AUTHOR_knows_AUTHOR-> author:herbert(author)",
            knows,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn expected_nodes() -> BTreeMap<String, Value> {
    [
        // A formula error (`ratio`) and a gristHelper_* column named as an attribute are left
        // out; the reference to row 3, whose id row 1 took, shows row 3's own title.
        (
            "author:herbert",
            json!({"name": "Frank Herbert", "born": "1920-10-08", "book_count": 2,
                   "favourite_book": "Dune (2nd printing)"}),
        ),
        (
            "author:leguin",
            json!({"name": "Ursula K. Le Guin", "born": "1929-10-21", "book_count": 2,
                   "favourite_book": "A Wizard of Earthsea"}),
        ),
        // Blanks are left out; a formula's 0 and a Numeric formula's value are kept.
        ("author:nobody", json!({"book_count": 0, "ratio": -0.5})),
        (
            "book:dune",
            json!({"title": "Dune", "price": 9.99, "genres": ["sf", "classic"], "rating": 5.0}),
        ),
        (
            "book:messiah",
            json!({"title": "Dune Messiah", "price": 8.5, "genres": ["sf"], "rating": 4.25}),
        ),
        (
            "book:earthsea",
            json!({"title": "A Wizard of Earthsea", "price": 7.0, "genres": ["fantasy"]}),
        ),
        (
            "book:lathe",
            json!({"title": "The Lathe of Heaven", "rating": 0}),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn assert_same_types(expected: &BTreeMap<String, Value>, got: &BTreeMap<String, Value>) {
    assert_eq!(got, expected);
    // serde_json's equality tells 12 from 12.0: check it held for every number.
    for (k, v) in expected {
        for (name, value) in v.as_object().unwrap() {
            let g = &got[k][name];
            assert_eq!(g.is_f64(), value.is_f64(), "{k}.{name}: {g} vs {value}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_docs_give_typed_attributes_and_the_link_rows_attributes() {
    let s = fidelity().await;
    let r = s.run().await;

    for (table, from) in [("grist_nodes", "grist_nodes"), ("nodes", "nodes")] {
        let got = attributes_by_key(
            &s,
            &format!("SELECT node_id, attributes FROM {from} ORDER BY 1"),
        )
        .await;
        assert_eq!(got.len(), 7, "{table}");
        assert_same_types(&expected_nodes(), &got);
    }
    for table in ["grist_edges", "edges"] {
        let got = attributes_by_key(&s, &format!("{EDGES_SQL} FROM {table}")).await;
        assert_same_types(&expected_edges(), &got);
    }
    assert!(r.stdout.contains("duplicate_node_ids: 1"), "{r}");

    // A blank embed_top_n takes EMBEDDINGS_TOP_N (10 by default), as in Vedana.
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchor_attributes WHERE embed_top_n = 10")
            .await,
        11
    );
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchor_attributes WHERE attribute_name = 'name' AND embed_top_n = 5")
            .await,
        1
    );
    assert_eq!(
        s.count("SELECT count(*) FROM dm_link_attributes WHERE embed_top_n = 10")
            .await,
        5
    );

    // The graph holds the same edges, with the link rows' attributes.
    let in_graph = s.graph_edges().await;
    assert_eq!(in_graph, s.table_edges().await);
    assert!(
        in_graph
            .iter()
            .any(|e| e.contains("\"book:dune\"") && e.contains("\"royalty_pct\":12.5")),
        "{in_graph:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_merge_rule_does_not_depend_on_the_order_grist_answers_in() {
    let s = fidelity().await;
    s.run().await;
    let before = attributes_by_key(&s, &format!("{EDGES_SQL} FROM edges")).await;

    // Move the winning link row to the end of Grist's row order (manualSort) and reorder the
    // reference column's items: the result stays, because row ids decide, not positions.
    let docs = s.docs();
    for (id, sort) in [(1, 99), (3, -1)] {
        docs.update_record(
            "fidelity-data",
            "Link_author_wrote_book",
            id,
            json!({"manualSort": sort}),
        )
        .unwrap();
    }
    docs.update_record(
        "fidelity-data",
        "Anchor_author",
        1,
        json!({"wrote": ["L", 2, 1]}),
    )
    .unwrap();
    let r = s.etl(&["run", "--full-refresh"], &[]).await;
    assert_eq!(r.code, Some(0), "{r}");
    let after = attributes_by_key(&s, &format!("{EDGES_SQL} FROM edges")).await;
    assert_eq!(after, before);
    assert_eq!(after, expected_edges());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_test_set_doc_skips_its_step_keeps_eval_gds_and_builds_the_graph() {
    let s = Setup::demo().await;
    s.run().await;
    let questions = s.count("SELECT count(*) FROM eval_gds").await;
    assert!(questions > 0);

    for how in ["unset", "empty"] {
        let r = match how {
            "unset" => s.etl_with(&["run"], &[], &["GRIST_TEST_SET_DOC_ID"]).await,
            _ => s.etl(&["run"], &[("GRIST_TEST_SET_DOC_ID", "")]).await,
        };
        assert_eq!(r.code, Some(0), "{how}: {r}");
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("grist_test_set"))
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            line.contains("not run: GRIST_TEST_SET_DOC_ID unset or empty"),
            "{how}: {line}"
        );
        assert_eq!(s.count("SELECT count(*) FROM eval_gds").await, questions);
    }
    let check = s
        .etl_with(&["check"], &[], &["GRIST_TEST_SET_DOC_ID"])
        .await;
    assert_eq!(check.code, Some(0), "{check}");
    assert!(
        check
            .stdout
            .contains("step grist_test_set: will not run: GRIST_TEST_SET_DOC_ID unset or empty"),
        "{check}"
    );

    // A fresh database with the variable never set builds the whole graph.
    let fresh = Setup::demo().await;
    let r = fresh
        .etl_with(&["run"], &[], &["GRIST_TEST_SET_DOC_ID"])
        .await;
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(fresh.count("SELECT count(*) FROM eval_gds").await, 0);
    assert!(fresh.count("SELECT count(*) FROM nodes").await > 0);
    assert_eq!(fresh.graph_nodes().await, fresh.table_nodes().await);
    assert_eq!(fresh.graph_edges().await, fresh.table_edges().await);
}

/// The variables Vedana's `apps/vedana/.env.example` sets (its commented-out Grist and OpenAI
/// lines included): a team swapping Vedana's ETL for ours keeps this file as it is.
const VEDANA_ENV_EXAMPLE: &[&str] = &[
    "GRIST_SERVER_URL",
    "GRIST_API_KEY",
    "GRIST_DATA_MODEL_DOC_ID",
    "GRIST_DATA_DOC_ID",
    "GRIST_TEST_SET_DOC_ID",
    "MEMGRAPH_URI",
    "MEMGRAPH_USER",
    "MEMGRAPH_PWD",
    "JIMS_DB_CONN_URI",
    "MODEL",
    "EMBEDDINGS_MODEL",
    "EMBEDDINGS_DIM",
    "EMBEDDINGS_MAX_BATCH_SIZE",
    "EMBEDDINGS_MAX_TOKENS_PER_BATCH",
    "TELEGRAM_BOT_TOKEN",
    "VEDANA_BACKOFFICE_DEBUG",
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "DATAPIPE_PIPELINE",
    "DB_CONN_URI",
    "CREATE_PGVECTOR_EXTENSION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "OPENROUTER_API_KEY",
    "OPENAI_API_KEY",
];

/// Empties the test server's shared `memgraph` database.
async fn empty_graph(graph: &graph::GraphClient) {
    graph
        .write(
            "empty the graph",
            &[("MATCH (n) DETACH DELETE n".to_string(), vec![])],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vedanas_env_example_runs_the_pipeline_with_nothing_added_but_the_model_endpoint() {
    let s = Setup::demo().await;
    // Vedana names no graph database or dialect: ours then uses the database `memgraph` and
    // asks the server which dialect it speaks. The test server's `memgraph` database is shared,
    // so empty it first.
    let server = &s.graph.server;
    let memgraph = graph::GraphClient::connect(&graph::GraphConfig {
        uri: server.bolt_uri.clone(),
        user: server.user.clone(),
        password: server.password.clone(),
        database: "memgraph".into(),
        dialect: graph::Dialect::Neo4j,
        connect_timeout: std::time::Duration::from_secs(10),
        retry: etl_core::retry::RetryPolicy::quick(),
    })
    .await
    .unwrap();
    empty_graph(&memgraph).await;

    let value = |name: &str| -> String {
        let ours = |k: &str| {
            s.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match name {
            "GRIST_API_KEY" => "any-key".into(),
            "MEMGRAPH_URI" => server.bolt_uri.clone(),
            "MEMGRAPH_USER" => server.user.clone(),
            "MEMGRAPH_PWD" => server.password.clone(),
            "MODEL" => "gpt-4.1-mini".into(),
            "EMBEDDINGS_MAX_BATCH_SIZE" => "2048".into(),
            "EMBEDDINGS_MAX_TOKENS_PER_BATCH" => "200000".into(),
            "DATAPIPE_PIPELINE" => "vedana_etl.app".into(),
            "CREATE_PGVECTOR_EXTENSION" => "true".into(),
            "JIMS_DB_CONN_URI" => ours("DB_CONN_URI"),
            other => ours(other),
        }
    };
    let mut env: Vec<(&str, String)> = VEDANA_ENV_EXAMPLE
        .iter()
        .map(|name| (*name, value(name)))
        .collect();
    // The one addition: the test cannot reach OpenAI, so the OpenAI SDKs' own variable points
    // at the fake model server.
    env.push(("OPENAI_BASE_URL", s.model.base_url()));

    let r = s.etl_only(&["run"], &env).await;
    assert_eq!(r.code, Some(0), "{r}");
    assert!(s.count("SELECT count(*) FROM nodes").await > 0);
    assert!(s.count("SELECT count(*) FROM eval_gds").await > 0);
    assert!(s.count("SELECT count(*) FROM rag_anchor_embeddings").await > 0);
    let nodes = memgraph
        .rows("MATCH (n) RETURN count(n) AS n", &["n"])
        .await
        .unwrap();
    assert_eq!(
        nodes[0][0],
        json!(s.count("SELECT count(*) FROM nodes").await),
        "{r}"
    );
    let again = s.etl_only(&["run"], &env).await;
    assert_eq!(again.code, Some(0), "{again}");
    empty_graph(&memgraph).await;
}
