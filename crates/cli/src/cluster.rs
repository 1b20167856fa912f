//! Commands that run cluster processes: `phat dev` (ledger + N worker processes + one
//! endpoint), `phat worker` and `phat ledger`.

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dev_nats::{DevNats, DEV_NATS_USER};
use crate::gateway::Gateway;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use phat_client::{Client, Contract, Signer};
use phat_worker::ledger::http::{LedgerToken, RemoteLedger, TOKEN_FILE};
use phat_worker::ledger::{EmbeddedLedger, Ledger, LedgerConfig};
use phat_worker::{Worker, WorkerConfig};
use tokio::sync::watch;

use crate::commands::{deploy_code, Ctx, DeployRequest};

/// Dev accounts funded at genesis by `phat dev` (`//Alice` …).
const DEV_ACCOUNTS: [&str; 6] = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"];
/// Their native balance.
const DEV_BALANCE: u128 = 1_000_000_000_000_000_000_000;

/// The ledger `phat dev` orders its commands with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DevLedger {
    /// In-process (redb), served to the workers over HTTP with a bearer token.
    Embedded,
    /// A local `nats-server` with JetStream (R1), started and stopped by `phat dev`.
    Nats,
}

/// Arguments of `phat dev`.
#[derive(Args)]
pub struct DevArgs {
    /// Number of workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The ledger: `embedded` (no server needed) or `nats` (a local `nats-server` with
    /// JetStream on the ledger port, data in `<data>/nats`).
    #[arg(long, value_enum, default_value_t = DevLedger::Embedded)]
    pub ledger: DevLedger,
    /// With `--ledger nats`: how many `nats-server` nodes to run (1, 3 or 5); streams get as
    /// many replicas. Nodes after the first take ports after the workers'.
    #[arg(long, default_value_t = 1, value_parser = parse_nats_nodes)]
    pub nats_nodes: usize,
    /// With `--ledger nats`: the nodes' JetStream `sync_interval`. `always` puts every write on
    /// disk before NATS acknowledges it (no acknowledged command is lost if every node loses
    /// power at once); a duration (`2m`) or `default` (the server's, two minutes) trades that
    /// for append throughput.
    #[arg(long, default_value = "always", value_parser = parse_sync_interval)]
    pub nats_sync: String,
    /// Data directory (ledger and one directory per worker); reused across restarts.
    #[arg(long, default_value = ".phat/dev")]
    pub data: PathBuf,
    /// Port of the endpoint; the ledger listens on the next one, workers on the ones after.
    #[arg(long, default_value_t = 8700)]
    pub port: u16,
    /// Build and deploy the example erc20 and run a few commands and queries.
    #[arg(long)]
    pub demo: bool,
    /// Stop after the demo instead of serving until Ctrl-C.
    #[arg(long, requires = "demo")]
    pub exit_after_demo: bool,
    /// The `contracts/` directory holding the examples (for `--demo`).
    #[arg(long, default_value = "contracts")]
    pub contracts: PathBuf,
    /// Create the cluster WITHOUT encryption (commands, queries and state in the clear).
    /// Insecure: only to compare; a cluster's choice is fixed when it is created.
    #[arg(long)]
    pub insecure_no_encryption: bool,
    /// Set a resource bound of a new cluster, `NAME=VALUE` (repeatable), e.g.
    /// `--limit max_contract_storage=1048576`; the names and defaults are in docs/BOUNDS.md.
    /// Bounds are fixed at genesis: they are ignored when the cluster already exists.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// The owner of a new cluster (an account or a secret URI): the signer of `phat cluster
    /// rotate-key` and `phat cluster revoke`.
    #[arg(long, value_name = "ACCOUNT", default_value = "//Alice")]
    pub owner: String,
    /// Who may deploy on a new cluster: `public` (any funded account) or `owner-only` (the
    /// owner and the accounts it allows with `phat cluster deployers`).
    #[arg(long, value_enum, default_value = "public")]
    pub deploy: Deploy,
    #[command(flatten)]
    pub replica: ReplicaArgs,
    /// Requests per second one signer may send to each worker (benchmarks raise it).
    #[arg(long, default_value_t = phat_worker::AdmissionConfig::default().per_signer_rate)]
    pub signer_rate: u32,
    /// A web origin (`https://app.example`) whose pages may call the cluster from a browser,
    /// besides pages on this machine (repeatable; `*`: any site the user visits).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
}

