//! The cluster under test: three NATS hosts, three worker hosts and a client host, each a
//! namespace; a proxy per service in every host; the processes and what is done to them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use phat_ledger::{JetStreamConfig, JetStreamLedger};
use tokio::process::{Child, Command};

use crate::net::{self, Net};
use crate::proxy::{self, Links};

/// NATS nodes, as host indices 0..NATS.
pub const NATS: usize = 3;
/// Workers, as host indices NATS..NATS + WORKERS.
pub const WORKERS: usize = 3;
/// The client host's index.
pub const CLIENT: usize = NATS + WORKERS;
/// NATS client port in every NATS host.
const NATS_PORT: u16 = 4222;
/// NATS route port in every NATS host.
const ROUTE_PORT: u16 = 6222;
/// A worker's HTTP port in its host.
const WORKER_PORT: u16 = 8000;
/// libfaketime, from Debian's `faketime` package.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Host names, by index.
pub const HOSTS: [&str; NATS + WORKERS + 1] = ["n1", "n2", "n3", "w1", "w2", "w3", "client"];

/// A process in a host, restartable.
pub struct Proc {
    /// Its host's name.
    pub name: String,
    ns: String,
    program: PathBuf,
    args: Vec<String>,
    /// Environment added to the process's.
    pub env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// True while stopped with SIGSTOP.
    pub paused: bool,
}

impl Proc {
    fn start(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", self.name))?,
        );
        self.paused = false;
        Ok(())
    }

    fn pid(&self) -> Option<nix::unistd::Pid> {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .map(|p| nix::unistd::Pid::from_raw(p as i32))
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.paused = false;
    }

    /// Kills (SIGKILL) and starts again.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9().await;
        self.start()
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, stop: bool) -> Result<()> {
        let pid = self.pid().context("the process is not running")?;
        let sig = if stop {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(pid, sig)?;
        self.paused = stop;
        Ok(())
    }

    /// Sets the clock skew the next start runs with (libfaketime; `0`: the real clock).
    pub fn set_skew(&mut self, seconds: i64) {
        self.env
            .retain(|(k, _)| !k.starts_with("FAKETIME") && k != "LD_PRELOAD");
        if seconds != 0 {
            self.env.extend([
                ("LD_PRELOAD".into(), FAKETIME_LIB.into()),
                ("FAKETIME".into(), format!("{seconds:+}s")),
                // Timers and timeouts keep real time; only the wall clock is wrong.
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ]);
        }
    }
}

