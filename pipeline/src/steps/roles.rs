//! The names of the input roles the steps declare (see `etl_core::step::InputRole`): what
//! `pipelines.toml` binds tables to, and what step code reads its inputs through.

/// The rows a step works on, one or more per key (`nodes`, `edges`, `dm_anchors`).
pub const ROWS: &str = "rows";

/// The data model's attribute list, joined to the key by type (`dm_anchor_attributes`).
pub const ATTRIBUTES: &str = "attributes";