/// `--nats-sync`: `always`, `default`, or a duration NATS reads (`500ms`, `30s`, `2m`).
fn parse_sync_interval(s: &str) -> Result<String, String> {
    let duration = s
        .strip_suffix("ms")
        .or_else(|| s.strip_suffix('s'))
        .or_else(|| s.strip_suffix('m'))
        .or_else(|| s.strip_suffix('h'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if s == "always" || s == "default" || duration {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}`: give always, default, or a duration such as 2m"
        ))
    }
}

/// `--nats-nodes`: an odd node count a JetStream cluster can elect leaders with.
fn parse_nats_nodes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err(format!("{s:?}: give 1, 3 or 5 nodes")),
    }
}

/// Arguments of `phat worker`.
#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub conn: LedgerConnArgs,
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Port of the worker's API on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Name shown in info and metrics (default: the data directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Let contracts' HTTP requests reach loopback and private addresses (refused by default).
    #[arg(long)]
    pub allow_private_egress: bool,
    /// Only these hosts may be reached by contracts' HTTP requests (repeatable).
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// An address contracts' HTTP requests may never reach, even with
    /// `--allow-private-egress` (repeatable; this worker's port and the ledger's are added).
    #[arg(long = "deny-egress", value_name = "IP:PORT")]
    pub deny_egress: Vec<SocketAddr>,
    /// Bytes of cache each contract may use.
    #[arg(long, default_value_t = phat_worker::DEFAULT_CACHE_QUOTA)]
    pub cache_quota: usize,
    /// Queries this worker executes at once (default: 4 per core, at least 8); more wait up
    /// to 2 s for a slot, then get 429.
    #[arg(long)]
    pub max_queries: Option<usize>,
    /// Requests per second one signer may send to this worker.
    #[arg(long, default_value_t = phat_worker::AdmissionConfig::default().per_signer_rate)]
    pub signer_rate: u32,
    /// A web origin (`https://app.example`) whose pages may call this worker from a browser,
    /// besides pages on this machine (repeatable; `*`: any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Requests per second one client address may send to this worker (loopback exempt).
    #[arg(long, default_value_t = phat_worker::AdmissionConfig::default().per_address_rate)]
    pub address_rate: u32,
    /// The dev attestation root secret (32 bytes, raw or hex) every worker of the cluster
    /// signs its (insecure) attestation report with; default: one in the data directory.
    #[arg(long, env = "PHAT_DEV_ATTESTATION_ROOT")]
    pub dev_attestation_root: Option<PathBuf>,
    /// The digest of the cluster's genesis (`0x…`, printed by `phat genesis`): the worker
    /// refuses to start under any other. Without it, a worker with no state of its own takes
    /// the genesis it finds in the ledger on trust (docs/THREAT-MODEL.md).
    #[arg(long = "genesis", value_name = "DIGEST", env = "PHAT_GENESIS")]
    pub genesis_pin: Option<phat_client::primitives::Hash>,
    /// Code blobs, and metadata documents, one account may put into the ledger (each is kept
    /// for good and unpaid).
    #[arg(long, value_name = "N", default_value_t = phat_worker::DEFAULT_ACCOUNT_QUOTA)]
    pub account_quota: usize,
    /// Receipts kept: those of the last N seqs (older ones answer 404).
    #[arg(long, value_name = "N", default_value_t = phat_worker::DEFAULT_RECEIPTS_KEPT)]
    pub receipts_kept: u64,
    /// Stop when the parent process goes away (`phat dev` starts its workers with this, so a
    /// killed `phat dev` leaves no workers behind).
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
    #[command(flatten)]
    pub replica: ReplicaArgs,
    /// Drop this worker's state and start from the newest snapshot the other workers confirm
    /// (the way back after `diverged`); needs a ledger that keeps snapshots (NATS).
    #[arg(long)]
    pub resync: bool,
    /// Run as a hardware-attested worker: `gramine` (SGX, `/dev/attestation`) or `tdx`
    /// (configfs-tsm, `/sys/kernel/config/tsm/report`), optionally `:DIR` for another
    /// directory. The cluster's genesis must carry a TEE policy (`phat genesis --tee-policy`).
    #[arg(long, value_name = "gramine|tdx[:DIR]")]
    pub tee: Option<String>,
    /// Intel collateral for this platform (JSON) that clients verify the quotes with.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tee",
        conflicts_with = "pccs_url"
    )]
    pub tee_collateral: Option<PathBuf>,
    /// Fetch the Intel collateral for this platform from this PCCS (v4 API), cached for an
    /// hour in the data directory (and used from there while the PCCS is unreachable).
    #[arg(long, value_name = "URL", requires = "tee", env = "PHAT_PCCS_URL")]
    pub pccs_url: Option<String>,
    /// TESTS ONLY (the `testing` feature): apply one extra write at this seq, so that this
    /// worker diverges.
    #[cfg(feature = "testing")]
    #[arg(long, hide = true)]
    pub fault_at_seq: Option<u64>,
}

/// How to reach a cluster's ledger (`phat worker`, `phat genesis`).
#[derive(Args, Clone, Debug)]
pub struct LedgerConnArgs {
    /// The ledger's URL (`phat ledger` or `phat dev`), or `nats://HOST:PORT[,...]` for the
    /// JetStream ledger.
    #[arg(long)]
    pub ledger: String,
    /// NATS user (with `--nats-password`), for a `nats://` ledger.
    #[arg(long)]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "PHAT_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS credentials file, instead of user and password.
    #[arg(long)]
    pub nats_creds: Option<PathBuf>,
    /// The cluster's name on NATS (names its stream and buckets).
    #[arg(long, default_value = "phat")]
    pub nats_cluster: String,
    /// Replicas of the cluster's stream and buckets when this process creates them (1 on one
    /// server; 3 on a 3-node NATS cluster). Existing ones keep theirs.
    #[arg(long, default_value_t = 1)]
    pub nats_replicas: usize,
    /// The file holding the HTTP ledger's bearer token (`ledger.token` in the data directory
    /// of `phat ledger`); required for an `http(s)://` ledger.
    #[arg(long, env = "PHAT_LEDGER_TOKEN_FILE")]
    pub ledger_token_file: Option<PathBuf>,
}

