//! anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by `scripts/setup` into `tools/eth`)
//! on a free 127.0.0.1 port, for the tests that need an Ethereum node.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::free_ports;

/// `tools/eth`: anvil, solc-js and the Solidity sources of the tests.
pub fn tools_eth() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/eth")
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(id) = anvil.try_rpc("eth_chainId", json!([])).await {
                assert_eq!(id, json!(format!("0x{chain_id:x}")));
                return anvil;
            }
            assert!(Instant::now() < deadline, "anvil did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// The receipt of transaction `hash`, once mined.
    pub async fn receipt(&self, hash: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !r.is_null() {
                return r;
            }
            assert!(Instant::now() < deadline, "{hash} not mined");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// A JSON-RPC quantity (`"0x1a"`) as a number.
pub fn quantity(v: &Value) -> u128 {
    let s = v.as_str().unwrap().trim_start_matches("0x");
    let s = s.trim_start_matches('0');
    u128::from_str_radix(if s.is_empty() { "0" } else { s }, 16).unwrap()
}
