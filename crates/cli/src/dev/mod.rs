//! `phat dev`: a local cluster (a ledger, N worker processes and one endpoint) started in
//! named steps: plan the ports, open the ledger and write a new cluster's genesis, serve the
//! ledger, start the workers and the gateway, wait for them, print where everything is, run
//! the demo if asked, and stop it all on Ctrl-C.
//!
//! The steps live in `ledger` (the ledger and genesis), `workers` (the supervised worker
//! processes), `nats` (the local `nats-server`s of `--ledger nats`) and `demo` (`--demo`).

mod demo;
mod ledger;
mod nats;
mod workers;

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use phat_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::ledger::{LedgerAccess, OpenLedger};
use self::nats::{DevNats, DEV_NATS_USER};
use self::workers::{WorkerPlan, Workers};
use crate::commands::Ctx;
use crate::gateway::Gateway;
use crate::genesis::{stored_genesis_digest, Deploy, DEV_BALANCE};
use crate::process::{init_tracing, local, shutdown_signal};
use crate::worker::ReplicaArgs;

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

/// The ports `phat dev` takes: the endpoint, the ledger on the next one, the workers on the
/// ones after, then further NATS nodes' client and route ports.
pub(super) struct Ports {
    /// The ledger's port (the endpoint's plus one).
    pub ledger: u16,
    /// The port after the last worker's, as a wide number.
    pub workers_end: usize,
    /// The last port taken.
    pub last: usize,
}

impl Ports {
    /// Checks the worker and node counts and that the ports fit below 65536.
    fn plan(args: &DevArgs) -> Result<Self> {
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
        Ok(Self {
            ledger: args.port + 1,
            workers_end,
            last: last_port,
        })
    }
}

/// Resolves once `stop` turns true (the servers' graceful shutdown).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `phat dev`.
pub async fn dev(args: DevArgs, ctx: &Ctx) -> Result<()> {
    init_tracing();
    let ports = Ports::plan(&args)?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let data = std::fs::canonicalize(&args.data)?;
    let OpenLedger {
        ledger: cluster_ledger,
        http_token,
        nats,
    } = ledger::open(&args, &data, &ports).await?;
    let head = cluster_ledger.head().await?;
    let dev_root = data.join("dev-attestation-root.key");
    ledger::write_genesis(&args, &*cluster_ledger, head, &dev_root).await?;
    // Its workers serve this genesis and no other.
    let genesis_pin = stored_genesis_digest(&*cluster_ledger).await?;
    let ledger_listener = match &http_token {
        Some(_) => Some(
            tokio::net::TcpListener::bind(local(ports.ledger))
                .await
                .with_context(|| format!("binding the ledger port {}", ports.ledger))?,
        ),
        None => None,
    };
    let endpoint_listener = tokio::net::TcpListener::bind(local(args.port))
        .await
        .with_context(|| format!("binding the endpoint port {}", args.port))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let ledger_server = ledger::serve(ledger_listener, cluster_ledger, &http_token, &stop_rx);
    let access = LedgerAccess::new(&http_token, &nats, ports.ledger)?;
    let plan = WorkerPlan {
        data: &data,
        access: &access,
        dev_root: &dev_root,
        genesis_pin,
        ports: &ports,
    };
    let Workers { urls, supervisors } = workers::spawn(&args, &plan, &stop_rx)?;
    let gateway = Gateway::new(urls.clone(), 2 << 20).cors_origins(args.cors_origins.clone());
    let gateway_server = tokio::spawn(
        axum::serve(endpoint_listener, gateway.clone().router())
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    // One listener for the whole run: a signal that arrives while the banner prints (after
    // `ready`, before the wait below) is kept, not lost between two listeners.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let ready = tokio::select! {
        r = wait_ready(&urls, &gateway) => r,
        _ = &mut shutdown => Err(anyhow::anyhow!("interrupted")),
    };
    let result = match ready {
        Ok(()) => {
            let endpoint = format!("http://127.0.0.1:{}", args.port);
            print_banner(&Banner {
                args: &args,
                data: &data,
                endpoint: &endpoint,
                head,
                ledger_port: ports.ledger,
                http_token: http_token.as_ref().map(|(_, path)| path.as_path()),
                nats: nats.as_ref(),
                urls: &urls,
            })
            .await?;
            demo_then_serve(&args, ctx, endpoint, &urls, shutdown.as_mut()).await
        }
        Err(e) => Err(e),
    };
    stop(
        stop_tx,
        Running {
            supervisors,
            gateway_server,
            ledger_server,
            nats,
        },
    )
    .await;
    result
}

