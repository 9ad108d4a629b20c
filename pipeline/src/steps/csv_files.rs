//! `uses = "csv.files"`: an extract that reads local CSV files, one per output table.
//!
//! ```toml
//! [steps.load_regions]
//! kind = "extract"
//! uses = "csv.files"
//! outputs = ["regions"]
//! [steps.load_regions.settings]
//! regions = "data/regions.csv"     # a file per output table, header = column names
//! ```
//!
//! Every cell is text; an empty cell is NULL. Useful for side tables kept in files, and for
//! trying the engine without any service.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;

use etl_core::config::Settings;
use etl_core::step::SnapshotSink;
use etl_core::{Extract, Row, StepContext, StepError, Value};

pub struct CsvFiles {
    files: BTreeMap<String, PathBuf>,
    batch: usize,
}

impl CsvFiles {
    /// Builds the step; a path that is missing is reported to `settings` (and, when it names an
    /// unset variable, only for the commands that run this step).
    pub fn from_settings(outputs: &[String], settings: &mut Settings) -> Self {
        let files = outputs
            .iter()
            .map(|table| {
                (
                    table.clone(),
                    PathBuf::from(settings.runtime_string(table).unwrap_or_default()),
                )
            })
            .collect::<BTreeMap<_, _>>();
        CsvFiles { files, batch: 1000 }
    }

    fn open(&self, table: &str, path: &PathBuf) -> Result<csv::Reader<std::fs::File>, StepError> {
        csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| {
                StepError::fatal(format!(
                    "cannot read {} for table `{table}`",
                    path.display()
                ))
                .with_source(e)
            })
    }
}

#[async_trait]
impl Extract for CsvFiles {
    async fn check(&self) -> Result<(), StepError> {
        for (table, path) in &self.files {
            self.open(table, path)?;
        }
        Ok(())
    }

    async fn extract(
        &self,
        _ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<(), StepError> {
        for (table, path) in &self.files {
            let mut reader = self.open(table, path)?;
            let headers = reader
                .headers()
                .map_err(|e| {
                    StepError::fatal(format!("{}: bad header", path.display())).with_source(e)
                })?
                .clone();
            let mut rows = Vec::with_capacity(self.batch);
            for (line, record) in reader.records().enumerate() {
                let record = record.map_err(|e| {
                    StepError::fatal(format!(
                        "{}: bad CSV at record {}",
                        path.display(),
                        line + 1
                    ))
                    .with_source(e)
                })?;
                let row: Row = headers
                    .iter()
                    .zip(record.iter())
                    .map(|(h, v)| {
                        let value = if v.is_empty() {
                            Value::Null
                        } else {
                            Value::Text(v.to_string())
                        };
                        (h.to_string(), value)
                    })
                    .collect();
                rows.push(row);
                if rows.len() == self.batch {
                    out.write(table, std::mem::take(&mut rows)).await?;
                }
            }
            out.write(table, rows).await?;
        }
        Ok(())
    }
}
