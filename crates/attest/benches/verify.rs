//! Time to verify one DCAP quote with its collateral (the sample SGX and TDX quotes), as a
//! table of medians: `cargo bench -p phat-attest --bench verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

use std::time::{Duration, Instant};

/// Inside the samples' collateral validity (see tests/dcap.rs).
const NOW: u64 = 1_751_328_000;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn main() {
    let runs: usize = std::env::var("PHAT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("\n| quote | runs | median | p99 |\n| --- | --- | --- | --- |");
    for kind in ["sgx", "tdx"] {
        let quote = data(&format!("{kind}_quote"));
        let collateral =
            phat_attest::collateral_from_json(&data(&format!("{kind}_quote_collateral.json")))
                .unwrap();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                phat_attest::verify_quote(&quote, &collateral, NOW, false).unwrap();
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "| {kind} | {runs} | {:.0} µs | {:.0} µs |",
            times[runs / 2].as_secs_f64() * 1e6,
            times[(runs * 99 / 100).min(runs - 1)].as_secs_f64() * 1e6
        );
    }
}
