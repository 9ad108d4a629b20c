//! Snapshotting a doc into the folder format (`etl grist export`): Grist's own answers to
//! `/tables`, `/columns?hidden=true` and `/records`, written as they came, so that serving the
//! folder answers like the source server did.

use std::path::Path;

use crate::client::GristClient;
use crate::error::GristError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Grist(#[from] GristError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `doc` into `out` (created if missing); returns the table ids.
pub async fn export(
    client: &GristClient,
    doc: &str,
    out: &Path,
) -> Result<Vec<String>, ExportError> {
    let write = |name: String, bytes: &[u8]| -> Result<(), ExportError> {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| ExportError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(out).map_err(|source| ExportError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let tables_body = client.raw(doc, None, "/tables").await?;
    write("tables.json".into(), &tables_body)?;
    let tables = client.tables(doc).await?;
    for t in &tables {
        let columns = client
            .raw(
                doc,
                Some(t),
                &format!(
                    "/tables/{}/columns?hidden=true",
                    crate::client::path_segment(t)
                ),
            )
            .await?;
        write(format!("{t}.columns.json"), &columns)?;
        let records = client
            .raw(
                doc,
                Some(t),
                &format!("/tables/{}/records", crate::client::path_segment(t)),
            )
            .await?;
        write(format!("{t}.records.json"), &records)?;
    }
    Ok(tables)
}
