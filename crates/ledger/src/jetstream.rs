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

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures::{FutureExt, StreamExt};
use phat_primitives::{CodeHash, Timestamp};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::{
    check_meta_key, check_snapshot_name, Appended, Ledger, LedgerConfig, LedgerEntry, LedgerError,
    Seq,
};

/// How long an append keeps retrying while the stream has no leader (a JetStream leader
/// election after a server died took up to 9 s with nats-server 2.9.10 here).
const FAILOVER_WAIT: Duration = Duration::from_secs(15);

/// The default [`JetStreamConfig::ping_interval`]. async-nats pings every 60 s by default,
/// so a worker connected to a server that went silent (SIGSTOP, a partition: nothing resets
/// the TCP connection) kept waiting on it for three minutes; the chaos run found it
/// (docs/RELIABILITY.md).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);

/// How long an append waits for a lost connection to come back before failing.
const RECONNECT_GRACE: Duration = Duration::from_secs(1);

/// How many recent timestamps the ledger remembers (8 bytes each); asking for an older one
/// recomputes the clamp from the start of the log.
pub const CLOCK_MEMORY: usize = 1 << 20;

/// Room left for headers when a payload is checked against the server's `max_payload`.
const HEADER_ROOM: usize = 1024;

/// How to reach a cluster's JetStream ledger.
#[derive(Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222,nats://10.0.0.2:4222`.
    pub url: String,
    /// User name (with [`password`](Self::password)).
    pub user: Option<String>,
    /// Password of [`user`](Self::user).
    pub password: Option<String>,
    /// A NATS credentials file (JWT + nkey seed), instead of user/password.
    pub creds_file: Option<PathBuf>,
    /// The cluster name: `[A-Za-z0-9_-]`, 1..=64 bytes; names the stream and buckets.
    pub cluster: String,
    /// Replicas of the stream and buckets: 1 on a dev box, 3 in production.
    pub replicas: usize,
    /// The log's duplicate window (`Nats-Msg-Id` dedupe); default 2 minutes.
    pub dedupe_window: Duration,
    /// Timeout of one request to the server (connect, ack, API call); default 5 s.
    pub request_timeout: Duration,
    /// How often the connection is pinged; a server that misses three pings in a row (a
    /// paused process, a partition that leaves TCP silent) is left for another. Default 1 s.
    pub ping_interval: Duration,
    /// Payload and code limits.
    pub limits: LedgerConfig,
}

impl JetStreamConfig {
    /// A config for `url` and `cluster` with the defaults (R1, no credentials).
    pub fn new(url: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            user: None,
            password: None,
            creds_file: None,
            cluster: cluster.into(),
            replicas: 1,
            dedupe_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            ping_interval: DEFAULT_PING_INTERVAL,
            limits: LedgerConfig::default(),
        }
    }

    fn log_stream(&self) -> String {
        format!("PHAT_{}_LOG", self.cluster)
    }
    fn log_subject(&self) -> String {
        format!("phat.{}.log", self.cluster)
    }
    fn meta_bucket(&self) -> String {
        format!("phat_{}_meta", self.cluster)
    }
    fn code_bucket(&self) -> String {
        format!("phat_{}_code", self.cluster)
    }
    fn snapshot_bucket(&self) -> String {
        format!("phat_{}_snap", self.cluster)
    }
}

impl fmt::Debug for JetStreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("creds_file", &self.creds_file)
            .field("cluster", &self.cluster)
            .field("replicas", &self.replicas)
            .field("dedupe_window", &self.dedupe_window)
            .field("request_timeout", &self.request_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("limits", &self.limits)
            .finish()
    }
}

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

/// The clamped timestamps: `ts(n) = max(stored(n), ts(n - 1))`.
struct Clock {
    /// The first seq whose timestamp is not known yet.
    next: Seq,
    /// `ts(next - 1)` (0 before the first entry).
    last: Timestamp,
    /// The seq of `ring[0]`.
    base: Seq,
    ring: VecDeque<Timestamp>,
    /// A headers-only ordered consumer at or below `next`.
    feed: Option<Feed>,
}

