//! The catalog: which implementation each `uses = "..."` names, and how its settings are read.

use std::sync::Arc;

use etl_core::config::{Settings, StepConfig};
use etl_core::dag::{Built, Catalog};
use etl_core::step::{BuiltStep, StepImpl};

use crate::steps::csv_files::CsvFiles;

#[derive(Debug, Default)]
pub struct EtlCatalog;

const NAMES: &[&str] = &["csv.files"];

impl Catalog for EtlCatalog {
    fn build(&self, step: &StepConfig, settings: &mut Settings) -> Built {
        match step.uses.as_str() {
            "csv.files" => Built::Step(BuiltStep {
                implementation: StepImpl::Extract(Arc::new(CsvFiles::from_settings(
                    &step.outputs,
                    settings,
                ))),
                version: 1,
            }),
            _ => Built::Unknown,
        }
    }

    fn names(&self) -> Vec<String> {
        NAMES.iter().map(|s| s.to_string()).collect()
    }
}
