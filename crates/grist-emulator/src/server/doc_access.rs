//! How handlers reach a doc: [`with_doc`] reads it in place, [`edit_doc`] edits a copy that
//! replaces it only if the edit succeeds; both answer an unknown doc with
//! [`EmulatorError::UnknownDoc`].

use crate::docs::Docs;
use crate::error::EmulatorError;
use crate::model::Doc;

/// Runs `f` on a copy of the doc, which replaces it only if `f` succeeds.
pub(super) fn edit_doc<R>(
    docs: &Docs,
    doc_id: &str,
    f: impl FnOnce(&mut Doc) -> Result<R, EmulatorError>,
) -> Result<R, EmulatorError> {
    docs.with_doc_mut(doc_id, f)
}

pub(super) fn with_doc<R>(
    docs: &Docs,
    doc_id: &str,
    f: impl FnOnce(&Doc) -> Result<R, EmulatorError>,
) -> Result<R, EmulatorError> {
    docs.read(|all| match all.get(doc_id) {
        Some(doc) => f(doc),
        None => Err(EmulatorError::UnknownDoc(doc_id.to_string())),
    })
}
