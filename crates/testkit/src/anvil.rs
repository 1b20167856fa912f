//! anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by `scripts/setup` into `tools/eth`)
//! on a free 127.0.0.1 port, for the tests that need an Ethereum node.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{eventually, free_ports, repo_root};

/// `tools/eth`: anvil, solc-js and the Solidity sources of the tests.
pub fn tools_eth() -> PathBuf {
    repo_root().join("tools/eth")
}

/// anvil on a free 127.0.0.1 port, killed when dropped.
pub struct Anvil {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: String,
    http: reqwest::Client,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Anvil {
    /// anvil on a free port serving chain `chain_id`, up.
    pub async fn start(log: &Path, chain_id: u64) -> Anvil {
        let bin = tools_eth().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup (npm ci in tools/eth)",
            bin.display()
        );
        let port = free_ports(1);
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start anvil");
        let anvil = Anvil {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let id = eventually(
            "anvil to come up",
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || anvil.try_rpc("eth_chainId", json!([])).await,
        )
        .await;
        assert_eq!(id, json!(format!("0x{chain_id:x}")));
        anvil
    }

    /// A JSON-RPC call's result, or its error.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match r.get("error") {
            Some(e) => Err(format!("{method}: {e}")),
            None => Ok(r["result"].clone()),
        }
    }

    /// A JSON-RPC call's result (the test fails on an error).
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap()
    }

    /// Sends a transaction from anvil's first (unlocked) account; returns its mined receipt.
    pub async fn transact(&self, tx: Value) -> Value {
        let from = self.rpc("eth_accounts", json!([])).await[0].clone();
        let mut tx = tx;
        tx["from"] = from;
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        let receipt = self.receipt(hash.as_str().unwrap()).await;
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        receipt
    }

    /// The ether balance of `who`, in wei.
    pub async fn eth_balance(&self, who: &str) -> u128 {
        quantity(&self.rpc("eth_getBalance", json!([who, "latest"])).await)
    }

    /// The transaction count (next nonce) of `who`.
    pub async fn nonce(&self, who: &str) -> u128 {
        quantity(
            &self
                .rpc("eth_getTransactionCount", json!([who, "latest"]))
                .await,
        )
    }

    /// The ERC-20 `balanceOf(who)` of the token contract at `token`.
    pub async fn token_balance(&self, token: &str, who: &str) -> u128 {
        let data = format!("0x70a08231{}", address_word(who));
        quantity(
            &self
                .rpc("eth_call", json!([{"to": token, "data": data}, "latest"]))
                .await,
        )
    }

    /// The receipt of transaction `hash`, once mined.
    pub async fn receipt(&self, hash: &str) -> Value {
        eventually(
            format!("{hash} to be mined"),
            Duration::from_secs(20),
            Duration::from_millis(50),
            async || {
                let r = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
                (!r.is_null()).then_some(r)
            },
        )
        .await
    }
}

/// Compiles `tools/eth/NAME.sol` with solc-js into `dir`; returns its artifact (`abi`,
/// `bytecode`, `methods`: each function's signature and selector).
pub fn compile(name: &str, dir: &Path) -> Value {
    let artifact = dir.join(format!("{name}.json"));
    let out = Command::new("node")
        .arg(tools_eth().join("compile.js"))
        .arg(name)
        .arg(&artifact)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "compile.js {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(artifact).unwrap()).unwrap()
}

/// `text` ABI-encoded as a lone `string` argument (offset, length, bytes padded to a word),
/// in hex.
pub fn abi_string(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(text.len().div_ceil(32) * 32, 0);
    format!("{:064x}{:064x}{}", 32, text.len(), hex::encode(bytes))
}

/// `n` as one 32-byte ABI word, in hex.
pub fn word(n: u128) -> String {
    format!("{n:064x}")
}

/// The address `a` (`0x…`) as one 32-byte ABI word, in hex.
pub fn address_word(a: &str) -> String {
    format!("{:0>64}", a.trim_start_matches("0x").to_lowercase())
}

/// A JSON-RPC quantity (`"0x1a"`) as a number.
pub fn quantity(v: &Value) -> u128 {
    let s = v.as_str().unwrap().trim_start_matches("0x");
    let s = s.trim_start_matches('0');
    u128::from_str_radix(if s.is_empty() { "0" } else { s }, 16).unwrap()
}
