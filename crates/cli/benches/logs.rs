//! Log server bench: what a contract's log costs and how fast it reads, on a two-worker
//! `phat dev` (encrypted, embedded ledger) on this machine, printed as a table.
//!
//! - a quiet query (erc20 `balance_of`: it leaves no record) against a failing one (an
//!   unknown selector: it leaves a `query` and an `output` record), one client: the write
//!   cost a record adds to the query path;
//! - how long a failing query's records take to be readable on the other worker (the outbox
//!   period, the ledger round trip and the apply);
//! - a deployer reading the last 100 records and the first 1,000 of a log of thousands.
//!
//! `cargo bench -p phat-cli --bench logs` (`PHAT_BENCH_SECS` sets each phase's length).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use phat_client::primitives::protocol::{LogFilter, LogKind};
use phat_client::{Client, Contract, Signer};
use phat_testkit::*;

/// Runs `f` sequentially for the phase's length; the latency of each run.
async fn phase<F, Fut>(mut f: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs());
    let mut lat = Vec::new();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        f().await;
        lat.push(t0.elapsed());
    }
    stats(lat, start.elapsed())
}

#[tokio::main]
async fn main() {
    println!(
        "\nphat log server bench ({} s per phase, `phat dev --workers 2`, 2-core machine shared \
         by client and servers)\n",
        secs()
    );
    println!("| case                                         |       n |   p50 µs |   p99 µs |      op/s |");
    println!("| -------------------------------------------- | ------- | --------- | --------- | --------- |");
    let dev = Dev::start(2).await;
    let erc20 = Contract::load(bundle("erc20")).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let c0 = Client::new(&dev.workers[0]).unwrap();
    let c1 = Client::new(&dev.workers[1]).unwrap();
    let id = instantiate_erc20(&c0, &alice, &erc20, "1000000").await;
    let quiet = phat_client::call(
        id,
        erc20
            .encode_message("balance_of", &[alice.account().to_hex()])
            .unwrap(),
    );
    let failing = phat_client::call(id, vec![0xde, 0xad, 0xbe, 0xef]);
    // Sessions open before the clock starts.
    c0.query(&alice, quiet.clone(), None).await.unwrap();

    let s = phase(|| async {
        c0.query(&alice, quiet.clone(), None).await.unwrap();
    })
    .await;
    row("query, quiet (no record)", &s);
    let s = phase(|| async {
        c0.query(&alice, failing.clone(), None).await.unwrap();
    })
    .await;
    row("query, failing (query + output records)", &s);

    // From a failing query on worker 0 to its records on worker 1.
    let outputs = LogFilter {
        kinds: vec![LogKind::Output],
        ..LogFilter::default()
    };
    let mut lat = Vec::new();
    let started = Instant::now();
    for _ in 0..20 {
        // Wait until worker 1 holds everything sent so far.
        let (_, mut next) = c1.read_logs(&alice, &id, outputs.clone()).await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (_, now) = c1.read_logs(&alice, &id, outputs.clone()).await.unwrap();
            if now == next {
                break;
            }
            next = now;
        }
        let t0 = Instant::now();
        c0.query(&alice, failing.clone(), None).await.unwrap();
        let follow = LogFilter {
            after: next.checked_sub(1),
            wait_ms: 20_000,
            ..LogFilter::default()
        };
        let (got, _) = c1.read_logs(&alice, &id, follow).await.unwrap();
        assert!(!got.is_empty(), "the records did not reach worker 1");
        lat.push(t0.elapsed());
    }
    row(
        "query records readable on the other worker",
        &stats(lat, started.elapsed()),
    );

    let (_, stored) = c1
        .read_logs(&alice, &id, LogFilter::default())
        .await
        .unwrap();
    let tail = LogFilter {
        limit: 100,
        tail: true,
        ..LogFilter::default()
    };
    let s = phase(|| async {
        let (got, _) = c1.read_logs(&alice, &id, tail.clone()).await.unwrap();
        assert_eq!(got.len(), 100);
    })
    .await;
    row(&format!("read the last 100 of {stored} records"), &s);
    let head = LogFilter {
        limit: 1000,
        ..LogFilter::default()
    };
    let s = phase(|| async {
        let (got, _) = c1.read_logs(&alice, &id, head.clone()).await.unwrap();
        assert_eq!(got.len(), 1000);
    })
    .await;
    row(&format!("read the first 1,000 of {stored} records"), &s);
    let only = LogFilter {
        kinds: vec![LogKind::Event],
        limit: 100,
        tail: true,
        ..LogFilter::default()
    };
    let s = phase(|| async {
        c1.read_logs(&alice, &id, only.clone()).await.unwrap();
    })
    .await;
    row(&format!("read the last events of {stored} (scan all)"), &s);
}
