//! The local `nats-server`s of `phat dev --ledger nats`: one node (R1), or with
//! `--nats-nodes 3` three nodes on 127.0.0.1 joined by routes, whose streams have 3 replicas.
//!
//! Each node's JetStream store, config, pid file and log live in the data directory (one node:
//! `nats/`, `nats.conf`, `nats.pid`, `nats.log`; several: `nats/node-I/`, `nats-I.conf`, …).
//! One user `phat` has a random password created once (`nats.password`, mode 0600; configs are
//! 0600 too). `phat dev` restarts a node that exits (a crash test's `kill -9`), stops servers a
//! killed `phat dev` left behind, and stops its own on exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use phat_worker::ledger::http::LedgerToken;
use tokio::sync::watch;

use super::workers::stop_child;

/// The NATS user `phat dev --ledger nats` creates for its workers.
pub const DEV_NATS_USER: &str = "phat";

/// The nodes of a running dev NATS cluster.
pub struct DevNats {
    /// Every node's client URL, comma-separated (what workers are given).
    pub url: String,
    /// The password of [`DEV_NATS_USER`].
    pub password: String,
    /// Replicas of the cluster's streams (the node count).
    pub replicas: usize,
    stop: watch::Sender<bool>,
    nodes: Vec<tokio::task::JoinHandle<()>>,
}

/// Where one node keeps its files.
struct NodeFiles {
    conf: PathBuf,
    pid: PathBuf,
    log: PathBuf,
    store: PathBuf,
}

fn node_files(data: &Path, i: usize, n: usize) -> NodeFiles {
    if n == 1 {
        NodeFiles {
            conf: data.join("nats.conf"),
            pid: data.join("nats.pid"),
            log: data.join("nats.log"),
            store: data.join("nats"),
        }
    } else {
        NodeFiles {
            conf: data.join(format!("nats-{i}.conf")),
            pid: data.join(format!("nats-{i}.pid")),
            log: data.join(format!("nats-{i}.log")),
            store: data.join("nats").join(format!("node-{i}")),
        }
    }
}

/// `nats-server` on the PATH, if any.
fn find_nats_server() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    })
}

/// Installs Debian's `nats-server` with apt-get when running as root (as `phat build` does
/// with the contract toolchain); otherwise says how to.
fn install_nats_server() -> Result<PathBuf> {
    let how = "--ledger nats needs nats-server on the PATH: `apt-get install nats-server` (or run scripts/setup)";
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        bail!("{how}");
    }
    eprintln!("nats-server is not installed: installing Debian's package with apt-get…");
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "-q", "nats-server"][..],
    ] {
        let status = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status}); {how}", args.join(" "));
        }
    }
    find_nats_server().context(how)
}

/// Stops the `nats-server` recorded in `pid_path` if it still runs with `conf` (a pid alone
/// may have been reused by another process since).
async fn stop_stale_server(pid_path: &Path, conf: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_path)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return;
    };
    let ours = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|b| *b == 0)
                    .any(|arg| arg == conf.as_os_str().as_encoded_bytes())
            })
            .unwrap_or(false)
    };
    if !ours(pid) {
        return;
    }
    eprintln!("stopping the nats-server (pid {pid}) a killed `phat dev` left running");
    let target = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..50 {
        if !ours(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Writes `text` to `path` with mode 0600 exactly ([`phat_secret_file::replace`]).
fn write_private(path: &Path, text: &str) -> Result<()> {
    phat_secret_file::replace(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Starts `bin -c conf` with output appended to `log`, recording its pid.
fn spawn_node(bin: &Path, files: &NodeFiles) -> Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("opening {}", files.log.display()))?;
    let child = tokio::process::Command::new(bin)
        .arg("-c")
        .arg(&files.conf)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    if let Some(pid) = child.id() {
        std::fs::write(&files.pid, pid.to_string())
            .with_context(|| format!("writing {}", files.pid.display()))?;
    }
    Ok(child)
}

/// Keeps node `i` running until `stop`: restarts it when it exits, then stops it (SIGTERM,
/// SIGKILL after 10 s).
async fn supervise_node(
    i: usize,
    bin: PathBuf,
    files: NodeFiles,
    mut child: tokio::process::Child,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() {
                    return;
                }
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                eprintln!("nats-server node {i} exited ({status}); restarting (log: {})", files.log.display());
                tokio::time::sleep(Duration::from_millis(500)).await;
                match spawn_node(&bin, &files) {
                    Ok(c) => child = c,
                    Err(e) => {
                        eprintln!("nats-server node {i}: cannot restart: {e:#}");
                        return;
                    }
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                stop_child(&mut child).await;
                return;
            }
        }
    }
}

/// The `major.minor.patch` `bin --version` prints (`nats-server: v2.15.1`).
fn server_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit('v').next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The `jetstream` block's `sync_interval` line for `setting` (`always`, a duration such as
/// `2m`, or `default` for the server's own, two minutes), on a server of `version`. Servers
/// before 2.10 know no such field: they get none, with a warning when a sync was asked for.
fn sync_line(setting: &str, version: Option<(u32, u32, u32)>) -> String {
    if setting == "default" {
        return String::new();
    }
    match version {
        Some(v) if v >= (2, 10, 0) => format!("  sync_interval: {setting}\n"),
        _ => {
            eprintln!(
                "warning: this nats-server ({}) cannot be told to sync writes (`sync_interval` \
                 needs 2.10 or later; scripts/setup installs 2.15.1): an acknowledged command \
                 can be lost if every node loses power within two minutes of it",
                version.map_or("version unknown".into(), |(a, b, c)| format!("{a}.{b}.{c}"))
            );
            String::new()
        }
    }
}

