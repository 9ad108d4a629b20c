//! The Grist extracts, as the engine runs them:
//!
//! | module | owns |
//! | --- | --- |
//! | [`connection`] | the connection settings every Grist step takes; remembering what a snapshot read |
//! | [`data_model`] | `grist.data_model`: the Data Model doc into the `dm_*` tables |
//! | [`graph`] | `grist.graph`: the Data doc into nodes and edges, shaped by the data model |
//! | [`test_set`] | `grist.test_set`: the Test Set doc's golden Q&A |

pub mod connection;
pub mod data_model;
pub mod graph;
pub mod test_set;
