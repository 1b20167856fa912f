//! The oracle example end to end (docs/triggers.md): anvil on 127.0.0.1, the Solidity
//! `PriceConsumer` compiled by solc-js, a local price API, and `price-feed` on a 3-worker
//! `phat dev` (on the embedded ledger, and on NATS JetStream), subscribed to `PriceRequested`
//! with quorum 2, with a job every 2 s. Requests
//! made on chain are answered on chain by the contract's own key, each exactly once and in
//! order, with the API's prices; a pair the API does not know holds no one up; a killed worker
//! changes nothing; the pushed pair's price reaches the consumer; the workers agree.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phat_testkit::anvil::{abi_string, compile, quantity, Anvil};
use phat_testkit::*;
use serde_json::{json, Value};

const CHAIN_ID: u64 = 424_245;
const EVENT: &str = "PriceRequested(uint256,string)";
/// The API's prices; any other pair is a 404.
const PRICES: [(&str, &str, u128); 3] = [
    ("ETH/USD", "3421.55", 342_155_000_000),
    ("BTC/USD", "97000.5", 9_700_050_000_000),
    ("DOT/USD", "7.125", 712_500_000),
];

/// The price API on a free port: `GET /price?pair=ETH/USD` → `{"price": "3421.55"}`; returns
/// its URL and how many times it was asked for a pair it does not know.
async fn price_api() -> (String, Arc<AtomicUsize>) {
    let unknown = Arc::new(AtomicUsize::new(0));
    let h = unknown.clone();
    let app = axum::Router::new().route(
        "/price",
        axum::routing::get(
            move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
                let h = h.clone();
                async move {
                    let pair = q.get("pair").cloned().unwrap_or_default();
                    match PRICES.iter().find(|(p, _, _)| *p == pair) {
                        Some((_, price, _)) => (
                            axum::http::StatusCode::OK,
                            json!({"pair": pair, "price": price}).to_string(),
                        ),
                        None => {
                            h.fetch_add(1, Ordering::SeqCst);
                            (axum::http::StatusCode::NOT_FOUND, "{}".to_string())
                        }
                    }
                }
            },
        ),
    );
    (format!("{}/price", serve(app).await), unknown)
}

/// The consumer on anvil, with its compiled selectors.
struct Consumer<'a> {
    anvil: &'a Anvil,
    address: String,
    methods: Value,
}

