//! `phat worker`: one worker following a cluster's ledger, with its egress, admission,
//! attestation and replica settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use phat_worker::{Worker, WorkerConfig};

use crate::ledger::LedgerConnArgs;
use crate::process::{exit_with_parent, init_tracing, local, shutdown_signal};

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
    pub(crate) fn to_args(&self) -> Vec<String> {
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
