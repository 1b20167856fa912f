//! Query and command latency through the Rust client, against a running cluster: erc20
//! `balance_of` queries (in one resumed session) and `transfer` commands (submit → receipt).
//! `sdk/bench/latency.ts` runs it next to the TypeScript SDK on the same cluster:
//! `cargo run --release -p phat-client --example latency -- ENDPOINT ERC20_ID N`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench: a failed unwrap is a failed measurement"
)]

use std::time::Instant;

use phat_client::{call, Client, Signer};

/// The median and 99th percentile of `samples` (µs).
fn percentiles(mut samples: Vec<u128>) -> (u128, u128) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, contract, n] = &args[..] else {
        panic!("usage: latency ENDPOINT ERC20_ID N");
    };
    let n: usize = n.parse().unwrap();
    let client = Client::new(endpoint).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let bob = Signer::from_suri("//Bob").unwrap();
    let id = contract.parse().unwrap();
    // erc20 selectors: balance_of(owner), transfer(to, value).
    let mut balance_of = vec![0x0f, 0x75, 0x5a, 0x56];
    balance_of.extend_from_slice(&alice.account().0);
    let mut transfer = vec![0x84, 0xa1, 0x5d, 0xa1];
    transfer.extend_from_slice(&bob.account().0);
    transfer.extend_from_slice(&1u128.to_le_bytes());
    // Open the session and warm up before the clock starts.
    for _ in 0..10 {
        client
            .query(&alice, call(id, balance_of.clone()), None)
            .await
            .unwrap();
    }
    let mut queries = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .query(&alice, call(id, balance_of.clone()), None)
            .await
            .unwrap();
        queries.push(t.elapsed().as_micros());
    }
    let mut commands = Vec::with_capacity(n / 4);
    for _ in 0..(n / 4).max(1) {
        let t = Instant::now();
        let s = client
            .submit(&alice, call(id, transfer.clone()), true)
            .await
            .unwrap();
        assert!(s.receipt.is_some());
        commands.push(t.elapsed().as_micros());
    }
    let (q50, q99) = percentiles(queries);
    let (c50, c99) = percentiles(commands);
    println!(
        "{{\"query_p50_us\": {q50}, \"query_p99_us\": {q99}, \"command_p50_us\": {c50}, \"command_p99_us\": {c99}}}"
    );
}
