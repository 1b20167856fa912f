//! `phat dev`'s workers: each a `phat worker` child process, restarted when it dies, until
//! the cluster stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use phat_client::primitives::Hash;
use phat_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ledger::LedgerAccess;
use super::{DevArgs, Ports};

/// What every worker of `phat dev` is started with besides its own directory and port.
pub(super) struct WorkerPlan<'a> {
    /// The cluster's data directory (each worker gets `worker-I` in it).
    pub data: &'a Path,
    /// How workers reach the ledger.
    pub access: &'a LedgerAccess,
    /// The dev attestation root's secret file.
    pub dev_root: &'a Path,
    /// The genesis the workers serve, once the ledger holds one.
    pub genesis_pin: Option<Hash>,
    /// The ports taken (the workers deny contracts every one of them).
    pub ports: &'a Ports,
}

/// The workers started: their API URLs and their supervisors.
pub(super) struct Workers {
    /// Each worker's API, in order.
    pub urls: Vec<String>,
    /// The task supervising each worker.
    pub supervisors: Vec<JoinHandle<()>>,
}

/// Starts `args.workers` workers as supervised child processes, until `stop`.
pub(super) fn spawn(
    args: &DevArgs,
    plan: &WorkerPlan<'_>,
    stop: &watch::Receiver<bool>,
) -> Result<Workers> {
    let mut urls = Vec::new();
    let mut supervisors = Vec::new();
    for i in 0..args.workers {
        let port = args.port + 2 + i as u16;
        let dir = plan.data.join(format!("worker-{i}"));
        std::fs::create_dir_all(&dir)?;
        urls.push(format!("http://127.0.0.1:{port}"));
        supervisors.push(tokio::spawn(supervise(
            i,
            worker_args(args, plan, i, &dir, port),
            plan.access.env.clone(),
            dir.join("worker.log"),
            stop.clone(),
        )));
    }
    Ok(Workers { urls, supervisors })
}

/// The `phat worker` command line of worker `i` (data in `dir`, API on `port`).
fn worker_args(
    args: &DevArgs,
    plan: &WorkerPlan<'_>,
    i: usize,
    dir: &Path,
    port: u16,
) -> Vec<String> {
    let mut wargs = vec!["worker".to_string()];
    wargs.extend(plan.access.args.iter().cloned());
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
        plan.dev_root.display().to_string(),
        "--exit-with-parent".into(),
    ]);
    wargs.extend(args.replica.to_args());
    wargs.extend(["--signer-rate".into(), args.signer_rate.to_string()]);
    if let Some(pin) = plan.genesis_pin {
        wargs.extend(["--genesis".into(), pin.to_string()]);
    }
    for o in &args.cors_origins {
        wargs.extend(["--cors-origin".into(), o.clone()]);
    }
    // The endpoint, the ledger and every worker are off limits to contracts.
    for p in args.port as usize..=plan.ports.last {
        wargs.extend(["--deny-egress".into(), format!("127.0.0.1:{p}")]);
    }
    wargs
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
pub(super) async fn wait_ready(url: &str, timeout: Duration) -> Result<()> {
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
pub(super) async fn stop_child(child: &mut tokio::process::Child) {
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
