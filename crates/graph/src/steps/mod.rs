//! The graph's steps, as the engine runs them:
//!
//! | module | owns |
//! | --- | --- |
//! | [`connection`] | the connection settings every graph step takes, and its errors as the engine's |
//! | [`indexes`] | `kg.graph_anchor_indexes`, `kg.graph_link_indexes`: the indexes per anchor and link |
//! | [`sink`] | `kg.graph_nodes`, `kg.graph_edges`: one sink for nodes and edges |
//! | [`elements`] | what differs between nodes and edges |
//! | [`drift`] | how the graph differs from what a sink should hold |
//! | [`seen`] | the counts a sink remembers, for a cheap drift check |

pub mod connection;
pub mod drift;
pub mod elements;
pub mod indexes;
mod seen;
pub mod sink;

pub use connection::GraphConnection;
pub use drift::Drift;
pub use elements::Elements;
pub use indexes::IndexStep;
pub use sink::GraphSink;
