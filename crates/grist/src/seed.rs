//! Creating a doc in a Grist server from a doc folder (`etl grist seed`): the doc, its tables
//! with column types (in an order where referenced tables come first), its records (references
//! remapped to the new row ids), and the display formulas of its references.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value as J};

use crate::api::ColumnType;
use crate::client::GristClient;
use crate::error::GristError;
use crate::folder::{DocFolder, TableData};

const RECORDS_PER_REQUEST: usize = 500;

/// Orders tables so that each comes after the tables its references point at.
fn creation_order(doc: &DocFolder) -> Vec<&TableData> {
    let mut done: Vec<&TableData> = Vec::new();
    let mut left: Vec<&TableData> = doc.tables.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|t| {
            let ready = t.columns.iter().all(|c| match c.column_type() {
                ColumnType::Ref(target) | ColumnType::RefList(target) => {
                    target == t.id
                        || done.iter().any(|d| d.id == target)
                        || !doc.tables.iter().any(|x| x.id == target)
                }
                _ => true,
            });
            if ready {
                done.push(t);
            }
            !ready
        });
        if left.len() == before {
            // A reference cycle: create the rest as they come.
            done.append(&mut left);
        }
    }
    done
}

/// Creates the doc in workspace `workspace` (or the first workspace the key can write to) and
/// returns its id.
pub async fn seed(
    client: &GristClient,
    doc: &DocFolder,
    workspace: Option<i64>,
) -> Result<String, GristError> {
    let workspace = match workspace {
        Some(w) => w,
        None => client.first_workspace().await?,
    };
    let doc_id: String = client
        .send_json(
            "POST",
            &format!("/api/workspaces/{workspace}/docs"),
            &json!({ "name": doc.name }),
            &doc.name,
        )
        .await
        .map_err(|e| match e {
            // The doc does not exist yet: a "not found" here is the workspace's.
            GristError::UnknownDoc { server, .. }
            | GristError::NoAccess { server, .. } => GristError::Protocol {
                what: format!("creating doc `{}`", doc.name),
                detail: format!(
                    "workspace {workspace} not found on {server}, or the key in GRIST_API_KEY cannot write to it: pass --workspace with the id of a workspace the key can write to"
                ),
            },
            GristError::BadRequest { status, detail, .. } => GristError::Protocol {
                what: format!("creating doc `{}`", doc.name),
                detail: format!(
                    "Grist refused it ({status}: {detail}); check --workspace {workspace} and that the key in GRIST_API_KEY can write to it"
                ),
            },
            other => other,
        })
        .and_then(|v: J| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| GristError::Protocol {
                    what: "creating a doc".into(),
                    detail: format!("expected the new doc id, got {v}"),
                })
        })?;

    // Row ids of the new doc, by table and old id.
    let mut new_ids: HashMap<String, HashMap<i64, i64>> = HashMap::new();
    for table in creation_order(doc) {
        let columns: Vec<J> = table
            .columns
            .iter()
            .filter(|c| !c.is_internal())
            .map(|c| {
                json!({"id": c.id, "fields": {
                    "label": c.fields.label, "type": c.fields.col_type,
                    "isFormula": c.fields.is_formula, "formula": c.fields.formula,
                }})
            })
            .collect();
        client
            .send_json::<J>(
                "POST",
                &format!("/api/docs/{doc_id}/tables"),
                &json!({"tables": [{"id": table.id, "columns": columns}]}),
                &doc.name,
            )
            .await?;

        let data_columns: Vec<_> = table
            .columns
            .iter()
            .filter(|c| !c.is_internal() && !c.fields.is_formula)
            .collect();
        let mut records: Vec<&J> = table.records.iter().collect();
        records.sort_by_key(|r| r.get("id").and_then(J::as_i64).unwrap_or_default());
        let mut ids = HashMap::new();
        for chunk in records.chunks(RECORDS_PER_REQUEST) {
            let body: Vec<J> = chunk
                .iter()
                .map(|r| {
                    let mut fields = serde_json::Map::new();
                    for c in &data_columns {
                        let Some(v) = r.get("fields").and_then(|f| f.get(&c.id)) else {
                            continue;
                        };
                        let v = match c.column_type() {
                            ColumnType::Ref(target) => remap(v, &target, &new_ids),
                            ColumnType::RefList(target) => remap(v, &target, &new_ids),
                            _ => v.clone(),
                        };
                        fields.insert(c.id.clone(), v);
                    }
                    json!({ "fields": fields })
                })
                .collect();
            let answer: J = client
                .send_json(
                    "POST",
                    &format!("/api/docs/{doc_id}/tables/{}/records", table.id),
                    &json!({"records": body}),
                    &doc.name,
                )
                .await?;
            let created: Vec<i64> = answer
                .get("records")
                .and_then(J::as_array)
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r.get("id").and_then(J::as_i64))
                        .collect()
                })
                .unwrap_or_default();
            for (old, new) in chunk.iter().zip(created) {
                if let Some(old) = old.get("id").and_then(J::as_i64) {
                    ids.insert(old, new);
                }
            }
        }
        new_ids.insert(table.id.clone(), ids);
    }

    // Display formulas of references: set the shown column, then the formula.
    let mut actions = Vec::new();
    let mut new_columns: BTreeMap<String, Vec<crate::api::Column>> = BTreeMap::new();
    for table in &doc.tables {
        new_columns.insert(table.id.clone(), client.columns(&doc_id, &table.id).await?);
    }
    for table in &doc.tables {
        for c in &table.columns {
            let (ColumnType::Ref(target) | ColumnType::RefList(target)) = c.column_type() else {
                continue;
            };
            if c.fields.visible_col == 0 {
                continue;
            }
            let shown = doc
                .tables
                .iter()
                .find(|t| t.id == target)
                .and_then(|t| {
                    t.columns
                        .iter()
                        .find(|x| x.fields.col_ref == c.fields.visible_col)
                })
                .map(|x| x.id.clone());
            let new_ref = new_columns[&table.id]
                .iter()
                .find(|x| x.id == c.id)
                .map(|x| x.fields.col_ref);
            let new_shown = shown.and_then(|s| {
                new_columns
                    .get(&target)?
                    .iter()
                    .find(|x| x.id == s)
                    .map(|x| x.fields.col_ref)
            });
            let (Some(col_ref), Some(shown_ref)) = (new_ref, new_shown) else {
                continue;
            };
            // Every Ref with a shown column gets it; those with a display helper also get the
            // display formula (Grist then renders display values rather than row ids).
            actions.push(
                json!(["UpdateRecord", "_grist_Tables_column", col_ref, {"visibleCol": shown_ref}]),
            );
            let formula = (c.fields.display_col != 0)
                .then(|| {
                    table
                        .columns
                        .iter()
                        .find(|h| h.fields.col_ref == c.fields.display_col)
                })
                .flatten()
                .map(|h| h.fields.formula.clone());
            if let Some(formula) = formula {
                actions.push(json!([
                    "SetDisplayFormula",
                    table.id,
                    null,
                    col_ref,
                    formula
                ]));
            }
        }
    }
    if !actions.is_empty() {
        client
            .send_json::<J>(
                "POST",
                &format!("/api/docs/{doc_id}/apply"),
                &J::Array(actions),
                &doc.name,
            )
            .await?;
    }
    Ok(doc_id)
}

fn remap(value: &J, table: &str, new_ids: &HashMap<String, HashMap<i64, i64>>) -> J {
    let map = new_ids.get(table);
    let one = |id: i64| map.and_then(|m| m.get(&id)).copied().unwrap_or(id);
    match value {
        J::Number(n) => n.as_i64().map_or(value.clone(), |id| {
            if id == 0 {
                json!(0)
            } else {
                json!(one(id))
            }
        }),
        J::Array(items) if items.first().and_then(J::as_str) == Some("L") => {
            let mut out = vec![json!("L")];
            out.extend(
                items[1..]
                    .iter()
                    .map(|i| i.as_i64().map_or(i.clone(), |id| json!(one(id)))),
            );
            J::Array(out)
        }
        other => other.clone(),
    }
}
