//! What the cluster benches share: phase length, latency statistics, table rows.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

use std::time::Duration;

/// Seconds per phase (`PHAT_BENCH_SECS`, default 5).
pub fn secs() -> u64 {
    std::env::var("PHAT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// Whether `name` is in the comma-separated list `var` (every name when `var` is unset): how
/// a profile run picks one part of a bench, e.g. `PHAT_BENCH_PHASES=commands`.
pub fn chosen(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |v| v.split(',').any(|p| p.trim() == name))
}

/// Latency statistics of one phase.
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub per_sec: f64,
}

/// Median, 99th percentile (µs) and rate of `lat` over `took`.
pub fn stats(mut lat: Vec<Duration>, took: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e6)
            .unwrap_or(0.0)
    };
    Stats {
        n: lat.len(),
        p50: pick(0.5),
        p99: pick(0.99),
        per_sec: lat.len() as f64 / took.as_secs_f64(),
    }
}

/// The latencies every task measured.
pub async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat
}

/// One table row.
pub fn row(case: &str, s: &Stats) {
    println!(
        "| {case:<44} | {:>7} | {:>9.0} | {:>9.0} | {:>9.0} |",
        s.n, s.p50, s.p99, s.per_sec
    );
}

/// Uploads `erc20` and instantiates `new(supply)` as `signer`; the contract's id.
pub async fn instantiate_erc20(
    client: &phat_client::Client,
    signer: &phat_client::Signer,
    erc20: &phat_client::Contract,
    supply: &str,
) -> phat_client::primitives::AccountId {
    let code = client
        .upload_code(signer, erc20.wasm().unwrap().to_vec())
        .await
        .unwrap();
    let call = phat_client::instantiate(
        code,
        erc20.encode_constructor("new", &[supply]).unwrap(),
        vec![],
    );
    let sub = client.submit(signer, call, true).await.unwrap();
    let phat_client::primitives::protocol::CallResult::Ok(o) = sub.receipt.unwrap().result else {
        panic!("deploy failed")
    };
    o.address.unwrap()
}
