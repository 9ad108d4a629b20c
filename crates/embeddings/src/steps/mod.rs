//! The embedding steps, as the engine runs them (`kg.embed_nodes`, `kg.embed_edges`):
//!
//! | module | owns |
//! | --- | --- |
//! | [`embed`] | the step: embeddable texts of each key, the cache first, vectors into the output |
//! | [`texts`] | which texts a batch asks for (embeddable attributes, no blanks, no UUIDs) |
//! | [`target`] | nodes or edges: the roles, key and columns that differ |
//! | [`bulk_index`] | a bulk load's vector indexes set aside and made again |
//! | [`step_database`] | the step's own small pool (the cache, the indexes) |

pub mod bulk_index;
pub mod embed;
pub mod step_database;
pub mod target;
pub mod texts;

pub use embed::EmbedStep;
pub use target::Target;