impl DevNats {
    /// Starts one node per client port (`route_ports` join them when there are several) and
    /// waits until every node accepts connections. `sync` is the nodes' `sync_interval`
    /// (`always`: every write is on disk before it is acknowledged).
    pub async fn start(
        data: &Path,
        client_ports: &[u16],
        route_ports: &[u16],
        sync: &str,
    ) -> Result<Self> {
        let n = client_ports.len();
        if n == 0 || (n > 1 && route_ports.len() != n) {
            bail!("a dev NATS cluster needs a client port per node and, with several, a route port each");
        }
        let bin = match find_nats_server() {
            Some(bin) => bin,
            None => install_nats_server()?,
        };
        let sync = sync_line(sync, server_version(&bin));
        // The node count is fixed when the cluster is created: R1 streams do not become R3.
        let nodes_path = data.join("nats.nodes");
        match std::fs::read_to_string(&nodes_path) {
            Ok(text) if text.trim() != n.to_string() => bail!(
                "{} was created with --nats-nodes {}; use that, or a new --data directory",
                data.display(),
                text.trim()
            ),
            Ok(_) => {}
            Err(_) => std::fs::write(&nodes_path, n.to_string())
                .with_context(|| format!("writing {}", nodes_path.display()))?,
        }
        // A random password created once (mode 0600) and reused on restart.
        let password_path = data.join("nats.password");
        LedgerToken::load_or_create(&password_path)?;
        let password = std::fs::read_to_string(&password_path)
            .with_context(|| format!("reading {}", password_path.display()))?
            .trim()
            .to_string();
        if password.is_empty() || !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!(
                "{}: the NATS password must be letters and digits",
                password_path.display()
            );
        }
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let (stop, stop_rx) = watch::channel(false);
        let mut nodes = Vec::new();
        for (i, &port) in client_ports.iter().enumerate() {
            let files = node_files(data, i, n);
            std::fs::create_dir_all(&files.store)
                .with_context(|| format!("creating {}", files.store.display()))?;
            let store = files
                .store
                .to_str()
                .filter(|s| !s.contains(['"', '\\', '\n']))
                .with_context(|| {
                    format!(
                        "the data directory {} cannot be written in a NATS config",
                        data.display()
                    )
                })?;
            let cluster = if n > 1 {
                format!(
                    "cluster {{\n  name: \"phat-dev\"\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                    route_ports[i],
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let config = format!(
                r#"# Written by `phat dev --ledger nats` on every start.
listen: "127.0.0.1:{port}"
server_name: "phat-dev-{port}"
# Room for the ledger's 1 MiB payloads plus headers.
max_payload: 2MB
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
{sync}}}
{cluster}authorization {{
  users = [
    {{ user: {DEV_NATS_USER}, password: "{password}", permissions: {{ publish: ">", subscribe: ">" }} }}
  ]
}}
"#
            );
            write_private(&files.conf, &config)?;
            // A server left behind by a `phat dev` that was killed (SIGKILL leaves no time to
            // stop it) holds the port: stop it first.
            stop_stale_server(&files.pid, &files.conf).await;
            let mut child = spawn_node(&bin, &files)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "nats-server exited at start ({status}); see {}",
                        files.log.display()
                    );
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "nats-server did not listen on 127.0.0.1:{port}; see {}",
                        files.log.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            nodes.push(tokio::spawn(supervise_node(
                i,
                bin.clone(),
                files,
                child,
                stop_rx.clone(),
            )));
        }
        let url = client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            url,
            password,
            replicas: n,
            stop,
            nodes,
        })
    }

    /// Connects to the cluster's JetStream ledger as the dev user (retrying while a new
    /// cluster elects its JetStream leaders).
    pub async fn ledger(&self) -> Result<phat_worker::ledger::JetStreamLedger> {
        let mut config = phat_worker::ledger::JetStreamConfig::new(&self.url, "phat");
        config.user = Some(DEV_NATS_USER.into());
        config.password = Some(self.password.clone());
        config.replicas = self.replicas;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match phat_worker::ledger::JetStreamLedger::connect(config.clone()).await {
                Ok(ledger) => return Ok(ledger),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("the JetStream cluster is not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("connecting to the JetStream ledger at {}", self.url)
                    })
                }
            }
        }
    }

    /// Stops every node (SIGTERM, then SIGKILL after 10 s) and reaps them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for node in self.nodes {
            let _ = node.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_is_asked_of_servers_that_know_it() {
        let always = "  sync_interval: always\n";
        assert_eq!(sync_line("always", Some((2, 15, 1))), always);
        assert_eq!(sync_line("always", Some((2, 10, 0))), always);
        assert_eq!(sync_line("2m", Some((2, 11, 3))), "  sync_interval: 2m\n");
        // 2.9 refuses the field: nothing is written (and a warning is printed).
        assert_eq!(sync_line("always", Some((2, 9, 10))), "");
        assert_eq!(sync_line("always", None), "");
        assert_eq!(sync_line("default", Some((2, 15, 1))), "");
    }
}
