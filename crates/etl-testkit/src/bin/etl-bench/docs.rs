//! The benchmark's docs: the sizes, and synthetic docs of the demo's shape (persons,
//! interests, person-likes-interest links, with names) written as doc folders.

use std::path::Path;

use serde_json::{json, Value};

pub struct Size {
    pub name: &'static str,
    pub persons: usize,
    pub interests: usize,
    pub links: usize,
}

pub const SIZES: [Size; 3] = [
    Size {
        name: "S",
        persons: 46,
        interests: 1068,
        links: 2072,
    },
    Size {
        name: "M",
        persons: 10_000,
        interests: 20_000,
        links: 100_000,
    },
    Size {
        name: "L",
        persons: 100_000,
        interests: 200_000,
        links: 1_000_000,
    },
];

fn column(col_ref: usize, id: &str, ty: &str) -> Value {
    json!({"id": id, "fields": {"colRef": col_ref, "label": id, "type": ty, "isFormula": false, "formula": "",
           "parentPos": col_ref, "visibleCol": 0, "displayCol": 0, "widgetOptions": ""}})
}

fn write_table(
    dir: &Path,
    table: &str,
    columns: &[(&str, &str)],
    records: impl Iterator<Item = Value>,
) {
    let cols: Vec<Value> = std::iter::once(column(1, "manualSort", "ManualSortPos"))
        .chain(
            columns
                .iter()
                .enumerate()
                .map(|(i, (id, ty))| column(i + 2, id, ty)),
        )
        .collect();
    std::fs::write(
        dir.join(format!("{table}.columns.json")),
        json!({"columns": cols}).to_string(),
    )
    .unwrap();
    let recs: Vec<Value> = records
        .enumerate()
        .map(|(i, f)| json!({"id": i + 1, "fields": f}))
        .collect();
    std::fs::write(
        dir.join(format!("{table}.records.json")),
        json!({"records": recs}).to_string(),
    )
    .unwrap();
}

/// Writes the three docs of a size into `root`.
pub fn generate(root: &Path, size: &Size) {
    let model = root.join("bench-data-model");
    let data = root.join("bench-data");
    let gds = root.join("bench-test-set");
    for d in [&model, &data, &gds] {
        std::fs::create_dir_all(d).unwrap();
    }
    let text = |cols: &[&'static str]| cols.iter().map(|c| (*c, "Text")).collect::<Vec<_>>();
    write_table(
        &model,
        "Anchors",
        &text(&["noun", "description", "id_example", "query"]),
        ["person", "interest"]
            .into_iter()
            .map(|n| json!({"noun": n})),
    );
    let attr_cols = [
        ("anchor", "Text"),
        ("attribute_name", "Text"),
        ("embeddable", "Bool"),
        ("description", "Text"),
        ("data_example", "Text"),
        ("query", "Text"),
        ("dtype", "Text"),
        ("embed_threshold", "Numeric"),
        ("embed_top_n", "Int"),
    ];
    write_table(
        &model,
        "Anchor_attributes",
        &attr_cols,
        [
            ("person", "person_id", false),
            ("person", "person_name", true),
            ("interest", "interest_id", false),
            ("interest", "interest_name", true),
        ]
        .into_iter()
        .map(|(a, n, e)| json!({"anchor": a, "attribute_name": n, "embeddable": e})),
    );
    write_table(
        &model,
        "Link_attributes",
        &[
            ("link", "Text"),
            ("attribute_name", "Text"),
            ("embeddable", "Bool"),
        ],
        std::iter::empty(),
    );
    write_table(
        &model,
        "Links",
        &[
            ("anchor1", "Text"),
            ("anchor2", "Text"),
            ("sentence", "Text"),
            ("description", "Text"),
            ("query", "Text"),
            ("anchor1_link_column_name", "Text"),
            ("anchor2_link_column_name", "Text"),
            ("has_direction", "Bool"),
        ],
        std::iter::once(
            json!({"anchor1": "person", "anchor2": "interest", "sentence": "PERSON_has_INTEREST", "has_direction": false}),
        ),
    );
    for (t, cols) in [
        ("Queries", ["query_name", "query_example"]),
        ("Prompts", ["name", "text"]),
        ("ConversationLifecycle", ["event", "text"]),
    ] {
        write_table(&model, t, &text(&cols), std::iter::empty());
    }
    write_table(&data, "Anchor_person", &text(&["person_id", "person_name"]),
        (1..=size.persons).map(|i| json!({"person_id": format!("person:{i}"), "person_name": format!("Person number {i}")})));
    write_table(&data, "Anchor_interest", &text(&["interest_id", "interest_name"]),
        (1..=size.interests).map(|i| json!({"interest_id": format!("interest:{i}"), "interest_name": format!("Interest in topic {i}")})));
    // Distinct (person, interest) pairs.
    write_table(&data, "Link_person_has_interest", &text(&["from_node_id", "to_node_id", "edge_label"]),
        (0..size.links).map(|i| {
            let p = i % size.persons + 1;
            let k = i / size.persons;
            let q = (p * 7919 + k * 104_729) % size.interests + 1;
            json!({"from_node_id": format!("person:{p}"), "to_node_id": format!("interest:{q}"), "edge_label": "PERSON_has_INTEREST"})
        }));
    write_table(&gds, "Gds", &text(&["gds_question", "gds_answer", "question_scenario", "question_comment", "question_context"]),
        (1..=10).map(|i| json!({"gds_question": format!("Question {i}?"), "gds_answer": format!("Answer {i}")})));
}
