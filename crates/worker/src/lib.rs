//! phat-worker: the node. It follows the ledger and applies commands in order, serves queries
//! concurrently on consistent snapshots, and exposes both over an HTTP API (`/v1`).
//!
//! ```text
//!            ┌──────────── Worker ────────────┐
//! ledger ───►│ apply loop ─► runtime ─► store │ (one durable commit per batch:
//!            │                                │  state + head + receipts + nonces + logs)
//! client ───►│ HTTP API: query ─► snapshot ─► runtime (writes dropped)
//!            │           command ─► checks ─► ledger.append
//!            └────────────────────────────────┘
//! ```
//!
//! Invariants:
//! - commands apply in ledger order, exactly once: the store's head seq is committed in the same
//!   transaction as the command's writes, and the loop resumes from it after a crash;
//! - the state root chains every command's sequence number, sorted writes and receipt, so two
//!   workers that applied the same commands report the same root;
//! - everything a command does depends only on the ledger entry and the state: signature,
//!   expiry (against ledger time) and replay checks are repeated at apply time and their
//!   failures are receipts, not skipped entries.

mod admission;
mod api;
mod apply;
mod cache;
mod egress;
mod enclave;
mod execute;
mod genesis;
mod logs;
mod metrics;
mod pink_host;
mod replica;
mod state;
mod triggers;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use phat_primitives::protocol::{LogRecord, Seq};
use phat_primitives::AccountId;
use phat_runtime::Runtime;
use phat_store::Store;
use tokio::sync::{broadcast, watch};

pub use admission::{AdmissionConfig, Refused};
pub use api::{cors, is_loopback_origin};
pub use apply::GENESIS_KEY;
pub use cache::{DEFAULT_CACHE_BUDGET, DEFAULT_CACHE_QUOTA};
pub use egress::EgressConfig;
pub use enclave::{
    dev_root_public, open_with_data_dir, read_or_create_root, ClusterRecord, CLUSTER_KEY,
};
pub use genesis::{ClusterLimits, DeployPermission, Genesis, SystemSetup};
pub use phat_ledger as ledger;
pub use phat_ledger::Ledger;
pub use replica::ReplicaConfig;

/// Why applying the ledger stopped: the batch is retried, never turned into a receipt.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The ledger skipped an entry.
    #[error("ledger gap: expected seq {expected}, got {got}")]
    Gap {
        /// The seq the worker needs next.
        expected: Seq,
        /// The seq the ledger gave.
        got: Seq,
    },
    /// Reading the state failed while applying `seq`.
    #[error("seq {seq}: reading state: {message}")]
    StateRead {
        /// The entry being applied.
        seq: Seq,
        /// The backend's error.
        message: String,
    },
    /// A replicated table in this worker's own state does not decode.
    #[error("the {table} in state does not decode: {message}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// The decoder's error.
        message: String,
    },
    /// This worker could not run the command at `seq` (no instance slot, a store read): a
    /// result other workers would not produce is retried, never recorded.
    #[error("seq {seq}: {message}")]
    WorkerDependent {
        /// The entry being applied.
        seq: Seq,
        /// What failed.
        message: String,
    },
    /// A task the worker runs (the apply loop, a snapshot, a restore) failed or panicked.
    #[error("the {task} task failed: {message}")]
    Task {
        /// Which task.
        task: &'static str,
        /// Its error.
        message: String,
    },
    /// The cluster's genesis does not decode or does not set up.
    #[error("genesis: {0}")]
    Genesis(String),
    /// `--resync` found no snapshot this worker can use.
    #[error("--resync: the ledger holds no snapshot this worker can use")]
    NoSnapshot,
    /// The worker's query-log records could not be appended.
    #[error("appending {records} query log records: {message}")]
    QueryLogs {
        /// How many records.
        records: usize,
        /// The ledger's error.
        message: String,
    },
}

