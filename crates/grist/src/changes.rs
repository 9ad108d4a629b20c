//! Grist's change feed, as the client reads it: a doc's action states (`GET /states`), what
//! changed since a state (`GET /compare?left=HASH`), and only the rows a change names
//! (`GET /records?filter={"id": [...]}`).
//!
//! Facts this relies on (grist-core's `DocApi.ts`, and the answers recorded in
//! `../shared/grist/recorded/changes/`):
//! * every change of a doc is a new state, newest first in `/states`;
//! * `/compare` lists, per table, the rows updated, added and removed, and for each the cells
//!   that changed (`[[old], [new]]`; `null` on the side where the row is not); formula cells
//!   that changed with them too. `maxRows` caps the detailed rows of one action of one table
//!   (10 when not given), and such a table says `mayBeIncomplete`;
//! * a hash the doc no longer knows (history is bounded) answers 500 `Cannot read hash`;
//! * it needs full read access (403 otherwise).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Record, RecordList};
use crate::client::{path_segment, GristClient};
use crate::error::GristError;

/// One state of a doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocState {
    pub n: u64,
    pub h: String,
}

#[derive(Debug, Deserialize)]
struct StateList {
    states: Vec<DocState>,
}

/// `/compare`'s answer, the parts read.
#[derive(Debug, Clone, Deserialize)]
pub struct Comparison {
    pub left: DocState,
    pub right: DocState,
    pub summary: String,
    pub details: Option<ComparisonDetails>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonDetails {
    pub right_changes: DocChanges,
}

/// What changed in a doc, per table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocChanges {
    /// `[old, new]`: `[null, new]` for a table added, `[old, null]` for one removed.
    pub table_renames: Vec<(Option<String>, Option<String>)>,
    pub table_deltas: BTreeMap<String, TableDelta>,
}

/// A cell's change: `[old]` or null, `[new]` or null.
pub type CellChange = (Option<Vec<Value>>, Option<Vec<Value>>);

/// What changed in one table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDelta {
    #[serde(default)]
    pub update_rows: Vec<i64>,
    #[serde(default)]
    pub remove_rows: Vec<i64>,
    #[serde(default)]
    pub add_rows: Vec<i64>,
    /// column → row id (as text) → change.
    #[serde(default)]
    pub column_deltas: BTreeMap<String, BTreeMap<String, CellChange>>,
    #[serde(default)]
    pub column_renames: Vec<(Option<String>, Option<String>)>,
    #[serde(default)]
    pub may_be_incomplete: bool,
}

impl TableDelta {
    /// The value `column` had in row `row` before the change, if the delta says.
    pub fn old_value(&self, column: &str, row: i64) -> Option<&Value> {
        self.column_deltas
            .get(column)?
            .get(&row.to_string())?
            .0
            .as_ref()?
            .first()
    }

    /// Whether the delta names a change of `column` in row `row`.
    pub fn changed(&self, column: &str, row: i64) -> bool {
        self.column_deltas
            .get(column)
            .is_some_and(|rows| rows.contains_key(&row.to_string()))
    }
}

/// How a comparison came out.
#[derive(Debug, Clone)]
pub enum Compared {
    /// What changed from the given state to `right` (HEAD when asked).
    Changes {
        right: DocState,
        changes: DocChanges,
    },
    /// The doc no longer knows the state (its history was cut, or it never had it).
    UnknownState,
}

/// Row ids per `/records?filter` request: keeps the URL well under servers' 8 KB limits.
const IDS_PER_REQUEST: usize = 400;

impl GristClient {
    /// The doc's states, newest first.
    pub async fn states(&self, doc: &str) -> Result<Vec<DocState>, GristError> {
        let url = format!("{}/api/docs/{}/states", self.server(), path_segment(doc));
        let list: StateList = self
            .get_json(&url, doc, None, &format!("the states of doc `{doc}`"))
            .await?;
        Ok(list.states)
    }

    /// What changed in `doc` since state `left`, with the cells of at most `max_rows` rows of
    /// an action detailed (`None`: all).
    pub async fn compare(
        &self,
        doc: &str,
        left: &str,
        max_rows: Option<usize>,
    ) -> Result<Compared, GristError> {
        let max = max_rows.map_or("null".to_string(), |n| n.to_string());
        let url = format!(
            "{}/api/docs/{}/compare?left={}&maxRows={max}",
            self.server(),
            path_segment(doc),
            path_segment(left)
        );
        let what = format!("the changes of doc `{doc}`");
        match self.get_json::<Comparison>(&url, doc, None, &what).await {
            Ok(c) => Ok(Compared::Changes {
                right: c.right,
                changes: c.details.map(|d| d.right_changes).unwrap_or_default(),
            }),
            Err(GristError::UnknownState { .. }) => Ok(Compared::UnknownState),
            Err(e) => Err(e),
        }
    }

    /// The records of `ids` in a table (those that still exist), in batches of ids.
    pub async fn records_by_id(
        &self,
        doc: &str,
        table: &str,
        ids: &[i64],
    ) -> Result<Vec<Record>, GristError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let filter = serde_json::json!({ "id": chunk }).to_string();
            let url = format!(
                "{}/api/docs/{}/tables/{}/records?filter={}",
                self.server(),
                path_segment(doc),
                path_segment(table),
                path_segment(&filter)
            );
            let list: RecordList = self
                .get_json(
                    &url,
                    doc,
                    Some(table),
                    &format!("changed records of `{doc}`/`{table}`"),
                )
                .await?;
            out.extend(list.records);
        }
        Ok(out)
    }
}