impl LedgerConnArgs {
    /// Connects to the ledger.
    async fn connect(&self) -> Result<Arc<dyn Ledger>> {
        if self.ledger.starts_with("nats://") {
            let mut nats =
                phat_worker::ledger::JetStreamConfig::new(&self.ledger, &self.nats_cluster);
            (nats.user, nats.password) = (self.nats_user.clone(), self.nats_password.clone());
            nats.creds_file = self.nats_creds.clone();
            nats.replicas = self.nats_replicas;
            return Ok(Arc::new(
                phat_worker::ledger::JetStreamLedger::connect(nats).await?,
            ));
        }
        let Some(path) = &self.ledger_token_file else {
            bail!(
                "the HTTP ledger {} needs its token: pass --ledger-token-file PATH (the ledger.token in the ledger's data directory) or set PHAT_LEDGER_TOKEN_FILE",
                self.ledger
            );
        };
        let token = LedgerToken::read(path)?;
        Ok(Arc::new(RemoteLedger::with_token(&self.ledger, &token)?))
    }
}

/// Arguments of `phat genesis`.
#[derive(Args)]
pub struct GenesisArgs {
    #[command(flatten)]
    pub conn: LedgerConnArgs,
    #[command(flatten)]
    pub genesis: GenesisOptions,
}

/// What a new cluster's genesis holds.
#[derive(Args, Clone, Debug)]
pub struct GenesisOptions {
    /// Fund the dev accounts (`//Alice` … `//Ferdie`); uploads need a funded signer.
    #[arg(long)]
    pub fund_dev_accounts: bool,
    /// A resource bound of the new cluster, `NAME=VALUE` (repeatable; see docs/BOUNDS.md).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// Pin this dev attestation root (give every worker the same `--dev-attestation-root`).
    #[arg(long, env = "PHAT_DEV_ATTESTATION_ROOT")]
    pub dev_attestation_root: Option<PathBuf>,
    /// The TEE policy (JSON, see docs/ENVELOPES.md) hardware workers judge joiners by; a
    /// cluster with one accepts no `dev` worker.
    #[arg(long = "tee-policy", value_name = "FILE")]
    pub tee_policy: Option<PathBuf>,
    /// The cluster owner (an account, or a secret URI such as `//Alice`): the only signer of
    /// `phat cluster rotate-key` and `phat cluster revoke`. Without one nobody may.
    #[arg(long, value_name = "ACCOUNT")]
    pub owner: Option<String>,
    /// Who may deploy: `public` (any funded account) or `owner-only` (the owner and the
    /// accounts it allows with `phat cluster deployers`).
    #[arg(long, value_enum, default_value = "public")]
    pub deploy: Deploy,
}

/// Who may deploy on a new cluster (the genesis's `DeployPermission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deploy {
    /// Any account that holds a balance.
    Public,
    /// The owner, and the accounts the owner allows.
    OwnerOnly,
}

impl From<Deploy> for phat_worker::DeployPermission {
    fn from(d: Deploy) -> Self {
        match d {
            Deploy::Public => phat_worker::DeployPermission::Public,
            Deploy::OwnerOnly => phat_worker::DeployPermission::OwnerOnly,
        }
    }
}

/// An account given as a secret URI (`//Alice`, a mnemonic) or as the account itself.
pub fn parse_account(s: &str) -> Result<phat_client::primitives::AccountId> {
    if let Ok(a) = s.parse::<phat_client::primitives::AccountId>() {
        return Ok(a);
    }
    Ok(phat_client::Signer::from_suri(s)
        .with_context(|| format!("`{s}` is neither an account (0x…, SS58) nor a secret URI"))?
        .account())
}

impl GenesisOptions {
    fn any(&self) -> bool {
        self.fund_dev_accounts
            || !self.limits.is_empty()
            || self.dev_attestation_root.is_some()
            || self.tee_policy.is_some()
            || self.owner.is_some()
            || self.deploy != Deploy::Public
    }

    /// Writes the genesis unless the ledger holds one; returns whether it did.
    async fn write(&self, ledger: &dyn Ledger) -> Result<bool> {
        let dev_root = match &self.dev_attestation_root {
            Some(path) => Some(phat_worker::dev_root_public(path)?),
            None => None,
        };
        let genesis = phat_worker::Genesis {
            balances: if self.fund_dev_accounts {
                dev_balances()?
            } else {
                Vec::new()
            },
            encryption: true,
            dev_root,
            limits: Some(parse_limits(&self.limits)?),
            tee_policy: match &self.tee_policy {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("--tee-policy {}", path.display()))?;
                    // Checked here, so a bad file never becomes a cluster's genesis.
                    phat_attest::TeePolicy::from_json(&text)
                        .with_context(|| format!("--tee-policy {}", path.display()))?;
                    Some(text)
                }
                None => None,
            },
            owner: self.owner.as_deref().map(parse_account).transpose()?,
            system: Some(phat_worker::SystemSetup::bundled()),
            deploy: self.deploy.into(),
        };
        if self.deploy == Deploy::OwnerOnly && genesis.owner.is_none() {
            bail!("--deploy owner-only needs an --owner (who else would deploy?)");
        }
        // Only a new cluster gets a genesis; an existing one keeps its own.
        Ok(ledger
            .create_meta(
                phat_worker::GENESIS_KEY,
                parity_scale_codec::Encode::encode(&genesis),
            )
            .await?)
    }
}

/// The digest of the genesis `ledger` holds, if any (what `phat worker --genesis` pins).
async fn stored_genesis_digest(
    ledger: &dyn Ledger,
) -> Result<Option<phat_client::primitives::Hash>> {
    match ledger.get_meta(phat_worker::GENESIS_KEY).await? {
        Some(raw) => Ok(Some(phat_client::primitives::Hash(
            phat_worker::Genesis::decode_stored(&raw)?.digest(),
        ))),
        None => Ok(None),
    }
}

