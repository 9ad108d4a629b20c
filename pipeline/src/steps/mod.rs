//! The steps that belong to no connector: the knowledge graph's normalization between the
//! extracts and the sinks, and local CSV files. The Grist extracts live in `grist::steps`, the
//! embedding steps in `embeddings::steps`, the graph's in `graph::steps`.

pub mod csv_files;
pub mod normalize;