impl Clock {
    fn new() -> Self {
        Self {
            next: 1,
            last: 0,
            base: 1,
            ring: VecDeque::new(),
            feed: None,
        }
    }

    fn get(&self, seq: Seq) -> Option<Timestamp> {
        if seq >= self.base && seq < self.next {
            self.ring.get((seq - self.base) as usize).copied()
        } else {
            None
        }
    }

    /// Records the stored time of `seq`, which must be `next` (or later, after a trimmed start).
    fn push(&mut self, seq: Seq, stored: Timestamp) {
        if seq < self.next {
            return;
        }
        if seq > self.next {
            // The log starts above `next` (trimmed): the clamp starts at its first entry.
            self.ring.clear();
            self.base = seq;
            self.next = seq;
        }
        let ts = stored.max(self.last);
        self.ring.push_back(ts);
        if self.ring.len() > CLOCK_MEMORY {
            self.ring.pop_front();
            self.base += 1;
        }
        self.next += 1;
        self.last = ts;
    }
}

fn unavailable(e: impl fmt::Display) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

fn hex_hash(hash: &CodeHash) -> String {
    hex::encode(hash.0)
}

/// Escapes a metadata key into the KV key alphabet (see the module docs).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_key`]; `None` for a key phat did not write.
fn decode_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = key.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check_cluster(name: &str) -> Result<(), LedgerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Protocol(format!(
            "cluster name must be 1..=64 of [A-Za-z0-9_-], got {name:?}"
        )))
    }
}

/// Maps a connect error to the ledger's kinds.
fn connect_error(e: async_nats::ConnectError) -> LedgerError {
    use async_nats::ConnectErrorKind as K;
    match e.kind() {
        K::AuthorizationViolation | K::Authentication => {
            LedgerError::Unauthorized(format!("NATS refused the credentials: {e}"))
        }
        K::ServerParse => LedgerError::Protocol(format!("bad NATS url: {e}")),
        _ => LedgerError::Unavailable(format!("cannot reach NATS: {e}")),
    }
}

/// Opens stream `config.name`, creating it when missing (a user without the permission to
/// create can still open an existing one).
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    replicas: usize,
) -> Result<stream::Stream, LedgerError> {
    let name = config.name.clone();
    let stream = match js.create_stream(config).await {
        Ok(stream) => stream,
        Err(create) => js.get_stream(&name).await.map_err(|get| {
            LedgerError::Unavailable(format!(
                "cannot create or open stream {name}: {create}; {get}"
            ))
        })?,
    };
    let have = stream.cached_info().config.num_replicas;
    if have != replicas {
        tracing::warn!(stream = %name, have, want = replicas, "stream exists with another replica count");
    }
    Ok(stream)
}

/// Creates (or opens) the Object Store `bucket` the way `create_object_store` would (which
/// fails on 2.9), with the config's replica count.
async fn ensure_object_store(
    js: &jetstream::Context,
    bucket: &str,
    what: &str,
    config: &JetStreamConfig,
) -> Result<(object_store::ObjectStore, stream::Stream), LedgerError> {
    let stream = ensure_stream(
        js,
        stream::Config {
            name: format!("OBJ_{bucket}"),
            description: Some(format!("phat cluster {}: {what}", config.cluster)),
            subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            ..Default::default()
        },
        config.replicas,
    )
    .await?;
    let store = js
        .get_object_store(bucket)
        .await
        .map_err(|e| unavailable(format!("cannot open Object Store bucket {bucket}: {e}")))?;
    Ok((store, stream))
}

