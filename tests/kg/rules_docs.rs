//! The rules fixture: a data model doc, a data doc and a GDS doc built by hand so that every
//! rule of the graph (anchors, attributes of each type, links, formulas, Ref display values,
//! blanks and defaults) has a row exercising it.

use grist_emulator::{Column, Doc, Emulator, Record, Table};
use serde_json::{json, Value};

/// A data model and a data doc built to exercise every rule.
pub fn rules_docs() -> Emulator {
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
        model.push_table(t);
    }
    for (t, cols) in [
        ("Queries", ["query_name", "query_example"]),
        ("Prompts", ["name", "text"]),
        ("ConversationLifecycle", ["event", "text"]),
    ] {
        model.push_table(Table::new(t, text_cols(&mut col, &cols), vec![]));
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
        data.push_table(t);
    }

    let mut gds = Doc::new("gds");
    gds.push_table(Table::new(
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
