//! The ordered command log every worker applies: the [`Ledger`] trait, an embedded
//! implementation on a redb file ([`EmbeddedLedger`], used by `phat dev`), an HTTP transport
//! ([`http`]) so worker processes can use a ledger that lives in another process, and the
//! distributed ledger on NATS JetStream ([`JetStreamLedger`], see [`jetstream`]).
//!
//! A ledger holds three things:
//!
//! - the **log**: opaque command payloads, totally ordered by a [`Seq`] that starts at 1 and has
//!   no gaps, each stamped with a non-decreasing ledger [`Timestamp`](phat_primitives::Timestamp);
//! - the **code store**: Wasm blobs keyed by their [`CodeHash`];
//! - **cluster metadata**: small values under string keys.
//!
//! The trait is shaped so that the NATS JetStream implementation replaces the embedded one
//! without changing the worker:
//!
//! - [`Ledger::append`] maps to a JetStream publish on the log stream awaiting the `PubAck`
//!   (its stream sequence is the [`Seq`]; the stored message time, clamped to be non-decreasing,
//!   is the timestamp);
//! - [`Ledger::read`] maps to an ordered consumer starting at `from`
//!   (`DeliverPolicy::ByStartSequence`), kept open while the reader follows the log;
//! - [`Ledger::head`] maps to the stream's `last_seq` from stream info;
//! - [`Ledger::put_code`] / [`Ledger::get_code`] map to an Object Store bucket keyed by the hex
//!   code hash;
//! - [`Ledger::put_meta`] / [`Ledger::get_meta`] map to a KV bucket.

#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use phat_primitives::CodeHash;

pub use phat_primitives::protocol::{LedgerEntry, Seq};

mod embedded;
pub mod http;
pub mod jetstream;

pub use embedded::EmbeddedLedger;
pub use jetstream::{JetStreamConfig, JetStreamLedger};

/// The longest metadata key, in bytes.
pub const MAX_META_KEY: usize = 256;

/// The longest snapshot name, in bytes.
pub const MAX_SNAPSHOT_NAME: usize = 128;

/// Where and when the ledger put an appended command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Appended {
    /// The command's position in the log.
    pub seq: Seq,
    /// The ledger time (Unix ms) given to the command.
    pub timestamp: phat_primitives::Timestamp,
}

/// The ordered, durable command log plus the code blob store and cluster metadata.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Appends a command; returns only once it is durable. Seqs start at 1 and are contiguous.
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError>;
    /// Entries with seq >= from, in order, at most `max`; when none exist yet, waits up to `wait`
    /// for one (then returns empty). May return fewer than `max` even when more exist.
    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError>;
    /// The last appended seq (0 when empty).
    async fn head(&self) -> Result<Seq, LedgerError>;
    /// Stores a code blob durably; returns blake2-256 of it (CodeHash::of). Idempotent.
    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError>;
    /// The code blob stored under `hash`, if any.
    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError>;
    /// Cluster metadata (small values); keys are 1..=[`MAX_META_KEY`] bytes, not `.` or `..`.
    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError>;
    /// The metadata value under `key`, if any.
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError>;
    /// Writes `key` only if it has no value yet (atomically, as JetStream KV's `create`);
    /// returns whether this call wrote it.
    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError>;
    /// The metadata keys starting with `prefix`, in order.
    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError>;
    /// The lowest seq still in the log: 1 unless [`Ledger::trim`] dropped older entries.
    async fn first_seq(&self) -> Result<Seq, LedgerError> {
        Ok(1)
    }
    /// Drops the log entries below `below` (never the head); a later read below the new first
    /// seq fails with [`LedgerError::Trimmed`]. Idempotent; a lower `below` than before does
    /// nothing.
    async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        let _ = below;
        Err(LedgerError::Unsupported("trimming the log"))
    }
    /// Stores a state snapshot (opaque, sealed by the worker) under `name`, replacing any.
    /// Names are 1..=[`MAX_SNAPSHOT_NAME`] characters of `[A-Za-z0-9_-]`.
    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        let _ = (name, data);
        Err(LedgerError::Unsupported("snapshots"))
    }
    /// The snapshot stored under `name`, if any.
    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let _ = name;
        Err(LedgerError::Unsupported("snapshots"))
    }
    /// The names of the stored snapshots, sorted.
    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        Err(LedgerError::Unsupported("snapshots"))
    }
    /// Deletes the snapshot `name` (nothing when there is none).
    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        let _ = name;
        Err(LedgerError::Unsupported("snapshots"))
    }
}