/// `phat genesis`: writes a new cluster's genesis to its ledger (before its first worker).
pub async fn genesis(args: GenesisArgs) -> Result<()> {
    init_tracing();
    let ledger = args.conn.connect().await?;
    if args.genesis.write(&*ledger).await? {
        let digest = stored_genesis_digest(&*ledger)
            .await?
            .context("the genesis just written is not in the ledger")?;
        eprintln!(
            "genesis {digest} written to {}: start every worker with `--genesis {digest}`",
            args.conn.ledger
        );
        Ok(())
    } else {
        bail!(
            "the ledger {} already holds a genesis (a cluster's genesis never changes)",
            args.conn.ledger
        )
    }
}

/// How workers check each other and keep snapshots (docs/cluster.md).
#[derive(Args, Clone, Debug)]
pub struct ReplicaArgs {
    /// Commands between two published `(seq, state root)` checkpoints, which workers compare.
    #[arg(long, default_value_t = phat_worker::ReplicaConfig::default().checkpoint_every)]
    pub checkpoint_every: u64,
    /// Commands between two state snapshots written to the ledger (a multiple of
    /// --checkpoint-every; 0: none). Only ledgers that keep snapshots (NATS) use it.
    #[arg(long, default_value_t = phat_worker::ReplicaConfig::default().snapshot_every.unwrap_or(0))]
    pub snapshot_every: u64,
    /// Snapshots each worker keeps; the log is trimmed below the oldest.
    #[arg(long, default_value_t = phat_worker::ReplicaConfig::default().snapshots_kept)]
    pub snapshots_kept: usize,
    /// Keep the whole log (do not trim it below the oldest kept snapshot).
    #[arg(long)]
    pub no_trim: bool,
    /// Replay the log from seq 1 instead of starting from a snapshot (to verify snapshots or
    /// measure the replay; the log must not have been trimmed).
    #[arg(long)]
    pub replay_log: bool,
}

impl ReplicaArgs {
    /// The worker flags that carry these settings (for `phat dev`'s workers).
    fn to_args(&self) -> Vec<String> {
        let mut out = vec![
            "--checkpoint-every".into(),
            self.checkpoint_every.to_string(),
            "--snapshot-every".into(),
            self.snapshot_every.to_string(),
            "--snapshots-kept".into(),
            self.snapshots_kept.to_string(),
        ];
        if self.no_trim {
            out.push("--no-trim".into());
        }
        if self.replay_log {
            out.push("--replay-log".into());
        }
        out
    }

    /// The worker's configuration.
    fn config(&self, resync: bool) -> phat_worker::ReplicaConfig {
        phat_worker::ReplicaConfig {
            checkpoint_every: self.checkpoint_every,
            snapshot_every: (self.snapshot_every > 0).then_some(self.snapshot_every),
            snapshots_kept: self.snapshots_kept,
            trim_log: !self.no_trim,
            start_from_snapshot: !self.replay_log,
            resync,
            #[cfg(feature = "testing")]
            fault_at_seq: None,
        }
    }
}

/// Arguments of `phat ledger`.
#[derive(Args)]
pub struct LedgerArgs {
    /// Data directory of the ledger file and of its bearer token (`ledger.token`, created with
    /// mode 0600 on first start; workers need it: `phat worker --ledger-token-file`).
    #[arg(long)]
    pub data: PathBuf,
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// The genesis written when the ledger is new.
    #[command(flatten)]
    pub genesis: GenesisOptions,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// Exits the process once its parent is gone (it is then re-parented). Killing a worker at
/// any moment is safe: every store commit is atomic and durable.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if std::os::unix::process::parent_id() != parent {
            eprintln!("the parent process is gone: stopping");
            std::process::exit(0);
        }
    });
}

/// Reads the ledger token in `data`, creating it (mode 0600) on first start.
fn ledger_token(data: &std::path::Path) -> Result<(LedgerToken, PathBuf)> {
    let path = data.join(TOKEN_FILE);
    let (token, _) = LedgerToken::load_or_create(&path)?;
    Ok((token, path))
}

