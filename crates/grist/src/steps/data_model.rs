//! The Data Model doc: reading its tables (Anchors, Links, Anchor_attributes, Link_attributes,
//! Queries, Prompts, ConversationLifecycle) into rows of the `dm_*` tables, and the
//! `grist.data_model` extract that stores them.
//!
//! Cells are typed by the `dm_*` column they go to: blank is NULL (never "nan"), booleans and
//! numbers are typed. A row whose key is blank (Grist's empty rows) is skipped. References
//! (`Anchor_attributes.anchor`, `Links.anchor1`...) take the referenced row's display value,
//! whatever way the CSV renders them.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::api::csv_header_to_column;
use crate::{Column, ColumnType, GristClient};
use etl_core::step::{OutputRole, SnapshotSink};
use etl_core::{Row, StepContext, StepError, Value};

use super::connection::GristRead;
use super::feed::{self, Changes, DocChange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Float,
    Int,
}

/// One `dm_*` table: where it comes from and its columns.
struct DmTable {
    grist_table: &'static str,
    /// What the output holds (its role); Vedana's table for it is `dm_<role>`.
    role: &'static str,
    key: &'static [&'static str],
    columns: &'static [(&'static str, Kind)],
}

/// The columns of `dm_anchor_attributes` and `dm_link_attributes`, after their owner column.
macro_rules! attribute_columns {
    ($owner:literal) => {
        &[
            ($owner, Kind::Text),
            ("attribute_name", Kind::Text),
            ("description", Kind::Text),
            ("data_example", Kind::Text),
            ("embeddable", Kind::Bool),
            ("query", Kind::Text),
            ("dtype", Kind::Text),
            ("embed_threshold", Kind::Float),
            ("embed_top_n", Kind::Int),
        ]
    };
}

const DM_TABLES: [DmTable; 7] = [
    DmTable {
        grist_table: "Anchors",
        role: "anchors",
        key: &["noun"],
        columns: &[
            ("noun", Kind::Text),
            ("description", Kind::Text),
            ("id_example", Kind::Text),
            ("query", Kind::Text),
        ],
    },
    DmTable {
        grist_table: "Anchor_attributes",
        role: "anchor_attributes",
        key: &["anchor", "attribute_name"],
        columns: attribute_columns!("anchor"),
    },
    DmTable {
        grist_table: "Link_attributes",
        role: "link_attributes",
        key: &["link", "attribute_name"],
        columns: attribute_columns!("link"),
    },
    DmTable {
        grist_table: "Links",
        role: "links",
        key: &["anchor1", "anchor2", "sentence"],
        columns: &[
            ("anchor1", Kind::Text),
            ("anchor2", Kind::Text),
            ("sentence", Kind::Text),
            ("description", Kind::Text),
            ("query", Kind::Text),
            ("anchor1_link_column_name", Kind::Text),
            ("anchor2_link_column_name", Kind::Text),
            ("has_direction", Kind::Bool),
        ],
    },
    DmTable {
        grist_table: "Queries",
        role: "queries",
        key: &["query_name"],
        columns: &[("query_name", Kind::Text), ("query_example", Kind::Text)],
    },
    DmTable {
        grist_table: "Prompts",
        role: "prompts",
        key: &["name"],
        columns: &[("name", Kind::Text), ("text", Kind::Text)],
    },
    DmTable {
        grist_table: "ConversationLifecycle",
        role: "conversation_lifecycle",
        key: &["event"],
        columns: &[("event", Kind::Text), ("text", Kind::Text)],
    },
];

/// The tables `grist.data_model` writes, in order: one per table of the Data Model doc.
pub fn output_roles() -> Vec<OutputRole> {
    DM_TABLES
        .iter()
        .map(|t| OutputRole {
            name: t.role,
            key: t.key,
            columns: &[],
        })
        .collect()
}

fn typed(text: &str, kind: Kind) -> Value {
    let t = text.trim();
    if t.is_empty() {
        return Value::Null;
    }
    match kind {
        Kind::Text => Value::Text(text.to_string()),
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => Value::Null,
        },
        Kind::Float => t
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map_or(Value::Null, Value::Float),
        Kind::Int => t
            .parse::<i64>()
            .ok()
            .or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .map_or(Value::Null, Value::Int),
    }
}

