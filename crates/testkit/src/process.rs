//! The `phat` binary under test and the processes the tests start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::eventually_blocking;

/// The `phat` binary under test: `$PHAT_BIN` when set, else the `phat` cargo built in the
/// profile directory of the running test or bench (`target/<profile>/deps/<test>` →
/// `target/<profile>/phat`).
pub fn phat_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PHAT_BIN") {
            return bin.into();
        }
        let exe = std::env::current_exe().expect("the test's executable");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let bin = profile.join("phat");
        assert!(
            bin.exists(),
            "{} is missing: the tests of phat-cli build it (or set PHAT_BIN)",
            bin.display()
        );
        bin
    })
}

/// The `phat` binary under test. Workers a test starts by hand share one dev attestation
/// root (as the workers of `phat dev` do), so they accept each other.
pub fn phat() -> Command {
    let mut cmd = Command::new(phat_bin());
    cmd.env("PHAT_DEV_ATTESTATION_ROOT", shared_dev_root());
    cmd
}

/// A dev attestation root file shared by this test process's workers.
pub fn shared_dev_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("phat-test-root-{}.key", std::process::id()));
        let secret: [u8; 32] = rand_bytes();
        std::fs::write(&path, hex::encode(secret)).unwrap();
        path
    })
}

/// 32 bytes from `/dev/urandom`.
fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut out).unwrap();
    out
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// What the test calls it.
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
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
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
    eventually_blocking(
        format!("{} to appear", path.display()),
        Duration::from_secs(30),
        Duration::from_millis(20),
        || path.exists(),
    );
    path
}

/// The `Authorization` header value for the ledger whose token is in `token_file`.
pub fn ledger_bearer(token_file: &Path) -> String {
    let token = std::fs::read_to_string(token_file).unwrap();
    format!("Bearer {}", token.trim())
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

/// Serves `app` on a free 127.0.0.1 port in the background (a local API for the contracts);
/// its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
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
