//! What an embedding step embeds: the attributes of nodes or of edges. The one place where the
//! two differ: the roles they read, the key, and the columns that name a row's type.

use etl_core::step::roles::{ATTRIBUTES, EDGE_KEY, NODE_KEY, ROWS};
use etl_core::step::{InputRole, OutputRole};

/// Nodes or edges: where texts come from and where vectors go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Nodes,
    Edges,
}

impl Target {
    /// What the step reads: the rows whose attributes it embeds, and the data model's
    /// attribute list, which says which are embeddable.
    pub(super) fn roles(self) -> Vec<InputRole> {
        match self {
            Target::Nodes => vec![
                InputRole {
                    name: ROWS,
                    key: NODE_KEY,
                    columns: &["attributes"],
                    about: "the nodes whose attributes are embedded",
                },
                InputRole {
                    name: ATTRIBUTES,
                    key: &["anchor", "attribute_name"],
                    columns: &["embeddable"],
                    about: "the data model's anchor attributes",
                },
            ],
            Target::Edges => vec![
                InputRole {
                    name: ROWS,
                    key: EDGE_KEY,
                    columns: &["attributes"],
                    about: "the edges whose attributes are embedded",
                },
                InputRole {
                    name: ATTRIBUTES,
                    key: &["link", "attribute_name"],
                    columns: &["embeddable"],
                    about: "the data model's link attributes",
                },
            ],
        }
    }
    pub(super) fn owner_column(self) -> &'static str {
        match self {
            Target::Nodes => "anchor",
            Target::Edges => "link",
        }
    }
    pub(super) fn type_column(self) -> &'static str {
        match self {
            Target::Nodes => "node_type",
            Target::Edges => "edge_label",
        }
    }
    pub(super) fn key(self) -> Vec<String> {
        let k: &[&str] = match self {
            Target::Nodes => NODE_KEY,
            Target::Edges => EDGE_KEY,
        };
        k.iter().map(|s| s.to_string()).collect()
    }
    /// The output's own columns taken from the input row.
    pub(super) fn carried(self) -> &'static [&'static str] {
        match self {
            Target::Nodes => NODE_KEY,
            Target::Edges => &["from_node_id", "to_node_id", "edge_label"],
        }
    }

    /// What the step writes: a vector per (key, embeddable attribute).
    pub(super) fn output_role(self) -> OutputRole {
        match self {
            Target::Nodes => OutputRole {
                name: "vectors",
                key: &["node_id", "node_type", "attribute_name"],
                columns: &["attribute_value", "embedding"],
            },
            Target::Edges => OutputRole {
                name: "vectors",
                key: &["from_node_id", "to_node_id", "edge_label", "attribute_name"],
                columns: &["attribute_value", "embedding"],
            },
        }
    }
}
