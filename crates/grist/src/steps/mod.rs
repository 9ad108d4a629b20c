//! The Grist extracts, as the engine runs them:
//!
//! | module | owns |
//! | --- | --- |
//! | [`connection`] | the connection settings every Grist step takes; remembering what a snapshot read |
//! | [`feed`] | the memo of a Grist extract: doc states, what changed since, the extract's facts |
//! | [`data_model`] | `grist.data_model`: the Data Model doc into the `dm_*` tables |
//! | [`graph`] | `grist.graph`: the Data doc into nodes and edges, shaped by the data model |
//! | [`test_set`] | `grist.test_set`: the Test Set doc's golden Q&A |

pub mod connection;
pub mod data_model;
pub mod feed;
pub mod graph;
pub mod test_set;