/// Display values of a referenced table's rows, for Ref cells that the CSV renders as a row id
/// (`3`) or as `Table[3]` rather than as the display value.
async fn ref_displays(
    client: &GristClient,
    doc: &str,
    column: &Column,
    cache: &mut HashMap<String, HashMap<i64, String>>,
) -> Result<HashMap<i64, String>, StepError> {
    let ColumnType::Ref(target) = column.column_type() else {
        return Ok(HashMap::new());
    };
    if let Some(m) = cache.get(&target) {
        return Ok(m.clone());
    }
    let columns = client.columns(doc, &target).await?;
    let visible = columns
        .iter()
        .find(|c| c.fields.col_ref == column.fields.visible_col && column.fields.visible_col != 0)
        .map(|c| c.id.clone());
    let mut out = HashMap::new();
    if let Some(visible) = visible {
        for r in client.records(doc, &target).await? {
            if let Some(v) = r.fields.get(&visible) {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                out.insert(r.id, text);
            }
        }
    }
    cache.insert(target, out.clone());
    Ok(out)
}

/// Parses a Ref cell rendered without display values: `3`, `Table[3]`, `0`.
fn ref_row_id(text: &str) -> Option<i64> {
    let t = text.trim();
    let inner = match (t.find('['), t.strip_suffix(']')) {
        (Some(open), Some(body)) => &body[open + 1..],
        _ => t,
    };
    inner.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Reads every `dm_*` table's rows from the Data Model doc. A blank `embed_top_n` takes
/// `embed_top_n_default` when given (Vedana's `EMBEDDINGS_TOP_N`).
pub async fn read(
    client: &GristClient,
    doc: &str,
    embed_top_n_default: Option<i64>,
) -> Result<BTreeMap<&'static str, Vec<Row>>, StepError> {
    read_tables(client, doc, embed_top_n_default, &|_| true).await
}

/// [`read`] of the tables `wanted` says yes to.
async fn read_tables(
    client: &GristClient,
    doc: &str,
    embed_top_n_default: Option<i64>,
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Result<BTreeMap<&'static str, Vec<Row>>, StepError> {
    let mut out = BTreeMap::new();
    let mut cache = HashMap::new();
    for dm in DM_TABLES.iter().filter(|dm| wanted(dm.grist_table)) {
        let columns = client.columns(doc, dm.grist_table).await?;
        let helper_of = csv_header_to_column(&columns);
        let by_id: HashMap<&str, &Column> = columns.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut csv = client.csv(doc, dm.grist_table).await?;
        let headers = csv.headers().await?;
        // For each dm column: its position in the CSV, and how to read it.
        let mut plan = Vec::new();
        for (name, kind) in dm.columns {
            let position = headers
                .iter()
                .position(|h| h == name || helper_of.get(h).map(String::as_str) == Some(*name));
            let column = by_id.get(name).copied();
            let displays = match (position, column) {
                (Some(p), Some(c))
                    if matches!(c.column_type(), ColumnType::Ref(_)) && headers[p] == *name =>
                {
                    // Rendered as row ids: resolve to display values.
                    Some(ref_displays(client, doc, c, &mut cache).await?)
                }
                _ => None,
            };
            if position.is_none() {
                tracing::warn!(
                    table = dm.grist_table,
                    column = name,
                    "column missing in the Data Model doc; its values are NULL"
                );
            }
            plan.push((*name, *kind, position, displays));
        }
        let mut rows = Vec::new();
        let mut blank = 0u64;
        while let Some(batch) = csv.next_batch().await? {
            for record in batch {
                let mut row = Row::new();
                for (name, kind, position, displays) in &plan {
                    let cell = position.and_then(|p| record.get(p)).unwrap_or("");
                    let value = match displays {
                        Some(d) => ref_row_id(cell)
                            .and_then(|id| d.get(&id))
                            .map_or(Value::Null, |s| Value::Text(s.clone())),
                        None => typed(cell, *kind),
                    };
                    let value = match (value, embed_top_n_default) {
                        (Value::Null, Some(n)) if *name == "embed_top_n" => Value::Int(n),
                        (v, _) => v,
                    };
                    row.set(*name, value);
                }
                if dm.key.iter().any(|k| row.get(k).is_none_or(Value::is_null)) {
                    blank += 1;
                    continue;
                }
                rows.push(row);
            }
        }
        if blank > 0 {
            tracing::info!(
                table = dm.grist_table,
                rows = blank,
                "skipped rows with a blank key"
            );
        }
        out.insert(dm.grist_table, rows);
    }
    Ok(out)
}

