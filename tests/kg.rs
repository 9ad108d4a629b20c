//! The knowledge-graph pipeline end to end: the repository's `pipelines.toml`, the built `etl`
//! binary, a Grist emulator in the test, and real Postgres. Every test asserts rows.
//!
//! Modules: `rules_docs` builds the fixture exercising every rule; `failures` holds the tests
//! of Grist failing or being misconfigured.

use grist_emulator::{Column, Emulator};
use serde_json::{json, Value};

#[path = "kg/failures.rs"]
mod failures;
#[path = "kg/rules_docs.rs"]
mod rules_docs;
mod support;

use rules_docs::rules_docs;
use support::{recorded, root, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vedanas_recorded_docs_load_with_the_expected_counts() {
    let grist = Emulator::from_dirs(&[recorded()]).unwrap();
    let s = Setup::new(
        grist,
        [
            "vedana-demo-data-model",
            "vedana-demo-data",
            "vedana-demo-gds",
        ],
    )
    .await;
    s.run().await;
    assert_eq!(s.count("SELECT count(*) FROM dm_anchors").await, 2);
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchors WHERE noun IN ('person', 'interest')")
            .await,
        2
    );
    for t in ["grist_nodes", "nodes"] {
        assert_eq!(
            s.count(&format!(
                "SELECT count(*) FROM {t} WHERE node_type = 'person'"
            ))
            .await,
            46,
            "{t}"
        );
        assert_eq!(
            s.count(&format!(
                "SELECT count(*) FROM {t} WHERE node_type = 'interest'"
            ))
            .await,
            1068,
            "{t}"
        );
    }
    for t in ["grist_edges", "edges"] {
        // The 2,072 links and, has_direction being false, their reverses.
        assert_eq!(
            s.count(&format!("SELECT count(*) FROM {t}")).await,
            2 * 2072,
            "{t}"
        );
        assert_eq!(
            s.count(&format!("SELECT count(*) FROM {t} WHERE from_node_type = 'person' AND to_node_type = 'interest'")).await,
            2072
        );
    }
    assert_eq!(s.count("SELECT count(*) FROM eval_gds").await, 100);
    // Typed data model: booleans and numbers, blanks NULL (never 'nan').
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchor_attributes WHERE embeddable AND embed_threshold = 0.8 AND embed_top_n = 15").await,
        2
    );
    assert_eq!(s.count("SELECT count(*) FROM dm_anchor_attributes WHERE description IS NOT NULL OR dtype IS NOT NULL").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM dm_links WHERE has_direction = false AND anchor1_link_column_name IS NULL").await, 1);
    // Attributes hold only listed attributes, without <noun>_id.
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_type = 'person' AND attributes ? 'person_name' AND NOT attributes ? 'person_id'").await,
        46
    );

    let seq = s.seq().await;
    let r = s.run().await;
    assert_eq!(s.seq().await, seq, "a second run writes nothing:\n{r}");
}

async fn attributes(s: &Setup, node_id: &str) -> Value {
    let mut c = s.db.connect().await;
    sqlx::query_scalar::<_, Value>("SELECT attributes FROM nodes WHERE node_id = $1")
        .bind(node_id)
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("node {node_id}: {e}"))
}

