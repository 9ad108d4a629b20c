//! What the graph extract remembers of a complete read of the Data doc (the memo's `facts`):
//! the data model it applied, and per table what a later run needs to apply that table's
//! changes without reading it again, with the two facts that make a row's output its own:
//! no two rows of an anchor table share a node id, and no edge key came from two sources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use super::anchors::AnchorTable;
use super::edges::LinkFacts;
use super::model::Model;
use crate::Column;

/// Facts of a version the code no longer reads are ignored (a complete read follows).
const FACTS_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphFacts {
    #[serde(default)]
    pub v: u32,
    pub model: Model,
    /// Every table of the Data doc at the last read, by Grist table id.
    pub tables: BTreeMap<String, TableFacts>,
    /// No edge key came from two link rows, or a link row and a reference column.
    pub edges_unique: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TableFacts {
    Anchor {
        columns: Vec<Column>,
        /// No two rows share a node id (every row is a node).
        unique_ids: bool,
        rows: u64,
    },
    Link {
        columns: Vec<Column>,
        /// See [`LinkFacts::plain`].
        plain: bool,
        rows: u64,
    },
    /// Neither an anchor table nor a link table: the graph does not read it.
    Other,
}

impl TableFacts {
    pub fn of_anchor(a: &AnchorTable) -> TableFacts {
        TableFacts::Anchor {
            columns: a.columns.clone(),
            unique_ids: a.is_node.iter().all(|n| *n),
            rows: a.records.len() as u64,
        }
    }

    pub fn of_link(l: LinkFacts) -> TableFacts {
        TableFacts::Link {
            columns: l.columns,
            plain: l.plain,
            rows: l.rows,
        }
    }
}

impl GraphFacts {
    pub fn parse(facts: &J) -> Option<GraphFacts> {
        serde_json::from_value::<GraphFacts>(facts.clone())
            .ok()
            .filter(|f| f.v == FACTS_VERSION)
    }

    pub fn into_json(mut self) -> J {
        self.v = FACTS_VERSION;
        serde_json::to_value(self).expect("facts are plain JSON")
    }
}
