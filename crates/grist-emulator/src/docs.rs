//! Owns [`Docs`], the handle shared by the server and the tests: the docs in memory and the
//! methods that edit them between requests, the fault rules, the request log and counters, and
//! the API key. Every change is visible to the next request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::Value;

use crate::error::EmulatorError;
use crate::fault::{Fault, FaultKind, FaultQueue, RequestInfo};
use crate::history::{self, History, HistoryLimits};
use crate::model::{object_fields, Column, Doc, Record, Table};

#[derive(Debug, Default)]
struct Shared {
    docs: RwLock<BTreeMap<String, Doc>>,
    /// Each doc's states (`crate::history`), changed under the `docs` write lock.
    histories: Mutex<BTreeMap<String, History>>,
    history_limits: Mutex<HistoryLimits>,
    faults: Mutex<FaultQueue>,
    log: Mutex<Vec<RequestInfo>>,
    api_key: RwLock<Option<String>>,
}

/// A cheap-to-clone handle on the emulator's docs and test controls.
#[derive(Clone, Debug, Default)]
pub struct Docs {
    inner: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Docs {
    /// A handle on these docs.
    pub fn new(docs: Vec<Doc>) -> Docs {
        let handle = Docs::default();
        for doc in docs {
            handle.insert_doc(doc);
        }
        handle
    }

    /// Runs `f` on the docs, read-only.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&BTreeMap<String, Doc>) -> R) -> R {
        let guard = self.inner.docs.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Runs `f` on the docs, to change them.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Doc>) -> R) -> R {
        let mut guard = self.inner.docs.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Runs `f` on a copy of one doc, which replaces it only if `f` succeeds; a change is a new
    /// state of the doc's history. (The copy shares its tables with the doc until `f` changes
    /// one.)
    pub(crate) fn with_doc_mut<R>(
        &self,
        doc_id: &str,
        f: impl FnOnce(&mut Doc) -> Result<R, EmulatorError>,
    ) -> Result<R, EmulatorError> {
        self.write(|docs| match docs.get_mut(doc_id) {
            Some(doc) => {
                let mut copy = doc.clone();
                let result = f(&mut copy)?;
                if history::changed(doc, &copy) {
                    crate::eval::refresh_stored_formulas(&mut copy);
                    let limits = *lock(&self.inner.history_limits);
                    lock(&self.inner.histories)
                        .entry(doc_id.to_string())
                        .or_insert_with(|| History::new(doc))
                        .record(&copy, limits);
                }
                *doc = copy;
                Ok(result)
            }
            None => Err(EmulatorError::UnknownDoc(doc_id.to_string())),
        })
    }

    // ---- history ----

    /// Bounds every doc's history (see `crate::history`); states beyond them are forgotten at
    /// the next change.
    pub fn set_history_limits(&self, limits: HistoryLimits) {
        *lock(&self.inner.history_limits) = limits;
    }

    /// Forgets every state of a doc but its newest, as a server whose history was cut would:
    /// the hashes of the earlier states are then unknown to `/compare`.
    pub fn truncate_history(&self, doc_id: &str) {
        self.read(|docs| {
            if let Some(doc) = docs.get(doc_id) {
                let mut histories = lock(&self.inner.histories);
                let head = histories
                    .get(doc_id)
                    .map(|h| h.head().clone())
                    .unwrap_or_else(|| History::new(doc).head().clone());
                histories.insert(doc_id.to_string(), History::from_head(head));
            }
        })
    }

    /// Runs `f` on a doc's history (made on first use for a doc that has none yet).
    pub(crate) fn with_history<R>(
        &self,
        doc_id: &str,
        f: impl FnOnce(&History) -> R,
    ) -> Result<R, EmulatorError> {
        self.read(|docs| {
            let doc = docs
                .get(doc_id)
                .ok_or_else(|| EmulatorError::UnknownDoc(doc_id.to_string()))?;
            let mut histories = lock(&self.inner.histories);
            let history = histories
                .entry(doc_id.to_string())
                .or_insert_with(|| History::new(doc));
            Ok(f(history))
        })
    }

    fn with_table_mut<R>(
        &self,
        doc_id: &str,
        table_id: &str,
        f: impl FnOnce(&mut Table) -> Result<R, EmulatorError>,
    ) -> Result<R, EmulatorError> {
        self.with_doc_mut(doc_id, |doc| f(doc.table_mut_or_err(table_id)?))
    }

    // ---- docs ----

    /// The ids of all docs.
    pub fn doc_ids(&self) -> Vec<String> {
        self.read(|docs| docs.keys().cloned().collect())
    }

    /// A copy of one doc.
    pub fn doc(&self, doc_id: &str) -> Option<Doc> {
        self.read(|docs| docs.get(doc_id).cloned())
    }

    /// Adds a doc, or replaces the doc with the same id.
    pub fn insert_doc(&self, mut doc: Doc) {
        doc.normalize_columns();
        self.write(|docs| {
            lock(&self.inner.histories).insert(doc.id.clone(), History::new(&doc));
            docs.insert(doc.id.clone(), doc)
        });
    }

    /// Removes a doc; false if there was none.
    pub fn remove_doc(&self, doc_id: &str) -> bool {
        self.write(|docs| {
            lock(&self.inner.histories).remove(doc_id);
            docs.remove(doc_id).is_some()
        })
    }

    // ---- tables ----

    /// A copy of one table.
    pub fn table(&self, doc_id: &str, table_id: &str) -> Option<Table> {
        self.read(|docs| docs.get(doc_id).and_then(|d| d.table(table_id)).cloned())
    }

    /// Adds a table at the end of the doc (its columns get colRefs where missing).
    pub fn add_table(&self, doc_id: &str, table: Table) -> Result<(), EmulatorError> {
        self.with_doc_mut(doc_id, |doc| {
            if doc.table(&table.id).is_some() {
                return Err(EmulatorError::DuplicateTable { table: table.id });
            }
            doc.push_table(table);
            doc.normalize_columns();
            Ok(())
        })
    }

    /// Removes a table.
    pub fn remove_table(&self, doc_id: &str, table_id: &str) -> Result<(), EmulatorError> {
        self.with_doc_mut(doc_id, |doc| {
            let before = doc.tables.len();
            doc.tables.retain(|t| t.id != table_id);
            if doc.tables.len() == before {
                return Err(EmulatorError::UnknownTable {
                    doc: doc_id.to_string(),
                    table: table_id.to_string(),
                });
            }
            Ok(())
        })
    }

    /// Replaces a table's columns (as `/columns?hidden=true` lists them).
    pub fn replace_columns(
        &self,
        doc_id: &str,
        table_id: &str,
        columns: Vec<Column>,
    ) -> Result<(), EmulatorError> {
        self.with_doc_mut(doc_id, |doc| {
            doc.table_mut_or_err(table_id)?.columns = columns;
            doc.normalize_columns();
            Ok(())
        })
    }

    // ---- records ----

    /// A copy of a table's records.
    pub fn records(&self, doc_id: &str, table_id: &str) -> Result<Vec<Record>, EmulatorError> {
        self.read(|docs| {
            let doc = docs
                .get(doc_id)
                .ok_or_else(|| EmulatorError::UnknownDoc(doc_id.to_string()))?;
            Ok(doc.table_or_err(table_id)?.records.clone())
        })
    }

    /// Replaces all records of a table.
    pub fn set_records(
        &self,
        doc_id: &str,
        table_id: &str,
        records: Vec<Record>,
    ) -> Result<(), EmulatorError> {
        self.with_table_mut(doc_id, table_id, |table| {
            table.records = records;
            Ok(())
        })
    }

    /// Sets some fields of one record (a JSON object of colId -> value); a field that had a
    /// formula error loses it.
    pub fn update_record(
        &self,
        doc_id: &str,
        table_id: &str,
        id: i64,
        fields: Value,
    ) -> Result<(), EmulatorError> {
        let fields = object_fields(fields)?;
        self.with_table_mut(doc_id, table_id, |table| {
            let table_name = table.id.clone();
            let rec = table.records.iter_mut().find(|r| r.id == id).ok_or(
                EmulatorError::UnknownRecord {
                    table: table_name,
                    id,
                },
            )?;
            for (k, v) in fields {
                rec.errors.shift_remove(&k);
                rec.fields.insert(k, v);
            }
            Ok(())
        })
    }

    /// Adds a record with these fields; its id is the table's max id + 1.
    pub fn add_record(
        &self,
        doc_id: &str,
        table_id: &str,
        fields: Value,
    ) -> Result<i64, EmulatorError> {
        let fields = object_fields(fields)?;
        self.with_table_mut(doc_id, table_id, |table| {
            let id = table.next_row_id();
            table.records.push(Record {
                id,
                fields,
                errors: Default::default(),
            });
            Ok(id)
        })
    }

    /// Deletes one record (references to it are cleared, as in Grist).
    pub fn delete_record(
        &self,
        doc_id: &str,
        table_id: &str,
        id: i64,
    ) -> Result<(), EmulatorError> {
        self.with_doc_mut(doc_id, |doc| {
            let table = doc.table_mut_or_err(table_id)?;
            let before = table.records.len();
            table.records.retain(|r| r.id != id);
            if table.records.len() == before {
                return Err(EmulatorError::UnknownRecord {
                    table: table.id.clone(),
                    id,
                });
            }
            crate::seed::clear_references(doc, table_id, &[id]);
            Ok(())
        })
    }

    // ---- faults ----

    /// Adds a fault rule (applied after the rules added before it are used up).
    pub fn inject(&self, fault: Fault) {
        lock(&self.inner.faults).push(fault);
    }

    /// The next `n` requests answer 500 with a JSON error body.
    pub fn fail_next(&self, n: usize) {
        self.inject(Fault::internal_error(n));
    }

    /// The next `n` requests about `table` answer 500 with a JSON error body.
    pub fn fail_next_for_table(&self, n: usize, table: &str) {
        self.inject(Fault::internal_error(n).for_table(table));
    }

    /// The next `n` requests (about `table`, if given) answer 500 `SQLITE_BUSY`.
    pub fn busy_next(&self, n: usize, table: Option<&str>) {
        let fault = Fault::sqlite_busy(n);
        self.inject(match table {
            Some(t) => fault.for_table(t),
            None => fault,
        });
    }

    /// The next `n` requests (about `table`, if given) wait `delay` before being answered.
    pub fn delay_next(&self, n: usize, delay: std::time::Duration, table: Option<&str>) {
        let fault = Fault::delay(n, delay);
        self.inject(match table {
            Some(t) => fault.for_table(t),
            None => fault,
        });
    }

    /// Drops all pending fault rules.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// How many faulty answers are still pending.
    pub fn pending_faults(&self) -> usize {
        lock(&self.inner.faults).pending()
    }

    pub(crate) fn take_fault(&self, table: Option<&str>) -> Option<FaultKind> {
        lock(&self.inner.faults).take(table)
    }

    // ---- request log ----

    pub(crate) fn log_request(&self, info: RequestInfo) {
        lock(&self.inner.log).push(info);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestInfo> {
        lock(&self.inner.log).clone()
    }

    /// How many requests were made to this path (query not included), e.g.
    /// `/api/docs/my-doc/download/csv`.
    pub fn request_count(&self, path: &str) -> usize {
        lock(&self.inner.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Request counts per path.
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in lock(&self.inner.log).iter() {
            *counts.entry(r.path.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Forgets the requests received so far.
    pub fn reset_requests(&self) {
        lock(&self.inner.log).clear();
    }

    // ---- API key ----

    /// Sets (or with `None` removes) the API key requests must present as
    /// `Authorization: Bearer <key>`.
    pub fn set_api_key(&self, key: Option<String>) {
        *self
            .inner
            .api_key
            .write()
            .unwrap_or_else(|e| e.into_inner()) = key;
    }

    pub fn api_key(&self) -> Option<String> {
        self.inner
            .api_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
