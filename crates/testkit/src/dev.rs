//! A `phat dev` cluster, its workers and its ledger, and waiting for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phat_client::primitives::protocol::{CallResult, LedgerCommand, WorkerInfo};
use phat_client::Client;
use phat_worker::ledger::http::{LedgerToken, RemoteLedger};
use phat_worker::ledger::Ledger;

use crate::{eventually, free_ports, ledger_token_file, poll_until, Proc};

/// Waits until the API at `url` answers `/v1/info`.
pub async fn wait_up(url: &str) {
    assert!(try_wait_up(url).await, "{url} did not come up");
}

/// Waits up to 60 s for the API at `url`; whether it answered.
pub async fn try_wait_up(url: &str) -> bool {
    let c = Client::new(url).unwrap();
    poll_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        async || c.info().await.is_ok(),
    )
    .await
    .is_some()
}

/// Waits until the worker at `url` applied `seq`; returns its info.
pub async fn wait_seq(url: &str, seq: u64) -> WorkerInfo {
    let c = Client::new(url).unwrap();
    eventually(
        format!("{url} to reach seq {seq}"),
        Duration::from_secs(120),
        Duration::from_millis(50),
        async || c.info().await.ok().filter(|i| i.seq >= seq),
    )
    .await
}

/// The state root of the worker at `url` right after `seq` (from its receipt, so it does not
/// move when later entries apply: a worker joining appends its own `Join`).
pub async fn root_at(url: &str, seq: u64) -> phat_client::primitives::Hash {
    wait_seq(url, seq).await;
    Client::new(url)
        .unwrap()
        .receipt(seq)
        .await
        .unwrap()
        .state_root
}

/// A `phat dev` cluster in a temporary directory.
pub struct Dev {
    /// The `phat dev` process.
    pub proc: Proc,
    /// Its temporary directory: the data (`data/`) and the logs.
    pub dir: tempfile::TempDir,
    /// The cluster's endpoint (`phat dev`'s gateway).
    pub endpoint: String,
    /// Each worker's API URL.
    pub workers: Vec<String>,
    /// The `phat dev` arguments, to start it again.
    pub args: Vec<String>,
}

impl Drop for Dev {
    /// SIGTERM first, so that `phat dev` stops its `nats-server`s too (a SIGKILL would leave
    /// them running), also when a test fails.
    fn drop(&mut self) {
        if let Ok(None) = self.proc.child.try_wait() {
            self.proc.terminate();
        }
    }
}

impl Dev {
    /// Starts `phat dev --workers n` and waits for every worker.
    pub async fn start(n: u16) -> Dev {
        Self::start_with(n, &[]).await
    }

    /// Like [`Dev::start`] with more `phat dev` arguments.
    pub async fn start_with(n: u16, extra: &[&str]) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        // `--nats-nodes K` takes 2K - 1 more ports after the workers'.
        let nodes: u16 = extra
            .iter()
            .position(|a| *a == "--nats-nodes")
            .and_then(|i| extra.get(i + 1))
            .and_then(|k| k.parse().ok())
            .unwrap_or(1);
        let base = free_ports(n + 2 + if nodes > 1 { 2 * nodes - 1 } else { 0 });
        let data = dir.path().join("data");
        let (n_text, base_text) = (n.to_string(), base.to_string());
        let mut args = vec![
            "dev",
            "--workers",
            &n_text,
            "--data",
            data.to_str().unwrap(),
            "--port",
            &base_text,
        ];
        args.extend_from_slice(extra);
        let proc = Proc::start("dev", &args, &dir.path().join("dev.log"));
        let endpoint = format!("http://127.0.0.1:{base}");
        let workers: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", base + 2 + i))
            .collect();
        let dev = Dev {
            proc,
            dir,
            endpoint,
            workers,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        dev.wait_all().await;
        dev
    }

    /// Waits for every worker and the endpoint; panics with the logs of one that does not
    /// come up.
    async fn wait_all(&self) {
        let data = self.data();
        for (i, w) in self.workers.iter().enumerate() {
            if !try_wait_up(w).await {
                let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
                panic!(
                    "{w} did not come up\n--- phat dev ---\n{}\n--- worker-{i} ---\n{}",
                    read(self.dir.path().join("dev.log")),
                    read(data.join(format!("worker-{i}/worker.log")))
                );
            }
        }
        wait_up(&self.endpoint).await;
    }

