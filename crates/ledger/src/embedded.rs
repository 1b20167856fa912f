//! The embedded ledger: a redb file written by one group-committing writer thread.
//!
//! Tables: `log: u64 -> SCALE (timestamp, payload)`, `code: [u8; 32] -> wasm`,
//! `meta: &str -> value`. Every write goes through the writer thread, which blocks for one
//! request, drains whatever else is pending (up to `max_batch`), commits it all in a single
//! fsync'ed transaction, publishes the new head and only then answers the callers. Reads use
//! their own read transactions and never wait for the writer.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parity_scale_codec::{Decode, Encode};
use phat_primitives::{CodeHash, Timestamp};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::{oneshot, watch};

use crate::{
    check_meta_key, check_snapshot_name, Appended, Ledger, LedgerConfig, LedgerEntry, LedgerError,
    Seq,
};

/// The command log: seq -> SCALE `(Timestamp, Vec<u8>)`.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Code blobs by code hash.
const CODE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("code");
/// Cluster metadata.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// State snapshots by name.
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// A group-commit transaction stops draining once it holds this many payload bytes.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// One `read` returns at most this many payload bytes (but always at least one entry).
const MAX_READ_BYTES: usize = 16 << 20;

/// A write for the writer thread, with the channel its result goes back on.
enum WriteRequest {
    /// Append a command.
    Append {
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Appended, LedgerError>>,
    },
    /// Store a code blob under its hash (if absent).
    PutCode {
        hash: CodeHash,
        wasm: Vec<u8>,
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    /// Set a metadata value (only if absent when `create`); answers whether it was written.
    PutMeta {
        key: String,
        value: Vec<u8>,
        create: bool,
        reply: oneshot::Sender<Result<bool, LedgerError>>,
    },
}

impl WriteRequest {
    /// Payload bytes this request adds to a transaction.
    fn size(&self) -> usize {
        match self {
            WriteRequest::Append { payload, .. } => payload.len(),
            WriteRequest::PutCode { wasm, .. } => wasm.len(),
            WriteRequest::PutMeta { key, value, .. } => key.len() + value.len(),
        }
    }
}

/// An embedded, file-backed ledger. Cheap to clone; the file closes when the last clone drops.
#[derive(Clone)]
pub struct EmbeddedLedger {
    inner: Arc<Inner>,
}

/// State shared by the clones of one [`EmbeddedLedger`].
struct Inner {
    db: Arc<Database>,
    config: LedgerConfig,
    requests: Option<mpsc::Sender<WriteRequest>>,
    head: watch::Receiver<Seq>,
    writer: Option<JoinHandle<()>>,
    /// Transactions the writer has committed since open.
    commits: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer once it has answered everything queued.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("ledger writer thread panicked");
            }
        }
    }
}

/// Maps any storage error to [`LedgerError::Io`].
fn io<E: std::fmt::Display>(e: E) -> LedgerError {
    LedgerError::Io(e.to_string())
}

/// The wall clock in Unix ms.
fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl EmbeddedLedger {
    /// Opens (or creates) the ledger file at `path`, resuming after its last entry.
    pub fn open(path: &Path, config: LedgerConfig) -> Result<Self, LedgerError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let db = Database::create(path).map_err(io)?;

        // Create the tables so readers never see them missing, and find where the log ends.
        let txn = db.begin_write().map_err(io)?;
        let (head, last_timestamp) = {
            let log = txn.open_table(LOG).map_err(io)?;
            txn.open_table(CODE).map_err(io)?;
            txn.open_table(META).map_err(io)?;
            txn.open_table(SNAPSHOTS).map_err(io)?;
            let last = log.last().map_err(io)?;
            match last {
                Some((seq, value)) => {
                    let (ts, _payload) = decode_log_value(value.value())?;
                    (seq.value(), ts)
                }
                None => (0, 0),
            }
        };
        txn.commit().map_err(io)?;

        let db = Arc::new(db);
        let (head_tx, head_rx) = watch::channel(head);
        let (req_tx, req_rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            commits: commits.clone(),
            db: db.clone(),
            requests: req_rx,
            head_tx,
            head,
            last_timestamp,
            max_batch: config.max_batch.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("phat-ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(io)?;

        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config,
                requests: Some(req_tx),
                head: head_rx,
                writer: Some(handle),
                commits,
            }),
        })
    }

    /// The limits this ledger enforces.
    pub fn config(&self) -> &LedgerConfig {
        &self.inner.config
    }

    /// Write transactions committed since open (group commits; for metrics).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Hands a request to the writer thread.
    fn submit(&self, request: WriteRequest) -> Result<(), LedgerError> {
        self.inner
            .requests
            .as_ref()
            .ok_or(LedgerError::Closed)?
            .send(request)
            .map_err(|_| LedgerError::Closed)
    }

    /// Runs a read-only closure against the database on the blocking pool.
    async fn with_db<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, LedgerError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.db))
            .await
            .map_err(|e| LedgerError::Io(format!("read task failed: {e}")))?
    }
}

