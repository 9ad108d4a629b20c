//! A CSV download parsed as it arrives.
//!
//! The body's chunks flow through a bounded channel into a `csv` reader running on a blocking
//! thread, which sends back batches of records. Memory is bounded by the channels, not by the
//! table: a million-row download never sits in memory whole.

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::GristError;
use crate::read_log::ReadLog;

const RECORDS_PER_BATCH: usize = 2000;

enum Parsed {
    Headers(Vec<String>),
    Rows(Vec<csv::StringRecord>),
    Failed(GristError),
}

/// The records of one CSV download.
pub struct CsvStream {
    rx: mpsc::Receiver<Parsed>,
    headers: Option<Vec<String>>,
    what: String,
    done: bool,
}

impl std::fmt::Debug for CsvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvStream")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// `std::io::Read` over the chunks of a response body.
struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl CsvStream {
    /// Starts parsing a response. With a log, the body's digest is recorded there once the
    /// whole body has arrived.
    pub(crate) fn start(
        response: reqwest::Response,
        what: String,
        log: Option<(std::sync::Arc<ReadLog>, String)>,
    ) -> CsvStream {
        let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let (rows_tx, rows_rx) = mpsc::channel::<Parsed>(4);

        let download_what = what.clone();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut hasher = log.as_ref().map(|_| blake3::Hasher::new());
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                if let (Some(h), Ok(bytes)) = (hasher.as_mut(), &chunk) {
                    h.update(bytes);
                    read += bytes.len() as u64;
                }
                let item = chunk.map_err(|e| {
                    let kind = if e.is_timeout() {
                        std::io::ErrorKind::TimedOut
                    } else {
                        std::io::ErrorKind::ConnectionReset
                    };
                    std::io::Error::new(
                        kind,
                        format!("download of {download_what} broke: {}", e.without_url()),
                    )
                });
                let failed = item.is_err();
                if chunk_tx.send(item).await.is_err() || failed {
                    return;
                }
            }
            if let (Some((log, request)), Some(h)) = (log, hasher) {
                log.finished(&request, h.finalize(), read);
            }
        });

        let parse_what = what.clone();
        tokio::task::spawn_blocking(move || {
            let reader = ChunkReader {
                rx: chunk_rx,
                current: Bytes::new(),
            };
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .from_reader(reader);
            let fail = |e: csv::Error| {
                let transient = matches!(e.kind(), csv::ErrorKind::Io(io) if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::ConnectionReset));
                if transient {
                    Parsed::Failed(GristError::Server {
                        what: parse_what.clone(),
                        status: 0,
                        detail: e.to_string(),
                        retry_after: None,
                    })
                } else {
                    Parsed::Failed(GristError::Protocol {
                        what: parse_what.clone(),
                        detail: format!("bad CSV: {e}"),
                    })
                }
            };
            let headers = match csv.headers() {
                Ok(h) => h.iter().map(str::to_string).collect(),
                Err(e) => {
                    let _ = rows_tx.blocking_send(fail(e));
                    return;
                }
            };
            if rows_tx.blocking_send(Parsed::Headers(headers)).is_err() {
                return;
            }
            let mut batch = Vec::with_capacity(RECORDS_PER_BATCH);
            let mut record = csv::StringRecord::new();
            loop {
                match csv.read_record(&mut record) {
                    Ok(true) => {
                        batch.push(record.clone());
                        if batch.len() == RECORDS_PER_BATCH
                            && rows_tx
                                .blocking_send(Parsed::Rows(std::mem::take(&mut batch)))
                                .is_err()
                        {
                            return;
                        }
                    }
                    Ok(false) => break,
                    Err(e) => {
                        let _ = rows_tx.blocking_send(fail(e));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = rows_tx.blocking_send(Parsed::Rows(batch));
            }
        });

        CsvStream {
            rx: rows_rx,
            headers: None,
            what,
            done: false,
        }
    }

    /// The header line (column ids).
    /// The header as column ids: a Ref column's display helper (`gristHelper_Display*`, what
    /// `header=colId` names its column) is given as the Ref column it shows.
    pub async fn column_ids(
        &mut self,
        columns: &[crate::api::Column],
    ) -> Result<Vec<String>, GristError> {
        let helper_of = crate::api::csv_header_to_column(columns);
        Ok(self
            .headers()
            .await?
            .into_iter()
            .map(|h| helper_of.get(&h).cloned().unwrap_or(h))
            .collect())
    }

    pub async fn headers(&mut self) -> Result<Vec<String>, GristError> {
        if let Some(h) = &self.headers {
            return Ok(h.clone());
        }
        match self.rx.recv().await {
            Some(Parsed::Headers(h)) => {
                self.headers = Some(h.clone());
                Ok(h)
            }
            Some(Parsed::Failed(e)) => Err(e),
            // An empty body: a table with no columns at all.
            None => {
                self.headers = Some(Vec::new());
                self.done = true;
                Ok(Vec::new())
            }
            Some(Parsed::Rows(_)) => Err(GristError::Protocol {
                what: self.what.clone(),
                detail: "rows before the header".into(),
            }),
        }
    }

    /// The next batch of records, `None` at the end.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<csv::StringRecord>>, GristError> {
        if self.headers.is_none() {
            self.headers().await?;
        }
        if self.done {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(Parsed::Rows(rows)) => Ok(Some(rows)),
            Some(Parsed::Failed(e)) => Err(e),
            Some(Parsed::Headers(_)) => Err(GristError::Protocol {
                what: self.what.clone(),
                detail: "a second header".into(),
            }),
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }
}