impl ApplyError {
    /// A state read at `seq` failed: for `map_err`.
    pub(crate) fn state_read(seq: Seq) -> impl Fn(phat_runtime::BackendError) -> WorkerError {
        move |e| ApplyError::StateRead { seq, message: e.0 }.into()
    }

    /// The replicated `table` does not decode: for `map_err`.
    pub(crate) fn corrupt(
        table: &'static str,
    ) -> impl Fn(parity_scale_codec::Error) -> WorkerError {
        move |e| {
            ApplyError::Corrupt {
                table,
                message: e.to_string(),
            }
            .into()
        }
    }

    /// The `task` failed: for `map_err`.
    pub(crate) fn task(task: &'static str) -> impl Fn(tokio::task::JoinError) -> WorkerError {
        move |e| {
            ApplyError::Task {
                task,
                message: e.to_string(),
            }
            .into()
        }
    }
}

/// Errors starting or running a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The data directory could not be prepared.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The state store failed.
    #[error("store: {0}")]
    Store(#[from] phat_store::StoreError),
    /// The ledger failed.
    #[error("ledger: {0}")]
    Ledger(#[from] phat_ledger::LedgerError),
    /// The runtime could not be created.
    #[error("runtime: {0}")]
    Runtime(#[from] phat_runtime::RuntimeError),
    /// The HTTP listener failed.
    #[error("http: {0}")]
    Http(String),
    /// The worker's configuration does not hold together.
    #[error("configuration: {0}")]
    Config(String),
    /// Applying the ledger failed; the batch is retried ([`ApplyError`]).
    #[error("apply: {0}")]
    Apply(#[from] ApplyError),
    /// Keys, sealing, attestation or the cluster-secret handover failed.
    #[error("enclave: {0}")]
    Enclave(String),
}

/// How a worker is set up.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The worker's name (shown in info and metrics).
    pub name: String,
    /// Its data directory (state database, compiled-code cache, keys).
    pub data_dir: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Largest JSON request body accepted (bytes).
    pub max_body: usize,
    /// Largest code blob accepted (bytes).
    pub max_code: usize,
    /// Most ledger entries applied in one durable commit.
    pub apply_batch: usize,
    /// How long a `wait`ing submission or a `min_seq` query waits before giving up.
    pub wait_timeout: Duration,
    /// Runtime limits and gas schedule.
    pub runtime: phat_runtime::Config,
    /// Limits of contracts' HTTP requests.
    pub egress: EgressConfig,
    /// Bytes of cache each contract may use.
    pub cache_quota: usize,
    /// Memory the cache may hold for all contracts together (entries' bookkeeping counted).
    pub cache_budget: usize,
    /// The dev attestation root secret to sign reports with (every worker of a cluster uses
    /// the same; `None`: a root kept in the data directory).
    pub dev_attestation_root: Option<PathBuf>,
    /// Code blobs, and metadata documents, one account may put into the ledger (each is kept
    /// for good and unpaid); more answer 403 `quota_exceeded`.
    pub account_quota: usize,
    /// Receipts this worker keeps: those of the last this many seqs (older ones answer 404;
    /// their digests stay chained in the state root).
    pub receipts_kept: u64,
    /// The digest of the genesis this worker may serve (`phat genesis` prints it): a worker
    /// with no state of its own otherwise takes the genesis it finds in the ledger on trust.
    pub genesis_pin: Option<[u8; 32]>,
    /// Limits on what clients can make this worker do at once (query slots, rates).
    pub admission: AdmissionConfig,
    /// Checkpoints, snapshots and resync.
    pub replica: ReplicaConfig,
    /// Inside a TEE: where quotes come from (then every report is a hardware one).
    pub tee: Option<TeeConfig>,
    /// Web origins (`https://app.example`) whose pages may call the API, besides pages on
    /// loopback origins (always allowed); `*` allows any.
    pub cors_origins: Vec<String>,
}

/// A worker inside a TEE.
#[derive(Clone, Debug)]
pub struct TeeConfig {
    /// The interface quotes come from.
    pub source: TeeSource,
    /// Where Intel's collateral for this platform comes from.
    pub collateral: CollateralSource,
}

/// Where a hardware worker gets the Intel collateral its quotes are verified with.
#[derive(Clone, Debug)]
pub enum CollateralSource {
    /// A JSON file (as `dcap-qvl` and Phala's PCCS tools write it).
    File(PathBuf),
    /// A PCCS (v4 API) at this URL, cached for an hour in the data directory's `pccs-cache`
    /// (and used from there while the PCCS is unreachable).
    Pccs(String),
}

/// The TEE interface quotes come from.
#[derive(Clone, Debug)]
pub enum TeeSource {
    /// Gramine's `/dev/attestation` (SGX).
    Gramine(PathBuf),
    /// Linux configfs-tsm reports, `/sys/kernel/config/tsm/report` (TDX).
    ConfigfsTsm(PathBuf),
}

impl WorkerConfig {
    /// Defaults for a worker with `name` keeping its files in `data_dir`, listening on `listen`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            name: name.into(),
            data_dir: data_dir.into(),
            listen,
            max_body: 1 << 20,
            // The runtime's `max_code_size` (Phala's 2 MiB).
            max_code: 2 << 20,
            apply_batch: 1024,
            wait_timeout: Duration::from_secs(30),
            runtime: phat_runtime::Config::default(),
            egress: EgressConfig::default(),
            cache_quota: DEFAULT_CACHE_QUOTA,
            cache_budget: cache::DEFAULT_CACHE_BUDGET,
            dev_attestation_root: None,
            genesis_pin: None,
            receipts_kept: DEFAULT_RECEIPTS_KEPT,
            account_quota: DEFAULT_ACCOUNT_QUOTA,
            admission: AdmissionConfig::default(),
            replica: ReplicaConfig::default(),
            tee: None,
            cors_origins: Vec::new(),
        }
    }
}