/// Decodes a `log` value into its timestamp and payload.
fn decode_log_value(mut bytes: &[u8]) -> Result<(Timestamp, Vec<u8>), LedgerError> {
    <(Timestamp, Vec<u8>)>::decode(&mut bytes)
        .map_err(|e| LedgerError::Io(format!("corrupt log entry: {e}")))
}

/// Reads entries `from..=to`, stopping early once the byte budget is spent.
fn read_range(db: &Database, from: Seq, to: Seq) -> Result<Vec<LedgerEntry>, LedgerError> {
    let txn = db.begin_read().map_err(io)?;
    let log = txn.open_table(LOG).map_err(io)?;
    if let Some((first, _)) = log.first().map_err(io)? {
        if from < first.value() {
            return Err(LedgerError::Trimmed {
                first: first.value(),
            });
        }
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in log.range(from..=to).map_err(io)? {
        let (seq, value) = item.map_err(io)?;
        let (timestamp, payload) = decode_log_value(value.value())?;
        bytes += payload.len();
        out.push(LedgerEntry {
            seq: seq.value(),
            timestamp,
            payload,
        });
        if bytes >= MAX_READ_BYTES {
            break;
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Ledger for EmbeddedLedger {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        let max = self.inner.config.max_payload;
        check_size(payload.len(), max)?;
        let (reply, rx) = oneshot::channel();
        self.submit(WriteRequest::Append { payload, reply })?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let from = from.max(1);
        let deadline = tokio::time::Instant::now() + wait;
        let mut head_rx = self.inner.head.clone();
        loop {
            let head = *head_rx.borrow_and_update();
            if head >= from {
                let span = u64::try_from(max - 1).unwrap_or(u64::MAX);
                let to = head.min(from.saturating_add(span));
                return self.with_db(move |db| read_range(db, from, to)).await;
            }
            match tokio::time::timeout_at(deadline, head_rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(LedgerError::Closed),
                Err(_elapsed) => return Ok(Vec::new()),
            }
        }
    }

    async fn head(&self) -> Result<Seq, LedgerError> {
        Ok(*self.inner.head.borrow())
    }

    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        let max = self.inner.config.max_code;
        check_size(wasm.len(), max)?;
        let hash = CodeHash::of(&wasm);
        let (reply, rx) = oneshot::channel();
        self.submit(WriteRequest::PutCode { hash, wasm, reply })?;
        rx.await.map_err(|_| LedgerError::Closed)??;
        Ok(hash)
    }

    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        let key = hash.0;
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let code = txn.open_table(CODE).map_err(io)?;
            let found = code.get(key).map_err(io)?;
            Ok(found.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        self.write_meta(key, value, false).await.map(|_| ())
    }

    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        self.write_meta(key, value, true).await
    }

    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let prefix = prefix.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let meta = txn.open_table(META).map_err(io)?;
            let mut out = Vec::new();
            for entry in meta.range(prefix.as_str()..).map_err(io)? {
                let (key, _) = entry.map_err(io)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                out.push(key.value().to_owned());
            }
            Ok(out)
        })
        .await
    }

    async fn first_seq(&self) -> Result<Seq, LedgerError> {
        let head = *self.inner.head.borrow();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let log = txn.open_table(LOG).map_err(io)?;
            let first = log.first().map_err(io)?;
            Ok(first.map_or(head + 1, |(seq, _)| seq.value()).max(1))
        })
        .await
    }

    async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        let below = below.min(*self.inner.head.borrow());
        self.with_db(move |db| {
            // A second writer: redb serialises it with the append thread's transactions.
            let txn = db.begin_write().map_err(io)?;
            {
                let mut log = txn.open_table(LOG).map_err(io)?;
                log.retain_in(..below, |_, _| false).map_err(io)?;
            }
            txn.commit().map_err(io)
        })
        .await
    }

    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        check_snapshot_name(name)?;
        check_size(data.len(), self.inner.config.max_snapshot)?;
        let name = name.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_write().map_err(io)?;
            txn.open_table(SNAPSHOTS)
                .map_err(io)?
                .insert(name.as_str(), data.as_slice())
                .map_err(io)?;
            txn.commit().map_err(io)
        })
        .await
    }

    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        check_snapshot_name(name)?;
        let name = name.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let table = txn.open_table(SNAPSHOTS).map_err(io)?;
            let found = table.get(name.as_str()).map_err(io)?;
            Ok(found.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(io)?;
            let table = txn.open_table(SNAPSHOTS).map_err(io)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(io)? {
                out.push(entry.map_err(io)?.0.value().to_owned());
            }
            Ok(out)
        })
        .await
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        check_snapshot_name(name)?;
        let name = name.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_write().map_err(io)?;
            txn.open_table(SNAPSHOTS)
                .map_err(io)?
                .remove(name.as_str())
                .map_err(io)?;
            txn.commit().map_err(io)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        check_meta_key(key)?;
        let key = key.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let meta = txn.open_table(META).map_err(io)?;
            let found = meta.get(key.as_str()).map_err(io)?;
            Ok(found.map(|v| v.value().to_vec()))
        })
        .await
    }
}

