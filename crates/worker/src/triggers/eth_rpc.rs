//! Ethereum JSON-RPC as subscriptions read it: one call through the worker's egress rules,
//! bounded in time, its answers parsed strictly (quantities, logs), and RPC URLs shown without
//! the API keys providers put in them.

use std::time::Duration;

use phat_primitives::protocol::{Bytes, EthLog, LogPosition};
use phat_primitives::Hash;
use serde_json::{json, Value};

use crate::Worker;

/// How long one RPC call may take.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// One JSON-RPC call through the worker's egress (bounded in time and answer size).
pub(crate) async fn call(
    worker: &Worker,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let req = phat_pink::HttpRequest {
        url: url.into(),
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    };
    let resp = worker
        .inner
        .pink
        .egress
        .send(req, RPC_TIMEOUT)
        .await
        .map_err(|r| format!("{method}: {}", r.1))?;
    if resp.status_code != 200 {
        return Err(format!("{method}: HTTP {}", resp.status_code));
    }
    let mut answer: Value =
        serde_json::from_slice(&resp.body).map_err(|e| format!("{method}: not JSON: {e}"))?;
    if !answer["error"].is_null() {
        return Err(format!("{method}: {}", answer["error"]));
    }
    Ok(answer["result"].take())
}

/// A JSON-RPC quantity (`"0x1a"`).
pub(crate) fn quantity(v: &Value) -> Result<u64, String> {
    let s = v.as_str().ok_or_else(|| format!("{v} is not a quantity"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("`{s}`: {e}"))
}

/// A log object of `eth_getLogs`.
pub(crate) fn parse_log(chain_id: u64, l: &Value) -> Result<EthLog, String> {
    let bytes = |v: &Value, what: &str| -> Result<Vec<u8>, String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("the log's {what} is missing"))?;
        hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("the log's {what}: {e}"))
    };
    let hash = |v: &Value, what: &str| -> Result<Hash, String> {
        let b = bytes(v, what)?;
        <[u8; 32]>::try_from(b.as_slice())
            .map(Hash)
            .map_err(|_| format!("the log's {what} is not 32 bytes"))
    };
    let topics = l["topics"]
        .as_array()
        .ok_or("the log has no topics list")?
        .iter()
        .map(|t| hash(t, "topic"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EthLog {
        chain_id,
        position: LogPosition {
            block_number: quantity(&l["blockNumber"])?,
            log_index: u32::try_from(quantity(&l["logIndex"])?)
                .map_err(|_| "the log index is over 2^32")?,
        },
        block_hash: hash(&l["blockHash"], "block hash")?,
        address: Bytes(bytes(&l["address"], "address")?),
        topics,
        data: Bytes(bytes(&l["data"], "data")?),
    })
}

/// `url` as anyone may see it: scheme, host and port only (RPC providers put their API keys
/// in the path, the query or the userinfo).
pub(crate) fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!(
                "{}://{}{port}{rest}",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        Err(_) => "(not a URL)".into(),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn rpc_urls_are_shown_without_their_keys() {
        assert_eq!(
            public_url("https://mainnet.infura.io/v3/SECRET"),
            "https://mainnet.infura.io/…"
        );
        assert_eq!(
            public_url("https://user:SECRET@rpc.example:8545/?key=SECRET"),
            "https://rpc.example:8545/…"
        );
        assert_eq!(public_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
    }

    #[test]
    fn rpc_logs_parse() {
        let l = json!({
            "address": "0x0909090909090909090909090909090909090909",
            "topics": [format!("0x{}", "07".repeat(32))],
            "data": "0xaabb",
            "blockNumber": "0x1f",
            "blockHash": format!("0x{}", "03".repeat(32)),
            "logIndex": "0x2",
        });
        let log = parse_log(5, &l).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.position.block_number, 31);
        assert_eq!(log.position.log_index, 2);
        assert_eq!(log.data.0, vec![0xaa, 0xbb]);
        assert!(parse_log(5, &json!({"topics": []})).is_err());
    }
}