/// Receipts a worker keeps by default (`WorkerConfig::receipts_kept`): about a day of
/// commands at one a second, bounded on disk by the result bound of each.
pub const DEFAULT_RECEIPTS_KEPT: u64 = 100_000;

/// Code blobs, and metadata documents, one account may put into the ledger by default
/// (`WorkerConfig::account_quota`): at most 256 × 512 KiB of code and 256 × 1 MiB of metadata.
pub const DEFAULT_ACCOUNT_QUOTA: usize = 256;

/// A running worker's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: WorkerConfig,
    pub(crate) runtime: Runtime,
    pub(crate) store: Store,
    pub(crate) ledger: Arc<dyn Ledger>,
    /// The last applied seq, for waiters.
    pub(crate) applied: watch::Sender<Seq>,
    /// The ledger head last seen by the apply loop.
    pub(crate) ledger_head: std::sync::atomic::AtomicU64,
    /// Set while the apply loop keeps failing on the same entry (health and metrics show it).
    pub(crate) stuck: Mutex<Option<apply::Stuck>>,
    /// Query slots and request rates.
    pub(crate) admission: admission::Admission,
    /// Live log records of every contract.
    pub(crate) logs: broadcast::Sender<LogRecord>,
    /// Records of queries this worker ran, waiting to go to the cluster.
    pub(crate) query_logs: Mutex<logs::Outbox>,
    /// Nonces of queries seen recently, and of commands submitted but not applied yet.
    pub(crate) recent_nonces: Mutex<NonceWindow>,
    pub(crate) metrics: metrics::Metrics,
    /// Egress, cache and keys for the pink extension.
    pub(crate) pink: Arc<pink_host::PinkShared>,
    /// The cluster's genesis, read from the ledger when the worker starts.
    pub(crate) genesis: Genesis,
    /// The pink dispatcher's settings: the system contract's id comes from the genesis.
    pub(crate) pink_config: phat_pink::PinkConfig,
    /// Keys that exist in plaintext only inside this process.
    pub(crate) enclave: Arc<enclave::Enclave>,
    /// Checkpoints and the divergence verdict.
    pub(crate) replica: replica::Replica,
    /// Commands this worker opened and verified at submission, by the hash of their ledger
    /// payload, so applying them repeats neither the key exchange nor the signature check.
    pub(crate) submitted: Mutex<std::collections::HashMap<[u8; 32], apply::Submitted>>,
    /// The seq this worker was revoked at (0: it was not).
    pub(crate) revoked_at: std::sync::atomic::AtomicU64,
    /// Set while the state has started a key epoch this worker does not hold yet.
    pub(crate) epoch_pending: std::sync::atomic::AtomicBool,
    /// Set while the state has started a key epoch no deal has keyed yet.
    pub(crate) epoch_dealing: std::sync::atomic::AtomicBool,
    /// Whether this worker appended its `Join` while getting the cluster secret.
    pub(crate) joined: std::sync::atomic::AtomicBool,
    /// Cancelled once, when the worker shuts down: every background task watches it.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    /// Every background task ([`Worker::spawn_task`]): the shutdown waits for all of them.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

