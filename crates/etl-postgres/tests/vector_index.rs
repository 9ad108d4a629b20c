//! The embedding tables' vector indexes as the settings ask (`EMBEDDINGS_INDEX` and its
//! parameters), read back from `pg_indexes`: each option leaves exactly its index, twice in a
//! row; what a killed change left is completed; a new dimension drops the vectors and keeps the
//! index asked for.

use std::collections::HashMap;

use sqlx::PgPool;

use etl_postgres::vector_index::{
    apply, change_dimension, vector_tables, Applied, IndexSpec, VectorTable,
};
use etl_testkit::postgres::TestDb;

fn spec(vars: &[(&str, &str)]) -> IndexSpec {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    IndexSpec::from_settings(|k| vars.get(k).cloned()).unwrap()
}

/// `(name, definition)` of every index of `table` but its primary key.
async fn indexes(pool: &PgPool, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
          WHERE tablename = $1 AND indexname NOT LIKE '%_pkey' ORDER BY 1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The embedding table `name`, as the catalogue says it is now.
async fn vector_table(pool: &PgPool, name: &str) -> VectorTable {
    vector_tables(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.table == name)
        .unwrap()
}

async fn apply_all(pool: &PgPool, s: &IndexSpec) -> Vec<Applied> {
    let mut out = Vec::new();
    for t in vector_tables(pool).await.unwrap() {
        out.push(apply(pool, &t, s).await.unwrap());
    }
    out
}

/// Settings, and the index they leave: its name's suffix and a part of its definition.
type Case = (
    &'static [(&'static str, &'static str)],
    Option<(&'static str, &'static str)>,
);

#[tokio::test]
async fn each_index_option_leaves_exactly_its_index_twice_in_a_row() {
    let db = TestDb::new().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    let tables: Vec<String> = vector_tables(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.table)
        .collect();
    assert_eq!(tables, ["rag_anchor_embeddings", "rag_edge_embeddings"]);
    let cases: [Case; 5] = [
        (
            &[("EMBEDDINGS_HNSW_M", "8"), ("EMBEDDINGS_HNSW_EF_CONSTRUCTION", "32")],
            Some(("_hnsw", "USING hnsw (embedding vector_cosine_ops) WITH (ef_construction='32', m='8')")),
        ),
        (
            &[("EMBEDDINGS_INDEX", "ivfflat"), ("EMBEDDINGS_IVFFLAT_LISTS", "4")],
            Some(("_ivfflat", "USING ivfflat (embedding vector_cosine_ops) WITH (lists='4')")),
        ),
        (
            &[("EMBEDDINGS_INDEX_HALFVEC", "true")],
            Some(("_hnsw_halfvec", "USING hnsw (((embedding)::halfvec(8)) halfvec_cosine_ops) WITH (ef_construction='64', m='16')")),
        ),
        (&[("EMBEDDINGS_INDEX", "none")], None),
        (
            &[],
            Some(("_hnsw", "USING hnsw (embedding vector_cosine_ops) WITH (ef_construction='64', m='16')")),
        ),
    ];
    for (vars, wanted) in cases {
        let s = spec(vars);
        let first = apply_all(&pool, &s).await;
        let second = apply_all(&pool, &s).await;
        assert!(
            second.iter().all(|a| *a == Applied::Unchanged),
            "{vars:?}: {first:?} then {second:?}"
        );
        for t in &tables {
            let found = indexes(&pool, t).await;
            match wanted {
                None => assert!(found.is_empty(), "{vars:?}: {found:?}"),
                Some((suffix, def)) => {
                    assert_eq!(found.len(), 1, "{vars:?}: {found:?}");
                    assert_eq!(found[0].0, format!("{t}{suffix}"));
                    assert!(found[0].1.contains(def), "{vars:?}: {}", found[0].1);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_change_killed_half_way_is_completed_by_the_next() {
    let db = TestDb::new().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    let table = "rag_anchor_embeddings";
    // Killed after making the new index, before dropping the old one and naming the new:
    sqlx::query(&format!(
        "CREATE INDEX {table}_ivfflat_new ON {table} USING ivfflat (embedding vector_cosine_ops) WITH (lists = 4)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    // ... and a CREATE INDEX CONCURRENTLY killed earlier left an invalid index.
    sqlx::query(&format!(
        "CREATE INDEX {table}_stale ON {table} USING hnsw (embedding vector_cosine_ops)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{table}_stale'::regclass"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let s = spec(&[
        ("EMBEDDINGS_INDEX", "ivfflat"),
        ("EMBEDDINGS_IVFFLAT_LISTS", "4"),
    ]);
    let t = vector_table(&pool, table).await;
    // The index already made is kept (not made again), the others dropped.
    assert_eq!(apply(&pool, &t, &s).await.unwrap(), Applied::Unchanged);
    let found = indexes(&pool, table).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, format!("{table}_ivfflat"));
    assert_eq!(apply(&pool, &t, &s).await.unwrap(), Applied::Unchanged);
}

#[tokio::test]
async fn a_new_dimension_drops_the_vectors_and_keeps_the_index_asked_for() {
    let db = TestDb::new().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO rag_anchor_embeddings VALUES ('p1', 'person', 'name', 'Ada', '[1,0,0,0,0,0,0,0]')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let t = vector_table(&pool, "rag_anchor_embeddings").await;
    assert_eq!(t.dim, 8);
    assert_eq!(change_dimension(&pool, &t, 4).await.unwrap(), 1);
    let t = vector_table(&pool, "rag_anchor_embeddings").await;
    assert_eq!(t.dim, 4);
    assert_eq!(
        apply(&pool, &t, &IndexSpec::default()).await.unwrap(),
        Applied::Made("rag_anchor_embeddings_hnsw".into())
    );
    sqlx::query(
        "INSERT INTO rag_anchor_embeddings VALUES ('p1', 'person', 'name', 'Ada', '[1,0,0,0]')",
    )
    .execute(&pool)
    .await
    .unwrap();
}

#[test]
fn bad_settings_are_all_reported_at_once() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("EMBEDDINGS_INDEX", "hnsw"),
        ("EMBEDDINGS_HNSW_M", "lots"),
        ("EMBEDDINGS_HNSW_EF_CONSTRUCTION", "1"),
        ("EMBEDDINGS_INDEX_HALFVEC", "maybe"),
    ]);
    let e = IndexSpec::from_settings(|k| vars.get(k).map(|v| v.to_string()))
        .unwrap_err()
        .to_string();
    for part in [
        "EMBEDDINGS_HNSW_M: `lots`",
        "EMBEDDINGS_HNSW_EF_CONSTRUCTION: `1`",
        "EMBEDDINGS_INDEX_HALFVEC: `maybe`",
    ] {
        assert!(e.contains(part), "{e}");
    }
    let e = IndexSpec::from_settings(|k| (k == "EMBEDDINGS_INDEX").then(|| "flat".to_string()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not one of hnsw, ivfflat, none"), "{e}");
}
