//! Shared helpers of the end-to-end tests: real `phat` processes on 127.0.0.1, real files.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use phat_client::Client;

pub mod anvil;

/// The `phat` binary under test. Workers a test starts by hand share one dev attestation
/// root (as the workers of `phat dev` do), so they accept each other.
pub fn phat() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_phat"));
    cmd.env("PHAT_DEV_ATTESTATION_ROOT", shared_dev_root());
    cmd
}

/// A dev attestation root file shared by this test process's workers.
pub fn shared_dev_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("phat-test-root-{}.key", std::process::id()));
        let secret: [u8; 32] = rand_bytes();
        std::fs::write(&path, hex::encode(secret)).unwrap();
        path
    })
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut out).unwrap();
    out
}

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A base port with `n` consecutive free ports on 127.0.0.1.
pub fn free_ports(n: u16) -> u16 {
    let seed = (std::process::id() as u16).wrapping_mul(7919) % 20_000;
    loop {
        let off = NEXT.fetch_add(n + 1, Ordering::Relaxed);
        let base = 20_000 + (seed + off) % 40_000;
        let ok = (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if ok {
            return base;
        }
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts `phat args...` with output to `log`.
    pub fn start(name: &str, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let child = phat()
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start phat");
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `phat ledger` with its data in `dir/ledger` on `port`: a new cluster funds the dev
/// accounts and pins the test process's dev root. Returns once its token file
/// (`dir/ledger/ledger.token`, see [`ledger_token_file`]) exists.
pub fn start_ledger(dir: &Path, port: u16) -> Proc {
    let data = dir.join("ledger");
    let proc = Proc::start(
        "ledger",
        &[
            "ledger",
            "--data",
            data.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--fund-dev-accounts",
        ],
        &dir.join("ledger.log"),
    );
    ledger_token_file(&data);
    proc
}

/// The token file of the `phat ledger` (or `phat dev`) whose data directory is `data`, once it
/// exists (it appears whole); panics after 30 s.
pub fn ledger_token_file(data: &Path) -> PathBuf {
    let path = data.join("ledger.token");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    path
}

/// The `Authorization` header value for the ledger whose token is in `token_file`.
pub fn ledger_bearer(token_file: &Path) -> String {
    let token = std::fs::read_to_string(token_file).unwrap();
    format!("Bearer {}", token.trim())
}

/// Builds `contracts/<name>` and returns its `.contract` bundle.
pub fn bundle(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(name)
        .join("Cargo.toml");
    let a = phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |_| {})
        .unwrap_or_else(|e| panic!("building {name}: {e}"));
    a.bundle.expect("bundle")
}

/// Builds example contract `name` and deploys it through `endpoint` with its `new`
/// constructor (no arguments); returns the contract id (`0x…`).
pub fn deploy_new(endpoint: &str, name: &str) -> String {
    let bundle = bundle(name);
    let out = run_json(
        endpoint,
        &["deploy", bundle.to_str().unwrap(), "--constructor", "new"],
    );
    out["contract"].as_str().unwrap().to_string()
}

#[path = "../../../../testing/shared.rs"]
mod shared;

/// A Phala conformance file from `<shared>/conformance/phala-pink` (see `testing/shared.rs`);
/// panics naming every path looked at when it is missing.
pub fn phala(rel: &str) -> PathBuf {
    shared::phala_path(rel)
}

/// Runs `phat` with `args` and `--output json`; panics with its stderr unless it succeeds.
pub fn run_json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = run(endpoint, args);
    assert!(
        out.status.success(),
        "phat {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("phat {args:?}: not JSON ({e}): {text}"))
}

/// Runs `phat` with `args` (plus `--endpoint` and `--output json`).
pub fn run(endpoint: &str, args: &[&str]) -> Output {
    phat()
        .args(args)
        .args(["--endpoint", endpoint, "--output", "json"])
        .output()
        .expect("run phat")
}

/// Runs `phat` expecting failure; returns stderr.
pub fn run_fail(endpoint: &str, args: &[&str]) -> String {
    let out = run(endpoint, args);
    assert!(
        !out.status.success(),
        "phat {args:?} should fail but printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until the API at `url` answers `/v1/info`.
pub async fn wait_up(url: &str) {
    assert!(try_wait_up(url).await, "{url} did not come up");
}

/// Waits up to 60 s for the API at `url`; whether it answered.
pub async fn try_wait_up(url: &str) -> bool {
    let c = Client::new(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.info().await.is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Waits until the worker at `url` applied `seq`; returns its info.
pub async fn wait_seq(url: &str, seq: u64) -> phat_client::primitives::protocol::WorkerInfo {
    let c = Client::new(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(i) = c.info().await {
            if i.seq >= seq {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not reach seq {seq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
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
        let pid = worker_pid(&self.data().join(format!("worker-{n}")))
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

/// The pid of the `phat worker` process whose data directory is `dir` (a worker of `phat dev`).
pub fn worker_pid(dir: &Path) -> Option<i32> {
    let want = dir.to_str()?;
    for entry in std::fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.get(1) == Some(&&b"worker"[..]) && args.contains(&want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Deploys the erc20 `bundle` through the endpoint `ep` with `phat deploy` as //Alice, with a
/// total supply of `supply`; returns the contract id.
pub async fn deploy_erc20(ep: &str, bundle: &Path, supply: &str) -> String {
    let (ep, bundle, supply) = (ep.to_string(), bundle.to_path_buf(), supply.to_string());
    let deployed = tokio::task::spawn_blocking(move || {
        run_json(
            &ep,
            &[
                "deploy",
                bundle.to_str().unwrap(),
                "--constructor",
                "new",
                "--args",
                &supply,
                "--suri",
                "//Alice",
            ],
        )
    })
    .await
    .unwrap();
    deployed["contract"]
        .as_str()
        .expect("contract id")
        .to_string()
}

/// A deployed `contracts/counter` starting at 0.
pub struct Counter {
    pub contract: phat_client::Contract,
    pub id: phat_client::primitives::AccountId,
    pub deployed_at: u64,
}

pub async fn deploy_counter(client: &Client) -> Counter {
    deploy_counter_salted(client, b"crash").await
}

/// [`deploy_counter`] with its own `salt` (another address for the same code).
pub async fn deploy_counter_salted(client: &Client, salt: &[u8]) -> Counter {
    let contract = phat_client::Contract::load(bundle("counter")).unwrap();
    let alice = phat_client::Signer::from_suri("//Alice").unwrap();
    let code = client
        .upload_code(&alice, contract.wasm().unwrap().to_vec())
        .await
        .unwrap();
    let data = contract.encode_constructor("new", &["0"]).unwrap();
    let sub = client
        .submit(
            &alice,
            phat_client::instantiate(code, data, salt.to_vec()),
            true,
        )
        .await
        .unwrap();
    let receipt = sub.receipt.unwrap();
    let id = match receipt.result {
        phat_client::primitives::protocol::CallResult::Ok(o) => o.address.unwrap(),
        other => panic!("deploy: {other:?}"),
    };
    Counter {
        contract,
        id,
        deployed_at: receipt.seq,
    }
}

impl Counter {
    pub fn inc(&self) -> phat_client::primitives::protocol::Call {
        phat_client::call(
            self.id,
            self.contract.encode_message("inc", &["1"]).unwrap(),
        )
    }

    /// The `get` message.
    pub fn get_call(&self) -> phat_client::primitives::protocol::Call {
        phat_client::call(self.id, self.get_call_data())
    }

    /// The call data of `get`.
    pub fn get_call_data(&self) -> Vec<u8> {
        self.contract.encode_message("get", &[] as &[&str]).unwrap()
    }

    /// (value, seq of the snapshot it was read from).
    pub async fn get(&self, client: &Client, min_seq: Option<u64>) -> (u64, u64) {
        let alice = phat_client::Signer::from_suri("//Alice").unwrap();
        let data = self.contract.encode_message("get", &[] as &[&str]).unwrap();
        let r = client
            .query(&alice, phat_client::call(self.id, data), min_seq)
            .await
            .unwrap();
        let phat_client::primitives::protocol::CallResult::Ok(o) = r.result else {
            panic!("get: {:?}", r.result)
        };
        let v = <Result<u64, u8> as parity_scale_codec::Decode>::decode(&mut &o.data[..])
            .unwrap()
            .unwrap();
        (v, r.seq)
    }
}

/// `account`'s free balance as the system contract `system` answers it on `worker`, once that
/// worker applied `seq`.
pub async fn free_balance(worker: &str, system: &str, account: &str, seq: u64) -> u128 {
    wait_seq(worker, seq).await;
    let r = run_json(
        worker,
        &["query", system, "System::free_balance_of", account],
    );
    let text = r["decoded"].as_str().unwrap().replace(['"', ','], "");
    text.trim_start_matches("Ok(")
        .trim_end_matches(')')
        .parse::<u128>()
        .unwrap_or_else(|e| panic!("{r}: {e}"))
}

/// `phat dev`'s embedded ledger, reached over its HTTP API with the cluster's bearer token
/// (what a stranger holding the token could append to).
pub fn dev_ledger(dev: &Dev) -> phat_worker::ledger::http::RemoteLedger {
    let token =
        phat_worker::ledger::http::LedgerToken::read(&ledger_token_file(&dev.data())).unwrap();
    phat_worker::ledger::http::RemoteLedger::with_token(&dev.ledger(), &token).unwrap()
}

/// Every ledger entry of `dev` so far, decoded.
pub async fn ledger_commands(
    ledger: &phat_worker::ledger::http::RemoteLedger,
) -> Vec<phat_client::primitives::protocol::LedgerCommand> {
    let entries = phat_worker::ledger::Ledger::read(ledger, 1, 10_000, Duration::from_millis(100))
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
    ledger: &phat_worker::ledger::http::RemoteLedger,
    command: phat_client::primitives::protocol::LedgerCommand,
    kind: &str,
) {
    let appended =
        phat_worker::ledger::Ledger::append(ledger, parity_scale_codec::Encode::encode(&command))
            .await
            .unwrap();
    for w in &dev.workers {
        wait_seq(w, appended.seq).await;
        let receipt = Client::new(w).unwrap().receipt(appended.seq).await.unwrap();
        match receipt.result {
            phat_client::primitives::protocol::CallResult::Err(e) => {
                assert_eq!(e.kind, kind, "{e:?}")
            }
            other => panic!("seq {} was applied on {w}: {other:?}", appended.seq),
        }
    }
}