/// The cluster and its hosts.
pub struct Cluster {
    /// The hosts (dropped last: it kills what is left in them).
    pub net: Net,
    /// The link table every proxy obeys.
    pub links: Links,
    /// NATS servers, by index.
    pub nats: Vec<Proc>,
    /// Workers, by index (host index `NATS + i`).
    pub workers: Vec<Proc>,
    /// Where logs and data live.
    pub dir: PathBuf,
    /// The `phat` binary.
    pub phat: PathBuf,
    ledger_url: String,
    stop_proxies: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Lays out the hosts and moves the calling thread into the client host. Call it before the
/// async runtime starts: every thread started afterwards is a client of the cluster.
pub fn lay_out() -> Result<Net> {
    let net = Net::create(&HOSTS)?;
    net::enter(&net.hosts[CLIENT].ns)?;
    Ok(net)
}

fn nats_conf(dir: &Path, i: usize, addrs: &[Ipv4Addr]) -> String {
    let routes: Vec<String> = addrs[..NATS]
        .iter()
        .map(|a| format!("nats-route://{a}:{ROUTE_PORT}"))
        .collect();
    format!(
        "server_name: {name}\nlisten: 127.0.0.1:{NATS_PORT}\nmax_payload: 2MB\n\
         jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
         cluster {{\n  name: chaos\n  listen: 127.0.0.1:{ROUTE_PORT}\n  \
         advertise: \"{addr}:{ROUTE_PORT}\"\n  no_advertise: true\n  routes: [ {routes} ]\n}}\n",
        name = HOSTS[i],
        store = dir.join(HOSTS[i]).join("js").display(),
        addr = addrs[i],
        routes = routes.join(", "),
    )
}

impl Cluster {
    /// Starts the proxies, NATS, the genesis and the workers; answers once every worker
    /// serves.
    pub async fn start(net: Net, dir: &Path, phat: &Path) -> Result<Cluster> {
        let addrs: Arc<Vec<Ipv4Addr>> = Arc::new(net.hosts.iter().map(|h| h.addr).collect());
        let links = Links::default();
        let mut stop_proxies = Vec::new();
        for (i, host) in net.hosts.iter().enumerate().take(CLIENT) {
            let ports: Vec<u16> = if i < NATS {
                vec![NATS_PORT, ROUTE_PORT]
            } else {
                vec![WORKER_PORT]
            };
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stop_proxies.push(tx);
            let (ns, links, addrs, addr) =
                (host.ns.clone(), links.clone(), addrs.clone(), host.addr);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("proxy-{}", host.name))
                .spawn(move || {
                    let rt = match net::enter(&ns).and_then(|()| {
                        Ok(tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?)
                    }) {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        for port in ports {
                            let (links, addrs) = (links.clone(), addrs.clone());
                            tokio::spawn(async move {
                                if let Err(e) = proxy::serve(links, addrs, i, addr, port).await {
                                    eprintln!("chaos: proxy {addr}:{port}: {e}");
                                }
                            });
                        }
                        let _ = ready_tx.send(Ok(()));
                        let _ = rx.await;
                    });
                })?;
            ready_rx.recv().context("a proxy thread died")??;
        }
        std::fs::create_dir_all(dir)?;
        let mut nats = Vec::new();
        for (i, host) in net.hosts.iter().enumerate().take(NATS) {
            let conf = dir.join(format!("{}.conf", host.name));
            std::fs::create_dir_all(dir.join(&host.name))?;
            std::fs::write(&conf, nats_conf(dir, i, &addrs))?;
            let mut p = Proc {
                name: host.name.clone(),
                ns: host.ns.clone(),
                program: "nats-server".into(),
                args: vec!["-c".into(), conf.display().to_string()],
                env: Vec::new(),
                log: dir.join(format!("{}.log", host.name)),
                child: None,
                paused: false,
            };
            p.start()?;
            nats.push(p);
        }
        let ledger_url = addrs[..NATS]
            .iter()
            .map(|a| format!("nats://{a}:{NATS_PORT}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            net,
            links,
            nats,
            workers: Vec::new(),
            dir: dir.to_path_buf(),
            phat: phat.to_path_buf(),
            ledger_url,
            stop_proxies,
        };
        let pin = cluster.genesis().await?;
        for i in 0..WORKERS {
            let host = &cluster.net.hosts[NATS + i];
            let data = dir.join(&host.name);
            std::fs::create_dir_all(&data)?;
            let mut p = Proc {
                name: host.name.clone(),
                ns: host.ns.clone(),
                program: phat.to_path_buf(),
                args: vec![
                    "worker".into(),
                    "--ledger".into(),
                    cluster.ledger_url.clone(),
                    "--nats-replicas".into(),
                    NATS.to_string(),
                    "--data".into(),
                    data.display().to_string(),
                    "--port".into(),
                    WORKER_PORT.to_string(),
                    "--name".into(),
                    host.name.clone(),
                    "--dev-attestation-root".into(),
                    dir.join("root.key").display().to_string(),
                    "--genesis".into(),
                    pin.clone(),
                    "--checkpoint-every".into(),
                    "50".into(),
                    "--snapshot-every".into(),
                    "500".into(),
                ],
                env: vec![("RUST_LOG".into(), "info".into())],
                log: dir.join(format!("{}.log", host.name)),
                child: None,
                paused: false,
            };
            p.start()?;
            cluster.workers.push(p);
        }
        for i in 0..WORKERS {
            cluster.wait_worker(i, Duration::from_secs(90)).await?;
        }
        Ok(cluster)
    }

    /// Writes the genesis (retrying while NATS elects its first leaders); answers its digest.
    async fn genesis(&self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.phat)
                .args([
                    "genesis",
                    "--ledger",
                    &self.ledger_url,
                    "--nats-replicas",
                    &NATS.to_string(),
                    "--fund-dev-accounts",
                    "--dev-attestation-root",
                ])
                .arg(self.dir.join("root.key"))
                .output()
                .await?;
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                let pin = text
                    .split_whitespace()
                    .skip_while(|w| *w != "genesis")
                    .nth(1)
                    .context("no digest in `phat genesis`'s answer")?;
                return Ok(pin.to_string());
            }
            if Instant::now() > deadline {
                bail!("phat genesis: {text}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Worker `i`'s endpoint, as clients reach it.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{WORKER_PORT}", self.net.hosts[NATS + i].addr)
    }

    /// Waits until worker `i` answers `/v1/info`.
    pub async fn wait_worker(&self, i: usize, timeout: Duration) -> Result<()> {
        let client = phat_client::Client::new(&self.url(i))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), client.trusted_info()).await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "worker {} did not come up; its log is {}",
                    self.workers[i].name,
                    self.dir
                        .join(format!("{}.log", self.workers[i].name))
                        .display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A connection to the ledger, from the client host.
    pub async fn ledger(&self) -> Result<JetStreamLedger> {
        let mut config = JetStreamConfig::new(&self.ledger_url, "phat");
        config.replicas = NATS;
        Ok(JetStreamLedger::connect(config).await?)
    }

    /// The index of the NATS node leading the log stream, if one does.
    pub async fn leader(&self, ledger: &JetStreamLedger) -> Option<usize> {
        let name = tokio::time::timeout(Duration::from_secs(5), ledger.log_leader())
            .await
            .ok()?
            .ok()??;
        HOSTS[..NATS].iter().position(|h| *h == name)
    }

    /// Stops every process and proxy.
    pub async fn stop(mut self) {
        for p in self.workers.iter_mut().chain(self.nats.iter_mut()) {
            if p.paused {
                let _ = p.pause(false);
            }
            p.kill9().await;
        }
        for s in self.stop_proxies.drain(..) {
            let _ = s.send(());
        }
    }
}
