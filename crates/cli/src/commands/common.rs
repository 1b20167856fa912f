//! Helpers the commands share: contract ids, loading and fetching metadata, encoding calls
//! and decoding results.

use std::path::Path;

use anyhow::{bail, Context, Result};
use phat_client::primitives::AccountId;
use phat_client::{Client, Contract};

/// A contract id given as `0x…` hex.
pub(super) fn parse_id(s: &str) -> Result<AccountId> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("contract id `{s}` is not a 0x-prefixed 32-byte hex id: {e}"))
}

/// Loads metadata (and maybe wasm) from a bundle or JSON file.
pub(super) fn load_contract(path: &Path) -> Result<Contract> {
    Contract::load(path).with_context(|| format!("reading {}", path.display()))
}

/// The metadata to encode calls to `id` with.
pub(super) async fn contract_metadata(
    client: &Client,
    id: &AccountId,
    path: Option<&Path>,
) -> Result<Contract> {
    if let Some(p) = path {
        return load_contract(p);
    }
    let meta = client
        .contract_metadata(id)
        .await
        .with_context(|| format!("no metadata on the cluster for {id}; pass --metadata FILE"))?;
    Ok(Contract::from_json(&meta.to_string())?)
}

/// Encodes `message(args)`; a `0x…` message is taken as raw call data.
pub(super) fn encode_call(
    contract: Option<&Contract>,
    message: &str,
    args: &[String],
) -> Result<Vec<u8>> {
    if let Some(raw) = message.strip_prefix("0x") {
        if !args.is_empty() {
            bail!("raw call data (0x…) takes no further arguments");
        }
        return hex::decode(raw).context("raw call data is not hex");
    }
    let contract = contract.context("metadata needed to encode by name")?;
    Ok(contract.encode_message(message, args)?)
}

/// The result of `message` decoded with the metadata, else as hex.
pub(super) fn decode(contract: Option<&Contract>, message: &str, data: &[u8]) -> String {
    contract
        .filter(|_| !message.starts_with("0x"))
        .and_then(|c| c.decode_return(message, data).ok())
        .unwrap_or_else(|| format!("0x{}", hex::encode(data)))
}