/// `phat ledger`.
pub async fn ledger(args: LedgerArgs) -> Result<()> {
    init_tracing();
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let (token, token_path) = ledger_token(&args.data)?;
    let ledger: Arc<dyn Ledger> = Arc::new(
        EmbeddedLedger::open(&args.data.join("ledger.redb"), LedgerConfig::default())
            .context("opening the ledger")?,
    );
    if args.genesis.any() && !args.genesis.write(&*ledger).await? {
        eprintln!("the ledger already holds a genesis: --fund-dev-accounts, --limit and --dev-attestation-root are ignored");
    }
    let listener = tokio::net::TcpListener::bind(local(args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    eprintln!("ledger listening on http://127.0.0.1:{}", args.port);
    eprintln!(
        "ledger token in {} (give workers --ledger-token-file {})",
        token_path.display(),
        token_path.display()
    );
    axum::serve(listener, phat_worker::ledger::http::router(ledger, token))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// The dev accounts (`//Alice` … `//Ferdie`), each with [`DEV_BALANCE`].
fn dev_balances() -> Result<Vec<(phat_client::primitives::AccountId, u128)>> {
    DEV_ACCOUNTS
        .iter()
        .map(|name| {
            Ok((
                Signer::from_suri(&format!("//{name}"))?.account(),
                DEV_BALANCE,
            ))
        })
        .collect()
}

/// The cluster bounds of `--limit NAME=VALUE` arguments, over the defaults.
fn parse_limits(args: &[String]) -> Result<phat_worker::ClusterLimits> {
    let mut limits = phat_worker::ClusterLimits::default();
    for l in args {
        let (name, value) = l
            .split_once('=')
            .with_context(|| format!("--limit {l}: expected NAME=VALUE"))?;
        let value: u64 = value
            .trim()
            .parse()
            .with_context(|| format!("--limit {l}: the value is not a number"))?;
        limits
            .set(name.trim(), value)
            .map_err(|e| anyhow::anyhow!("--limit {l}: {e}"))?;
    }
    Ok(limits)
}

/// `phat worker`.
pub async fn worker(args: WorkerArgs) -> Result<()> {
    init_tracing();
    if args.exit_with_parent {
        exit_with_parent();
    }
    let name = args.name.clone().unwrap_or_else(|| {
        args.data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "worker".into())
    });
    // Checked before anything connects: a bad TEE setting is the first thing said.
    let tee = match &args.tee {
        None => None,
        Some(tee) => {
            let collateral = match (&args.tee_collateral, &args.pccs_url) {
                (Some(file), _) => phat_worker::CollateralSource::File(file.clone()),
                (None, Some(url)) => phat_worker::CollateralSource::Pccs(url.clone()),
                (None, None) => bail!(
                    "--tee {tee} needs Intel's collateral for this platform: --pccs-url URL (a \
                     PCCS) or --tee-collateral FILE"
                ),
            };
            let (kind, dir) = tee.split_once(':').unwrap_or((tee.as_str(), ""));
            let source = match (kind, dir) {
                ("gramine", "") => phat_worker::TeeSource::Gramine("/dev/attestation".into()),
                ("gramine", dir) => phat_worker::TeeSource::Gramine(dir.into()),
                ("tdx", "") => {
                    phat_worker::TeeSource::ConfigfsTsm("/sys/kernel/config/tsm/report".into())
                }
                ("tdx", dir) => phat_worker::TeeSource::ConfigfsTsm(dir.into()),
                _ => bail!("--tee {tee}: give gramine or tdx, optionally :DIR"),
            };
            Some(phat_worker::TeeConfig { source, collateral })
        }
    };
    let mut config = WorkerConfig::new(name.clone(), &args.data, local(args.port));
    config.tee = tee;
    config.egress.allow_private = args.allow_private_egress;
    if !args.allow_hosts.is_empty() {
        config.egress.allow_hosts = Some(args.allow_hosts.clone());
    }
    // Contracts never reach this worker's API, the ledger or the listed addresses.
    config.egress.deny_addrs = args.deny_egress.clone();
    config.egress.deny_addrs.push(local(args.port));
    for url in args.conn.ledger.split(',') {
        config
            .egress
            .deny_url(url.trim())
            .await
            .with_context(|| format!("resolving the ledger URL {url}"))?;
    }
    config.cache_quota = args.cache_quota;
    if let Some(n) = args.max_queries {
        config.admission.max_concurrent_queries = n.max(1);
    }
    config.admission.per_signer_rate = args.signer_rate.max(1);
    config.cors_origins = args.cors_origins.clone();
    config.admission.per_address_rate = args.address_rate.max(1);
    config.dev_attestation_root = args.dev_attestation_root.clone();
    config.genesis_pin = args.genesis_pin.map(|h| h.0);
    config.receipts_kept = args.receipts_kept.max(1);
    config.account_quota = args.account_quota;
    config.replica = args.replica.config(args.resync);
    #[cfg(feature = "testing")]
    {
        config.replica.fault_at_seq = args.fault_at_seq;
    }
    config.replica.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    // A ledger that does not answer yet (NATS electing leaders after a restart, say) is
    // waited for: a worker that exited on it would need a supervisor to come back (the chaos
    // run's rolling restart found one that did not).
    let patience = Instant::now() + START_PATIENCE;
    let worker = loop {
        let attempt = async {
            let ledger = args.conn.connect().await?;
            Worker::open(config.clone(), ledger)
                .await
                .context("opening the worker")
        }
        .await;
        match attempt {
            Ok(worker) => break worker,
            Err(e) if ledger_unavailable(&e) && Instant::now() < patience => {
                tracing::warn!("the ledger does not answer yet, trying again in 2 s: {e:#}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    };
    tracing::info!(
        "worker {name} on http://127.0.0.1:{} (applied seq {})",
        args.port,
        worker.applied_seq()
    );
    worker.run(shutdown_signal()).await?;
    tracing::info!("worker {name} stopped at seq {}", worker.applied_seq());
    Ok(())
}

/// How long a starting worker waits for a ledger that does not answer before it gives up.
const START_PATIENCE: Duration = Duration::from_secs(300);

/// True when `e` says the ledger could not be reached or did not answer in time.
fn ledger_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<phat_worker::ledger::LedgerError>(),
            Some(phat_worker::ledger::LedgerError::Unavailable(_))
        )
    })
}

/// Runs worker `i` as a child process (with `args` and the extra environment `env`),
/// restarting it when it dies, until `stop`.
async fn supervise(
    i: usize,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("worker-{i}: cannot find the phat executable: {e}");
            return;
        }
    };
    let stopping = stop.clone();
    loop {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        if let Ok(f) = log_file {
            if let Ok(f2) = f.try_clone() {
                cmd.stdout(f2);
            }
            cmd.stderr(f);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("worker-{i}: cannot start: {e}");
                return;
            }
        };
        tokio::select! {
            status = child.wait() => {
                if *stopping.borrow() {
                    return;
                }
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                eprintln!("worker-{i} exited ({status}); restarting (log: {})", log.display());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                stop_child(&mut child).await;
                return;
            }
        }
    }
}

