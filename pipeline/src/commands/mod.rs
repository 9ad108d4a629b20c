//! One module per command; each returns the process's [`crate::exit::Exit`].

pub mod admin;
pub mod graph;
pub mod grist;
pub mod history;
pub mod run;
pub mod search;
pub mod serve;
pub mod status;
pub mod verify;
pub mod worker;

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

/// Loads the whole configuration (no selection, no check of the environment) and connects to
/// its store, preparing the bookkeeping when `prepare`.
pub async fn load_and_open(config: &Path, prepare: bool) -> Result<(Pipeline, Arc<PgStore>), Exit> {
    let pipeline = crate::load::load(config).map_err(|e| {
        eprint!("error: {e}");
        Exit::Config
    })?;
    let store = open_store(&pipeline, prepare).await?;
    Ok((pipeline, store))
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

/// The columns each bound input role reads that its table lacks, as messages naming the step,
/// the role and the table (the keys were checked when the pipeline compiled).
pub async fn role_column_problems(pipeline: &Pipeline, store: &PgStore) -> Vec<String> {
    let mut problems = Vec::new();
    for step in &pipeline.steps {
        let outputs = match &step.implementation {
            etl_core::StepImpl::Transform(t) => t.outputs(),
            etl_core::StepImpl::Extract(x) => x.outputs(),
        };
        for (role, table) in outputs.iter().zip(&step.outputs) {
            let Some(info) = table_info(pipeline, store, table).await else {
                continue;
            };
            let lacking = lacking_columns(&info, role.columns);
            if !lacking.is_empty() {
                problems.push(format!(
                    "steps.{}.outputs: table `{table}` does not fit output role `{}`: it has no column {}",
                    step.name,
                    role.name,
                    lacking.join(", ")
                ));
            }
        }
        let etl_core::StepImpl::Transform(t) = &step.implementation else {
            continue;
        };
        let roles = t.inputs();
        for input in &step.inputs {
            let Some(role) = input
                .role
                .as_deref()
                .and_then(|r| roles.iter().find(|x| x.name == r))
            else {
                continue;
            };
            let Some(info) = table_info(pipeline, store, &input.table).await else {
                continue;
            };
            let lacking = lacking_columns(&info, role.columns);
            if !lacking.is_empty() {
                problems.push(format!(
                    "steps.{}.inputs: table `{}` does not fit role `{}` ({}): it has no column {}",
                    step.name,
                    input.table,
                    role.name,
                    role.about,
                    lacking.join(", ")
                ));
            }
        }
    }
    problems
}

/// What the store knows of a table's columns (`None` when it cannot say: reported elsewhere as a
/// database problem).
async fn table_info(
    pipeline: &Pipeline,
    store: &PgStore,
    table: &str,
) -> Option<Arc<etl_postgres::schema::TableInfo>> {
    let def = pipeline.tables.get(table)?;
    match store.table_info(&def.name) {
        Some(info) => Some(info),
        None => etl_postgres::schema::inspect(store.pool(), def)
            .await
            .ok()
            .map(Arc::new),
    }
}

/// The columns of `wanted` a table does not have.
fn lacking_columns<'a>(info: &etl_postgres::schema::TableInfo, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|c| info.column(c).is_none())
        .collect()
}
