//! Loading `pipelines.toml` into a validated pipeline, reporting every problem at once.

use std::path::Path;
use std::sync::Arc;

use etl_core::config::{parse, ConfigError, ConfigErrors};
use etl_core::dag::compile;
use etl_core::Pipeline;

use crate::catalog::EtlCatalog;

/// Reads and compiles the configuration. `Err` holds every problem found.
pub fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError::new(
            "",
            format!("cannot read it ({e}); pass --config PATH or run etl where pipelines.toml is"),
        )],
    })?;
    let (config, mut errors) = parse(&text);
    let Some(config) = config else {
        return Err(ConfigErrors { file, errors });
    };
    let env = Arc::new(|name: &str| std::env::var(name).ok());
    let database_url = std::env::var("DB_CONN_URI")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            let raw = config.database_url.as_ref()?;
            etl_core::config::interpolate(raw, &*env)
                .ok()
                .filter(|i| i.missing.is_empty())
                .map(|i| i.value)
        });
    match compile(&config, &EtlCatalog { database_url }, env) {
        Ok(p) if errors.is_empty() => Ok(p),
        Ok(_) => Err(ConfigErrors { file, errors }),
        Err(more) => {
            errors.extend(more);
            errors.sort_by(|a, b| a.place.cmp(&b.place));
            errors.dedup();
            Err(ConfigErrors { file, errors })
        }
    }
}

/// Fixes the pipeline this process serves, before any connection: `--pipeline`/`ETL_PIPELINE`
/// (`flag`), else the configuration's `[pipeline] name`, else the default pipeline. A
/// configuration that cannot be read leaves the choice to the flag (the command then reports it).
pub fn enter_pipeline(
    flag: Option<&str>,
    config: &Path,
) -> Result<&'static etl_postgres::namespace::Namespace, String> {
    let from_config = || {
        let text = std::fs::read_to_string(config).ok()?;
        parse(&text).0?.pipeline_name
    };
    let name = match flag.filter(|f| !f.is_empty()) {
        Some(f) => Some(f.to_string()),
        None => from_config(),
    };
    etl_postgres::namespace::enter(name.as_deref()).map_err(|e| e.to_string())
}

/// Environment variables that the given steps need and that are not set.
pub fn missing_env(pipeline: &Pipeline, steps: &[usize], file: &str) -> Result<(), ConfigErrors> {
    let errors: Vec<ConfigError> = steps
        .iter()
        .filter(|i| pipeline.steps[**i].skipped.is_none())
        .flat_map(|i| pipeline.steps[*i].missing_env.iter().cloned())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors {
            file: file.to_string(),
            errors,
        })
    }
}

/// The database URL: `DB_CONN_URI`, else `[database] url`.
pub fn database_url(pipeline: &Pipeline) -> Option<String> {
    std::env::var("DB_CONN_URI")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| pipeline.database_url.clone().filter(|v| !v.is_empty()))
}

/// The settings of every step using one of `uses`, as the catalog would read them, for commands
/// that act with a step's configuration outside a run (`etl search`, `etl verify`).
pub fn step_settings(
    path: &Path,
    uses: &[&str],
) -> Vec<(etl_core::config::StepConfig, etl_core::config::Settings)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (Some(config), _) = parse(&text) else {
        return Vec::new();
    };
    let env: etl_core::config::EnvLookup = Arc::new(|name: &str| std::env::var(name).ok());
    config
        .steps
        .into_values()
        .filter(|s| uses.contains(&s.uses.as_str()))
        .map(|s| {
            let settings = etl_core::config::Settings::new(
                format!("steps.{}.settings", s.name),
                s.settings.clone(),
                env.clone(),
            );
            (s, settings)
        })
        .collect()
}
