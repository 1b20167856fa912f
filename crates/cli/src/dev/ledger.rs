//! `phat dev`'s ledger: opening it (embedded, or local `nats-server`s), writing a new
//! cluster's genesis, serving the embedded one over HTTP, and telling workers how to reach it.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use phat_worker::ledger::http::LedgerToken;
use phat_worker::ledger::{EmbeddedLedger, Ledger, LedgerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::nats::{DevNats, DEV_NATS_USER};
use super::{stopped, DevArgs, DevLedger, Ports};
use crate::genesis::{dev_balances, parse_account, parse_limits};
use crate::ledger::ledger_token;

/// The ledger `phat dev` opened, and what serves it.
pub(super) struct OpenLedger {
    /// The ledger itself.
    pub ledger: Arc<dyn Ledger>,
    /// The embedded ledger's bearer token and the file holding it (`None` on NATS).
    pub http_token: Option<(LedgerToken, PathBuf)>,
    /// The local `nats-server`s (`None` on the embedded ledger).
    pub nats: Option<DevNats>,
}

/// Opens the ledger `args.ledger` names in `data`. The embedded ledger is served over HTTP with
/// a bearer token; the NATS one by its server.
pub(super) async fn open(args: &DevArgs, data: &Path, ports: &Ports) -> Result<OpenLedger> {
    let mut http_token = None;
    let mut nats = None;
    let ledger: Arc<dyn Ledger> = match args.ledger {
        DevLedger::Embedded => {
            http_token = Some(ledger_token(data)?);
            Arc::new(
                EmbeddedLedger::open(&data.join("ledger.redb"), LedgerConfig::default())
                    .context("opening the ledger")?,
            )
        }
        DevLedger::Nats => {
            let n = args.nats_nodes;
            let first_extra = ports.workers_end as u16 + 1;
            let mut clients = vec![ports.ledger];
            clients.extend((0..n as u16 - 1).map(|i| first_extra + i));
            let routes: Vec<u16> = if n > 1 {
                (0..n as u16)
                    .map(|i| first_extra + n as u16 - 1 + i)
                    .collect()
            } else {
                Vec::new()
            };
            let server = DevNats::start(data, &clients, &routes, &args.nats_sync).await?;
            let ledger = server.ledger().await?;
            nats = Some(server);
            Arc::new(ledger)
        }
    };
    Ok(OpenLedger {
        ledger,
        http_token,
        nats,
    })
}

/// Writes a fresh cluster's genesis (`head` 0 and none stored yet): the dev accounts funded,
/// the dev attestation root at `dev_root` pinned (created if missing, whether or not the
/// cluster is new).
pub(super) async fn write_genesis(
    args: &DevArgs,
    ledger: &dyn Ledger,
    head: u64,
    dev_root: &Path,
) -> Result<()> {
    // Every worker signs its (insecure, dev) attestation with this root; the genesis pins it.
    let dev_root_public = phat_worker::dev_root_public(dev_root)?;
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
    Ok(())
}

/// Serves the embedded ledger on `listener` until `stop` (nothing to serve on NATS: the
/// ledger handle is dropped).
pub(super) fn serve(
    listener: Option<tokio::net::TcpListener>,
    ledger: Arc<dyn Ledger>,
    http_token: &Option<(LedgerToken, PathBuf)>,
    stop: &watch::Receiver<bool>,
) -> Option<JoinHandle<std::io::Result<()>>> {
    match (listener, http_token) {
        (Some(listener), Some((token, _))) => Some(tokio::spawn(
            axum::serve(
                listener,
                phat_worker::ledger::http::router(ledger, token.clone()),
            )
            .with_graceful_shutdown(stopped(stop.clone()))
            .into_future(),
        )),
        _ => {
            drop(ledger);
            None
        }
    }
}

/// How workers reach the ledger: the flags and environment each `phat worker` gets.
pub(super) struct LedgerAccess {
    /// Flags of `phat worker`.
    pub args: Vec<String>,
    /// Extra environment (secrets stay off the command line).
    pub env: Vec<(String, String)>,
}

impl LedgerAccess {
    /// The access to the HTTP ledger on `ledger_port` (with its token) or to the NATS servers.
    pub(super) fn new(
        http_token: &Option<(LedgerToken, PathBuf)>,
        nats: &Option<DevNats>,
        ledger_port: u16,
    ) -> Result<Self> {
        let (args, env) = match (http_token, nats) {
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
        Ok(Self { args, env })
    }
}
