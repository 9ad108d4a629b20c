//! `etl grist ...`: tooling around the doc folder format.
//!
//! * `serve DIR...`: serves doc folders over Grist's HTTP API on 127.0.0.1 until stopped, so
//!   pipelines and CI can run with no Grist server; prints the URL and the doc ids.
//! * `export --doc ID --out DIR`: snapshots a doc from a Grist server into a folder.
//! * `seed DIR... --server URL`: creates each folder's doc in a Grist server, prints
//!   `<folder> <doc id>` per doc, and with `--env-out FILE` writes the `GRIST_*_DOC_ID`
//!   variables for folders named `*data-model`, `*data` and `*test-set`.

use std::path::{Path, PathBuf};

use grist::folder::DocFolder;
use grist::{GristClient, GristConfig};

use crate::exit::Exit;

pub async fn export(doc: &str, out: &Path, server: &str) -> Exit {
    let api_key = std::env::var("GRIST_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let client = match GristClient::new(GristConfig::new(server, api_key)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Service;
        }
    };
    match grist::export::export(&client, doc, out).await {
        Ok(tables) => {
            println!(
                "exported doc {doc} ({} tables) to {}",
                tables.len(),
                out.display()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Service
        }
    }
}

pub async fn serve(dirs: &[PathBuf], port: u16, api_key: Option<&str>) -> Exit {
    let emulator = match grist_emulator::Emulator::from_dirs(dirs) {
        Ok(e) => e.with_api_key(api_key),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let running = match emulator
        .serve(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot serve on 127.0.0.1:{port}: {e}");
            return Exit::Service;
        }
    };
    println!("GRIST_SERVER_URL={}", running.url());
    for id in running.docs().doc_ids() {
        let var = env_var_for(&id)
            .map(|v| format!("  ({v})"))
            .unwrap_or_default();
        eprintln!("serving doc {id}{var}");
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot listen for SIGTERM: {e}");
            return Exit::Service;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    running.shutdown().await;
    Exit::Ok
}

/// The `GRIST_*_DOC_ID` variable a folder's name suggests.
fn env_var_for(folder: &str) -> Option<&'static str> {
    if folder.ends_with("data-model") || folder.ends_with("data_model") {
        Some("GRIST_DATA_MODEL_DOC_ID")
    } else if folder.ends_with("test-set")
        || folder.ends_with("test_set")
        || folder.ends_with("gds")
    {
        Some("GRIST_TEST_SET_DOC_ID")
    } else if folder.ends_with("data") {
        Some("GRIST_DATA_DOC_ID")
    } else {
        None
    }
}

pub async fn seed(
    dirs: &[PathBuf],
    server: &str,
    workspace: Option<i64>,
    env_out: Option<&Path>,
) -> Exit {
    let folders: Vec<DocFolder> = match dirs
        .iter()
        .map(|d| DocFolder::read(d))
        .collect::<Result<_, _>>()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let api_key = std::env::var("GRIST_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let client = match GristClient::new(GristConfig::new(server, api_key)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Service;
        }
    };
    let mut env_lines = Vec::new();
    for folder in &folders {
        match grist::seed::seed(&client, folder, workspace).await {
            Ok(doc_id) => {
                println!("{} {doc_id}", folder.name);
                if let Some(var) = env_var_for(&folder.name) {
                    env_lines.push(format!("{var}={doc_id}"));
                }
            }
            Err(e) => {
                eprintln!("error: seeding {}: {e}", folder.name);
                return Exit::Service;
            }
        }
    }
    if let Some(path) = env_out {
        if let Err(e) = std::fs::write(path, env_lines.join("\n") + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Exit::Service;
        }
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::env_var_for;

    #[test]
    fn folder_names_suggest_doc_variables() {
        assert_eq!(
            env_var_for("demo-data-model"),
            Some("GRIST_DATA_MODEL_DOC_ID")
        );
        assert_eq!(env_var_for("demo-data"), Some("GRIST_DATA_DOC_ID"));
        assert_eq!(env_var_for("demo-test-set"), Some("GRIST_TEST_SET_DOC_ID"));
        assert_eq!(env_var_for("other"), None);
    }
}
