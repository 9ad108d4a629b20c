//! A recorded doc seeded into an empty emulator the way a seeding client does it renders like
//! the recording (CSV compared cell by cell).

use std::collections::BTreeMap;

use grist_emulator::{Column, Emulator, Record, Table};
use serde_json::{json, Value};

use crate::harness::{client, get_text, localhost, send_json, serve_recorded};

/// Seeds a copy of a loaded doc into an empty emulator the way a seeding client does with a
/// real Grist (tables with their columns, data records with remapped references, then
/// `visibleCol` and display formulas through `/apply`); returns the new doc id.
async fn seed_copy(http: &reqwest::Client, base: &str, source: &grist_emulator::Doc) -> String {
    use reqwest::Method;
    let (_, doc) = send_json(
        http,
        Method::POST,
        format!("{base}/api/workspaces/1/docs"),
        json!({"name": source.name}),
    )
    .await;
    let doc = doc.as_str().expect("doc id").to_string();
    let mut new_ids: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    let target_of = |c: &Column| {
        let t = c.col_type();
        t.strip_prefix("Ref:")
            .or_else(|| t.strip_prefix("RefList:"))
            .map(str::to_string)
    };
    // Referenced tables first.
    let mut order: Vec<&Table> = Vec::new();
    while order.len() < source.tables.len() {
        for t in &source.tables {
            if order.iter().any(|o| o.id == t.id) {
                continue;
            }
            let ready = t.columns.iter().filter_map(target_of).all(|target| {
                target == t.id
                    || order.iter().any(|o| o.id == target)
                    || source.table(&target).is_none()
            });
            if ready {
                order.push(t);
            }
        }
    }
    for table in order {
        let columns: Vec<Value> = table
            .columns
            .iter()
            .filter(|c| !c.is_hidden())
            .map(|c| {
                json!({"id": c.id, "fields": {
                    "label": c.label(), "type": c.col_type(), "isFormula": c.is_formula(), "formula": c.formula(),
                }})
            })
            .collect();
        let (status, answer) = send_json(
            http,
            Method::POST,
            format!("{base}/api/docs/{doc}/tables"),
            json!({"tables": [{"id": table.id, "columns": columns}]}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let data: Vec<&Column> = table
            .columns
            .iter()
            .filter(|c| !c.is_hidden() && !c.is_formula())
            .collect();
        let remap = |v: &Value, target: &str| -> Value {
            let one = |id: i64| {
                new_ids
                    .get(target)
                    .and_then(|m| m.get(&id))
                    .copied()
                    .unwrap_or(id)
            };
            match v {
                Value::Number(n) if n.as_i64().is_some_and(|i| i > 0) => {
                    json!(one(n.as_i64().unwrap_or(0)))
                }
                Value::Array(items) if items.first() == Some(&json!("L")) => {
                    let mut out = vec![json!("L")];
                    out.extend(
                        items[1..]
                            .iter()
                            .map(|i| i.as_i64().map_or(i.clone(), |id| json!(one(id)))),
                    );
                    Value::Array(out)
                }
                other => other.clone(),
            }
        };
        let mut records: Vec<&Record> = table.records.iter().collect();
        records.sort_by_key(|r| r.id);
        let body: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut fields = serde_json::Map::new();
                for c in &data {
                    if let Some(v) = r.fields.get(&c.id) {
                        let v = match target_of(c) {
                            Some(target) => remap(v, &target),
                            None => v.clone(),
                        };
                        fields.insert(c.id.clone(), v);
                    }
                }
                json!({"fields": fields})
            })
            .collect();
        let (status, answer) = send_json(
            http,
            Method::POST,
            format!("{base}/api/docs/{doc}/tables/{}/records", table.id),
            json!({"records": body}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let created: Vec<i64> = answer["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        new_ids.insert(
            table.id.clone(),
            records.iter().map(|r| r.id).zip(created).collect(),
        );
    }
    let mut actions = Vec::new();
    for table in &source.tables {
        let cols: Value = http
            .get(format!("{base}/api/docs/{doc}/tables/{}/columns", table.id))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        for c in &table.columns {
            // Every shown column (with or without a display formula) is carried over.
            let Some(target) = target_of(c) else {
                continue;
            };
            let helper = table.column_by_ref(c.display_col());
            let Some(shown) = source
                .table(&target)
                .and_then(|t| t.column_by_ref(c.visible_col()))
            else {
                continue;
            };
            let new_ref = cols["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .find(|x| x["id"] == c.id.as_str())
                .map(|x| x["fields"]["colRef"].clone());
            let target_cols: Value = http
                .get(format!("{base}/api/docs/{doc}/tables/{target}/columns"))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            let shown_ref = target_cols["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .find(|x| x["id"] == shown.id.as_str())
                .map(|x| x["fields"]["colRef"].clone());
            if let (Some(col_ref), Some(shown_ref)) = (new_ref, shown_ref) {
                actions.push(json!(["UpdateRecord", "_grist_Tables_column", col_ref, {"visibleCol": shown_ref}]));
                if let Some(helper) = helper {
                    actions.push(json!([
                        "SetDisplayFormula",
                        table.id,
                        null,
                        col_ref,
                        helper.formula()
                    ]));
                }
            }
        }
    }
    let (status, answer) = send_json(
        http,
        Method::POST,
        format!("{base}/api/docs/{doc}/apply"),
        Value::Array(actions),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    doc
}

#[tokio::test]
async fn a_seeded_copy_renders_like_the_recording() {
    let (recorded, _, dir) = serve_recorded(None).await;
    let empty = Emulator::new().serve(localhost()).await.expect("serve");
    let http = client();
    for doc_id in ["edge-cases", "vedana-demo-data-model"] {
        let source = recorded.docs().doc(doc_id).expect("doc");
        let copy = seed_copy(&http, &empty.url(), &source).await;
        for table in &source.tables {
            // Formulas the emulator cannot evaluate (`1/0 if ...`, lookups) are left out.
            let skip: Vec<usize> = table
                .columns_in_position_order()
                .into_iter()
                .filter(|c| !c.is_hidden())
                .enumerate()
                .filter(|(_, c)| {
                    c.is_formula() && !c.formula().is_empty() && !c.formula().starts_with('$')
                })
                .map(|(i, _)| i)
                .collect();
            let strip = |csv: &str| -> Vec<Vec<String>> {
                let mut rows = Vec::new();
                let mut reader = csv_rows(csv);
                for row in reader.drain(..) {
                    rows.push(
                        row.into_iter()
                            .enumerate()
                            .filter(|(i, _)| !skip.contains(i))
                            .map(|(_, v)| v)
                            .collect(),
                    );
                }
                rows
            };
            let (status, got) = get_text(
                &http,
                format!(
                    "{}/api/docs/{copy}/download/csv?tableId={}",
                    empty.url(),
                    table.id
                ),
            )
            .await;
            assert_eq!(status, 200);
            let want = std::fs::read_to_string(dir.join(doc_id).join(format!("{}.csv", table.id)))
                .expect("recorded csv");
            assert_eq!(strip(&got), strip(&want), "{doc_id}/{}", table.id);
        }
    }
    recorded.shutdown().await;
    empty.shutdown().await;
}

/// A small RFC 4180 reader, for comparing CSVs cell by cell.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
