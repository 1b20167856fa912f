//! The distributed ledger on NATS JetStream ([`JetStreamLedger`]).
//!
//! One cluster uses three JetStream assets, all named after [`JetStreamConfig::cluster`] (`C`
//! below) and all with [`JetStreamConfig::replicas`] replicas on file storage:
//!
//! - the **log**: stream `PHAT_C_LOG` on subject `phat.C.log`. Its stream sequence is the
//!   [`Seq`]. The timestamp of entry `n` is the server's stored time of `n`, clamped so it never
//!   goes back: `ts(n) = max(stored(n), ts(n - 1))` (a new stream leader on another machine may
//!   have a slower clock). Every reader computes this from the log itself, so every worker sees
//!   the same timestamp for the same seq. The stream denies deletes (no gaps) and discards new
//!   messages when full (never old ones);
//! - **code blobs**: Object Store bucket `phat_C_code`, objects named by the hex code hash;
//! - **metadata**: KV bucket `phat_C_meta` (history 1). KV keys allow only `[-/_=.a-zA-Z0-9]`,
//!   so a metadata key is stored with every other byte (and `=` and `.`) escaped as `=XX`
//!   (upper-case hex); listing decodes them.
//!
//! **Dedupe.** Every append carries `Nats-Msg-Id` = hex blake2-256 of the payload. Within the
//! stream's duplicate window ([`JetStreamConfig::dedupe_window`], 2 minutes by default) the
//! server stores a payload once and answers a repeat with the first copy's seq
//! (`PubAck.duplicate`), so a client retrying after a lost ack, or two gateways forwarding the
//! same signed command, get one entry and the same [`Appended`]. A repeat after the window is
//! appended again; that is safe because every command is a signed request with a nonce and an
//! expiry, and the workers' apply-time replay check rejects a second copy deterministically
//! (every worker skips it the same way, so the state roots agree). The window only has to cover
//! retries, which happen within seconds. Two *different* commands never share a payload, since
//! their signatures cover distinct nonces.
//!
//! **Reads** use an ordered push consumer starting at `from` (kept open between calls, so a
//! worker following the log costs no request per read); timestamps come from a second,
//! headers-only ordered consumer that follows the log and remembers the last
//! [`CLOCK_MEMORY`] timestamps.
//!
//! **Server version.** Tested with the official 2.15.1 `scripts/setup` installs, and with
//! Debian bookworm's 2.9.10, its fallback. For 2.9.10: `create_key_value`,
//! `create_object_store` and `query_account` of `async-nats` 0.51 cannot parse 2.9's
//! account-info reply, so the `KV_`/`OBJ_` streams are created with `create_stream` exactly as
//! those calls would, and opened with `get_key_value`/`get_object_store`. Servers from 2.10
//! would add subject-filtered key listing (this lists every key subject from stream info and
//! filters here), 2.11 batched
//! direct gets and per-message TTLs; none is needed.
//!
//! **Authentication.** [`JetStreamConfig`] takes a user and password or a credentials file;
//! there is no anonymous default. Give workers and gateways a user allowed to publish to
//! `phat.C.log`, `$KV.phat_C_meta.>`, `$O.phat_C_code.>` and `$JS.API.>`; any other user should
//! have no publish permission on those subjects.
//!
//! The modules: `config` (how to reach the ledger), `connect` (the connection, stream and
//! buckets), `append`, `follow` (reads, timestamps, trimming) with `clock`, `meta` (the KV
//! bucket) and `objects` (code blobs and snapshots).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use phat_primitives::{CodeHash, Timestamp};

use crate::{Appended, Ledger, LedgerConfig, LedgerEntry, LedgerError, Seq};

mod append;
mod clock;
mod config;
mod connect;
mod follow;
mod meta;
mod objects;

pub use clock::CLOCK_MEMORY;
pub use config::{JetStreamConfig, DEFAULT_PING_INTERVAL};

use clock::Clock;

/// A [`Ledger`] on NATS JetStream; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct JetStreamLedger {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    log: stream::Stream,
    subject: String,
    kv: kv::Store,
    code: object_store::ObjectStore,
    snapshots: object_store::ObjectStore,
    /// The snapshot bucket's stream and the subject prefix of its object records.
    snapshot_stream: stream::Stream,
    snapshot_meta: String,
    limits: LedgerConfig,
    /// The largest payload the server accepts with our headers.
    max_payload: usize,
    timeout: Duration,
    /// The last permission violation the server reported, if any.
    denied: Arc<std::sync::Mutex<Option<String>>>,
    cursor: tokio::sync::Mutex<Option<Feed>>,
    clock: tokio::sync::Mutex<Clock>,
    /// Connections made so far (1 after connecting; each reconnect adds one).
    connections: Arc<AtomicU64>,
}

/// An ordered consumer and the seq it delivers next.
struct Feed {
    next: Seq,
    messages: consumer::push::Ordered,
    /// [`Inner::connections`] when it was made: a consumer made over an earlier connection
    /// may live on a server this worker lost (a partition), and would only notice after its
    /// idle heartbeats are missed; it is made again at once instead.
    connection: u64,
}

/// A raw log message: seq, stored time (Unix ms), payload.
type Raw = (Seq, Timestamp, Vec<u8>);

/// A [`LedgerError::Unavailable`] saying `e`.
fn unavailable(e: impl fmt::Display) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

impl Inner {
    /// A timeout or a refused operation: [`LedgerError::Unauthorized`] when the server reported
    /// a permission violation meanwhile, else [`LedgerError::Unavailable`].
    #[allow(
        clippy::unwrap_used,
        reason = "the lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    fn failed(&self, what: &str, e: impl fmt::Display) -> LedgerError {
        if let Some(m) = self.denied.lock().unwrap().take() {
            return LedgerError::Unauthorized(format!("{what}: {m}"));
        }
        LedgerError::Unavailable(format!("{what}: {e}"))
    }
}

#[async_trait::async_trait]
impl Ledger for JetStreamLedger {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        self.inner.append(payload).await
    }

    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.inner.read(from, max, wait).await
    }

    async fn head(&self) -> Result<Seq, LedgerError> {
        self.inner.head().await
    }

    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        self.inner.put_code(wasm).await
    }

    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_code(hash).await
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        self.inner.put_meta(key, value).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_meta(key).await
    }

    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        self.inner.create_meta(key, value).await
    }

    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        self.inner.meta_keys(prefix).await
    }

    async fn first_seq(&self) -> Result<Seq, LedgerError> {
        self.inner.first_seq().await
    }

    async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        self.inner.trim(below).await
    }

    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        self.inner.put_snapshot(name, data).await
    }

    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_snapshot(name).await
    }

    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        self.inner.snapshot_names().await
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        self.inner.delete_snapshot(name).await
    }
}
