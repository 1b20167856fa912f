//! Operating an ERC-20 on a real Ethereum node end to end: anvil (npm
//! `@foundry-rs/anvil-linux-amd64`, installed by `scripts/setup` into `tools/eth`) on
//! 127.0.0.1, an OpenZeppelin 5 token compiled with solc-js, and the `erc20-operator`
//! contract on a two-worker `phat dev` cluster, driven through the `phat` CLI.

use std::path::Path;

use phat_testkit::anvil::{address_word, compile, word, Anvil};
use phat_testkit::*;
use serde_json::{json, Value};

const CHAIN_ID: u64 = 424_242;
const SUPPLY: u128 = 1_000_000;
const ONE_ETH: u128 = 1_000_000_000_000_000_000;
/// anvil's second dev account: the allowed recipient.
const ALLOWED: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
/// anvil's third dev account: never allowed.
const STRANGER: &str = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";

/// `phat dev`, stopped with SIGTERM when dropped (so it stops its workers too), also when the
/// test fails.
struct Cluster(Dev);

impl Drop for Cluster {
    fn drop(&mut self) {
        self.0.proc.terminate();
    }
}

/// Compiles and deploys TestToken (OpenZeppelin ERC-20, `SUPPLY` minted to account 0).
async fn deploy_token(anvil: &Anvil, dir: &Path) -> String {
    let artifact = compile("TestToken", dir);
    let data = format!("{}{}", artifact["bytecode"].as_str().unwrap(), word(SUPPLY));
    let receipt = anvil
        .transact(json!({"data": data, "gas": "0x2dc6c0"}))
        .await;
    receipt["contractAddress"].as_str().unwrap().to_string()
}

/// The decoded result of `phat query`/`phat tx` (`--output json`).
fn decoded(v: &Value) -> String {
    v["decoded"].as_str().unwrap_or_default().to_string()
}

/// `query` on `endpoint`: the decoded answer.
fn query(endpoint: &str, id: &str, args: &[&str]) -> String {
    let mut all = vec!["query", id];
    all.extend_from_slice(args);
    decoded(&run_json(endpoint, &all))
}

/// `tx` expected to succeed: the decoded answer.
fn tx(endpoint: &str, id: &str, args: &[&str]) -> String {
    let mut all = vec!["tx", id];
    all.extend_from_slice(args);
    let r = decoded(&run_json(endpoint, &all));
    assert!(r.starts_with("Ok(Ok("), "{args:?}: {r}");
    r
}

