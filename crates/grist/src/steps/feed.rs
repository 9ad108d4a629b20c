//! What a Grist extract remembers after a complete run, and what it learns at the next one:
//! the newest state of every doc it read (`/states`), what changed in each since
//! (`/compare`), and the extract's own facts about what it read (the graph's data model and
//! tables, for instance).
//!
//! The memo is JSON: `{"v": 2, "states": {doc: hash}, "facts": ..., "reads": ...}`. `reads` is
//! the older evidence (`grist::read_log`): every question the run asked and a digest of each
//! answer, kept for a server that does not answer `/states`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::changes::{Compared, DocChanges, DocState};
use crate::{GristClient, GristError};

pub const MEMO_VERSION: u32 = 2;

/// The rows a comparison details per action and table: beyond this a table's delta is
/// incomplete and that table is read in full anyway.
pub const MAX_DETAILED_ROWS: usize = 50_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memo {
    pub v: u32,
    /// Doc id → hash of its newest state when the run began reading it.
    pub states: BTreeMap<String, String>,
    /// What the extract keeps about what it read (its own shape).
    #[serde(default)]
    pub facts: Value,
    /// A `grist::read_log` memo of a complete read, for servers without `/states`.
    #[serde(default)]
    pub reads: Option<String>,
}

impl Memo {
    pub fn parse(text: &str) -> Option<Memo> {
        serde_json::from_str::<Memo>(text)
            .ok()
            .filter(|m| m.v == MEMO_VERSION)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a memo is plain JSON")
    }
}

/// What changed in one doc since the memo.
#[derive(Debug, Clone)]
pub enum DocChange {
    Unchanged,
    Changed(DocChanges),
    /// The server cannot say (history cut short, no full read access, an answer not
    /// understood): the doc must be read in full.
    Unknown(String),
}

/// What changed in each doc an extract reads.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub docs: BTreeMap<String, DocChange>,
}

impl Changes {
    pub fn of(&self, doc: &str) -> Option<&DocChange> {
        self.docs.get(doc)
    }

    /// Whether `doc` is known not to have changed.
    pub fn unchanged(&self, doc: &str) -> bool {
        matches!(self.of(doc), Some(DocChange::Unchanged))
    }
}

/// Grist's metadata tables whose change is a change of the doc's schema (tables, columns and
/// their types, formulas, formats). The others (views, sections, pages) do not change data.
const SCHEMA_TABLES: [&str; 2] = ["_grist_Tables", "_grist_Tables_column"];

/// Why `changes` change the doc's schema, if they do: a table added, renamed or removed, a
/// column added, renamed or removed, a column's type, formula or format changed.
pub fn schema_change(changes: &DocChanges) -> Option<String> {
    if !changes.table_renames.is_empty() {
        return Some("tables were added, renamed or removed".into());
    }
    for (table, d) in &changes.table_deltas {
        if SCHEMA_TABLES.contains(&table.as_str()) {
            return Some(format!("the doc's schema changed ({table})"));
        }
        if !d.column_renames.is_empty() {
            return Some(format!(
                "columns of `{table}` were added, renamed or removed"
            ));
        }
    }
    None
}

/// Whether a table of a delta is one of Grist's own (metadata, not data).
pub fn is_metadata(table: &str) -> bool {
    table.starts_with("_grist_")
}

/// The newest state of a doc, or `None` when the server does not tell (an older server, no
/// access to `/states`). A passing fault is an error: the run would fail on the reads anyway.
pub async fn head(client: &GristClient, doc: &str) -> Result<Option<DocState>, GristError> {
    match client.states(doc).await {
        Ok(states) => Ok(states.into_iter().next()),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::info!(doc, error = %e, "the doc's states are not available: it is read in full");
            Ok(None)
        }
    }
}

/// What changed in `doc` from the remembered state to `now`.
pub async fn change_of(
    client: &GristClient,
    doc: &str,
    remembered: &str,
    now: &DocState,
) -> Result<(DocChange, DocState), GristError> {
    if now.h == remembered {
        return Ok((DocChange::Unchanged, now.clone()));
    }
    match client
        .compare(doc, remembered, Some(MAX_DETAILED_ROWS))
        .await
    {
        Ok(Compared::Changes { right, changes }) => Ok((DocChange::Changed(changes), right)),
        Ok(Compared::UnknownState) => Ok((
            DocChange::Unknown("the doc no longer knows the state the last run read".into()),
            now.clone(),
        )),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => Ok((DocChange::Unknown(e.to_string()), now.clone())),
    }
}
