//! Runtime benchmarks on the example contracts (criterion), ending with a summary table:
//! - cached module: instantiate + flipper `get` (query);
//! - erc20 `transfer` in command mode over the in-memory state, writes committed;
//! - erc20 `balance_of` (query);
//! - a compute-heavy message (`compute.mix`, 10k rounds) against the same Rust function
//!   compiled natively, as a ratio.
//!
//! Run with `cargo bench -p phat-runtime --bench runtime`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use phat_primitives::Mode;
use phat_runtime::{ExecContext, MemoryState};
use phat_testkit::runtime::*;

const ROUNDS: u32 = 10_000;

fn median_ns(target: &std::path::Path, group: &str, name: &str) -> Option<f64> {
    let path = target
        .join("criterion")
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let flipper = contract("flipper");
    let erc20 = contract("erc20");
    let compute = contract("compute");

    let mut h = Harness::new();
    let flip = h.deploy(&flipper.wasm, flipper.input("new", false));
    let token = h.deploy(&erc20.wasm, erc20.input("new", u128::MAX / 2));
    let comp = h.deploy(&compute.wasm, compute.input("new", ()));
    let rt = h.rt.clone();
    let get = flipper.input("get", ());
    let transfer = erc20.input("transfer", (BOB, 1u128));
    let balance_of = erc20.input("balance_of", ALICE);
    let mix = compute.input("mix", (ROUNDS, 7u64));
    let mix_100k = compute.input("mix", (10 * ROUNDS, 7u64));

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();

    let mut g = c.benchmark_group("runtime");
    let query = ExecContext::new(Mode::Query);
    let state: Arc<MemoryState> = h.state.clone();
    g.bench_function("flipper_get", |b| {
        b.iter(|| {
            let mut s = rt.session(state.clone(), query.clone());
            black_box(s.call(ALICE, flip, 0, get.clone(), GAS).unwrap())
        })
    });
    g.bench_function("erc20_balance_of", |b| {
        b.iter(|| {
            let mut s = rt.session(state.clone(), query.clone());
            black_box(s.call(ALICE, token, 0, balance_of.clone(), GAS).unwrap())
        })
    });
    let command = ExecContext::new(Mode::Command);
    let mut owned = Arc::new((*state).clone());
    g.bench_function("erc20_transfer_command", |b| {
        b.iter(|| {
            let mut s = rt.session(owned.clone(), command.clone());
            let out = s.call(ALICE, token, 0, transfer.clone(), GAS).unwrap();
            let changes = s.into_changes();
            Arc::make_mut(&mut owned).apply(changes);
            black_box(out)
        })
    });
    g.bench_function("compute_mix_10k_wasm", |b| {
        b.iter(|| {
            let mut s = rt.session(state.clone(), query.clone());
            black_box(s.call(ALICE, comp, 0, mix.clone(), GAS).unwrap())
        })
    });
    g.bench_function("compute_mix_10k_native", |b| {
        b.iter(|| phat_compute_kernel::mix(black_box(ROUNDS), black_box(7)))
    });
    g.bench_function("compute_mix_100k_wasm", |b| {
        b.iter(|| {
            let mut s = rt.session(state.clone(), query.clone());
            black_box(s.call(ALICE, comp, 0, mix_100k.clone(), GAS).unwrap())
        })
    });
    g.bench_function("compute_mix_100k_native", |b| {
        b.iter(|| phat_compute_kernel::mix(black_box(10 * ROUNDS), black_box(7)))
    });
    g.finish();
    c.final_summary();

    // Check the transfers really happened, so the numbers measure real work.
    let bob: u128 = {
        let mut s = rt.session(owned.clone(), query.clone());
        let out = s
            .call(ALICE, token, 0, erc20.input("balance_of", BOB), GAS)
            .unwrap();
        parity_scale_codec::Decode::decode(&mut &out.data[1..]).unwrap()
    };
    assert!(bob > 0);

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let m = |n: &str| median_ns(&target, "runtime", n);
    println!();
    println!("| benchmark | median | goal |");
    println!("| --- | --- | --- |");
    let row = |label: &str, v: Option<f64>, goal: &str| match v {
        Some(ns) => println!("| {label} | {:.2} µs | {goal} |", ns / 1000.0),
        None => println!("| {label} | (not measured) | {goal} |"),
    };
    row(
        "instantiate + flipper `get` (query)",
        m("flipper_get"),
        "≤ 10 µs",
    );
    row(
        "erc20 `transfer` (command, committed)",
        m("erc20_transfer_command"),
        "≤ 15 µs",
    );
    row("erc20 `balance_of` (query)", m("erc20_balance_of"), "-");
    row(
        "compute `mix` 10k rounds, wasm (whole call)",
        m("compute_mix_10k_wasm"),
        "-",
    );
    row(
        "compute `mix` 10k rounds, native",
        m("compute_mix_10k_native"),
        "-",
    );
    row(
        "compute `mix` 100k rounds, wasm (whole call)",
        m("compute_mix_100k_wasm"),
        "-",
    );
    row(
        "compute `mix` 100k rounds, native",
        m("compute_mix_100k_native"),
        "-",
    );
    for rounds in ["10k", "100k"] {
        let wasm = m(&format!("compute_mix_{rounds}_wasm"));
        let native = m(&format!("compute_mix_{rounds}_native"));
        if let (Some(w), Some(n), Some(f)) = (wasm, native, m("flipper_get")) {
            println!(
                "| wasm / native, {rounds} rounds, whole call | {:.2}× | ≤ 1.5× |",
                w / n
            );
            println!(
                "| wasm / native, {rounds} rounds, minus call overhead (≈ flipper get) | {:.2}× | - |",
                (w - f) / n
            );
        }
    }
}
