//! Preparing the store: every table's columns and key read from the catalogue at once, and
//! each problem reported against the table it is about.

use std::sync::Arc;

use etl_core::store::Store;
use etl_core::Pipeline;
use etl_postgres::schema::ColumnKind;

use crate::harness::Harness;

#[tokio::test]
async fn prepare_reads_every_tables_columns_and_key() {
    let h = Harness::new().await;
    let pipeline = Arc::new(h.pipeline());
    h.store.prepare(&pipeline).await.unwrap();
    for name in pipeline.tables.keys() {
        let info = h.store.table_info(name).expect("every table is known");
        assert!(!info.columns.is_empty(), "{name}");
    }
    let nodes = h.store.table_info("nodes_out").unwrap();
    let columns: Vec<(&str, &ColumnKind)> = nodes
        .columns
        .iter()
        .map(|c| (c.name.as_str(), &c.kind))
        .collect();
    assert_eq!(
        columns,
        [
            ("node_id", &ColumnKind::Text),
            ("node_type", &ColumnKind::Text),
            ("attributes", &ColumnKind::Json)
        ]
    );
    // Prepared again: the bookkeeping is found, not made twice.
    h.store.prepare(&pipeline).await.unwrap();
}

#[tokio::test]
async fn prepare_names_a_missing_table() {
    let h = Harness::new().await;
    h.db.execute("DROP TABLE node_tags").await;
    let e = prepare_error(&h, &h.pipeline()).await;
    assert!(
        e.contains("`node_tags`") && e.contains("etl migrate"),
        "{e}"
    );
}

#[tokio::test]
async fn prepare_names_a_table_whose_key_differs_from_the_configuration() {
    let h = Harness::new().await;
    h.db.execute("ALTER TABLE attrs DROP CONSTRAINT attrs_pkey")
        .await;
    h.db.execute("ALTER TABLE attrs ADD PRIMARY KEY (anchor)")
        .await;
    let e = prepare_error(&h, &h.pipeline()).await;
    assert!(
        e.contains("`attrs`") && e.contains("the database has (anchor)"),
        "{e}"
    );
}

#[tokio::test]
async fn prepare_refuses_row_bookkeeping_keyed_otherwise() {
    let h = Harness::new().await;
    let pipeline = h.pipeline();
    h.store.prepare(&pipeline).await.unwrap();
    h.db.execute("DROP TABLE etl.meta__src_tags").await;
    h.db.execute(
        "CREATE TABLE etl.meta__src_tags (node_id text, tag text, hash bytea, producer_key text,
            create_ts timestamptz NOT NULL, update_ts timestamptz NOT NULL,
            process_ts timestamptz NOT NULL, delete_ts timestamptz, seq bigint NOT NULL,
            PRIMARY KEY (node_id, tag))",
    )
    .await;
    let e = prepare_error(&h, &pipeline).await;
    assert!(
        e.contains("meta__src_tags") && e.contains("keyed by (node_id, tag)"),
        "{e}"
    );
}

/// What preparing `pipeline` refuses with (it must refuse).
async fn prepare_error(h: &Harness, pipeline: &Pipeline) -> String {
    match h.store.prepare(pipeline).await {
        Ok(()) => panic!("prepare accepted a schema it should refuse"),
        Err(e) => e.to_string(),
    }
}