impl Consumer<'_> {
    fn selector(&self, signature: &str) -> String {
        self.methods[signature].as_str().unwrap().to_string()
    }

    /// `eth_call` of `signature` with ABI-encoded `args` (hex): the answer as a number.
    async fn call(&self, signature: &str, args: &str) -> u128 {
        let data = format!("0x{}{args}", self.selector(signature));
        let tx = json!({"to": self.address, "data": data});
        quantity(&self.anvil.rpc("eth_call", json!([tx, "latest"])).await)
    }

    /// Asks for `pair`'s price from anvil's first account; returns the mined receipt.
    async fn request(&self, pair: &str) -> Value {
        let data = format!("0x{}{}", self.selector("request(string)"), abi_string(pair));
        self.anvil
            .transact(json!({"to": self.address, "data": data}))
            .await
    }

    /// The consumer's logs with topic 0 `topic`.
    async fn logs(&self, topic: &str) -> Vec<Value> {
        let filter = json!({"address": self.address, "fromBlock": "0x0", "topics": [topic]});
        self.anvil
            .rpc("eth_getLogs", json!([filter]))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

/// keccak-256 of `text` (anvil's `web3_sha3`), as `0x…`.
async fn keccak(anvil: &Anvil, text: &str) -> String {
    let hash = anvil
        .rpc("web3_sha3", json!([format!("0x{}", hex::encode(text))]))
        .await;
    hash.as_str().unwrap().to_string()
}

async fn requests_are_answered_on_chain_once_in_order(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(&tmp.path().join("anvil.log"), CHAIN_ID).await;
    let (api, unknown_asked) = price_api().await;
    let mut dev = Dev::start_with(3, extra).await;
    let ep = dev.endpoint.clone();

    // The phat contract first: its Ethereum address is the consumer's oracle.
    let feed = deploy_new(&ep, "price-feed");
    let info = run_json(&ep, &["info", &feed]);
    let oracle = info["contract"]["keys"]["ethereum_address"]
        .as_str()
        .unwrap()
        .to_lowercase();

    let artifact = compile("PriceConsumer", tmp.path());
    let code = format!(
        "{}{:0>64}",
        artifact["bytecode"].as_str().unwrap(),
        oracle.trim_start_matches("0x")
    );
    let receipt = anvil.transact(json!({"data": code})).await;
    let consumer = Consumer {
        anvil: &anvil,
        address: receipt["contractAddress"].as_str().unwrap().to_string(),
        methods: artifact["methods"].clone(),
    };
    // The oracle pays its gas: 10 ETH.
    anvil
        .rpc("anvil_setBalance", json!([oracle, "0x8ac7230489e80000"]))
        .await;

    // Configure, subscribe (quorum 2 of 3, one confirmation), and the job every 2 s.
    let gwei = 1_000_000_000u128;
    run_json(
        &ep,
        &[
            "tx",
            &feed,
            "configure",
            &anvil.url,
            &CHAIN_ID.to_string(),
            &consumer.address,
            "0",
            &api,
            "ETH/USD",
            &(20 * gwei).to_string(),
            &gwei.to_string(),
            "200000",
        ],
    );
    let sub = run_json(
        &ep,
        &[
            "subscribe",
            "add",
            &feed,
            "on_request",
            "--rpc",
            &anvil.url,
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--address",
            &consumer.address,
            "--event",
            EVENT,
            "--confirmations",
            "1",
            "--quorum",
            "2",
        ],
    );
    assert_eq!(sub["subscription"], 0, "{sub}");
    let job = run_json(
        &ep,
        &[
            "job",
            "add",
            &feed,
            "work",
            "--handler",
            "on_report",
            "--every",
            "2s",
            "--timeout",
            "1s",
        ],
    );
    assert_eq!(job["job"], 0, "{job}");

    // Four requests; XXX/YYY is a pair the API does not know.
    let pairs = ["ETH/USD", "BTC/USD", "XXX/YYY", "DOT/USD"];
    let mut asked = Vec::new();
    for pair in pairs {
        let r = consumer.request(pair).await;
        asked.push((pair, Instant::now(), r));
    }
    anvil.rpc("evm_mine", json!([])).await; // the confirmation of the last one
    let fulfilled_word = |id: u64| format!("{id:064x}");
    let wait_fulfilled = |ids: Vec<u64>| {
        let (consumer, anvil, ep, feed) = (&consumer, &anvil, &ep, &feed);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut at = Vec::new();
            for id in ids {
                let fulfilled = poll_until(
                    deadline.saturating_duration_since(Instant::now()),
                    Duration::from_millis(200),
                    async || {
                        let done = consumer
                            .call("fulfilled(uint256)", &fulfilled_word(id))
                            .await
                            == 1;
                        if !done {
                            // Blocks keep coming, as on a live chain (each confirms the last).
                            anvil.rpc("evm_mine", json!([])).await;
                        }
                        done
                    },
                )
                .await;
                if fulfilled.is_none() {
                    let requests = run_json(ep, &["query", feed, "requests"]);
                    let answers = run_json(ep, &["query", feed, "answers", "0"]);
                    let triggers = run(ep, &["triggers", feed]);
                    panic!(
                        "request {id} not fulfilled\nrequests: {requests}\nanswers: \
                             {answers}\ntriggers: {}",
                        String::from_utf8_lossy(&triggers.stdout)
                    );
                }
                at.push(Instant::now());
            }
            at
        }
    };
    let done = wait_fulfilled(vec![1, 2, 4]).await;
    let mut latencies: Vec<Duration> = [0usize, 1, 3]
        .iter()
        .zip(&done)
        .map(|(&i, at)| at.duration_since(asked[i].1))
        .collect();

    // A worker is killed (`phat dev` restarts it); two more requests are answered meanwhile.
    dev.kill_worker(1);
    for pair in ["BTC/USD", "ETH/USD"] {
        let r = consumer.request(pair).await;
        asked.push((pair, Instant::now(), r));
    }
    anvil.rpc("evm_mine", json!([])).await;
    let done = wait_fulfilled(vec![5, 6]).await;
    latencies.extend(
        [4usize, 5]
            .iter()
            .zip(&done)
            .map(|(&i, at)| at.duration_since(asked[i].1)),
    );

    // Each answered request has the API's price; the unknown pair has none.
    for (i, (pair, _, _)) in asked.iter().enumerate() {
        let id = i as u64 + 1;
        let price = consumer.call("prices(uint256)", &fulfilled_word(id)).await;
        let want = PRICES
            .iter()
            .find(|(p, _, _)| p == pair)
            .map(|(_, _, v)| *v)
            .unwrap_or(0);
        assert_eq!(price, want, "request {id} ({pair})");
    }
    assert_eq!(
        consumer
            .call("fulfilled(uint256)", &fulfilled_word(3))
            .await,
        0
    );
    // Once each, in request order: one PriceFulfilled log per answered request.
    let fulfilled_topic = keccak(&anvil, "PriceFulfilled(uint256,uint256)").await;
    let logs = consumer.logs(&fulfilled_topic).await;
    let ids: Vec<u128> = logs.iter().map(|l| quantity(&l["topics"][1])).collect();
    assert_eq!(ids, vec![1, 2, 4, 5, 6], "{logs:?}");
    // The pushed pair arrived too.
    let latest = consumer
        .call("latest(string)", &abi_string("ETH/USD"))
        .await;
    assert_eq!(latest, PRICES[0].2);
    let updated_topic = keccak(&anvil, "PriceUpdated(string,uint256)").await;
    assert!(!consumer.logs(&updated_topic).await.is_empty());

    // The unknown pair is given up after 5 reports without a price, and not asked for again.
    let given_up = "pair: XXX/YYY, answer: None, misses: 5";
    let runs = eventually(
        "the unknown pair to be given up",
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let requests = run_json(&ep, &["query", &feed, "requests"]);
            if requests["decoded"].as_str().unwrap().contains(given_up) {
                Ok(run_json(&ep, &["job", "list", &feed])[0]["runs"]
                    .as_u64()
                    .unwrap())
            } else {
                Err(requests)
            }
        },
    )
    .await;
    let runs_reach = |n: u64| {
        let (ep, feed) = (&ep, &feed);
        async move {
            eventually(
                format!("the job to reach {n} runs"),
                Duration::from_secs(30),
                Duration::from_millis(200),
                async || {
                    run_json(ep, &["job", "list", feed])[0]["runs"]
                        .as_u64()
                        .unwrap()
                        >= n
                },
            )
            .await
        }
    };
    // A run under way as it was given up may still ask: count from the next one.
    runs_reach(runs + 1).await;
    let asked = unknown_asked.load(Ordering::SeqCst);
    assert!(asked >= 5, "{asked}");
    runs_reach(runs + 3).await;
    assert_eq!(unknown_asked.load(Ordering::SeqCst), asked);

    // Every transaction the oracle's key sent is the one the feed decided for that nonce,
    // and it succeeded: for each nonce the chain counts, the decided hash has a receipt with
    // status 1 (an answer sent twice, or a stray transaction, would leave a decided hash
    // unmined under a used nonce).
    let sent = quantity(
        &anvil
            .rpc("eth_getTransactionCount", json!([oracle, "latest"]))
            .await,
    );
    let mut decided: Vec<(u64, String)> = Vec::new();
    loop {
        let from = decided.len().to_string();
        let page = run_json(&ep, &["query", &feed, "answers", &from]);
        let text = page["decoded"].as_str().unwrap_or_default().to_string();
        let before = decided.len();
        for chunk in text.split("Outgoing { nonce: ").skip(1) {
            let nonce: u64 = chunk
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            // The hash follows the answer: the last 32-byte hex word of the chunk.
            let hash = chunk
                .match_indices("0x")
                .map(|(k, _)| &chunk[k + 2..])
                .filter(|rest| {
                    rest.len() >= 64
                        && rest[..64].bytes().all(|b| b.is_ascii_hexdigit())
                        && !rest[64..].starts_with(|c: char| c.is_ascii_hexdigit())
                })
                .last()
                .map(|rest| format!("0x{}", &rest[..64]))
                .unwrap_or_else(|| panic!("no hash in {chunk}"));
            assert_eq!(nonce as usize, decided.len(), "{text}");
            decided.push((nonce, hash));
        }
        if decided.len() == before {
            break;
        }
    }
    assert!(
        decided.len() as u128 >= sent,
        "{sent} sent, {} decided",
        decided.len()
    );
    for (nonce, hash) in decided.iter().take(sent as usize) {
        let receipt = anvil.rpc("eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(receipt["status"], "0x1", "nonce {nonce}: {receipt}");
    }

    // The workers agree on the state: the same root after a command they all applied.
    let count = run_json(&ep, &["tx", &feed, "count"]);
    let seq = count["receipt"]["seq"].as_u64().unwrap();
    let mut roots = Vec::new();
    for w in &dev.workers {
        wait_seq(w, seq).await;
        let receipt = phat_client::Client::new(w)
            .unwrap()
            .receipt(seq)
            .await
            .unwrap();
        roots.push(receipt.state_root);
    }
    assert!(roots.windows(2).all(|p| p[0] == p[1]), "{roots:?}");
    latencies.sort();
    eprintln!(
        "request mined -> fulfill mined ({} requests, job every 2 s, {extra:?}): p50 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    dev.stop();
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_are_answered_on_chain_once_in_order_on_the_embedded_ledger() {
        requests_are_answered_on_chain_once_in_order(&[]).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_are_answered_on_chain_once_in_order_on_nats() {
        requests_are_answered_on_chain_once_in_order(&["--ledger", "nats"]).await;
    }
}
