//! One module per command; each returns the process's [`crate::exit::Exit`].

pub mod admin;
pub mod grist;
pub mod run;
pub mod search;
pub mod status;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use etl_core::{Pipeline, Selection};
use etl_postgres::PgStore;

use crate::exit::Exit;
use crate::SelectArgs;

impl SelectArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            steps: self.steps.clone(),
            labels: self.labels.clone(),
            downstream: self.downstream,
        }
    }
}

/// Loads the configuration and selects steps, reporting problems; `Err` is the exit to take.
pub fn load_selected(
    config: &Path,
    select: &SelectArgs,
    need_env: bool,
) -> Result<(Pipeline, Vec<usize>), Exit> {
    let pipeline = crate::load::load(config).map_err(|e| {
        eprint!("error: {e}");
        Exit::Config
    })?;
    let selected = pipeline.select(&select.selection()).map_err(|errors| {
        for e in errors {
            eprintln!("error: {e}");
        }
        Exit::Config
    })?;
    if need_env {
        crate::load::missing_env(&pipeline, &selected, &config.display().to_string()).map_err(
            |e| {
                eprint!("error: {e}");
                Exit::Config
            },
        )?;
    }
    Ok((pipeline, selected))
}

/// Connects to the store and prepares its bookkeeping for the pipeline.
pub async fn open_store(pipeline: &Pipeline, prepare: bool) -> Result<Arc<PgStore>, Exit> {
    use etl_core::store::Store;
    let Some(url) = crate::load::database_url(pipeline) else {
        eprintln!("error: no database: set DB_CONN_URI (or [database] url in the configuration)");
        return Err(Exit::Config);
    };
    let store = PgStore::connect(&url, 8).await.map_err(|e| {
        eprintln!("error: {e}");
        Exit::Service
    })?;
    if prepare {
        store.prepare(pipeline).await.map_err(|e| {
            eprintln!("error: {e}");
            Exit::Service
        })?;
    }
    Ok(Arc::new(store))
}