/// Waits until the API at `url` answers.
async fn wait_ready(url: &str, timeout: Duration) -> Result<()> {
    let client = Client::new(url)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match client.info().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                bail!("{url} did not come up: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Stops a child process: SIGTERM, then SIGKILL after 10 s; reaps it.
pub(crate) async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// `phat dev`.
pub async fn dev(args: DevArgs, ctx: &Ctx) -> Result<()> {
    init_tracing();
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.nats_nodes > 1 && args.ledger != DevLedger::Nats {
        bail!("--nats-nodes needs --ledger nats");
    }
    let workers_end = args.port as usize + 1 + args.workers;
    // Further NATS nodes' client ports, then every node's route port, after the workers'.
    let extra_nats = if args.nats_nodes > 1 {
        2 * args.nats_nodes - 1
    } else {
        0
    };
    let last_port = workers_end + extra_nats;
    if last_port > u16::MAX as usize {
        bail!(
            "--port {} leaves no room for {} workers",
            args.port,
            args.workers
        );
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let data = std::fs::canonicalize(&args.data)?;
    let ledger_port = args.port + 1;
    // The embedded ledger is served over HTTP with a bearer token; the NATS one by its server.
    let mut http_token = None;
    let mut nats = None;
    let ledger: Arc<dyn Ledger> = match args.ledger {
        DevLedger::Embedded => {
            http_token = Some(ledger_token(&data)?);
            Arc::new(
                EmbeddedLedger::open(&data.join("ledger.redb"), LedgerConfig::default())
                    .context("opening the ledger")?,
            )
        }
        DevLedger::Nats => {
            let n = args.nats_nodes;
            let first_extra = workers_end as u16 + 1;
            let mut clients = vec![ledger_port];
            clients.extend((0..n as u16 - 1).map(|i| first_extra + i));
            let routes: Vec<u16> = if n > 1 {
                (0..n as u16)
                    .map(|i| first_extra + n as u16 - 1 + i)
                    .collect()
            } else {
                Vec::new()
            };
            let server = DevNats::start(&data, &clients, &routes, &args.nats_sync).await?;
            let ledger = server.ledger().await?;
            nats = Some(server);
            Arc::new(ledger)
        }
    };
    let head = ledger.head().await?;
    // Every worker signs its (insecure, dev) attestation with this root; the genesis pins it.
    let dev_root = data.join("dev-attestation-root.key");
    let dev_root_public = phat_worker::dev_root_public(&dev_root)?;
    if head == 0 && ledger.get_meta(phat_worker::GENESIS_KEY).await?.is_none() {
        // A fresh cluster: fund the dev accounts so contracts can move native value. The first
        // worker to start creates the cluster secret.
        let genesis = phat_worker::Genesis {
            balances: dev_balances()?,
            encryption: !args.insecure_no_encryption,
            dev_root: Some(dev_root_public),
            limits: Some(parse_limits(&args.limits)?),
            tee_policy: None,
            owner: Some(parse_account(&args.owner)?),
            system: Some(phat_worker::SystemSetup::bundled()),
            deploy: args.deploy.into(),
        };
        if args.insecure_no_encryption {
            eprintln!("warning: this cluster does NOT encrypt commands, queries or state");
        }
        ledger
            .put_meta(
                phat_worker::GENESIS_KEY,
                parity_scale_codec::Encode::encode(&genesis),
            )
            .await?;
    }
    // Its workers serve this genesis and no other.
    let genesis_pin = stored_genesis_digest(&*ledger).await?;
    let ledger_listener = match &http_token {
        Some(_) => Some(
            tokio::net::TcpListener::bind(local(ledger_port))
                .await
                .with_context(|| format!("binding the ledger port {ledger_port}"))?,
        ),
        None => None,
    };
    let endpoint_listener = tokio::net::TcpListener::bind(local(args.port))
        .await
        .with_context(|| format!("binding the endpoint port {}", args.port))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ledger_server = match (ledger_listener, &http_token) {
        (Some(listener), Some((token, _))) => Some(tokio::spawn(
            axum::serve(
                listener,
                phat_worker::ledger::http::router(ledger, token.clone()),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        )),
        _ => {
            drop(ledger);
            None
        }
    };
    // How workers reach the ledger: its arguments and environment.
    let (ledger_args, ledger_env): (Vec<String>, Vec<(String, String)>) = match (&http_token, &nats)
    {
        (Some((_, path)), _) => (
            vec![
                "--ledger".into(),
                format!("http://127.0.0.1:{ledger_port}"),
                "--ledger-token-file".into(),
                path.display().to_string(),
            ],
            Vec::new(),
        ),
        (None, Some(server)) => (
            vec![
                "--ledger".into(),
                server.url.clone(),
                "--nats-user".into(),
                DEV_NATS_USER.into(),
                "--nats-replicas".into(),
                server.replicas.to_string(),
            ],
            // The password stays off the command line.
            vec![("PHAT_NATS_PASSWORD".into(), server.password.clone())],
        ),
        (None, None) => bail!("no ledger"),
    };
    let mut urls = Vec::new();
    let mut supervisors = Vec::new();
    for i in 0..args.workers {
        let port = args.port + 2 + i as u16;
        let dir = data.join(format!("worker-{i}"));
        std::fs::create_dir_all(&dir)?;
        let mut wargs = vec!["worker".to_string()];
        wargs.extend(ledger_args.iter().cloned());
        wargs.extend([
            "--data".into(),
            dir.display().to_string(),
            "--port".into(),
            port.to_string(),
            "--name".into(),
            format!("worker-{i}"),
            // Local development talks to local services (an anvil node, a mock API).
            "--allow-private-egress".into(),
            "--dev-attestation-root".into(),
            dev_root.display().to_string(),
            "--exit-with-parent".into(),
        ]);
        wargs.extend(args.replica.to_args());
        wargs.extend(["--signer-rate".into(), args.signer_rate.to_string()]);
        if let Some(pin) = genesis_pin {
            wargs.extend(["--genesis".into(), pin.to_string()]);
        }
        for o in &args.cors_origins {
            wargs.extend(["--cors-origin".into(), o.clone()]);
        }
        // The endpoint, the ledger and every worker are off limits to contracts.
        for p in args.port as usize..=last_port {
            wargs.extend(["--deny-egress".into(), format!("127.0.0.1:{p}")]);
        }
        urls.push(format!("http://127.0.0.1:{port}"));
        supervisors.push(tokio::spawn(supervise(
            i,
            wargs,
            ledger_env.clone(),
            dir.join("worker.log"),
            stop_rx.clone(),
        )));
    }
    let gateway = Gateway::new(urls.clone(), 2 << 20).cors_origins(args.cors_origins.clone());
    let gateway_server = tokio::spawn(
        axum::serve(endpoint_listener, gateway.clone().router())
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let ready = async {
        for u in &urls {
            wait_ready(u, Duration::from_secs(60)).await?;
        }
        // Every worker's key is known before the endpoint is announced: sealed queries reach
        // their worker on the first try.
        gateway.learn_keys().await;
        anyhow::Ok(())
    };
    // One listener for the whole run: a signal that arrives while the banner prints (after
    // `ready`, before the wait below) is kept, not lost between two listeners.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let ready = tokio::select! {
        r = ready => r,
        _ = &mut shutdown => Err(anyhow::anyhow!("interrupted")),
    };
    let result = match ready {
        Ok(()) => {
            let endpoint = format!("http://127.0.0.1:{}", args.port);
            println!(
                "phat dev: {} workers, data in {}",
                args.workers,
                data.display()
            );
            println!("  endpoint  {endpoint}");
            println!("  console   {endpoint}/console  (open it in a browser)");
            match (&http_token, &nats) {
                (Some((_, path)), _) => println!(
                    "  ledger    http://127.0.0.1:{ledger_port}  (head seq {head}; token in {})",
                    path.display()
                ),
                (_, Some(server)) if server.replicas > 1 => println!(
                    "  ledger    {} (JetStream, R{})  (head seq {head}; user {DEV_NATS_USER}, password in {}/nats.password, logs {}/nats-*.log)",
                    server.url,
                    server.replicas,
                    data.display(),
                    data.display()
                ),
                _ => println!(
                    "  ledger    nats://127.0.0.1:{ledger_port} (JetStream, R1)  (head seq {head}; user {DEV_NATS_USER}, password in {}/nats.password, log {}/nats.log)",
                    data.display(),
                    data.display()
                ),
            }
            println!("  accounts  //Alice //Bob //Charlie //Dave //Eve //Ferdie (funded with {DEV_BALANCE})");
            let encryption = match Client::new(&urls[0])?.info().await {
                Ok(i) if i.encryption => "on (commands, queries, state)",
                Ok(_) => "OFF (insecure)",
                Err(_) => "unknown",
            };
            println!("  encryption {encryption}; attestation: dev (INSECURE, development only)");
            for (i, u) in urls.iter().enumerate() {
                println!(
                    "  worker-{i}  {u}  (log {}/worker-{i}/worker.log)",
                    data.display()
                );
            }
            let demo = if args.demo {
                let demo_ctx = Ctx {
                    endpoint: endpoint.clone(),
                    // The cluster this process just started.
                    accept_dev_attestation: true,
                    output: ctx.output,
                };
                run_demo(&args.contracts, &demo_ctx, &urls, !args.exit_after_demo).await
            } else {
                Ok(())
            };
            match (demo, args.exit_after_demo) {
                (Err(e), _) => Err(e),
                (Ok(()), true) => Ok(()),
                (Ok(()), false) => {
                    println!("ready; Ctrl-C stops the cluster");
                    (&mut shutdown).await;
                    Ok(())
                }
            }
        }
        Err(e) => Err(e),
    };
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    for s in supervisors {
        let _ = s.await;
    }
    let _ = gateway_server.await;
    if let Some(s) = ledger_server {
        let _ = s.await;
    }
    // The workers are stopped: the NATS server goes last.
    if let Some(server) = nats {
        server.stop().await;
    }
    eprintln!("stopped");
    result
}

/// Finds the examples: `dir`, else the source tree this binary was built from.
fn examples_dir(dir: &std::path::Path) -> PathBuf {
    if dir.join("erc20/Cargo.toml").exists() {
        return dir.to_path_buf();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

async fn run_demo(
    contracts: &std::path::Path,
    ctx: &Ctx,
    workers: &[String],
    serving: bool,
) -> Result<()> {
    let step = |n: u32, s: &str| println!("\n[demo {n}/5] {s}");
    step(1, "building contracts/erc20 (wasm + metadata)");
    let manifest = examples_dir(contracts).join("erc20/Cargo.toml");
    let artifacts = tokio::task::spawn_blocking(move || {
        phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |p| {
            println!("  [{}/{}] {}", p.step, p.of, p.message)
        })
    })
    .await??;
    let bundle = artifacts
        .bundle
        .context("the build produced no .contract bundle")?;
    let contract = Contract::load(&bundle)?;
    let wasm = contract.wasm().context("no wasm in the bundle")?.to_vec();
    let mut metadata: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle)?)?;
    if let Some(src) = metadata.get_mut("source").and_then(|s| s.as_object_mut()) {
        src.remove("wasm");
    }
    println!(
        "  {} ({} bytes, code {})",
        bundle.display(),
        wasm.len(),
        artifacts.code_hash
    );

    step(2, "deploying erc20 with a supply of 1,000,000 as //Alice");
    let client = ctx.client()?;
    let alice = Signer::from_suri("//Alice")?;
    let bob = Signer::from_suri("//Bob")?;
    let salt = format!("demo {:?}", std::time::SystemTime::now()).into_bytes();
    let d = deploy_code(
        &client,
        &alice,
        DeployRequest {
            contract: Some(&contract),
            wasm,
            metadata: Some(&metadata),
            constructor: "new",
            args: &["1000000".to_string()],
            salt,
            value: 0,
        },
    )
    .await?;
    println!(
        "  contract {}  (seq {}, gas {})",
        d.id, d.receipt.seq, d.receipt.gas_used
    );

    step(3, "command: transfer 2,500 from //Alice to //Bob");
    let data =
        contract.encode_message("transfer", &[bob.account().to_hex(), "2500".to_string()])?;
    let sub = client
        .submit(&alice, phat_client::call(d.id, data), true)
        .await?;
    let receipt = sub.receipt.context("no receipt")?;
    let out = match &receipt.result {
        phat_client::primitives::protocol::CallResult::Ok(o) => o,
        phat_client::primitives::protocol::CallResult::Err(e) => {
            bail!("transfer failed: {}: {}", e.kind, e.message)
        }
        phat_client::primitives::protocol::CallResult::Sealed(_) => {
            bail!("transfer result sealed to another key")
        }
    };
    println!(
        "  seq {}  gas {}  result {}  events {}",
        receipt.seq,
        receipt.gas_used,
        contract.decode_return("transfer", &out.data)?,
        receipt.events.len()
    );
    for e in &receipt.events {
        let topics: Vec<[u8; 32]> = e.topics.iter().map(|t| t.0).collect();
        if let Some(text) = contract.decode_event(&topics, &e.data) {
            println!("  event {text}");
        }
    }

    step(4, "queries: balances, asked of each worker directly");
    for url in workers {
        let w = Client::new(url)?;
        let mut line = format!("  {url}:");
        for (name, who) in [("alice", &alice), ("bob", &bob)] {
            let data = contract.encode_message("balance_of", &[who.account().to_hex()])?;
            let r = w
                .query(&alice, phat_client::call(d.id, data), Some(receipt.seq))
                .await?;
            let text = match &r.result {
                phat_client::primitives::protocol::CallResult::Ok(o) => {
                    contract.decode_return("balance_of", &o.data)?
                }
                phat_client::primitives::protocol::CallResult::Err(e) => e.message.clone(),
                phat_client::primitives::protocol::CallResult::Sealed(_) => "(sealed)".into(),
            };
            line.push_str(&format!("  {name}={text}"));
        }
        println!("{line}");
    }

    step(5, "state roots after the same commands");
    let mut roots = Vec::new();
    for url in workers {
        let i = Client::new(url)?.info().await?;
        println!("  {}  seq {}  root {}", i.name, i.seq, i.state_root);
        roots.push((i.seq, i.state_root));
    }
    roots.dedup();
    if roots.len() == 1 {
        println!("  all workers agree");
    } else {
        println!("  workers are at different points (still applying?)");
    }
    for line in demo_hints(&d.id, &bob.account(), &ctx.endpoint, serving) {
        println!("{line}");
    }
    Ok(())
}

/// What to try after the demo, as commands that work as printed.
fn demo_hints(
    id: &phat_client::primitives::AccountId,
    bob: &phat_client::primitives::AccountId,
    endpoint: &str,
    serving: bool,
) -> Vec<String> {
    let endpoint = if endpoint == crate::DEFAULT_ENDPOINT {
        String::new()
    } else {
        format!(" --endpoint {endpoint}")
    };
    let mut out = vec![String::new()];
    if !serving {
        out.push(
            "the cluster stops now; `phat dev` (same --data and --port) starts it again as it was"
                .into(),
        );
    }
    out.push(
        "try (`phat` is `cargo run -p phat-cli --` until `cargo install --path crates/cli --locked`):"
            .into(),
    );
    let bob = bob.to_hex();
    out.push(format!("  phat query {id} balance_of {bob}{endpoint}"));
    out.push(format!(
        "  phat tx    {id} transfer {bob} 100 --suri //Alice{endpoint}"
    ));
    out.push(format!("  phat logs  {id}{endpoint}"));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sync_intervals_parse() {
        for ok in ["always", "default", "500ms", "30s", "2m", "1h"] {
            assert_eq!(super::parse_sync_interval(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "ms", "2", "soon", "2 m", "-1s", "always;"] {
            assert!(super::parse_sync_interval(bad).is_err(), "{bad}");
        }
    }
}
