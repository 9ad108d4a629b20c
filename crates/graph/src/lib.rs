//! `graph`: keeping a Memgraph (or Neo4j-compatible) graph equal to the `nodes`/`edges` tables.
//!
//! * [`cypher`]: the one identifier-quoting helper, and the statements that write nodes and edges
//!   (values always parameters);
//! * [`dialect`]: index and constraint statements, which differ between Memgraph and Neo4j;
//! * [`bolt`]: JSON values as Bolt values;
//! * [`client`]: the Bolt connection (neo4rs): a batch in one transaction, DDL in auto-commit,
//!   transient errors retried (the only layer that retries them);
//! * [`error_policy`]: the one table from the server's errors to transient, data and fatal;
//! * [`steps`]: the index steps and the graph sink, as the engine runs them;
//! * [`dump`]: the graph as cypherl (`etl graph export`, `restore`), and emptying it.

pub mod bolt;
pub mod client;
pub mod cypher;
pub mod dialect;
pub mod dump;
pub mod error_policy;
pub mod steps;

pub use client::{GraphClient, GraphConfig, GraphError};
pub use dialect::Dialect;