impl Worker {
    /// Opens the worker: unseals (or creates) its identity in `config.data_dir`, reads the
    /// cluster genesis from `ledger`, gets the cluster secret (creating it as the first
    /// worker, or waiting for an existing worker to hand it over), then opens its store.
    pub async fn open(config: WorkerConfig, ledger: Arc<dyn Ledger>) -> Result<Self, WorkerError> {
        config.replica.check().map_err(WorkerError::Config)?;
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| data_dir_err(&dir, e))?;
        let tee = match &config.tee {
            Some(tee) => Some((tee, enclave::tee_collateral(tee, &dir).await?)),
            None => None,
        };
        let enclave = Arc::new(enclave::Enclave::open(
            &dir,
            config.dev_attestation_root.as_deref(),
            tee,
        )?);
        let genesis = load_genesis(&*ledger).await?;
        check_genesis(&config, &genesis, &enclave)?;
        let joined = enclave.join(&dir, &*ledger, &genesis).await?;
        let keys = enclave.keys();
        let cipher = genesis.encryption.then(|| keys.storage.clone());
        let store = Store::open_with(&dir.join("state.redb"), cipher)?;
        let mut rt_config = config.runtime.clone();
        // Bounds that decide command outcomes are the cluster's, not this worker's.
        if let Some(limits) = &genesis.limits {
            limits.apply_to(&mut rt_config.limits);
        }
        rt_config.cache_dir = Some(dir.join("code-cache"));
        rt_config.cache_key = secret_file(&dir, "cache.key")?;
        let runtime = Runtime::new(rt_config)?;
        let head = store.head()?;
        let (applied, _) = watch::channel(head.seq);
        let (logs, _) = broadcast::channel(4096);
        let metrics = metrics::Metrics::new(&config.name);
        metrics.applied_seq.set(head.seq as i64);
        let pink = Arc::new(pink_host::PinkShared {
            egress: egress::Egress::new({
                // Contracts never reach this worker's own API, whatever else is allowed.
                let mut e = config.egress.clone();
                e.deny_addrs.push(config.listen);
                e
            }),
            cache: cache::Cache::with_budget(config.cache_quota, config.cache_budget),
            worker_pubkey: enclave.identity.public(),
            key_seed: keys.contract_seed.clone(),
            sgx_quotes: match &config.tee {
                Some(tee) => enclave::sgx_quote_source(tee)?,
                None => None,
            },
        });
        let worker = Self {
            inner: Arc::new(Inner {
                admission: admission::Admission::new(config.admission.clone()),
                replica: replica::Replica::new(config.replica.clone()),
                config,
                runtime,
                store,
                ledger,
                applied,
                ledger_head: std::sync::atomic::AtomicU64::new(head.seq),
                stuck: Mutex::new(None),
                logs,
                query_logs: Mutex::new(Default::default()),
                recent_nonces: Mutex::new(Default::default()),
                metrics,
                pink,
                pink_config: phat_pink::PinkConfig {
                    system_contract: genesis
                        .system_contract()
                        .unwrap_or_else(phat_pink::default_system_contract_id),
                    ..Default::default()
                },
                genesis,
                enclave,
                submitted: Mutex::new(Default::default()),
                revoked_at: std::sync::atomic::AtomicU64::new(0),
                joined: std::sync::atomic::AtomicBool::new(false),
                shutdown: tokio_util::sync::CancellationToken::new(),
                tasks: tokio_util::task::TaskTracker::new(),
                epoch_pending: std::sync::atomic::AtomicBool::new(false),
                epoch_dealing: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        // A snapshot to start from (`--resync`, no state yet, a trimmed log) is restored
        // before the worker answers anything.
        replica::on_start(&worker).await?;
        worker
            .inner
            .joined
            .store(joined, std::sync::atomic::Ordering::Release);
        Ok(worker)
    }

    /// The last applied command's sequence number.
    pub fn applied_seq(&self) -> Seq {
        *self.inner.applied.borrow()
    }

    /// The cluster's identity: its envelope key of epoch 0. Signed requests, uploads and metadata
    /// writes bind it, so a signature for one cluster is never valid on another.
    pub fn cluster_id(&self) -> phat_primitives::Hash {
        phat_primitives::Hash(self.inner.enclave.keys().id)
    }

    /// Whether this worker may propose entries of its own (ticks, log reports, job results):
    /// it applied everything the ledger holds (an older table would judge wrongly), and it is
    /// neither diverged nor revoked.
    pub(crate) fn may_propose(&self) -> bool {
        let head = self
            .inner
            .ledger_head
            .load(std::sync::atomic::Ordering::Relaxed);
        self.applied_seq() >= head
            && self.inner.replica.diverged().is_none()
            && self.revoked_at().is_none()
    }

    /// The seq this worker was revoked from the cluster at, once it has applied it.
    pub fn revoked_at(&self) -> Option<Seq> {
        match self
            .inner
            .revoked_at
            .load(std::sync::atomic::Ordering::Acquire)
        {
            0 => None,
            seq => Some(seq),
        }
    }

    /// The worker's X25519 identity key (queries are encrypted to it).
    pub fn worker_key(&self) -> [u8; 32] {
        self.inner.enclave.identity.public()
    }

    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Follows the ledger until `shutdown` resolves, applying commands as they arrive.
    pub async fn apply_loop(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        apply::run(self.clone(), shutdown).await
    }

    /// Serves the HTTP API and applies commands until `shutdown` resolves.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), WorkerError> {
        let listener = tokio::net::TcpListener::bind(self.inner.config.listen)
            .await
            .map_err(|e| WorkerError::Http(format!("bind {}: {e}", self.inner.config.listen)))?;
        self.serve(listener, shutdown).await
    }

    /// Like [`Worker::run`] on an already bound listener. A worker serves once: when
    /// `shutdown` resolves (or the server fails) its one shutdown path cancels every
    /// background task ([`Worker::spawn_task`]) and returns once all of them have ended, so
    /// nothing of the worker outlives this call but its handles.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), WorkerError> {
        let store = self.inner.store.clone();
        self.spawn_task(self.inner.enclave.clone().serve_joiners(
            self.inner.ledger.clone(),
            self.inner.genesis.clone(),
            Arc::new(move || {
                let snap = store.snapshot()?;
                Ok((
                    apply::stored_members(&snap)?,
                    apply::stored_epochs(&snap)?.keyed(),
                ))
            }),
        ));
        self.spawn_task(ensure_member(self.clone()));
        self.spawn_task(replica::watch(self.clone()));
        let me = self.worker_key();
        use triggers::proposer::run as propose;
        self.spawn_task(propose(
            self.clone(),
            triggers::schedule::TickProposer::new(me),
        ));
        self.spawn_task(propose(
            self.clone(),
            triggers::subscription::LogReporter::new(me),
        ));
        self.spawn_task(propose(self.clone(), triggers::job::JobRunner::new(me)));
        self.spawn_task(logs::send(self.clone()));
        let token = self.inner.shutdown.clone();
        // The apply loop ends between batches, never inside one.
        let apply = {
            let w = self.clone();
            let token = token.clone();
            self.inner
                .tasks
                .spawn(async move { w.apply_loop(token.cancelled_owned()).await })
        };
        let server = axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .into_future();
        tokio::pin!(server);
        tokio::pin!(shutdown);
        let result = tokio::select! {
            r = &mut server => r.map_err(|e| WorkerError::Http(e.to_string())),
            _ = &mut shutdown => Ok(()),
            _ = token.cancelled() => Ok(()),
        };
        // The one shutdown path.
        token.cancel();
        self.inner.tasks.close();
        let applied = apply.await.map_err(ApplyError::task("apply"))?;
        self.inner.tasks.wait().await;
        debug_assert!(self.inner.tasks.is_empty());
        result.and(applied)
    }