#[async_trait::async_trait]
impl<L: Ledger + ?Sized> Ledger for Arc<L> {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        (**self).append(payload).await
    }
    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        (**self).read(from, max, wait).await
    }
    async fn head(&self) -> Result<Seq, LedgerError> {
        (**self).head().await
    }
    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        (**self).put_code(wasm).await
    }
    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        (**self).get_code(hash).await
    }
    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        (**self).put_meta(key, value).await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        (**self).get_meta(key).await
    }
    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        (**self).create_meta(key, value).await
    }
    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        (**self).meta_keys(prefix).await
    }
    async fn first_seq(&self) -> Result<Seq, LedgerError> {
        (**self).first_seq().await
    }
    async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        (**self).trim(below).await
    }
    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        (**self).put_snapshot(name, data).await
    }
    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        (**self).get_snapshot(name).await
    }
    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        (**self).snapshot_names().await
    }
    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        (**self).delete_snapshot(name).await
    }
}

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// The storage failed.
    #[error("ledger storage error: {0}")]
    Io(String),
    /// A payload or code blob is over the limit.
    #[error("too large: {size} bytes, the limit is {max}")]
    TooLarge {
        /// The size offered.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The remote ledger is unreachable or timed out.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// A bad request or response.
    #[error("ledger protocol error: {0}")]
    Protocol(String),
    /// The ledger refused the credentials, or the user may not do this operation.
    #[error("ledger refused access: {0}")]
    Unauthorized(String),
    /// The ledger has shut down.
    #[error("ledger closed")]
    Closed,
    /// The entries asked for were trimmed: start from a snapshot.
    #[error("the log was trimmed: its first seq is {first} (start from a snapshot)")]
    Trimmed {
        /// The lowest seq the log still holds.
        first: Seq,
    },
    /// This ledger does not offer the operation.
    #[error("this ledger does not support {0}")]
    Unsupported(&'static str),
}

/// Limits and tuning of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Largest command payload (and metadata value), in bytes; default 1 MiB.
    pub max_payload: usize,
    /// Largest code blob, in bytes; default 2 MiB (the runtime's `max_code_size`).
    pub max_code: usize,
    /// Most writes committed in one group-commit transaction; default 4096.
    pub max_batch: usize,
    /// Largest state snapshot, in bytes; default 1 GiB.
    pub max_snapshot: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            max_payload: 1 << 20,
            max_code: 2 << 20,
            max_batch: 4096,
            max_snapshot: 1 << 30,
        }
    }
}

/// Checks a snapshot name against the rules every ledger enforces.
pub(crate) fn check_snapshot_name(name: &str) -> Result<(), LedgerError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SNAPSHOT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(LedgerError::Protocol(format!(
            "snapshot name must be 1..={MAX_SNAPSHOT_NAME} characters of [A-Za-z0-9_-], got {name:?}"
        )));
    }
    Ok(())
}

/// Checks a metadata key against the rules every ledger enforces.
pub(crate) fn check_meta_key(key: &str) -> Result<(), LedgerError> {
    if key.is_empty() || key.len() > MAX_META_KEY || key == "." || key == ".." {
        return Err(LedgerError::Protocol(format!(
            "metadata key must be 1..={MAX_META_KEY} bytes and not \".\" or \"..\", got {key:?}"
        )));
    }
    Ok(())
}