/// `tx` expected to be refused: exits non-zero; returns what it printed (the decoded error).
fn tx_refused(endpoint: &str, id: &str, args: &[&str]) -> String {
    let mut all = vec!["tx", id];
    all.extend_from_slice(args);
    let out = run(endpoint, &all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail: {stdout}");
    assert!(stderr.contains("reverted"), "{stderr}");
    stdout
}

/// `Ok(Ok(0x…))` → `0x…`.
fn inner(s: &str) -> String {
    s.trim_start_matches("Ok(")
        .trim_start_matches("Ok(")
        .trim_end_matches(')')
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn erc20_operator_moves_tokens_on_anvil() {
    let operator = bundle("erc20-operator");
    let tmp = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(&tmp.path().join("anvil.log"), CHAIN_ID).await;
    let token = deploy_token(&anvil, tmp.path()).await;
    let account0 = anvil.rpc("eth_accounts", json!([])).await[0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anvil.token_balance(&token, &account0).await, SUPPLY);

    let dev = Cluster(Dev::start(2).await);
    let ep = dev.0.endpoint.clone();
    let (w0, w1) = (dev.0.workers[0].clone(), dev.0.workers[1].clone());
    let id = run_json(&ep, &["deploy", operator.to_str().unwrap()])["contract"]
        .as_str()
        .unwrap()
        .to_string();

    // Its Ethereum address: the same on both workers (one key, derived on each).
    let address = inner(&query(&w0, &id, &["address"]));
    assert!(
        address.starts_with("0x") && address.len() == 42,
        "{address}"
    );
    assert_eq!(inner(&query(&w1, &id, &["address"])), address);
    // `phat info` shows the same address, derived by the workers for the contract.
    let shown = run_json(&ep, &["info", &id])["contract"]["keys"]["ethereum_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(shown.to_lowercase(), address.to_lowercase());
    assert_eq!(query(&w0, &id, &["eth_balance"]), "Ok(Err(NotConfigured))");

    // Configure (owner = the deployer, //Alice), set the policy, allow one recipient.
    let (max_fee, tip, gas) = ("10000000000", "1000000000", "100000");
    tx(
        &ep,
        &id,
        &[
            "configure",
            &anvil.url,
            &CHAIN_ID.to_string(),
            &token,
            "0",
            max_fee,
            tip,
            gas,
        ],
    );
    tx(&ep, &id, &["set_policy", "1000"]);
    tx(&ep, &id, &["allow", ALLOWED]);
    // Someone else is not the owner.
    let out = tx_refused(&ep, &id, &["set_policy", "999999", "--suri", "//Bob"]);
    assert!(out.contains("NotOwner"), "{out}");

    // Fund it: 1 ETH and 5000 tokens; its balances as the contract reads them match the chain.
    anvil
        .transact(json!({"to": address, "value": format!("0x{ONE_ETH:x}")}))
        .await;
    let data = format!("0xa9059cbb{}{}", address_word(&address), word(5000));
    anvil.transact(json!({"to": token, "data": data})).await;
    assert_eq!(anvil.eth_balance(&address).await, ONE_ETH);
    assert_eq!(
        query(&w0, &id, &["eth_balance"]),
        format!("Ok(Ok({ONE_ETH}))")
    );
    assert_eq!(query(&w1, &id, &["token_balance"]), "Ok(Ok(5000))");
    assert_eq!(
        query(&w0, &id, &["balance_of", &account0]),
        format!("Ok(Ok({}))", SUPPLY - 5000)
    );

    // A transfer within the policy: recorded by a command, sent by a query, mined by anvil.
    let r = tx(&ep, &id, &["request_transfer", ALLOWED, "300"]);
    assert_eq!(r, "Ok(Ok(0))");
    let intent = query(&w0, &id, &["intent", "0"]);
    assert!(
        intent.contains("amount: 300, nonce: 0")
            && intent.contains(&format!("chain_id: {CHAIN_ID}")),
        "{intent}"
    );
    let hash = inner(&query(&w0, &id, &["send", "0"]));
    assert_eq!(hash.len(), 66, "{hash}");
    let receipt = anvil.receipt(&hash).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["from"].as_str().unwrap(), address);
    assert_eq!(receipt["to"].as_str().unwrap(), token);
    assert_eq!(anvil.token_balance(&token, ALLOWED).await, 300);
    assert_eq!(anvil.token_balance(&token, &address).await, 4700);
    let status = query(&w1, &id, &["status", "0"]);
    assert!(status.contains("success: true"), "{status}");

    // Over the daily limit, and a recipient not on the list: refused, nothing recorded.
    let out = tx_refused(&ep, &id, &["request_transfer", ALLOWED, "800"]);
    assert!(
        out.contains("OverDailyLimit { limit: 1000, spent_today: 300, requested: 800 }"),
        "{out}"
    );
    let out = tx_refused(&ep, &id, &["request_transfer", STRANGER, "1"]);
    assert!(out.contains("NotAllowed"), "{out}");
    assert_eq!(query(&w0, &id, &["intent_count"]), "Ok(1)");

    // One intent sent through both workers at once: one hash, one transfer.
    assert_eq!(
        tx(&ep, &id, &["request_transfer", ALLOWED, "200"]),
        "Ok(Ok(1))"
    );
    let sends: Vec<_> = [w0.clone(), w1.clone()]
        .into_iter()
        .map(|w| {
            let id = id.clone();
            std::thread::spawn(move || query(&w, &id, &["send", "1"]))
        })
        .collect();
    let hashes: Vec<String> = sends.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(hashes[0].starts_with("Ok(Ok(0x"), "{hashes:?}");
    assert_eq!(hashes[0], hashes[1]);
    // And once more, after it is mined ("nonce too low" from the node): the same hash.
    let hash1 = inner(&hashes[0]);
    assert_eq!(anvil.receipt(&hash1).await["status"], "0x1");
    assert_eq!(inner(&query(&w1, &id, &["send", "1"])), hash1);
    assert_eq!(inner(&query(&w0, &id, &["tx_hash", "1"])), hash1);
    assert_eq!(anvil.token_balance(&token, ALLOWED).await, 500);
    assert_eq!(anvil.token_balance(&token, &address).await, 4500);
    assert_eq!(anvil.nonce(&address).await, 2);

    // A wrong RPC URL (a closed local port): a clear error, on queries and on send.
    let closed = format!("http://127.0.0.1:{}", free_ports(1));
    tx(&ep, &id, &["set_rpc_url", &closed]);
    let err = query(&w0, &id, &["eth_balance"]);
    assert!(err.starts_with("Ok(Err(Eth(Http(Transport("), "{err}");
    let err = query(&w1, &id, &["send", "1"]);
    assert!(err.starts_with("Ok(Err(Eth(Http(Transport("), "{err}");
    tx(&ep, &id, &["set_rpc_url", &anvil.url]);

    // A node error: a fee the operator cannot pay; the node's answer comes back as it said
    // it. The owner reprices the intent (same nonce) and it goes through.
    assert_eq!(
        tx(&ep, &id, &["request_transfer", ALLOWED, "100"]),
        "Ok(Ok(2))"
    );
    tx(
        &ep,
        &id,
        &["reprice", "2", &(ONE_ETH * 1000).to_string(), tip],
    );
    let err = query(&w0, &id, &["send", "2"]);
    assert!(err.starts_with("Ok(Err(Eth(Rpc { code: "), "{err}");
    assert!(err.to_lowercase().contains("insufficient funds"), "{err}");
    assert_eq!(anvil.token_balance(&token, ALLOWED).await, 500);
    tx(&ep, &id, &["reprice", "2", max_fee, tip]);
    let hash2 = inner(&query(&w1, &id, &["send", "2"]));
    assert_eq!(anvil.receipt(&hash2).await["status"], "0x1");
    assert_eq!(anvil.token_balance(&token, ALLOWED).await, 600);
    assert_eq!(query(&w0, &id, &["token_balance"]), "Ok(Ok(4400))");
    assert_eq!(anvil.nonce(&address).await, 3);
    assert_eq!(query(&w0, &id, &["chain_nonce"]), "Ok(Ok(3))");
    assert_eq!(query(&w0, &id, &["next_nonce"]), "Ok(3)");
    drop(dev);
    drop(anvil);
}
