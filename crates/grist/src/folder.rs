//! The doc folder format: a folder per doc (its name is the doc's name), and per table
//! `<Table>.columns.json` and `<Table>.records.json` in the very shapes Grist's API returns, with
//! an optional `tables.json` giving the table order. The test fake serves it, `etl grist seed`
//! creates docs from it.

use std::path::{Path, PathBuf};

use serde_json::Value as J;

use crate::api::{Column, ColumnList};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FolderError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct TableData {
    pub id: String,
    pub columns: Vec<Column>,
    /// Records as `/records` gives them: `{"id": n, "fields": {...}}`.
    pub records: Vec<J>,
}

#[derive(Debug, Clone)]
pub struct DocFolder {
    pub name: String,
    pub tables: Vec<TableData>,
}

fn read_json(path: &Path) -> Result<J, FolderError> {
    let text = std::fs::read_to_string(path).map_err(|e| FolderError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| FolderError {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })
}

impl DocFolder {
    pub fn read(dir: &Path) -> Result<DocFolder, FolderError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| FolderError {
                path: dir.to_path_buf(),
                message: "not a folder name".into(),
            })?
            .to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| FolderError {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".columns.json"))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        // tables.json, when present, gives the order.
        let order_file = dir.join("tables.json");
        if order_file.exists() {
            let order: Vec<String> = read_json(&order_file)?
                .get("tables")
                .and_then(J::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| t.get("id")?.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort_by_key(|id| order.iter().position(|o| o == id).unwrap_or(usize::MAX));
        }
        let mut tables = Vec::new();
        for id in ids {
            let columns_path = dir.join(format!("{id}.columns.json"));
            let columns: ColumnList =
                serde_json::from_value(read_json(&columns_path)?).map_err(|e| FolderError {
                    path: columns_path.clone(),
                    message: format!("not a /columns answer: {e}"),
                })?;
            let records_path = dir.join(format!("{id}.records.json"));
            let records = read_json(&records_path)?
                .get("records")
                .and_then(J::as_array)
                .cloned()
                .ok_or_else(|| FolderError {
                    path: records_path.clone(),
                    message: "not a /records answer (no `records` list)".into(),
                })?;
            tables.push(TableData {
                id,
                columns: columns.columns,
                records,
            });
        }
        if tables.is_empty() {
            return Err(FolderError {
                path: dir.to_path_buf(),
                message: "holds no <Table>.columns.json".into(),
            });
        }
        Ok(DocFolder { name, tables })
    }
}