async fn edges(s: &Setup) -> Vec<String> {
    let mut c = s.db.connect().await;
    sqlx::query_scalar::<_, String>(
        "SELECT from_node_id || '(' || from_node_type || ') -' || edge_label || '-> ' || to_node_id || '(' || to_node_type || ') ' || attributes::text
           FROM edges ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_the_graph_on_a_fixture_of_our_own() {
    let s = Setup::new(rules_docs(), ["model", "data", "gds"]).await;
    let r = s.run().await;

    // Blank rows skipped; anchors not in the model and other tables skipped.
    assert_eq!(s.count("SELECT count(*) FROM dm_anchors").await, 3);
    // Links.anchor1/anchor2 show a column but have no display formula: the CSV renders bare row
    // ids, resolved to the anchors' nouns.
    assert_eq!(
        s.count("SELECT count(*) FROM dm_links WHERE anchor1 = 'owner'")
            .await,
        3
    );
    assert_eq!(
        s.count("SELECT count(*) FROM dm_links WHERE anchor1 = 'pet' AND anchor2 = 'toy'")
            .await,
        1
    );
    // Anchor_attributes.anchor has a display formula: the CSV header is its helper's id.
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchor_attributes WHERE anchor = 'owner'")
            .await,
        11
    );
    assert_eq!(
        s.count("SELECT count(*) FROM dm_link_attributes WHERE link = 'PET_plays_with_TOY'")
            .await,
        1
    );
    assert!(r.stdout.contains("tables_skipped: 2"), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_type = 'dragon'")
            .await,
        0
    );

    // Duplicate ids: the first row wins and the others are reported.
    assert!(r.stdout.contains("duplicate_node_ids: 1"), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_type = 'owner'")
            .await,
        3
    );
    // Blank ids come from the row id.
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_id IN ('owner:4', 'toy:3')")
            .await,
        2
    );

    // Typed attributes, only the listed ones; references by display value; formulas by value.
    assert_eq!(
        attributes(&s, "owner:ann").await,
        json!({"name": "Ann", "age": 41, "score": 2.5, "active": true, "tags": ["a", "b"], "born": "1970-01-01",
               "favourite": "Ball", "all_toys": ["Ball", "Rope"], "shout": "ANN"})
    );
    // Blanks, a blank ref and a formula error are left out; false is kept.
    assert_eq!(
        attributes(&s, "owner:bob").await,
        json!({"name": "Bob", "active": false, "all_toys": ["Nameless"], "shout": "BOB"})
    );
    // Cells a record leaves out hold their type's default in Grist (0, false), as here.
    assert_eq!(
        attributes(&s, "owner:4").await,
        json!({"name": "Anonymous", "age": 0, "score": 0.0, "active": false})
    );

    assert_eq!(
        edges(&s).await,
        vec![
            // Ref column (anchor1_link_column_name), by row id; the dangling ref of owner:4 gives nothing.
            "owner:ann(owner) -OWNER_loves_TOY-> toy:ball(toy) {}",
            // RefList column: each referenced row; the dangling id 99 gives nothing.
            "owner:ann(owner) -OWNER_owns_TOY-> toy:ball(toy) {}",
            "owner:ann(owner) -OWNER_owns_TOY-> toy:rope(toy) {}",
            "owner:bob(owner) -OWNER_owns_TOY-> toy:3(toy) {}",
            // Text column of ids in anchor2's table (anchor2_link_column_name): from the referenced owner.
            "owner:ann(owner) -OWNER_has_PET-> pet:rex(pet) {}",
            // Link table, undirected: both ways; the duplicate collapsed; attributes filtered.
            "pet:rex(pet) -PET_plays_with_TOY-> toy:ball(toy) {\"since\": 2020}",
            // The reversed row keeps its direction, with the node types swapped.
            "toy:rope(toy) -PET_plays_with_TOY-> pet:tom(pet) {\"since\": 2021}",
            "pet:tom(pet) -PET_plays_with_TOY-> toy:rope(toy) {\"since\": 2021}",
            "toy:ball(toy) -PET_plays_with_TOY-> pet:rex(pet) {\"since\": 2020}",
        ]
        .into_iter()
        .map(String::from)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    // Dropped: pet:tom's owner "owner:nobody" and the link row from pet:ghost.
    assert!(r.stdout.contains("edges_dropped_missing_node: 2"), "{r}");
    assert_eq!(s.count("SELECT count(*) FROM eval_gds").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_in_grist_change_exactly_the_rows_they_should() {
    let s = Setup::demo().await;
    s.run().await;
    let nodes = s.count("SELECT count(*) FROM nodes").await;
    let edges = s.count("SELECT count(*) FROM edges").await;

    // No edit: nothing written, and the extracts find their sources unchanged by asking the
    // same questions again, without parsing or diffing anything.
    let seq = s.seq().await;
    let r = s.run().await;
    assert_eq!(s.seq().await, seq);
    assert_eq!(r.stdout.matches("source_unchanged: 1").count(), 3, "{r}");

    // One cell: one grist_nodes row, one nodes row.
    s.docs()
        .update_record(
            "demo-data",
            "Anchor_person",
            3,
            json!({"person_name": "Chloe V."}),
        )
        .unwrap();
    let r = s.run().await;
    assert_eq!(r.written("grist_nodes"), (0, 1, 0), "{r}");
    assert_eq!(r.written("nodes"), (0, 1, 0), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE attributes->>'person_name' = 'Chloe V.'")
            .await,
        1
    );
    assert!(
        r.stdout.contains("edges                    transform") && r.stdout.contains("keys=0"),
        "{r}"
    );

    // Adding an attribute for `interest` re-derives interest nodes only.
    let seq = s.seq().await;
    let before_person = s
        .count("SELECT max(seq) FROM etl.meta__nodes WHERE node_type = 'person'")
        .await;
    s.docs()
        .add_record(
            "demo-data-model",
            "Anchor_attributes",
            json!({"attribute_name": "interest_name_copy", "anchor": 2, "embeddable": false}),
        )
        .unwrap();
    let mut cols = s
        .docs()
        .table("demo-data", "Anchor_interest")
        .unwrap()
        .columns;
    cols.push(Column::new("interest_name_copy", "Text").with("colRef", json!(900)));
    s.docs()
        .replace_columns("demo-data", "Anchor_interest", cols)
        .unwrap();
    for id in 1..=14 {
        s.docs()
            .update_record(
                "demo-data",
                "Anchor_interest",
                id,
                json!({"interest_name_copy": format!("copy {id}")}),
            )
            .unwrap();
    }
    let r = s.run().await;
    assert_eq!(r.written("nodes"), (0, 14, 0), "{r}");
    assert_eq!(
        s.count("SELECT max(seq) FROM etl.meta__nodes WHERE node_type = 'person'")
            .await,
        before_person,
        "persons untouched"
    );
    assert!(s.seq().await > seq);

    // A deleted row: its node and its edges go.
    s.docs()
        .delete_record("demo-data", "Anchor_person", 16)
        .unwrap();
    let r = s.run().await;
    assert_eq!(r.written("nodes"), (0, 0, 1), "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_id = 'person:16'")
            .await,
        0
    );
    assert_eq!(
        s.count("SELECT count(*) FROM edges WHERE 'person:16' IN (from_node_id, to_node_id)")
            .await,
        0
    );
    assert_eq!(s.count("SELECT count(*) FROM edges").await, edges - 4);

    // A new row: one node.
    s.docs()
        .add_record(
            "demo-data",
            "Anchor_person",
            json!({"person_id": "person:17", "person_name": "Quinn", "city": 2}),
        )
        .unwrap();
    let r = s.run().await;
    assert_eq!(r.written("nodes"), (1, 0, 0), "{r}");
    assert_eq!(r.written("edges"), (1, 0, 0), "{r}");
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_docs_give_the_same_graph_as_the_folders() {
    // Seed the demo folders into an empty Grist, then run the pipeline on the seeded docs.
    let grist = Emulator::new()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = root().join("fixtures/grist");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["grist", "seed", "--server", &grist.url()])
        .args([
            dir.join("demo-data-model"),
            dir.join("demo-data"),
            dir.join("demo-test-set"),
        ])
        .env_remove("GRIST_API_KEY")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no id for {name} in {stdout}"))
            .to_string()
    };
    let docs = grist.docs().clone();
    let ids = [id("demo-data-model"), id("demo-data"), id("demo-test-set")];
    let s = Setup::with_running(grist, [&ids[0], &ids[1], &ids[2]]).await;
    s.run().await;
    assert_eq!(docs.doc_ids().len(), 3);
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 34);
    assert_eq!(s.count("SELECT count(*) FROM edges").await, 63);
    assert_eq!(
        s.count("SELECT count(*) FROM dm_anchor_attributes WHERE anchor = 'person'")
            .await,
        4
    );
    assert_eq!(
        s.count("SELECT count(*) FROM edges WHERE edge_label = 'PERSON_lives_in_CITY'")
            .await,
        15
    );
}