impl JetStreamLedger {
    /// Connects, then opens the cluster's stream and buckets, creating any that are missing.
    #[allow(
        clippy::unwrap_used,
        reason = "the permission-violation lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    pub async fn connect(config: JetStreamConfig) -> Result<Self, LedgerError> {
        check_cluster(&config.cluster)?;
        if config.replicas == 0 || config.replicas > 5 {
            return Err(LedgerError::Protocol(format!(
                "replicas must be 1..=5, got {}",
                config.replicas
            )));
        }
        let denied: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let connections = Arc::new(AtomicU64::new(0));
        let mut options = async_nats::ConnectOptions::new()
            .name("phat-ledger")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .ping_interval(config.ping_interval)
            .event_callback({
                let denied = denied.clone();
                let connections = connections.clone();
                move |event| {
                    let denied = denied.clone();
                    if matches!(event, async_nats::Event::Connected) {
                        connections.fetch_add(1, Ordering::AcqRel);
                    }
                    async move {
                        if let async_nats::Event::ServerError(async_nats::ServerError::Other(m)) =
                            &event
                        {
                            if m.to_ascii_lowercase().contains("permissions violation") {
                                *denied.lock().unwrap() = Some(m.clone());
                            }
                        }
                        tracing::debug!(%event, "nats event");
                    }
                }
            });
        match (&config.creds_file, &config.user, &config.password) {
            (Some(path), None, None) => {
                options = options.credentials_file(path).await.map_err(|e| {
                    LedgerError::Unauthorized(format!(
                        "cannot read NATS credentials {}: {e}",
                        path.display()
                    ))
                })?;
            }
            (None, Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None, None) => {}
            _ => {
                return Err(LedgerError::Protocol(
                    "give either a credentials file or a user and a password".into(),
                ))
            }
        }
        let urls: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(LedgerError::Protocol("no NATS url".into()));
        }
        let client = options.connect(urls).await.map_err(connect_error)?;
        let server_max = client.server_info().max_payload;
        let max_payload = config
            .limits
            .max_payload
            .min(server_max.saturating_sub(HEADER_ROOM));
        if max_payload < config.limits.max_payload {
            tracing::warn!(
                server_max,
                configured = config.limits.max_payload,
                "the NATS server's max_payload is below the ledger's payload limit"
            );
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);

        let replicas = config.replicas;
        let log = ensure_stream(
            &js,
            stream::Config {
                name: config.log_stream(),
                description: Some(format!("phat cluster {}: the command log", config.cluster)),
                subjects: vec![config.log_subject()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::New,
                duplicate_window: config.dedupe_window,
                max_message_size: i32::try_from(config.limits.max_payload + HEADER_ROOM)
                    .unwrap_or(i32::MAX),
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            },
            replicas,
        )
        .await?;

        // The KV bucket, as `create_key_value` would create it (which fails on 2.9).
        let meta = config.meta_bucket();
        ensure_stream(
            &js,
            stream::Config {
                name: format!("KV_{meta}"),
                description: Some(format!("phat cluster {}: metadata", config.cluster)),
                subjects: vec![format!("$KV.{meta}.>")],
                max_messages_per_subject: 1,
                max_message_size: i32::try_from(config.limits.max_payload + HEADER_ROOM)
                    .unwrap_or(i32::MAX),
                storage: stream::StorageType::File,
                num_replicas: replicas,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let kv = js
            .get_key_value(&meta)
            .await
            .map_err(|e| unavailable(format!("cannot open KV bucket {meta}: {e}")))?;

        let (code, _) =
            ensure_object_store(&js, &config.code_bucket(), "code blobs", &config).await?;
        let (snapshots, snapshot_stream) =
            ensure_object_store(&js, &config.snapshot_bucket(), "state snapshots", &config).await?;

        // Violations while probing (a user who may not create streams) are not the caller's.
        denied.lock().unwrap().take();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                log,
                subject: config.log_subject(),
                kv,
                code,
                snapshots,
                snapshot_stream,
                snapshot_meta: format!("$O.{}.M.", config.snapshot_bucket()),
                limits: config.limits,
                max_payload,
                timeout: config.request_timeout,
                denied,
                cursor: tokio::sync::Mutex::new(None),
                clock: tokio::sync::Mutex::new(Clock::new()),
                connections,
            }),
        })
    }

    /// The underlying NATS client (for snapshots, checkpoints and tests).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The name of the NATS server leading the log stream now (`None` on a single server).
    pub async fn log_leader(&self) -> Result<Option<String>, LedgerError> {
        let inner = &*self.inner;
        let mut log = inner.log.clone();
        let info = log
            .info()
            .await
            .map_err(|e| inner.failed("cannot read the log's state", e))?;
        Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
    }
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

    /// The log stream's current state (first and last seq).
    async fn log_state(&self) -> Result<stream::State, LedgerError> {
        Ok(self
            .log
            .get_info()
            .await
            .map_err(|e| self.failed("cannot read the log's state", e))?
            .state)
    }

    /// The whole object `name` of `store` (`None` when there is none).
    async fn read_object(
        &self,
        store: &object_store::ObjectStore,
        name: &str,
        what: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        let mut object = match store.get(name).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.failed(&format!("cannot fetch {what}"), e)),
        };
        let mut data = Vec::new();
        object
            .read_to_end(&mut data)
            .await
            .map_err(|e| self.failed(&format!("cannot read {what}"), e))?;
        Ok(Some(data))
    }

    /// True once the client is connected, if it is or becomes so within `grace`.
    async fn reconnects_within(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            if self.client.connection_state() == async_nats::connection::State::Connected {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// True when `feed` was made over the current connection.
    fn current(&self, feed: &Feed) -> bool {
        feed.connection == self.connections.load(Ordering::Acquire)
    }

    async fn open_feed(&self, from: Seq, headers_only: bool) -> Result<Feed, LedgerError> {
        let consumer = self
            .log
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: self.subject.clone(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                headers_only,
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("cannot create a consumer on the log", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| self.failed("cannot follow the log", e))?;
        Ok(Feed {
            next: from,
            messages,
            connection: self.connections.load(Ordering::Acquire),
        })
    }

    /// The next message of `feed` if it comes before `deadline` (`None` otherwise).
    async fn next_raw(
        &self,
        feed: &mut Feed,
        deadline: Option<Instant>,
    ) -> Result<Option<Raw>, LedgerError> {
        let item = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, feed.messages.next()).await {
                Ok(item) => item,
                Err(_) => return Ok(None),
            },
            None => match feed.messages.next().now_or_never() {
                Some(item) => item,
                None => return Ok(None),
            },
        };
        let message = match item {
            None => return Err(unavailable("the log consumer ended")),
            Some(Err(e)) => return Err(self.failed("reading the log", e)),
            Some(Ok(message)) => message,
        };
        let info = message
            .info()
            .map_err(|e| LedgerError::Protocol(format!("bad log message metadata: {e}")))?;
        let seq = info.stream_sequence;
        let stored = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        feed.next = seq + 1;
        Ok(Some((seq, stored, message.payload.to_vec())))
    }

    /// The clamped timestamp of `seq`, which is in the log.
    async fn timestamp(&self, clock: &mut Clock, seq: Seq) -> Result<Timestamp, LedgerError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(ts) = clock.get(seq) {
                return Ok(ts);
            }
            if seq < clock.base {
                // Older than the memory: recompute from the start of the log.
                *clock = Clock::new();
            }
            if clock.feed.as_ref().is_some_and(|f| !self.current(f)) {
                clock.feed = None;
            }
            let feed = match clock.feed {
                Some(ref mut feed) => feed,
                None => clock.feed.insert(self.open_feed(clock.next, true).await?),
            };
            match self.next_raw(feed, Some(deadline)).await {
                Ok(Some((s, stored, _))) => {
                    clock.push(s, stored);
                    if clock.base > seq {
                        return Err(LedgerError::Trimmed { first: clock.base });
                    }
                }
                Ok(None) => {
                    clock.feed = None;
                    return Err(unavailable(format!(
                        "timed out waiting for the time of seq {seq}"
                    )));
                }
                Err(e) => {
                    clock.feed = None;
                    return Err(e);
                }
            }
        }
    }

    /// Reads raw messages `from..` (see [`Ledger::read`]).
    async fn read_raw(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Raw>, LedgerError> {
        let mut cursor = self.cursor.lock().await;
        if cursor.as_ref().map(|c| c.next) != Some(from)
            || cursor.as_ref().is_some_and(|c| !self.current(c))
        {
            *cursor = None;
        }
        let feed = match *cursor {
            Some(ref mut feed) => feed,
            None => cursor.insert(self.open_feed(from, false).await?),
        };
        let head = self.log_state().await?.last_sequence;
        let mut out: Vec<Raw> = Vec::new();
        let result = async {
            if head >= from {
                // Entries exist: take them up to `max` (or the head), however long they take.
                let target = head.min(from + max as u64 - 1);
                let deadline = Instant::now() + self.timeout;
                while out.last().map_or(from, |r| r.0 + 1) <= target {
                    match self.next_raw(feed, Some(deadline)).await? {
                        Some(raw) => out.push(raw),
                        None => {
                            return Err(unavailable(format!(
                                "timed out reading seq {} of the log",
                                out.last().map_or(from, |r| r.0 + 1)
                            )))
                        }
                    }
                }
            } else {
                // None yet: wait up to `wait` for the first.
                match self.next_raw(feed, Some(Instant::now() + wait)).await? {
                    Some(raw) => out.push(raw),
                    None => return Ok(()),
                }
            }
            // Then whatever else has already arrived.
            while out.len() < max {
                match self.next_raw(feed, None).await? {
                    Some(raw) => out.push(raw),
                    None => break,
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            *cursor = None;
            return Err(e);
        }
        // The stream denies deletes, so a gap means the log was trimmed below `from`.
        for (i, raw) in out.iter().enumerate() {
            if raw.0 != from + i as u64 {
                *cursor = None;
                return Err(LedgerError::Trimmed { first: raw.0 });
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Ledger for JetStreamLedger {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        let inner = &*self.inner;
        if payload.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: payload.len(),
                max: inner.max_payload,
            });
        }
        let id = hex::encode(phat_primitives::blake2_256(&payload));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let payload = bytes::Bytes::from(payload);
        // While a stream leader is being elected (a server died) publishes fail; retrying
        // with the same `Nats-Msg-Id` is safe, since the stream stores a payload once.
        let deadline = Instant::now() + FAILOVER_WAIT;
        let ack = loop {
            // Cut off from every NATS server, a worker says so at once: a client then sends
            // its command to another worker instead of waiting out the failover here.
            if !inner.reconnects_within(RECONNECT_GRACE).await {
                return Err(unavailable(
                    "this worker is not connected to any NATS server; send the command to \
                     another worker",
                ));
            }
            let attempt = async {
                inner
                    .js
                    .publish_with_headers(inner.subject.clone(), headers.clone(), payload.clone())
                    .await
                    .map_err(|e| inner.failed("cannot publish to the log", e))?
                    .await
                    .map_err(|e| inner.failed("the log did not acknowledge the append", e))
            };
            match attempt.await {
                Ok(ack) => break ack,
                Err(e @ LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                    tracing::debug!("append failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        };
        if ack.duplicate {
            tracing::debug!(seq = ack.sequence, "append deduplicated by Nats-Msg-Id");
        }
        // The entry is in the log now: failing here would tell the client a command failed
        // that every worker applies. Reading its time back needs a consumer, which fails
        // while a new stream leader is elected; wait that out as the publish does.
        let mut clock = inner.clock.lock().await;
        let timestamp = loop {
            match inner.timestamp(&mut clock, ack.sequence).await {
                Ok(timestamp) => break timestamp,
                Err(e @ LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                    tracing::debug!(
                        seq = ack.sequence,
                        "reading an append's time, retrying: {e}"
                    );
                    clock.feed = None;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Appended {
            seq: ack.sequence,
            timestamp,
        })
    }

    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let inner = &*self.inner;
        let from = from.max(1);
        if max == 0 {
            return Ok(Vec::new());
        }
        let raw = inner.read_raw(from, max, wait).await?;
        let mut clock = inner.clock.lock().await;
        for (seq, stored, _) in &raw {
            if *seq == clock.next {
                clock.push(*seq, *stored);
            }
        }
        let mut out = Vec::with_capacity(raw.len());
        for (seq, _, payload) in raw {
            let timestamp = inner.timestamp(&mut clock, seq).await?;
            out.push(LedgerEntry {
                seq,
                timestamp,
                payload,
            });
        }
        Ok(out)
    }

    async fn head(&self) -> Result<Seq, LedgerError> {
        Ok(self.inner.log_state().await?.last_sequence)
    }

    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        let inner = &*self.inner;
        if wasm.len() > inner.limits.max_code {
            return Err(LedgerError::TooLarge {
                size: wasm.len(),
                max: inner.limits.max_code,
            });
        }
        let hash = CodeHash::of(&wasm);
        let name = hex_hash(&hash);
        match inner.code.info(&name).await {
            Ok(info) if !info.deleted && info.size == wasm.len() => return Ok(hash),
            Ok(_) => {}
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {}
            Err(e) => return Err(inner.failed("cannot look up code", e)),
        }
        inner
            .code
            .put(name.as_str(), &mut wasm.as_slice())
            .await
            .map_err(|e| inner.failed("cannot store code", e))?;
        Ok(hash)
    }

    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = &*self.inner;
        let Some(wasm) = inner
            .read_object(&inner.code, &hex_hash(hash), "code")
            .await?
        else {
            return Ok(None);
        };
        if CodeHash::of(&wasm) != *hash {
            return Err(LedgerError::Protocol(format!(
                "code stored under {} does not match its hash",
                hex_hash(hash)
            )));
        }
        Ok(Some(wasm))
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        let inner = &*self.inner;
        check_meta_key(key)?;
        if value.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: value.len(),
                max: inner.max_payload,
            });
        }
        inner
            .kv
            .put(encode_key(key), value.into())
            .await
            .map_err(|e| inner.failed("cannot write metadata", e))?;
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = &*self.inner;
        check_meta_key(key)?;
        let value = inner
            .kv
            .get(encode_key(key))
            .await
            .map_err(|e| inner.failed("cannot read metadata", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        let inner = &*self.inner;
        check_meta_key(key)?;
        if value.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: value.len(),
                max: inner.max_payload,
            });
        }
        // An update that expects no earlier revision, not `kv.create`: when two workers create
        // a key at once, the loser's `create` reads the key back to tell "exists" from other
        // failures, and that read may be served by a replica that has not seen the winner's
        // write yet: it failed with "wrong last sequence" (the chaos run's cluster start).
        // Keys are never deleted, so a wrong last revision means the key exists.
        match inner.kv.update(encode_key(key), value.into(), 0).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(inner.failed("cannot create metadata", e)),
        }
    }

    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let inner = &*self.inner;
        // The stream's subject list, not `kv.keys()`: a consumer's pending count goes stale
        // when a key is rewritten during the listing, and the listing then waits for an idle
        // heartbeat (5 s); workers rewrite their checkpoint records all the time.
        let kv_prefix = inner.kv.prefix.clone();
        let mut subjects = inner
            .kv
            .stream
            .info_with_subjects(format!("{kv_prefix}>"))
            .await
            .map_err(|e| inner.failed("cannot list metadata", e))?;
        let mut out = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| inner.failed("cannot list metadata", e))?;
            let Some(key) = subject.strip_prefix(&kv_prefix) else {
                continue;
            };
            if let Some(key) = decode_key(key) {
                if key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn first_seq(&self) -> Result<Seq, LedgerError> {
        // An empty stream reports first = last + 1.
        Ok(self.inner.log_state().await?.first_sequence.max(1))
    }

    async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        let inner = &*self.inner;
        let head = self.head().await?;
        let below = below.min(head);
        if below <= 1 {
            return Ok(());
        }
        // Purge keeps `below` and everything after it.
        inner
            .log
            .purge()
            .sequence(below)
            .await
            .map_err(|e| inner.failed("cannot trim the log", e))?;
        Ok(())
    }

    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        let inner = &*self.inner;
        check_snapshot_name(name)?;
        if data.len() > inner.limits.max_snapshot {
            return Err(LedgerError::TooLarge {
                size: data.len(),
                max: inner.limits.max_snapshot,
            });
        }
        inner
            .snapshots
            .put(name, &mut data.as_slice())
            .await
            .map_err(|e| inner.failed("cannot store a snapshot", e))?;
        Ok(())
    }

    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = &*self.inner;
        check_snapshot_name(name)?;
        inner
            .read_object(&inner.snapshots, name, "a snapshot")
            .await
    }

    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        let inner = &*self.inner;
        // The object records' subjects, then each one's last record: not the Object Store's
        // `list()`, whose consumer waits for an idle heartbeat (5 s) when another worker puts
        // or deletes a snapshot during the listing (its pending count goes stale).
        let mut subjects = inner
            .snapshot_stream
            .info_with_subjects(format!("{}>", inner.snapshot_meta))
            .await
            .map_err(|e| inner.failed("cannot list snapshots", e))?;
        let mut records = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| inner.failed("cannot list snapshots", e))?;
            records.push(subject);
        }
        let mut out = Vec::new();
        for subject in records {
            let last = tokio::time::timeout(
                inner.timeout,
                inner
                    .snapshot_stream
                    .get_last_raw_message_by_subject(&subject),
            )
            .await;
            match last {
                Ok(Ok(message)) => {
                    match serde_json::from_slice::<object_store::ObjectInfo>(&message.payload) {
                        Ok(info) if !info.deleted => out.push(info.name),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%subject, "an unreadable snapshot record: {e}"),
                    }
                }
                // Purged between the two calls.
                Ok(Err(e)) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
                Ok(Err(e)) => return Err(inner.failed("cannot list snapshots", e)),
                Err(_) => return Err(unavailable("timed out listing snapshots")),
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        let inner = &*self.inner;
        check_snapshot_name(name)?;
        match inner.snapshots.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(inner.failed("cannot delete a snapshot", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_kv_alphabet() {
        for key in ["cluster/name", "a b%c", ".", "..", "x=y.z", "ünï", "-_/"] {
            let encoded = encode_key(key);
            assert!(encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/=".contains(&b)));
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
        }
        // A prefix encodes to a prefix.
        assert!(encode_key("join/a b").starts_with(&encode_key("join/a")));
        assert_eq!(decode_key("bad=Z"), None);
    }

    #[test]
    fn clock_clamps_and_remembers() {
        let mut c = Clock::new();
        c.push(1, 100);
        c.push(2, 90);
        c.push(3, 120);
        assert_eq!(
            (c.get(1), c.get(2), c.get(3), c.get(4)),
            (Some(100), Some(100), Some(120), None)
        );
        c.push(2, 0); // already known: ignored
        assert_eq!(c.get(2), Some(100));
        let mut t = Clock::new();
        t.push(5, 50); // a trimmed log starts at 5
        assert_eq!((t.get(4), t.get(5)), (None, Some(50)));
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(check_cluster("dev-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a>", &"x".repeat(65)] {
            assert!(check_cluster(bad).is_err(), "{bad}");
        }
    }
}
