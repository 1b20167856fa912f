//! Cluster load bench: real `phat ledger` and `phat worker` processes on 127.0.0.1, erc20
//! `balance_of` queries over HTTP and `transfer` commands, printed as a table: once on a
//! cluster without encryption, once with (queries in fresh sessions and in resumed ones).
//!
//! `cargo bench -p phat-cli --bench cluster` (set `PHAT_BENCH_SECS` to change each phase's
//! length, `PHAT_BENCH_MODES=plain,encrypted` and `PHAT_BENCH_PHASES=queries,commands` to run
//! a part, e.g. under a profiler, and `PHAT_BENCH_WORKERS` for another cluster size than 2). Clients and servers share the machine's cores, so the
//! figures are a floor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use phat_client::primitives::protocol::{Call, CallResult, SignedRequest};
use phat_client::primitives::Mode;
use phat_client::{Client, Contract, Signer};
use phat_testkit::*;

/// Sends `call` from `conc` tasks on `urls` for `secs` through each client's session (after
/// the first query of each task, AEAD only).
async fn session_load(urls: &[String], call: Call, conc: usize) -> Stats {
    let alice = Signer::from_suri("//Alice").unwrap();
    let mut clients = Vec::new();
    for t in 0..conc {
        let client = Client::new(&urls[t % urls.len()])
            .unwrap()
            .allow_unencrypted(true);
        // Open the session before the clock starts.
        client
            .query(&alice, call.clone(), None)
            .await
            .expect("open");
        clients.push(client);
    }
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (call, alice) = (call.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = client
                    .query(&alice, call.clone(), None)
                    .await
                    .expect("query");
                assert!(matches!(r.result, CallResult::Ok(_)));
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    stats(gather(tasks).await, start.elapsed())
}

/// Sends pre-signed queries from `conc` tasks spread over `urls` for `secs` (on an encrypted
/// cluster each opens a new session: one key exchange and one signature check each).
async fn query_load(urls: &[String], reqs: Vec<SignedRequest>, conc: usize) -> Stats {
    let reqs = Arc::new(reqs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conc {
        let client = Client::new(&urls[t % urls.len()])
            .unwrap()
            .allow_unencrypted(true);
        client.trusted_info().await.expect("worker info");
        let (reqs, next) = (reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(req) = reqs.get(i) else { break };
                let t0 = Instant::now();
                let r = client.query_signed(req, None).await.expect("query");
                assert!(matches!(r.result, CallResult::Ok(_)));
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    stats(gather(tasks).await, start.elapsed())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    println!(
        "\nphat cluster bench ({} s per phase, 2-core machine shared by clients and servers)\n",
        secs()
    );
    println!("| case                                         |       n |   p50 µs |   p99 µs |      op/s |");
    println!("| -------------------------------------------- | ------- | --------- | --------- | --------- |");
    for (name, encryption) in [("plain", false), ("encrypted", true)] {
        if chosen("PHAT_BENCH_MODES", name) {
            run(encryption).await;
        }
    }
}

/// Runs every phase on a fresh two-worker cluster with or without encryption.
async fn run(encryption: bool) {
    let tag = if encryption { "encrypted" } else { "plain" };
    let erc20 = Contract::load(bundle("erc20")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = workers();
    let base = free_ports(n as u16 + 1);
    let ledger_url = format!("http://127.0.0.1:{base}");
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    let _ledger = start_ledger(dir.path(), base);
    let token = ledger_token_file(&dir.path().join("ledger"));
    let root = dir.path().join("dev-root.key");
    let genesis = phat_worker::Genesis {
        // Uploads need a funded signer.
        balances: vec![(Signer::from_suri("//Alice").unwrap().account(), 1 << 60)],
        encryption,
        dev_root: Some(phat_worker::dev_root_public(&root).unwrap()),
        limits: None,
        tee_policy: None,
        owner: None,
        system: None,
        deploy: Default::default(),
    };
    wait_ledger(&ledger_url).await;
    reqwest::Client::new()
        .put(format!(
            "{ledger_url}/ledger/v1/meta/{}",
            phat_worker::GENESIS_KEY
        ))
        .header(reqwest::header::AUTHORIZATION, ledger_bearer(&token))
        .body(parity_scale_codec::Encode::encode(&genesis))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut workers = Vec::new();
    let mut urls = Vec::new();
    for i in 0..n as u16 {
        let port = (base + 1 + i).to_string();
        let data = path(&format!("w{i}"));
        workers.push(Proc::start(
            "worker",
            &[
                "worker",
                "--ledger",
                &ledger_url,
                "--ledger-token-file",
                token.to_str().unwrap(),
                "--data",
                &data,
                "--port",
                &port,
                "--dev-attestation-root",
                root.to_str().unwrap(),
                // The bench drives one signer at full speed.
                "--signer-rate",
                "1000000",
                "--max-queries",
                "64",
            ],
            &dir.path().join(format!("w{i}.log")),
        ));
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    for u in &urls {
        wait_up(u).await;
    }
    let c0 = Client::new(&urls[0]).unwrap().allow_unencrypted(true);
    let cluster = c0.trusted_info().await.unwrap().cluster_key;
    let alice = Signer::from_suri("//Alice").unwrap();
    let bob = Signer::from_suri("//Bob").unwrap();
    let id = instantiate_erc20(&c0, &alice, &erc20, "1000000000").await;
    let balance_of = erc20
        .encode_message("balance_of", &[alice.account().to_hex()])
        .unwrap();
    let transfer = erc20
        .encode_message("transfer", &[bob.account().to_hex(), "1".into()])
        .unwrap();

    // Requests are signed before the clock starts: the bench measures the worker.
    let sign_queries = |n: usize| -> Vec<SignedRequest> {
        (0..n)
            .map(|_| {
                phat_client::sign(
                    &alice,
                    &cluster,
                    Mode::Query,
                    phat_client::call(id, balance_of.clone()),
                )
            })
            .collect()
    };
    if chosen("PHAT_BENCH_PHASES", "queries") {
        queries(&urls, tag, encryption, id, &balance_of, &sign_queries).await;
    }
    if chosen("PHAT_BENCH_PHASES", "commands") {
        commands(&urls, tag, &c0, &alice, &cluster, id, &transfer).await;
    }
    let i0 = c0.info().await.unwrap();
    for u in &urls[1..] {
        let i = Client::new(u).unwrap().info().await.unwrap();
        assert_eq!(i0.state_root, i.state_root);
        assert_eq!(i0.seq, i.seq);
    }
}

/// The query phases: one client, 32 clients on one worker, 32 clients on both.
async fn queries(
    urls: &[String],
    tag: &str,
    encryption: bool,
    id: phat_client::primitives::AccountId,
    balance_of: &[u8],
    sign_queries: &dyn Fn(usize) -> Vec<SignedRequest>,
) {
    let budget = 25_000 * secs() as usize;
    let fresh = if encryption { ", fresh session" } else { "" };
    let s = query_load(&urls[..1], sign_queries(budget.min(4000)), 1).await;
    row(&format!("{tag}: query, 1 worker, 1 client{fresh}"), &s);
    let s = query_load(&urls[..1], sign_queries(budget), 32).await;
    row(&format!("{tag}: query, 1 worker, 32 clients{fresh}"), &s);
    if encryption {
        let call = phat_client::call(id, balance_of.to_vec());
        let s = session_load(&urls[..1], call.clone(), 1).await;
        row(&format!("{tag}: query, 1 worker, 1 client, resumed"), &s);
        let s = session_load(&urls[..1], call.clone(), 32).await;
        row(&format!("{tag}: query, 1 worker, 32 clients, resumed"), &s);
        let s = session_load(urls, call, 32).await;
        let all = urls.len();
        row(
            &format!("{tag}: query, {all} workers, 32 clients, resumed"),
            &s,
        );
    } else {
        let s = query_load(urls, sign_queries(budget), 32).await;
        let all = urls.len();
        row(&format!("{tag}: query, {all} workers, 32 clients"), &s);
    }
}

/// The command phases: one client waiting for each receipt, then 64 submitters through both
/// workers, timed until both applied the last one.
async fn commands(
    urls: &[String],
    tag: &str,
    c0: &Client,
    alice: &Signer,
    cluster: &phat_client::primitives::Hash,
    id: phat_client::primitives::AccountId,
    transfer: &[u8],
) {
    // Commands: submit and wait for the receipt, one at a time.
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs()) {
        let t0 = Instant::now();
        let r = c0
            .submit(alice, phat_client::call(id, transfer.to_vec()), true)
            .await
            .unwrap();
        assert!(r.receipt.unwrap().result.is_success());
        lat.push(t0.elapsed());
    }
    row(
        &format!("{tag}: command, submit → receipt, 1 client"),
        &stats(lat, start.elapsed()),
    );

    // Commands: 64 submitters without waiting; applied/s measured on every worker. On an
    // encrypted cluster, twice: each command sealed to the cluster key (an X25519 exchange on
    // the client and on the worker), then in the session a query opened (AEAD only).
    let sign = |n: usize| -> Vec<SignedRequest> {
        (0..n)
            .map(|_| {
                phat_client::sign(
                    alice,
                    cluster,
                    Mode::Command,
                    phat_client::call(id, transfer.to_vec()),
                )
            })
            .collect()
    };
    let n = (4000 * secs()) as usize;
    let all = if urls.len() == 2 {
        "both workers".to_string()
    } else {
        format!("all {} workers", urls.len())
    };
    let (lat, took) = flood(c0, urls, sign(n), None).await;
    row(
        &format!("{tag}: command, submit, 64 clients"),
        &stats(lat, took),
    );
    rate_row(&format!("{tag}: commands applied by {all}"), n, took);
    if tag == "encrypted" {
        let opener = phat_client::call(id, transfer.to_vec());
        let (lat, took) = flood(c0, urls, sign(n), Some((alice, opener))).await;
        row(
            &format!("{tag}: command, submit, 64 clients, in sessions"),
            &stats(lat, took),
        );
        rate_row(
            &format!("{tag}: commands applied by {all}, in sessions"),
            n,
            took,
        );
    }
}

/// Submits `reqs` from 64 clients spread over `urls` without waiting for receipts; returns
/// their submit latencies and the time until every worker applied the last one. With
/// `session`, each client first opens a query session as that signer (before the clock).
async fn flood(
    c0: &Client,
    urls: &[String],
    reqs: Vec<SignedRequest>,
    session: Option<(&Signer, phat_client::primitives::protocol::Call)>,
) -> (Vec<Duration>, Duration) {
    let mut clients = Vec::new();
    for t in 0..64 {
        let client = Client::new(&urls[t % urls.len()])
            .unwrap()
            .allow_unencrypted(true);
        if let Some((signer, call)) = &session {
            client
                .query(signer, call.clone(), None)
                .await
                .expect("open");
        }
        clients.push(client);
    }
    let first = c0.info().await.unwrap().seq;
    let n = reqs.len();
    let reqs = Arc::new(reqs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (reqs, next) = (reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(req) = reqs.get(i) else { break };
                let t0 = Instant::now();
                client.submit_signed(req, false).await.expect("submit");
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let lat = gather(tasks).await;
    let last = first + n as u64;
    for u in urls {
        wait_seq(u, last).await;
    }
    (lat, start.elapsed())
}

/// A table row with only a rate: `n` operations over `took`.
fn rate_row(name: &str, n: usize, took: Duration) {
    println!(
        "| {:<44} | {:>7} | {:>9} | {:>9} | {:>9.0} |",
        name,
        n,
        "",
        "",
        n as f64 / took.as_secs_f64()
    );
}

/// Workers in the cluster (`PHAT_BENCH_WORKERS`, default 2): the bench's scale axis.
fn workers() -> usize {
    std::env::var("PHAT_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
        .max(1)
}

/// Waits until the ledger at `url` answers.
async fn wait_ledger(url: &str) {
    eventually(
        "the ledger to come up",
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            reqwest::get(format!("{url}/ledger/v1/head"))
                .await
                .map(drop)
        },
    )
    .await;
}
