//! `phat ledger` (an embedded ledger served over HTTP with a bearer token), and how the other
//! commands reach a cluster's ledger ([`LedgerConnArgs`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use phat_worker::ledger::http::{LedgerToken, RemoteLedger, TOKEN_FILE};
use phat_worker::ledger::{EmbeddedLedger, Ledger, LedgerConfig};

use crate::genesis::GenesisOptions;
use crate::process::{init_tracing, local, shutdown_signal};

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
    pub(crate) async fn connect(&self) -> Result<Arc<dyn Ledger>> {
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

/// Reads the ledger token in `data`, creating it (mode 0600) on first start.
pub(crate) fn ledger_token(data: &std::path::Path) -> Result<(LedgerToken, PathBuf)> {
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
