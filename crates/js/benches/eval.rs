//! Time of one `js_eval` (a fresh QuickJS runtime per call, as queries get): a trivial script
//! and a 10,000-iteration loop, next to the same loop in Rust, as a table of medians:
//! `cargo bench -p phat-js --bench eval`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use phat_js::{eval, JsCode, JsLimits, JsValue};

const LOOP: &str = "let s = 0; for (let i = 0; i < 10000; i++) { s = (s + i * i) % 1000003; } s";

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    median(samples)
}

fn main() {
    let runs: usize = std::env::var("PHAT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let js = |src: &str| {
        let out = eval(
            &[JsCode::Source(src.into())],
            &[],
            &JsLimits::with_time(Duration::from_secs(5)),
        );
        assert!(!matches!(out.value, JsValue::Exception(_)), "{out:?}");
        black_box(out);
    };
    let rust_loop = || {
        let mut s: u64 = 0;
        for i in 0..black_box(10_000u64) {
            s = (s + i * i) % 1_000_003;
        }
        black_box(s);
    };
    println!("\n| what | runs | median | p99 |\n| --- | --- | --- | --- |");
    for (name, (m, p)) in [
        ("js: `1 + 1` (fresh runtime)", time(runs, || js("1 + 1"))),
        ("js: 10k-iteration loop", time(runs, || js(LOOP))),
        ("rust: the same loop", time(runs, rust_loop)),
    ] {
        println!("| {name} | {runs} | {m:?} | {p:?} |");
    }
}
