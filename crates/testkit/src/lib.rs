//! What the tests of the workspace share, as one library used only as a dev-dependency:
//! real `phat` processes on 127.0.0.1 (a `phat dev` cluster, workers, ledgers, anvil), free
//! ports, [`eventually`] (poll until a condition holds, or fail naming what was awaited),
//! contract bundles and deploy helpers, where Phala's conformance files are ([`phala`]), a
//! fake PCCS (`pccs`) and the runtime's harness (`runtime`).
//!
//! Features keep a crate's tests from building what they do not use: without any, only the
//! shared-directory lookup, [`free_ports`] and the polling helpers; `cluster` adds the `phat`
//! processes and everything that talks to them (phat-client, phat-worker, phat-builder);
//! `pccs` adds the fake PCCS (phat-attest, axum); `runtime` the runtime's harness
//! (phat-runtime).
//!
//! The `phat` under test is `$PHAT_BIN` when set, else the `phat` cargo built next to the
//! running test or bench (`target/<profile>/phat`): cargo builds a package's binaries for its
//! integration tests and benches, so phat-cli's tests and benches always find theirs.
//!
//! # The end-to-end tests: one binary, fast and slow
//!
//! phat-cli's end-to-end tests are one test binary, `crates/cli/tests/e2e/` (one module per
//! area, one link of the whole stack instead of one per area). The tests that take more than
//! about 20 s (a NATS cluster losing its stream leader under load, hostile tenants, requests
//! answered on anvil, jobs and schedules over many ticks) are in a `slow` module of their area
//! (`<area>::slow::<test>`), so a test filter chooses:
//!
//! ```text
//! cargo test -p phat-cli --features testing --test e2e -- --skip slow::   # the fast ones
//! cargo test -p phat-cli --features testing --test e2e -- slow::          # the slow ones
//! cargo test -p phat-cli --features testing --test e2e                    # all of them
//! ```
//!
//! Without `--features testing` the replica test (it needs `phat`'s fault switch) is left out.
//! The test command (`scripts/test`) runs them all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

mod shared;
mod wait;

pub use shared::{phala_path, shared_dirs, shared_file};
pub use wait::{eventually, eventually_blocking, poll_until, Check};

#[cfg(feature = "cluster")]
pub mod anvil;
#[cfg(feature = "cluster")]
mod contracts;
#[cfg(feature = "cluster")]
mod dev;
#[cfg(feature = "pccs")]
pub mod pccs;
#[cfg(feature = "cluster")]
mod process;
#[cfg(feature = "runtime")]
pub mod runtime;

#[cfg(feature = "cluster")]
pub use contracts::*;
#[cfg(feature = "cluster")]
pub use dev::*;
#[cfg(feature = "cluster")]
pub use process::*;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The manifest of the example contract `contracts/<name>`.
pub fn contract_manifest(name: &str) -> PathBuf {
    repo_root().join("contracts").join(name).join("Cargo.toml")
}

/// A hostile WAT module from `contracts/hostile`, assembled.
#[cfg(any(feature = "cluster", feature = "runtime"))]
pub fn hostile_wasm(name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("contracts/hostile")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("assembling {}: {e}", path.display()))
}

/// A Phala conformance file from `<shared>/conformance/phala-pink` (see [`shared_dirs`]);
/// panics naming every path looked at when it is missing.
pub fn phala(rel: &str) -> PathBuf {
    phala_path(rel)
}

/// The next candidate offset of [`free_ports`] in this process.
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

/// `args` as `&str`s, for the helpers that take `&[&str]`.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The time now in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
