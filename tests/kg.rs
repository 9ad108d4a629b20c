//! The knowledge-graph pipeline end to end: the repository's `pipelines.toml`, the built `etl`
//! binary, a Grist emulator in the test, and real Postgres. Every test asserts rows.

use std::time::Duration;

use grist_emulator::{Column, Doc, Emulator, Record, Table};
use serde_json::{json, Value};

mod support;

use support::{demo_docs, recorded, root, Setup};

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

/// A data model and a data doc built to exercise every rule.
fn rules_docs() -> Emulator {
    let mut next_ref = 0;
    let mut col = |id: &str, ty: &str| {
        next_ref += 1;
        Column::new(id, ty)
            .with("colRef", json!(next_ref))
            .with("parentPos", json!(next_ref))
    };
    let rec = |id: i64, fields: Value| Record::new(id, fields).unwrap();
    let text_cols = |col: &mut dyn FnMut(&str, &str) -> Column, ids: &[&str]| -> Vec<Column> {
        ids.iter().map(|i| col(i, "Text")).collect()
    };

    // Data model.
    let mut model = Doc::new("model");
    let noun = col("noun", "Text");
    let noun_ref = noun.col_ref();
    let mut anchors_cols = vec![col("manualSort", "ManualSortPos"), noun];
    anchors_cols.extend(text_cols(&mut col, &["description", "id_example", "query"]));
    let anchors = Table::new(
        "Anchors",
        anchors_cols,
        vec![
            rec(1, json!({"noun": "owner"})),
            rec(2, json!({"noun": "pet"})),
            rec(3, json!({"noun": "toy"})),
            rec(4, json!({"noun": ""})), // a blank row
        ],
    );
    let helper = col("gristHelper_Display", "Any")
        .with("isFormula", json!(true))
        .with("formula", json!("$anchor.noun"));
    let anchor = col("anchor", "Ref:Anchors")
        .with("visibleCol", json!(noun_ref))
        .with("displayCol", json!(helper.col_ref()));
    let mut attr_cols = vec![
        col("manualSort", "ManualSortPos"),
        col("attribute_name", "Text"),
        anchor,
    ];
    attr_cols.push(col("embeddable", "Bool"));
    attr_cols.push(helper);
    let attribute = |id: i64, a: i64, name: &str| {
        rec(
            id,
            json!({"attribute_name": name, "anchor": a, "embeddable": false}),
        )
    };
    let anchor_attributes = Table::new(
        "Anchor_attributes",
        attr_cols,
        vec![
            attribute(1, 1, "owner_id"),
            attribute(2, 1, "name"),
            attribute(3, 1, "age"),
            attribute(4, 1, "score"),
            attribute(5, 1, "active"),
            attribute(6, 1, "tags"),
            attribute(7, 1, "born"),
            attribute(8, 1, "favourite"),
            attribute(9, 1, "all_toys"),
            attribute(10, 1, "shout"),
            attribute(11, 1, "broken"),
            attribute(12, 2, "pet_name"),
            attribute(13, 3, "toy_name"),
        ],
    );
    let a1 = col("anchor1", "Ref:Anchors").with("visibleCol", json!(noun_ref));
    let a2 = col("anchor2", "Ref:Anchors").with("visibleCol", json!(noun_ref));
    let mut link_cols = vec![
        col("manualSort", "ManualSortPos"),
        col("sentence", "Text"),
        a1,
        a2,
    ];
    link_cols.extend(text_cols(
        &mut col,
        &["anchor1_link_column_name", "anchor2_link_column_name"],
    ));
    link_cols.push(col("has_direction", "Bool"));
    let links = Table::new(
        "Links",
        link_cols,
        vec![
            // Edges from a Ref column of owners, and from a Text column of pets holding owner ids.
            rec(
                1,
                json!({"sentence": "OWNER_loves_TOY", "anchor1": 1, "anchor2": 3, "anchor1_link_column_name": "favourite", "has_direction": true}),
            ),
            rec(
                2,
                json!({"sentence": "OWNER_has_PET", "anchor1": 1, "anchor2": 2, "anchor2_link_column_name": "owner_text", "has_direction": true}),
            ),
            // Edges from a link table, undirected.
            rec(
                3,
                json!({"sentence": "PET_plays_with_TOY", "anchor1": 2, "anchor2": 3, "has_direction": false}),
            ),
            // Edges from a RefList column.
            rec(
                4,
                json!({"sentence": "OWNER_owns_TOY", "anchor1": 1, "anchor2": 3, "anchor1_link_column_name": "all_toys", "has_direction": true}),
            ),
        ],
    );
    let sentence_ref = links.column("sentence").unwrap().col_ref();
    let link_helper = col("gristHelper_Display", "Any")
        .with("isFormula", json!(true))
        .with("formula", json!("$link.sentence"));
    let link = col("link", "Ref:Links")
        .with("visibleCol", json!(sentence_ref))
        .with("displayCol", json!(link_helper.col_ref()));
    let link_attributes = Table::new(
        "Link_attributes",
        vec![
            col("manualSort", "ManualSortPos"),
            col("attribute_name", "Text"),
            link,
            link_helper,
        ],
        vec![rec(1, json!({"attribute_name": "since", "link": 3}))],
    );
    for t in [anchors, anchor_attributes, links, link_attributes] {
        model.tables.push(t);
    }
    for (t, cols) in [
        ("Queries", ["query_name", "query_example"]),
        ("Prompts", ["name", "text"]),
        ("ConversationLifecycle", ["event", "text"]),
    ] {
        model
            .tables
            .push(Table::new(t, text_cols(&mut col, &cols), vec![]));
    }

    // Data.
    let mut data = Doc::new("data");
    let toy_name = col("toy_name", "Text");
    let toy_name_ref = toy_name.col_ref();
    let toys = Table::new(
        "Anchor_toy",
        vec![col("toy_id", "Text"), toy_name],
        vec![
            rec(1, json!({"toy_id": "toy:ball", "toy_name": "Ball"})),
            rec(2, json!({"toy_id": "toy:rope", "toy_name": "Rope"})),
            rec(3, json!({"toy_id": "", "toy_name": "Nameless"})), // id from the row id: toy:3
        ],
    );
    let pets = Table::new(
        "Anchor_pet",
        vec![
            col("pet_id", "Text"),
            col("pet_name", "Text"),
            col("owner_text", "Text"),
        ],
        vec![
            rec(
                1,
                json!({"pet_id": "pet:rex", "pet_name": "Rex", "owner_text": "owner:ann"}),
            ),
            rec(
                2,
                json!({"pet_id": "pet:tom", "pet_name": "Tom", "owner_text": "owner:nobody"}),
            ), // dangling: dropped
        ],
    );
    let fav_helper = col("gristHelper_Display", "Any")
        .with("isFormula", json!(true))
        .with("formula", json!("$favourite.toy_name"));
    let favourite = col("favourite", "Ref:Anchor_toy")
        .with("visibleCol", json!(toy_name_ref))
        .with("displayCol", json!(fav_helper.col_ref()));
    let all_helper = col("gristHelper_Display2", "Any")
        .with("isFormula", json!(true))
        .with("formula", json!("$all_toys.toy_name"));
    let all_toys = col("all_toys", "RefList:Anchor_toy")
        .with("visibleCol", json!(toy_name_ref))
        .with("displayCol", json!(all_helper.col_ref()));
    let owners = Table::new(
        "Anchor_owner",
        vec![
            col("manualSort", "ManualSortPos"),
            col("owner_id", "Text"),
            col("name", "Text"),
            col("age", "Int"),
            col("score", "Numeric"),
            col("active", "Bool"),
            col("tags", "ChoiceList"),
            col("born", "Date"),
            favourite,
            all_toys,
            col("shout", "Any").with("isFormula", json!(true)).with("formula", json!("$name.upper()")),
            col("broken", "Any").with("isFormula", json!(true)).with("formula", json!("1/0")),
            col("private_notes", "Text"),
            fav_helper,
            all_helper,
        ],
        vec![
            rec(1, json!({"owner_id": "owner:ann", "name": "Ann", "age": 41, "score": 2.5, "active": true,
                          "tags": ["L", "a", "b"], "born": 0, "favourite": 1, "all_toys": ["L", 1, 2, 99],
                          "shout": "ANN", "private_notes": "secret"}))
            .with_error("broken", "ZeroDivisionError"),
            rec(2, json!({"owner_id": "owner:bob", "name": "Bob", "age": null, "score": null, "active": false,
                          "tags": null, "born": null, "favourite": 0, "all_toys": ["L", 3], "shout": "BOB"})),
            rec(3, json!({"owner_id": "owner:ann", "name": "Ann again", "favourite": 2})), // duplicate id: ignored
            rec(4, json!({"owner_id": "", "name": "Anonymous", "favourite": 99})), // id from the row id; dangling ref
        ],
    );
    let plays = Table::new(
        "Link_pet_plays_with_toy",
        vec![
            col("from_node_id", "Text"),
            col("to_node_id", "Text"),
            col("edge_label", "Text"),
            col("since", "Int"),
            col("colour", "Text"),
        ],
        vec![
            rec(
                1,
                json!({"from_node_id": "pet:rex", "to_node_id": "toy:ball", "edge_label": "PET_plays_with_TOY", "since": 2020, "colour": "red"}),
            ),
            // Written the other way round: from a toy (anchor2) to a pet.
            rec(
                2,
                json!({"from_node_id": "toy:rope", "to_node_id": "pet:tom", "edge_label": "PET_plays_with_TOY", "since": 2021}),
            ),
            // The same edge again: collapses.
            rec(
                3,
                json!({"from_node_id": "pet:rex", "to_node_id": "toy:ball", "edge_label": "PET_plays_with_TOY", "since": 2020}),
            ),
            rec(
                4,
                json!({"from_node_id": "pet:ghost", "to_node_id": "toy:ball", "edge_label": "PET_plays_with_TOY"}),
            ), // dropped
        ],
    );
    let unknown_anchor = Table::new(
        "Anchor_dragon",
        vec![col("dragon_id", "Text")],
        vec![rec(1, json!({"dragon_id": "d1"}))],
    );
    let meta = Table::new(
        "Meta_info",
        vec![col("note", "Text")],
        vec![rec(1, json!({"note": "hi"}))],
    );
    for t in [toys, pets, owners, plays, unknown_anchor, meta] {
        data.tables.push(t);
    }

    let mut gds = Doc::new("gds");
    gds.tables.push(Table::new(
        "Gds",
        text_cols(
            &mut col,
            &[
                "gds_question",
                "gds_answer",
                "question_scenario",
                "question_comment",
                "question_context",
            ],
        ),
        vec![
            rec(
                1,
                json!({"gds_question": "Who owns Rex?", "gds_answer": "Ann"}),
            ),
            rec(2, json!({"gds_question": ""})),
        ],
    ));
    Emulator::with_docs(vec![model, data, gds])
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
async fn a_grist_failure_in_the_middle_of_a_run_deletes_nothing_and_the_next_run_recovers() {
    let s = Setup::demo().await;
    s.run().await;
    let edges = s.count("SELECT count(*) FROM edges").await;
    // Remove rows in Grist, then make the link table fail: 500s, then timeouts.
    s.docs()
        .delete_record("demo-data", "Anchor_person", 1)
        .unwrap();
    s.docs()
        .delete_record("demo-data", "Link_person_likes_interest", 2)
        .unwrap();
    for fault in ["500", "timeout"] {
        match fault {
            "500" => s
                .docs()
                .fail_next_for_table(100, "Link_person_likes_interest"),
            _ => s.docs().delay_next(
                100,
                Duration::from_secs(3),
                Some("Link_person_likes_interest"),
            ),
        }
        let r = s.etl(&["run"], &[("GRIST_TIMEOUT_SECS", "1")]).await;
        assert_eq!(r.code, Some(2), "{fault}: {r}");
        assert!(
            r.stdout.contains("grist_graph") && r.stdout.contains("FAILED"),
            "{r}"
        );
        assert_eq!(
            s.count("SELECT count(*) FROM nodes WHERE node_id = 'person:1'")
                .await,
            1,
            "{fault}: nothing deleted"
        );
        assert_eq!(
            s.count("SELECT count(*) FROM edges").await,
            edges,
            "{fault}: nothing deleted"
        );
        s.docs().clear_faults();
    }
    let r = s.run().await;
    assert_eq!(
        s.count("SELECT count(*) FROM nodes WHERE node_id = 'person:1'")
            .await,
        0,
        "{r}"
    );
    // person:1 had 2 likes (4 edges) and a city; the deleted link row was person:1's as well.
    assert_eq!(
        s.count("SELECT count(*) FROM edges").await,
        edges - 5,
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brief_sqlite_busy_and_server_errors_are_ridden_out() {
    let s = Setup::demo().await;
    s.docs().busy_next(2, Some("Anchor_person"));
    s.docs()
        .fail_next_for_table(2, "Link_person_likes_interest");
    let r = s.run().await;
    assert_eq!(
        s.docs().pending_faults(),
        0,
        "every fault was met and retried past:\n{r}"
    );
    assert_eq!(s.count("SELECT count(*) FROM nodes").await, 34);
    assert_eq!(s.count("SELECT count(*) FROM edges").await, 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_doc_or_table_tell_the_user_what_to_check() {
    let grist = demo_docs().with_api_key(Some("right-key"));
    let s = Setup::new(grist, ["demo-data-model", "demo-data", "demo-test-set"]).await;

    let r = s
        .etl(&["run"], &[("GRIST_API_KEY", "wrong-key-1234")])
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout
            .contains("Grist rejected the API key for doc `demo-data-model`"),
        "{r}"
    );
    assert!(r.stdout.contains("check GRIST_API_KEY"), "{r}");
    assert!(
        !r.stdout.contains("wrong-key-1234") && !r.stderr.contains("wrong-key-1234"),
        "the key leaked:\n{r}"
    );

    let r = s
        .etl(
            &["run"],
            &[
                ("GRIST_API_KEY", "right-key"),
                ("GRIST_DATA_DOC_ID", "no-such-doc"),
            ],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(r.stdout.contains("doc `no-such-doc` not found"), "{r}");
    assert!(
        r.stdout.contains("check the doc id (GRIST_*_DOC_ID)"),
        "{r}"
    );

    let r = s
        .etl(
            &["run"],
            &[
                ("GRIST_API_KEY", "right-key"),
                ("GRIST_TEST_SET_TABLE", "gds"),
            ],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r}");
    assert!(
        r.stdout.contains("table `gds` not found in doc `demo-test-set` (table ids are case-sensitive; did you mean `Gds`?)"),
        "{r}"
    );

    // With the right key, everything works, and `etl check` reaches every doc.
    let r = s.etl(&["check"], &[("GRIST_API_KEY", "right-key")]).await;
    assert_eq!(r.code, Some(0), "{r}");
    let r = s.etl(&["run"], &[("GRIST_API_KEY", "right-key")]).await;
    assert_eq!(r.code, Some(0), "{r}");
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
