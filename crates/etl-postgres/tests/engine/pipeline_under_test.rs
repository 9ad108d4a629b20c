//! The pipeline under test (see [`CONFIG`]): an extract `load` of three tables from a
//! [`MemorySource`], a transform `shape` (one node row per node, its attributes filtered by the
//! side table `attrs`, joined on `node_type = anchor`), and a one-to-many, two-input transform
//! `tags` (one row per tag of a node, only while the node exists); its tables and seed data.

use etl_core::{BatchOutput, InputBatch, Row, Value};
use etl_testkit::steps::{text_row, FnTransform, MemorySource};

pub const CONFIG: &str = r#"
version = 1
[tables.src_nodes]
primary_key = ["node_id", "node_type"]
[tables.attrs]
primary_key = ["anchor", "attribute_name"]
[tables.src_tags]
primary_key = ["node_id", "node_type", "tag"]
[tables.nodes_out]
primary_key = ["node_id", "node_type"]
[tables.node_tags]
primary_key = ["node_id", "node_type", "tag"]

[steps.load]
kind = "extract"
uses = "source"
outputs = ["src_nodes", "attrs", "src_tags"]
labels = { stage = "source" }
batch_size = 3

[steps.shape]
kind = "transform"
uses = "shape"
inputs = ["src_nodes", { table = "attrs", on = { node_type = "anchor" } }]
outputs = ["nodes_out"]
labels = { stage = "derive", part = "nodes" }
batch_size = 2

[steps.tags]
kind = "transform"
uses = "tags"
inputs = ["src_nodes", "src_tags"]
outputs = ["node_tags"]
labels = { stage = "derive", part = "tags" }
batch_size = 2
"#;

pub const TABLES: &str = "
CREATE TABLE src_nodes (node_id text, node_type text, name text, age text, PRIMARY KEY (node_id, node_type));
CREATE TABLE attrs (anchor text, attribute_name text, PRIMARY KEY (anchor, attribute_name));
CREATE TABLE src_tags (node_id text, node_type text, tag text, PRIMARY KEY (node_id, node_type, tag));
CREATE TABLE nodes_out (node_id text, node_type text, attributes jsonb, PRIMARY KEY (node_id, node_type));
CREATE TABLE node_tags (node_id text, node_type text, tag text, name text, PRIMARY KEY (node_id, node_type, tag));
";

pub fn shape() -> FnTransform {
    FnTransform::new(&["node_id", "node_type"], |batch: &InputBatch| {
        let nodes = batch.rows_by_key("src_nodes");
        let mut out = BatchOutput::default();
        for key in &batch.keys {
            let Some(node) = nodes.get(key).and_then(|v| v.first()) else {
                continue;
            };
            let node_type = &key.parts()[1];
            let mut attributes = serde_json::Map::new();
            for a in batch.rows("attrs") {
                if a.text("anchor") == Some(node_type.as_str()) {
                    let name = a.text("attribute_name").unwrap();
                    if let Some(Value::Text(v)) = node.get(name) {
                        attributes.insert(name.to_string(), serde_json::Value::String(v.clone()));
                    }
                }
            }
            out.push(
                "nodes_out",
                key,
                Row::new()
                    .with("node_id", key.parts()[0].as_str())
                    .with("node_type", node_type.as_str())
                    .with("attributes", serde_json::Value::Object(attributes)),
            );
        }
        out
    })
}

pub fn tags() -> FnTransform {
    FnTransform::new(&["node_id", "node_type"], |batch: &InputBatch| {
        let nodes = batch.rows_by_key("src_nodes");
        let tags = batch.rows_by_key("src_tags");
        let mut out = BatchOutput::default();
        for key in &batch.keys {
            let Some(node) = nodes.get(key).and_then(|v| v.first()) else {
                continue;
            };
            for t in tags.get(key).into_iter().flatten() {
                out.push(
                    "node_tags",
                    key,
                    Row::new()
                        .with("node_id", key.parts()[0].as_str())
                        .with("node_type", key.parts()[1].as_str())
                        .with("tag", t.text("tag").unwrap())
                        .with("name", node.get("name").cloned().unwrap_or(Value::Null)),
                );
            }
        }
        out
    })
}

pub fn node(id: &str, ty: &str, name: &str, age: &str) -> Row {
    text_row(&[
        ("node_id", id),
        ("node_type", ty),
        ("name", name),
        ("age", age),
    ])
}

pub fn seed(source: &MemorySource, people: usize) {
    let mut nodes = Vec::new();
    for i in 0..people {
        nodes.push(node(
            &format!("p{i:03}"),
            "person",
            &format!("Person {i}"),
            &format!("{}", 20 + i),
        ));
    }
    for i in 0..3 {
        nodes.push(node(
            &format!("i{i}"),
            "interest",
            &format!("Interest {i}"),
            "",
        ));
    }
    source.set_table("src_nodes", nodes);
    source.set_table(
        "attrs",
        vec![
            text_row(&[("anchor", "person"), ("attribute_name", "name")]),
            text_row(&[("anchor", "interest"), ("attribute_name", "name")]),
        ],
    );
    let mut t = Vec::new();
    for i in 0..people {
        t.push(text_row(&[
            ("node_id", &format!("p{i:03}")),
            ("node_type", "person"),
            ("tag", "a"),
        ]));
        if i % 2 == 0 {
            t.push(text_row(&[
                ("node_id", &format!("p{i:03}")),
                ("node_type", "person"),
                ("tag", "b"),
            ]));
        }
    }
    source.set_table("src_tags", t);
}
