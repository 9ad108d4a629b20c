//! Owns reading doc folders: a folder is a doc (its name is the doc id) holding, per table,
//! `<T>.columns.json` and `<T>.records.json` in the shapes the API returns, and optionally
//! `tables.json` (the `/tables` answer, which gives the table order). Other files are ignored.
//! A folder with no such files but with doc subfolders is read as a set of docs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::EmulatorError;
use crate::model::{Column, Doc, Fields, Record, Table};

const COLUMNS_SUFFIX: &str = ".columns.json";
const RECORDS_SUFFIX: &str = ".records.json";
const TABLES_FILE: &str = "tables.json";

#[derive(Deserialize)]
struct ColumnsFile {
    columns: Vec<Column>,
}

#[derive(Deserialize)]
struct RecordsFile {
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct TablesFile {
    tables: Vec<TableEntry>,
}

#[derive(Deserialize)]
struct TableEntry {
    id: String,
    #[serde(default)]
    fields: Fields,
}

/// Reads the docs of the given folders (each a doc folder, or a folder of doc folders).
pub fn load_dirs<P: AsRef<Path>>(dirs: &[P]) -> Result<Vec<Doc>, EmulatorError> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut origins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let dir = dir.as_ref();
        for (doc_dir, doc) in load_dir(dir)? {
            if origins.insert(doc.id.clone(), doc_dir.clone()).is_some() {
                return Err(EmulatorError::DuplicateDoc {
                    doc: doc.id,
                    path: doc_dir,
                });
            }
            docs.push(doc);
        }
    }
    Ok(docs)
}

fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Doc)>, EmulatorError> {
    let files = list_dir(dir)?;
    let is_doc = files.iter().any(|p| is_doc_file(p));
    if is_doc {
        return Ok(vec![(dir.to_path_buf(), load_doc(dir, &files)?)]);
    }
    let mut docs = Vec::new();
    for sub in files.iter().filter(|p| p.is_dir()) {
        let sub_files = list_dir(sub)?;
        if sub_files.iter().any(|p| is_doc_file(p)) {
            docs.push((sub.clone(), load_doc(sub, &sub_files)?));
        }
    }
    if docs.is_empty() {
        // A folder with nothing in it is an empty doc.
        docs.push((dir.to_path_buf(), load_doc(dir, &files)?));
    }
    Ok(docs)
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, EmulatorError> {
    let io_err = |source| EmulatorError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        paths.push(entry.map_err(io_err)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn is_doc_file(path: &Path) -> bool {
    let name = file_name(path);
    path.is_file()
        && (name == TABLES_FILE || name.ends_with(COLUMNS_SUFFIX) || name.ends_with(RECORDS_SUFFIX))
}

fn doc_id_of(dir: &Path) -> Result<String, EmulatorError> {
    let named = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
    if let Some(name) = named(dir) {
        return Ok(name);
    }
    let canonical = dir.canonicalize().map_err(|source| EmulatorError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    named(&canonical).ok_or_else(|| EmulatorError::Shape {
        path: dir.to_path_buf(),
        message: "the folder has no name to use as doc id".into(),
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmulatorError> {
    let text = fs::read(path).map_err(|source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Straight from the bytes, so that objects keep their key order.
    serde_json::from_slice(&text).map_err(|source| match source.classify() {
        serde_json::error::Category::Data => EmulatorError::Shape {
            path: path.to_path_buf(),
            message: source.to_string(),
        },
        _ => EmulatorError::Json {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn load_doc(dir: &Path, files: &[PathBuf]) -> Result<Doc, EmulatorError> {
    let mut columns: BTreeMap<String, (PathBuf, Vec<Column>)> = BTreeMap::new();
    let mut records: BTreeMap<String, (PathBuf, Vec<Record>)> = BTreeMap::new();
    let mut entries: Option<Vec<TableEntry>> = None;
    for path in files.iter().filter(|p| p.is_file()) {
        let name = file_name(path);
        if name == TABLES_FILE {
            entries = Some(read_json::<TablesFile>(path)?.tables);
        } else if let Some(table) = name.strip_suffix(COLUMNS_SUFFIX) {
            let file: ColumnsFile = read_json(path)?;
            columns.insert(table.to_string(), (path.clone(), file.columns));
        } else if let Some(table) = name.strip_suffix(RECORDS_SUFFIX) {
            let file: RecordsFile = read_json(path)?;
            records.insert(table.to_string(), (path.clone(), file.records));
        }
    }
    if let Some((table, (path, _))) = records.iter().find(|(t, _)| !columns.contains_key(*t)) {
        return Err(EmulatorError::Shape {
            path: path.clone(),
            message: format!("records of table {table} without {table}{COLUMNS_SUFFIX}"),
        });
    }
    for (table, (path, recs)) in &records {
        let mut ids = std::collections::HashSet::new();
        if let Some(dup) = recs.iter().find(|r| !ids.insert(r.id)) {
            return Err(EmulatorError::Shape {
                path: path.clone(),
                message: format!("record id {} appears twice in table {table}", dup.id),
            });
        }
    }

    let entries = entries.unwrap_or_default();
    let listed: std::collections::HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let rest: Vec<String> = columns
        .keys()
        .filter(|k| !listed.contains(k.as_str()))
        .cloned()
        .collect();
    let mut doc = Doc::new(doc_id_of(dir)?);
    let mut add_table = |id: &str, meta: Option<Fields>| {
        if let Some((_, cols)) = columns.remove(id) {
            let recs = records.remove(id).map(|(_, r)| r).unwrap_or_default();
            let mut table = Table::new(id, cols, recs);
            table.meta = meta;
            doc.push_table(table);
        } else {
            tracing::warn!(dir = %dir.display(), table = id, "tables.json lists a table without files");
        }
    };
    for entry in &entries {
        add_table(&entry.id, Some(entry.fields.clone()));
    }
    for id in rest {
        add_table(&id, None);
    }
    doc.normalize_columns();
    Ok(doc)
}
