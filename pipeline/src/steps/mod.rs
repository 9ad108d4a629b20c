//! The concrete steps this binary offers, by the name `uses = "..."` gives in `pipelines.toml`.

pub mod csv_files;