    /// Runs `task` in the background until it ends or the worker shuts down (then it is
    /// dropped at its next await); [`Worker::serve`] waits for it before returning.
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let token = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Starts shutting the worker down, as the `shutdown` future of [`Worker::serve`] does.
    pub fn shut_down(&self) {
        self.inner.shutdown.cancel();
    }
}

fn data_dir_err(path: &Path, e: std::io::Error) -> WorkerError {
    WorkerError::DataDir {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Asks for membership once this worker has applied what the ledger held when it started,
/// unless its state lists it (or it appended a `Join` to get the secret): the creator, and a
/// worker from before members were replicated state. Waiting for the state first means a
/// worker restored from a snapshot or resynced does not ask again for what it already is.
async fn ensure_member(worker: Worker) {
    let inner = &worker.inner;
    if inner.joined.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let head = loop {
        match inner.ledger.head().await {
            Ok(head) => break head,
            Err(e) => {
                tracing::warn!("reading the ledger head to check membership (retrying): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut applied = inner.applied.subscribe();
    if applied.wait_for(|seq| *seq >= head).await.is_err() {
        return;
    }
    let me = phat_primitives::Hash(inner.enclave.identity.public());
    let listed = inner
        .store
        .snapshot()
        .map_err(WorkerError::from)
        .and_then(|snap| apply::stored_members(&snap))
        .map(|members| members.get(&me).is_some());
    match listed {
        Ok(true) => {}
        Ok(false) => {
            if let Err(e) = inner
                .enclave
                .append_join(&*inner.ledger, &inner.genesis)
                .await
            {
                tracing::warn!("asking to join the cluster's members: {e}");
            }
        }
        Err(e) => tracing::warn!("reading the member table: {e}"),
    }
}

/// What a worker checks of the genesis it read before trusting anything else in it: the digest
/// it was given (`--genesis`), and that the dev root joiners are judged by is the one it was
/// configured with. The ledger's metadata is writable by anyone holding ledger credentials,
/// who could otherwise point a new worker at a cluster of their own, vouched for by the new
/// worker's genuine report.
fn check_genesis(
    config: &WorkerConfig,
    genesis: &Genesis,
    enclave: &enclave::Enclave,
) -> Result<(), WorkerError> {
    if let Some(pin) = config.genesis_pin {
        let digest = genesis.digest();
        if digest != pin {
            return Err(WorkerError::Enclave(format!(
                "the ledger's genesis is {}, not the pinned {}: refusing to start",
                phat_primitives::Hash(digest),
                phat_primitives::Hash(pin)
            )));
        }
    }
    if let (Some(root), Some(_)) = (genesis.dev_root, &config.dev_attestation_root) {
        if genesis.tee_policy.is_none() && root != enclave.dev_root() {
            return Err(WorkerError::Enclave(format!(
                "the ledger's genesis pins dev root {}, not this worker's {}: refusing to start",
                phat_primitives::Hash(root),
                phat_primitives::Hash(enclave.dev_root())
            )));
        }
    }
    Ok(())
}

/// Reads the cluster's genesis from the ledger (retrying while the ledger is unreachable).
async fn load_genesis(ledger: &dyn Ledger) -> Result<Genesis, WorkerError> {
    let mut attempt = 0;
    let raw = loop {
        match ledger.get_meta(GENESIS_KEY).await {
            Ok(raw) => break raw,
            Err(e) if attempt < 50 => {
                attempt += 1;
                tracing::warn!("reading the genesis from the ledger: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    match raw {
        Some(raw) => Genesis::decode_stored(&raw),
        None => {
            tracing::warn!(
                "the ledger holds no genesis: no funded accounts, encryption on, each worker's \
                 own dev attestation root"
            );
            Ok(Genesis {
                encryption: true,
                ..Genesis::default()
            })
        }
    }
}

/// A 32-byte key kept in the data directory with owner-only permissions, random at first
/// start: the compiled-code cache's MAC key (it authenticates this worker's own cache files
/// and protects no secret).
fn secret_file(dir: &Path, name: &str) -> Result<[u8; 32], WorkerError> {
    let path = dir.join(name);
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let key: [u8; 32] = rand::random();
    write_private(dir, name, &key)?;
    Ok(key)
}

/// Writes `bytes` to `dir/name` with owner-only permissions, synced, atomically
/// ([`phat_secret_file::replace`]).
pub(crate) fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WorkerError> {
    phat_secret_file::replace(&dir.join(name), bytes).map_err(|e| data_dir_err(dir, e))
}

/// Most nonces a worker remembers for its submission-time replay check. Past it the ones that
/// expire soonest are forgotten: queries are read-only, and commands are checked again at
/// apply time against the replicated nonce table.
const MAX_RECENT_NONCES: usize = 1_000_000;

/// Nonces of recent queries and of commands submitted but not applied yet, with an index by
/// expiry so that pruning and making room cost O(log n) per entry.
#[derive(Default)]
pub(crate) struct NonceWindow {
    /// (signer, nonce) → expires_at.
    map: std::collections::HashMap<(AccountId, u64), u64>,
    by_expiry: std::collections::BTreeSet<(u64, AccountId, u64)>,
}

impl NonceWindow {
    /// Records `key` (valid until `expires_at`); false when it is already recorded.
    pub(crate) fn insert(&mut self, key: (AccountId, u64), expires_at: u64, now: u64) -> bool {
        while let Some(&(exp, who, nonce)) = self.by_expiry.first() {
            if exp >= now && self.map.len() < MAX_RECENT_NONCES {
                break;
            }
            self.by_expiry.pop_first();
            self.map.remove(&(who, nonce));
        }
        if self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key, expires_at);
        self.by_expiry.insert((expires_at, key.0, key.1));
        true
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &(AccountId, u64)) {
        if let Some(exp) = self.map.remove(key) {
            self.by_expiry.remove(&(exp, key.0, key.1));
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Unix time in ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_window_forgets_expired_then_soonest_ending_entries() {
        let mut w = NonceWindow::default();
        let alice = AccountId([1; 32]);
        assert!(w.insert((alice, 1), 100, 0));
        assert!(!w.insert((alice, 1), 100, 0), "a replay");
        assert!(w.insert((alice, 2), 50, 0));
        // At time 60, entry 2 has expired and goes; 1 stays.
        assert!(w.insert((alice, 3), 200, 60));
        assert_eq!(w.len(), 2);
        assert!(
            w.insert((alice, 2), 300, 60),
            "expired nonces may come back"
        );
        w.remove(&(alice, 2));
        assert!(w.insert((alice, 2), 300, 60));
        // A flood never grows it past its bound.
        for n in 10..(MAX_RECENT_NONCES as u64 + 1000) {
            w.insert((alice, n), 1_000_000 + n, 60);
        }
        assert_eq!(w.len(), MAX_RECENT_NONCES);
        assert_eq!(w.by_expiry.len(), MAX_RECENT_NONCES);
    }
}