    /// Stops `phat dev` (SIGTERM: workers and servers with it).
    pub fn stop(&mut self) {
        assert!(self.proc.terminate(), "phat dev did not stop cleanly");
    }

    /// Starts `phat dev` again on the same data and ports, and waits for it.
    pub async fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.proc = Proc::start("dev", &args, &self.dir.path().join("dev-again.log"));
        self.wait_all().await;
    }

    /// Starts one more `phat worker` named `name` on this cluster's ledger (NATS with its
    /// password, or the HTTP ledger with its token) and dev root, on `port`, its data and log
    /// in the temporary directory.
    pub fn start_worker(&self, name: &str, port: u16, extra: &[&str]) -> Proc {
        self.start_worker_in(name, port, &self.dir.path().join(name), extra)
    }

    /// [`Dev::start_worker`] with its data in `dir`.
    pub fn start_worker_in(&self, name: &str, port: u16, dir: &Path, extra: &[&str]) -> Proc {
        let data = self.data();
        let base: u16 = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let ledger = match std::fs::read_to_string(data.join("nats.password")) {
            Ok(password) => vec![
                format!("nats://127.0.0.1:{}", base + 1),
                "--nats-user".into(),
                "phat".into(),
                "--nats-password".into(),
                password.trim().into(),
            ],
            Err(_) => vec![
                self.ledger(),
                "--ledger-token-file".into(),
                ledger_token_file(&data).to_str().unwrap().into(),
            ],
        };
        let root = data.join("dev-attestation-root.key");
        let port = port.to_string();
        let mut args = vec!["worker", "--ledger"];
        args.extend(ledger.iter().map(String::as_str));
        args.extend([
            "--data",
            dir.to_str().unwrap(),
            "--port",
            &port,
            "--name",
            name,
            "--dev-attestation-root",
            root.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        Proc::start(name, &args, &self.dir.path().join(format!("{name}.log")))
    }

    /// The cluster's data directory (ledger, workers, dev attestation root).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file holding the ledger's bearer token (`phat worker --ledger-token-file`).
    pub fn ledger_token_file(&self) -> PathBuf {
        ledger_token_file(&self.data())
    }

    /// The ledger's URL.
    pub fn ledger(&self) -> String {
        let port: u16 = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        format!("http://127.0.0.1:{}", port + 1)
    }

    /// Kills `worker-N` with SIGKILL (`phat dev` restarts it).
    pub fn kill_worker(&self, n: usize) {
        let pid = crate::worker_pid(&self.data().join(format!("worker-{n}")))
            .unwrap_or_else(|| panic!("no worker-{n} process"));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// The `phat dev` output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dev.log")).unwrap_or_default()
    }
}

/// `phat dev`'s embedded ledger, reached over its HTTP API with the cluster's bearer token
/// (what a stranger holding the token could append to).
pub fn dev_ledger(dev: &Dev) -> RemoteLedger {
    let token = LedgerToken::read(&ledger_token_file(&dev.data())).unwrap();
    RemoteLedger::with_token(&dev.ledger(), &token).unwrap()
}

/// Every ledger entry of `dev` so far, decoded.
pub async fn ledger_commands(ledger: &RemoteLedger) -> Vec<LedgerCommand> {
    let entries = Ledger::read(ledger, 1, 10_000, Duration::from_millis(100))
        .await
        .unwrap();
    entries
        .iter()
        .filter_map(|e| parity_scale_codec::Decode::decode(&mut &e.payload[..]).ok())
        .collect()
}

/// Appends `command` straight to the ledger and checks that every worker of `dev` refuses it
/// with `kind` (none may apply it).
pub async fn refused_everywhere(
    dev: &Dev,
    ledger: &RemoteLedger,
    command: LedgerCommand,
    kind: &str,
) {
    let appended = Ledger::append(ledger, parity_scale_codec::Encode::encode(&command))
        .await
        .unwrap();
    for w in &dev.workers {
        wait_seq(w, appended.seq).await;
        let receipt = Client::new(w).unwrap().receipt(appended.seq).await.unwrap();
        match receipt.result {
            CallResult::Err(e) => {
                assert_eq!(e.kind, kind, "{e:?}")
            }
            other => panic!("seq {} was applied on {w}: {other:?}", appended.seq),
        }
    }
}
