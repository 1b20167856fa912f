//! The three ledgers side by side: `phat dev` clusters of two workers on the embedded ledger,
//! on one `nats-server` (R1) and on three (R3, also without `sync_interval: always`), each
//! measured for command submit → receipt
//! latency (one client) and for commands applied per second by both workers (64 submitters).
//! Then, on R1, the time a new worker takes to catch up with a long log from a snapshot versus
//! by replaying it.
//!
//! `cargo bench -p phat-cli --bench ledgers`. `PHAT_BENCH_SECS` sets the latency phase (5 s),
//! `PHAT_BENCH_COMMANDS` the throughput phase (10,000 commands), `PHAT_BENCH_JOIN` the log the
//! join is measured on (100,000 commands; 0 skips it; `PHAT_BENCH_JOIN_ONLY=1` runs only the
//! join), `PHAT_BENCH_LEDGERS=embedded,nats-r1,nats-r3,nats-r3-lazy` the ledgers run. Clients,
//! ledgers and workers share the machine's cores, so the figures are a floor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use phat_client::primitives::protocol::SignedRequest;
use phat_client::primitives::Mode;
use phat_client::{Client, Signer};
use phat_testkit::*;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `n` increments of `counter`, signed before any clock starts.
fn signed_incs(
    client_cluster: phat_client::primitives::Hash,
    counter: &Counter,
    n: usize,
) -> Vec<SignedRequest> {
    let alice = Signer::from_suri("//Alice").unwrap();
    (0..n)
        .map(|_| phat_client::sign(&alice, &client_cluster, Mode::Command, counter.inc()))
        .collect()
}

/// Submits `reqs` from 64 tasks through `workers` (without waiting for receipts); returns
/// once every worker applied them, with the time it took.
async fn flood(workers: &[String], reqs: Vec<SignedRequest>) -> Duration {
    let first = Client::new(&workers[0])
        .unwrap()
        .info()
        .await
        .unwrap()
        .ledger_head;
    let n = reqs.len();
    let reqs = Arc::new(reqs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let client = Client::new(&workers[t % workers.len()]).unwrap();
        let (reqs, next) = (reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(req) = reqs.get(i) else { break };
                client.submit_signed(req, false).await.expect("submit");
            }
            Vec::new()
        }));
    }
    gather(tasks).await;
    for w in workers {
        wait_seq(w, first + n as u64).await;
    }
    start.elapsed()
}

/// Latency and throughput of one two-worker cluster started with `args`.
async fn ledger_rows(label: &str, args: &[&str]) {
    let mut all = vec!["--signer-rate", "1000000"];
    all.extend_from_slice(args);
    let mut dev = Dev::start_with(2, &all).await;
    let c0 = Client::new(&dev.workers[0]).unwrap();
    let counter = deploy_counter(&c0).await;
    let alice = Signer::from_suri("//Alice").unwrap();

    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs()) {
        let t0 = Instant::now();
        let r = c0.submit(&alice, counter.inc(), true).await.unwrap();
        assert!(r.receipt.unwrap().result.is_success());
        lat.push(t0.elapsed());
    }
    row(
        &format!("{label}: submit → receipt, 1 client"),
        &stats(lat, start.elapsed()),
    );

    let cluster = c0.info().await.unwrap().cluster_key;
    let n = env_count("PHAT_BENCH_COMMANDS", 10_000);
    let took = flood(&dev.workers, signed_incs(cluster, &counter, n)).await;
    println!(
        "| {:<44} | {:>7} | {:>9} | {:>9} | {:>9.0} |",
        format!("{label}: commands applied by both workers"),
        n,
        "",
        "",
        n as f64 / took.as_secs_f64()
    );
    let i0 = c0.info().await.unwrap();
    let i1 = Client::new(&dev.workers[1]).unwrap().info().await.unwrap();
    assert_eq!((i0.seq, i0.state_root), (i1.seq, i1.state_root));
    assert!(dev.proc.terminate());
}

/// A new worker catching up with a log of `n` commands: from the snapshot at seq `n` versus
/// replaying from seq 1 (same NATS R1 cluster, log kept whole).
async fn join_rows(n: usize) {
    let n_text = n.to_string();
    // Every worker here, the joiners too: a snapshot at seq `n` only, the log kept whole.
    let settings = [
        "--signer-rate",
        "1000000",
        "--checkpoint-every",
        "1000",
        "--snapshot-every",
        &n_text,
        "--snapshots-kept",
        "1",
        "--no-trim",
    ];
    let mut dev = Dev::start_with(2, &[&["--ledger", "nats"][..], &settings].concat()).await;
    let c0 = Client::new(&dev.workers[0]).unwrap();
    let counter = deploy_counter(&c0).await;
    let cluster = c0.info().await.unwrap().cluster_key;
    // The deploy took seq 1: `n - 1` increments end the log at seq `n`, where the snapshot is.
    flood(&dev.workers, signed_incs(cluster, &counter, n - 1)).await;
    let head = c0.info().await.unwrap().seq;
    let log = || std::fs::read_to_string(dev.data().join("worker-0/worker.log")).unwrap();
    eventually(
        "a snapshot",
        Duration::from_secs(120),
        Duration::from_millis(100),
        async || {
            let log = log();
            if log.contains("snapshot stored") {
                Ok(())
            } else {
                Err(format!("\n{log}"))
            }
        },
    )
    .await;
    let ports = free_ports(2);
    for (i, (case, extra)) in [
        ("from the snapshot", &[][..]),
        ("replaying the log", &["--replay-log"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let port = ports + i as u16;
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let args = [&settings[..], extra].concat();
        let mut worker = dev.start_worker(&format!("join-{i}"), port, &args);
        wait_up(&url).await;
        let info = wait_seq(&url, head).await;
        let took = start.elapsed();
        assert_eq!(info.state_root, c0.info().await.unwrap().state_root);
        println!(
            "R1: a new worker catches up with {head} commands {case} in {:.2} s",
            took.as_secs_f64()
        );
        assert!(worker.terminate());
    }
    assert!(dev.proc.terminate());
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    println!(
        "\nphat ledgers bench ({} s latency phase, 2-core machine shared by clients and servers)\n",
        secs()
    );
    println!("| case                                         |       n |   p50 µs |   p99 µs |      op/s |");
    println!("| -------------------------------------------- | ------- | --------- | --------- | --------- |");
    if std::env::var_os("PHAT_BENCH_JOIN_ONLY").is_none() {
        let lazy = [
            "--ledger",
            "nats",
            "--nats-nodes",
            "3",
            "--nats-sync",
            "default",
        ];
        let ledgers: [(&str, &str, &[&str]); 4] = [
            ("embedded", "embedded", &[]),
            ("nats-r1", "NATS R1", &["--ledger", "nats"]),
            (
                "nats-r3",
                "NATS R3",
                &["--ledger", "nats", "--nats-nodes", "3"],
            ),
            // What syncing every write costs (`--nats-sync always`, the default above).
            (
                "nats-r3-lazy",
                "NATS R3, server-default sync (2 min)",
                &lazy,
            ),
        ];
        for (key, name, args) in ledgers {
            if chosen("PHAT_BENCH_LEDGERS", key) {
                ledger_rows(name, args).await;
            }
        }
    }
    let join = env_count("PHAT_BENCH_JOIN", 100_000);
    if join > 1 {
        println!();
        join_rows(join).await;
    }
}