/// `uses = "grist.data_model"`: the Data Model doc into the `dm_*` tables.
pub struct DataModelExtract {
    pub client: GristClient,
    pub doc: String,
    /// What a blank `embed_top_n` becomes (`EMBEDDINGS_TOP_N`, 10 by default, as in Vedana).
    pub embed_top_n_default: Option<i64>,
}

#[async_trait]
impl GristRead for DataModelExtract {
    fn client(&self) -> &GristClient {
        &self.client
    }

    fn docs(&self) -> Vec<String> {
        vec![self.doc.clone()]
    }

    fn outputs(&self) -> Vec<OutputRole> {
        output_roles()
    }

    async fn check(&self) -> Result<(), StepError> {
        self.client.tables(&self.doc).await?;
        Ok(())
    }

    async fn read_snapshot(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<serde_json::Value, StepError> {
        // Read everything first: a failure on any table writes nothing and deletes nothing.
        let mut tables = read(client, &self.doc, self.embed_top_n_default).await?;
        for (i, dm) in DM_TABLES.iter().enumerate() {
            let rows = tables.remove(dm.grist_table).unwrap_or_default();
            out.write(ctx.output(i)?, rows).await?;
        }
        Ok(serde_json::Value::Null)
    }

    /// Reads again only the tables that changed, each as a complete snapshot, with those whose
    /// references show a changed table's values (`Anchor_attributes` and `Links` show
    /// `Anchors`, `Link_attributes` shows `Links`); the others are left as they are. A schema
    /// change reads everything.
    async fn read_changes(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        changes: &Changes,
        _facts: &serde_json::Value,
        out: &mut dyn SnapshotSink,
    ) -> Result<Option<serde_json::Value>, StepError> {
        let delta = match changes.of(&self.doc) {
            Some(DocChange::Changed(d)) => d,
            Some(DocChange::Unchanged) => {
                for i in 0..DM_TABLES.len() {
                    out.changes_only(ctx.output(i)?)?;
                }
                return Ok(Some(serde_json::Value::Null));
            }
            _ => return Ok(None),
        };
        if let Some(why) = feed::schema_change(delta) {
            tracing::info!(reason = %why, "reading the data model in full");
            return Ok(None);
        }
        let changed = |t: &str| delta.table_deltas.contains_key(t);
        let shows = |t: &str| match t {
            "Anchor_attributes" | "Links" => changed("Anchors"),
            "Link_attributes" => changed("Links") || changed("Anchors"),
            _ => false,
        };
        let wanted = |t: &str| changed(t) || shows(t);
        let mut tables = read_tables(client, &self.doc, self.embed_top_n_default, &wanted).await?;
        ctx.counters.add("tables_read_again", tables.len() as u64);
        for (i, dm) in DM_TABLES.iter().enumerate() {
            match tables.remove(dm.grist_table) {
                Some(rows) => out.write(ctx.output(i)?, rows).await?,
                None => out.changes_only(ctx.output(i)?)?,
            }
        }
        Ok(Some(serde_json::Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_typed_by_their_dm_column() {
        assert_eq!(typed("", Kind::Text), Value::Null);
        assert_eq!(typed("  ", Kind::Bool), Value::Null);
        assert_eq!(typed("true", Kind::Bool), Value::Bool(true));
        assert_eq!(typed("0.8", Kind::Float), Value::Float(0.8));
        assert_eq!(typed("nan", Kind::Float), Value::Null);
        assert_eq!(typed("15", Kind::Int), Value::Int(15));
        assert_eq!(typed("15.0", Kind::Int), Value::Int(15));
    }

    #[test]
    fn ref_cells_without_display_values_give_row_ids() {
        assert_eq!(ref_row_id("3"), Some(3));
        assert_eq!(ref_row_id("Anchors[2]"), Some(2));
        assert_eq!(ref_row_id("0"), None);
        assert_eq!(ref_row_id(""), None);
    }

    #[test]
    fn attribute_tables_have_their_owner_column_first() {
        assert_eq!(DM_TABLES[1].key, &["anchor", "attribute_name"]);
        assert_eq!(DM_TABLES[2].key, &["link", "attribute_name"]);
        assert_eq!(DM_TABLES[2].columns[0].0, "link");
    }
}
