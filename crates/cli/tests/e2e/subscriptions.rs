//! Ethereum log subscriptions end to end: anvil on 127.0.0.1, a minimal emitter contract
//! (`PriceRequested`-style logs: topic 0 the event, topic 1 the request id, data the pair), the
//! `price-feed` contract on a 3-worker `phat dev` subscribed with quorum 2 and one
//! confirmation, on the embedded ledger and on NATS JetStream. Every log is delivered exactly
//! once, in chain order (two in one block too), also while a worker is killed and across a
//! key rotation; logs of another contract are not; reports replayed or tampered with are
//! refused on every worker; the workers agree on the state.

use std::time::{Duration, Instant};

use phat_client::primitives::protocol::LedgerCommand;
use phat_client::Client;
use phat_testkit::anvil::{abi_string, Anvil};
use phat_testkit::*;
use serde_json::json;

const CHAIN_ID: u64 = 424_243;
/// The event's topic 0 (what `keccak256("PriceRequested(uint256,string)")` is to a Solidity
/// consumer).
const TOPIC: &str = "50726963655265717565737465642875696e743235362c737472696e67292020";

/// Creation code of an emitter: each call emits a log with topic 0 `topic`, topic 1 the
/// call's first 32 bytes, and the rest of the call as data (hand-assembled EVM: CALLDATALOAD,
/// CALLDATACOPY, LOG2).
fn emitter(topic: &str) -> String {
    let runtime = [
        "600035",             // topic 1: CALLDATALOAD(0)
        "7f",                 // PUSH32 topic 0
        topic,                //
        "602036036020600037", // CALLDATACOPY(0, 32, CALLDATASIZE - 32)
        "602036036000",       // size CALLDATASIZE - 32, offset 0
        "a200",               // LOG2, STOP
    ]
    .concat();
    assert_eq!(runtime.len() / 2, 0x35);
    format!("0x6035600c60003960356000f3{runtime}")
}

/// Emits request `id` for `pair` from `emitter` (the log `PriceRequested(id, pair)` is); returns
/// the block it is in.
async fn request(anvil: &Anvil, emitter: &str, id: u64, pair: &str) -> u64 {
    let data = format!("0x{id:064x}{}", abi_string(pair));
    let receipt = anvil.transact(json!({"to": emitter, "data": data})).await;
    assert_eq!(receipt["logs"].as_array().unwrap().len(), 1, "{receipt}");
    u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
}