/// Waits until every worker answers, then has the gateway learn their keys.
async fn wait_ready(urls: &[String], gateway: &Gateway) -> Result<()> {
    for u in urls {
        workers::wait_ready(u, Duration::from_secs(60)).await?;
    }
    // Every worker's key is known before the endpoint is announced: sealed queries reach
    // their worker on the first try.
    gateway.learn_keys().await;
    anyhow::Ok(())
}

/// What the banner of a started `phat dev` shows.
struct Banner<'a> {
    args: &'a DevArgs,
    data: &'a Path,
    endpoint: &'a str,
    /// The ledger's head when it was opened.
    head: u64,
    ledger_port: u16,
    /// The embedded ledger's token file (`None` on NATS).
    http_token: Option<&'a Path>,
    nats: Option<&'a DevNats>,
    urls: &'a [String],
}

/// Prints where the endpoint, console, ledger, accounts and workers are, and whether the
/// cluster encrypts (asked of the first worker).
async fn print_banner(b: &Banner<'_>) -> Result<()> {
    let (args, data, endpoint, head, ledger_port) =
        (b.args, b.data, b.endpoint, b.head, b.ledger_port);
    println!(
        "phat dev: {} workers, data in {}",
        args.workers,
        data.display()
    );
    println!("  endpoint  {endpoint}");
    println!("  console   {endpoint}/console  (open it in a browser)");
    match (b.http_token, b.nats) {
        (Some(path), _) => println!(
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
    println!(
        "  accounts  //Alice //Bob //Charlie //Dave //Eve //Ferdie (funded with {DEV_BALANCE})"
    );
    let encryption = match Client::new(&b.urls[0])?.info().await {
        Ok(i) if i.encryption => "on (commands, queries, state)",
        Ok(_) => "OFF (insecure)",
        Err(_) => "unknown",
    };
    println!("  encryption {encryption}; attestation: dev (INSECURE, development only)");
    for (i, u) in b.urls.iter().enumerate() {
        println!(
            "  worker-{i}  {u}  (log {}/worker-{i}/worker.log)",
            data.display()
        );
    }
    Ok(())
}

/// Runs the demo when asked, then (unless `--exit-after-demo`) serves until `shutdown`.
async fn demo_then_serve(
    args: &DevArgs,
    ctx: &Ctx,
    endpoint: String,
    urls: &[String],
    shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<()> {
    let demo = if args.demo {
        let demo_ctx = Ctx {
            endpoint,
            // The cluster this process just started.
            accept_dev_attestation: true,
            output: ctx.output,
        };
        demo::run_demo(&args.contracts, &demo_ctx, urls, !args.exit_after_demo).await
    } else {
        Ok(())
    };
    match (demo, args.exit_after_demo) {
        (Err(e), _) => Err(e),
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => {
            println!("ready; Ctrl-C stops the cluster");
            shutdown.await;
            Ok(())
        }
    }
}

/// What runs until `phat dev` stops.
struct Running {
    supervisors: Vec<JoinHandle<()>>,
    gateway_server: JoinHandle<std::io::Result<()>>,
    ledger_server: Option<JoinHandle<std::io::Result<()>>>,
    nats: Option<DevNats>,
}

/// Stops the workers, the endpoint and the ledger server, then the NATS servers.
async fn stop(stop_tx: watch::Sender<bool>, running: Running) {
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    for s in running.supervisors {
        let _ = s.await;
    }
    let _ = running.gateway_server.await;
    if let Some(s) = running.ledger_server {
        let _ = s.await;
    }
    // The workers are stopped: the NATS server goes last.
    if let Some(server) = running.nats {
        server.stop().await;
    }
    eprintln!("stopped");
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