impl EmbeddedLedger {
    async fn write_meta(
        &self,
        key: &str,
        value: Vec<u8>,
        create: bool,
    ) -> Result<bool, LedgerError> {
        check_meta_key(key)?;
        let max = self.inner.config.max_payload;
        check_size(value.len(), max)?;
        let (reply, rx) = oneshot::channel();
        self.submit(WriteRequest::PutMeta {
            key: key.to_owned(),
            value,
            create,
            reply,
        })?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }
}

/// The writer thread: owns the write path and the head.
struct Writer {
    db: Arc<Database>,
    requests: mpsc::Receiver<WriteRequest>,
    head_tx: watch::Sender<Seq>,
    head: Seq,
    last_timestamp: Timestamp,
    max_batch: usize,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Commits batches until every handle to the ledger is gone.
    fn run(mut self) {
        while let Ok(first) = self.requests.recv() {
            let mut bytes = first.size();
            let mut batch = vec![first];
            while batch.len() < self.max_batch && bytes < MAX_BATCH_BYTES {
                match self.requests.try_recv() {
                    Ok(request) => {
                        bytes += request.size();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    /// Writes one batch in one durable transaction and answers every request in it.
    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let timestamp = now_ms().max(self.last_timestamp);
        match self.write(&batch, timestamp) {
            Ok((new_head, written)) => {
                let mut written = written.into_iter();
                let mut seq = self.head;
                self.head = new_head;
                self.last_timestamp = timestamp;
                // Publish before replying, so a caller that reads its own seq finds it.
                self.head_tx.send_replace(new_head);
                for request in batch {
                    match request {
                        WriteRequest::Append { reply, .. } => {
                            seq += 1;
                            let _ = reply.send(Ok(Appended { seq, timestamp }));
                        }
                        WriteRequest::PutCode { reply, .. } => {
                            let _ = reply.send(Ok(()));
                        }
                        WriteRequest::PutMeta { reply, .. } => {
                            let _ = reply.send(Ok(written.next().unwrap_or(false)));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "ledger commit failed");
                for request in batch {
                    match request {
                        WriteRequest::Append { reply, .. } => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        WriteRequest::PutCode { reply, .. } => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        WriteRequest::PutMeta { reply, .. } => {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Writes the batch; returns the new head and, for each metadata write in order, whether
    /// it was written. Nothing is written on error.
    fn write(
        &self,
        batch: &[WriteRequest],
        timestamp: Timestamp,
    ) -> Result<(Seq, Vec<bool>), LedgerError> {
        let mut written = Vec::new();
        let mut txn: WriteTransaction = self.db.begin_write().map_err(io)?;
        txn.set_durability(Durability::Immediate).map_err(io)?;
        let mut seq = self.head;
        {
            let mut log = txn.open_table(LOG).map_err(io)?;
            let mut code = txn.open_table(CODE).map_err(io)?;
            let mut meta = txn.open_table(META).map_err(io)?;
            for request in batch {
                match request {
                    WriteRequest::Append { payload, .. } => {
                        seq += 1;
                        let value = (timestamp, payload.as_slice()).encode();
                        log.insert(seq, value.as_slice()).map_err(io)?;
                    }
                    WriteRequest::PutCode { hash, wasm, .. } => {
                        let exists = code.get(hash.0).map_err(io)?.is_some();
                        if !exists {
                            code.insert(hash.0, wasm.as_slice()).map_err(io)?;
                        }
                    }
                    WriteRequest::PutMeta {
                        key, value, create, ..
                    } => {
                        let skip = *create && meta.get(key.as_str()).map_err(io)?.is_some();
                        if !skip {
                            meta.insert(key.as_str(), value.as_slice()).map_err(io)?;
                        }
                        written.push(!skip);
                    }
                }
            }
        }
        txn.commit().map_err(io)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok((seq, written))
    }
}

/// Refuses a payload, blob or value of `size` bytes over `max`.
fn check_size(size: usize, max: usize) -> Result<(), LedgerError> {
    if size > max {
        return Err(LedgerError::TooLarge { size, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `n` payloads from `n` concurrent tasks.
    async fn append_concurrently(ledger: &EmbeddedLedger, n: u32) {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move { ledger.append(i.to_le_bytes().to_vec()).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            EmbeddedLedger::open(&dir.path().join("l.redb"), LedgerConfig::default()).unwrap();
        append_concurrently(&ledger, 500).await;
        let commits = ledger.commits();
        assert!(commits < 250, "500 appends took {commits} commits");
        assert_eq!(ledger.head().await.unwrap(), 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_batch_caps_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let config = LedgerConfig {
            max_batch: 1,
            ..LedgerConfig::default()
        };
        let ledger = EmbeddedLedger::open(&dir.path().join("l.redb"), config).unwrap();
        append_concurrently(&ledger, 20).await;
        assert_eq!(ledger.commits(), 20);
    }

    #[test]
    fn log_values_decode_what_the_writer_encodes() {
        let bytes = (42u64, &b"payload"[..]).encode();
        assert_eq!(decode_log_value(&bytes).unwrap(), (42, b"payload".to_vec()));
        assert!(matches!(decode_log_value(&[1, 2]), Err(LedgerError::Io(_))));
    }
}