/// The ids `price-feed` recorded, in order, as one worker answers.
fn recorded(worker: &str, feed: &str) -> Vec<u64> {
    let r = run_json(worker, &["query", feed, "requests"]);
    let text = r["decoded"].as_str().unwrap_or_default().to_string();
    text.match_indices("id: ")
        .map(|(i, _)| {
            text[i + 4..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Waits until `worker` recorded `n` requests; returns how long that took (on failure, shows
/// the deliveries and the worker's log from `data`).
async fn wait_recorded(worker: &str, feed: &str, n: usize, data: &std::path::Path) -> Duration {
    let start = Instant::now();
    let all = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            let ids = recorded(worker, feed);
            assert!(ids.len() <= n, "more deliveries than logs: {ids:?}");
            ids.len() == n
        },
    )
    .await;
    if all.is_none() {
        let ids = recorded(worker, feed);
        let triggers = run(worker, &["triggers", feed]);
        let log = std::fs::read_to_string(data.join("worker-0/worker.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
                "{n} requests not recorded: {ids:?}\ntriggers: {}\nworker-0 log (last lines first):\n{}",
                String::from_utf8_lossy(&triggers.stdout),
                tail.join("\n")
            );
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_delivered_once_in_chain_order_with_a_quorum_on_the_embedded_ledger() {
    logs_are_delivered_once_in_chain_order_with_a_quorum(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_delivered_once_in_chain_order_with_a_quorum_on_nats() {
    logs_are_delivered_once_in_chain_order_with_a_quorum(&["--ledger", "nats"]).await;
}

async fn logs_are_delivered_once_in_chain_order_with_a_quorum(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(&tmp.path().join("anvil.log"), CHAIN_ID).await;
    let deploy = |code: String| {
        let anvil = &anvil;
        async move {
            let receipt = anvil.transact(json!({"data": code})).await;
            receipt["contractAddress"].as_str().unwrap().to_string()
        }
    };
    let consumer = deploy(emitter(TOPIC)).await;
    let other = deploy(emitter(TOPIC)).await;
    // Two requests before anyone subscribes: delivered too (from block 0).
    request(&anvil, &consumer, 1, "ETH/USD").await;
    request(&anvil, &consumer, 2, "BTC/USD").await;

    let mut dev = Dev::start_with(3, extra).await;
    let ep = dev.endpoint.clone();
    let feed = deploy_new(&ep, "price-feed");
    let add = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "subscribe",
            "add",
            &feed,
            "on_request",
            "--rpc",
            &anvil.url,
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--address",
            &consumer,
            "--topic",
            &format!("0x{TOPIC}"),
            "--confirmations",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // Only the deployer subscribes; a bad definition is refused with the reason.
    let bob = run_fail(&ep, &strs(&add(&["--suri", "//Bob"])));
    assert!(bob.contains("not_deployer"), "{bob}");
    let zero = run_fail(&ep, &strs(&add(&["--quorum", "0"])));
    assert!(
        zero.contains("bad_subscription") && zero.contains("quorum"),
        "{zero}"
    );
    let added = run_json(&ep, &strs(&add(&["--quorum", "2"])));
    assert_eq!(added["subscription"], 0, "{added}");

    // One confirmation: the second request's block needs one more on top.
    anvil.rpc("evm_mine", json!([])).await;
    let w0 = dev.workers[0].clone();
    wait_recorded(&w0, &feed, 2, &dev.data()).await;

    // More requests, one at a time, with the other contract's log (same topic) in between;
    // the delivery time is measured from the confirming block.
    let mut latencies = Vec::new();
    for id in 3..=6u64 {
        request(&anvil, &other, 100 + id, "XXX/YYY").await;
        request(&anvil, &consumer, id, "DOT/USD").await;
        if id == 5 {
            // worker-2 is killed (quorum 2 of the other two still delivers; `phat dev`
            // restarts it).
            dev.kill_worker(2);
        }
        anvil.rpc("evm_mine", json!([])).await;
        latencies.push(wait_recorded(&w0, &feed, id as usize, &dev.data()).await);
    }
    // Two requests in one block (log indexes 0 and 1): both, in that order.
    let from = anvil.rpc("eth_accounts", json!([])).await[0].clone();
    anvil.rpc("evm_setAutomine", json!([false])).await;
    for id in [7u64, 8] {
        let data = format!("0x{id:064x}{}", abi_string("ETH/EUR"));
        let tx = json!([{"from": from, "to": consumer, "data": data}]);
        anvil.rpc("eth_sendTransaction", tx).await;
    }
    anvil.rpc("evm_mine", json!([])).await;
    anvil.rpc("evm_setAutomine", json!([true])).await;
    anvil.rpc("evm_mine", json!([])).await;
    wait_recorded(&w0, &feed, 8, &dev.data()).await;
    // A key rotation: reports are made and checked in the new epoch.
    let rotated = run_json(&ep, &["cluster", "rotate-key"]);
    assert_eq!(rotated["epoch"], 1, "{rotated}");
    request(&anvil, &consumer, 9, "ETH/USD").await;
    anvil.rpc("evm_mine", json!([])).await;
    wait_recorded(&w0, &feed, 9, &dev.data()).await;
    latencies.sort();
    eprintln!(
        "log confirmed -> handler applied (quorum 2 of 3): p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );

    // Nothing more arrives: every log once, in chain order, on every worker.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let head = Client::new(&ep).unwrap().info().await.unwrap().ledger_head;
    let mut roots = Vec::new();
    for w in &dev.workers {
        let info = wait_seq(w, head).await;
        roots.push((info.seq, info.state_root));
        assert_eq!(recorded(w, &feed), (1..=9).collect::<Vec<_>>(), "on {w}");
    }
    assert!(roots.windows(2).all(|p| p[0] == p[1]), "{roots:?}");
    let list = run_json(&ep, &["subscribe", "list", &feed]);
    assert_eq!(list[0]["delivered"], 9, "{list}");
    let triggers = run_json(&ep, &["triggers", &feed]);
    let lines: Vec<&str> = triggers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["message"].as_str())
        .collect();
    let delivered = lines
        .iter()
        .filter(|l| l.contains("of 2 workers): ok"))
        .count();
    assert_eq!(delivered, 9, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("reported by 1 of 2 workers")),
        "{lines:#?}"
    );

    // Reports replayed, tampered with or made up are refused (on every worker alike); the
    // test appends them straight to the embedded ledger's HTTP API (on NATS, the same checks
    // run on the same entries).
    if !extra.contains(&"nats") {
        forged_reports_are_refused(&dev).await;
        assert_eq!(recorded(&w0, &feed), (1..=9).collect::<Vec<_>>());
    }

    // Removing the subscription stops deliveries.
    run_json(&ep, &["subscribe", "rm", &feed, "0"]);
    request(&anvil, &consumer, 10, "ETH/USD").await;
    anvil.rpc("evm_mine", json!([])).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(recorded(&w0, &feed).len(), 9);
    dev.stop();
}

/// Appends genuine reports again (one from before the key rotation), and copies of one tampered
/// with, to the ledger: every worker refuses each with the same kind.
async fn forged_reports_are_refused(dev: &Dev) {
    let ledger = dev_ledger(dev);
    let commands = ledger_commands(&ledger).await;
    let reports: Vec<_> = commands
        .into_iter()
        .filter_map(|c| match c {
            LedgerCommand::EthLog(l) => Some(l),
            _ => None,
        })
        .collect();
    // The first report was made in epoch 0, before the rotation; the last in epoch 1.
    let old = reports.first().expect("reports in the ledger").clone();
    let report = reports.last().expect("reports in the ledger").clone();
    assert_eq!((old.epoch, report.epoch), (0, 1));
    let mut tampered = report.clone();
    tampered.log.data = b"made up".to_vec().into();
    let mut stranger = report.clone();
    stranger.worker = phat_client::primitives::Hash([9; 32]);
    let mut later = report.clone();
    later.log.position.block_number += 1_000;
    // A member's report passed off as another member's: a vote is its worker's own.
    let mut other = None;
    for w in &dev.workers {
        let key = Client::new(w).unwrap().info().await.unwrap().worker_key;
        if key != report.worker {
            other = Some(key);
        }
    }
    let mut impostor = report.clone();
    impostor.worker = other.expect("another worker");
    for (entry, kind) in [
        (old, "stale_epoch"),
        (report, "already_delivered"),
        (tampered, "bad_signature"),
        (stranger, "not_a_member"),
        (later, "bad_signature"),
        (impostor, "bad_signature"),
    ] {
        refused_everywhere(dev, &ledger, LedgerCommand::EthLog(entry), kind).await;
    }
}
