//! The concrete steps this binary offers, by the name `uses = "..."` gives in `pipelines.toml`.

pub mod bulk_index;
pub mod csv_files;
pub mod data_model;
pub mod embed_target;
pub mod embeddings;
pub mod grist_connection;
pub mod grist_graph;
pub mod normalize;
pub mod step_database;
pub mod test_set;
