//! `phat subscribe add|list|rm`: a contract's subscriptions to an Ethereum contract's logs.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use phat_client::primitives::protocol::{SubscriptionDef, SubscriptionOp};
use phat_client::primitives::Hash;
use phat_client::Signer;
use serde_json::json;

use super::common::{contract_metadata, parse_id};
use super::schedule::{print_added, print_removed};
use super::Ctx;

/// Arguments of `phat subscribe`.
#[derive(Args)]
pub struct SubscribeArgs {
    #[command(subcommand)]
    pub op: SubscribeCommand,
}

/// What `phat subscribe` does.
#[derive(Subcommand)]
pub enum SubscribeCommand {
    /// Deliver an Ethereum contract's logs to a handler message (as the contract's deployer);
    /// prints the subscription's id.
    Add(AddArgs),
    /// List a contract's subscriptions: what they follow, the last log delivered, reports
    /// waiting for a quorum.
    List {
        /// The contract id (`0x…`).
        contract: String,
    },
    /// Remove a subscription (as the contract's deployer).
    Rm {
        /// The contract id (`0x…`).
        contract: String,
        /// The subscription's id (`phat subscribe list`).
        id: u32,
        /// The deployer's secret URI.
        #[arg(long, default_value = "//Alice")]
        suri: String,
    },
}

/// Arguments of `phat subscribe add`.
#[derive(Args)]
pub struct AddArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The handler: a message label taking `(block_number: u64, log_index: u32, topics:
    /// Vec<[u8; 32]>, data: Vec<u8>)`, or its `0x…` selector.
    pub handler: String,
    /// The Ethereum JSON-RPC endpoint workers poll.
    #[arg(long)]
    pub rpc: String,
    /// The chain id the endpoint must serve.
    #[arg(long)]
    pub chain_id: u64,
    /// The emitting contract's address (`0x…`, 20 bytes).
    #[arg(long)]
    pub address: String,
    /// The event, by its Solidity signature (`PriceRequested(uint256,string)`): topic 0 is its
    /// keccak-256, and `--topic` filters the positions after it.
    #[arg(long)]
    pub event: Option<String>,
    /// A topic filter by position: `0x…` (32 bytes) or `any` (repeatable, at most 4).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Blocks under the head before a log is delivered.
    #[arg(long, default_value_t = 0)]
    pub confirmations: u32,
    /// The first block to look at.
    #[arg(long, default_value_t = 0)]
    pub from_block: u64,
    /// Distinct workers that must report a log before it is delivered.
    #[arg(long, default_value_t = 1)]
    pub quorum: u8,
    /// Gas limit of each run.
    #[arg(long, default_value_t = phat_client::DEFAULT_GAS_LIMIT)]
    pub gas_limit: u64,
    /// Metadata to find the handler in (default: the metadata stored on the cluster).
    #[arg(long)]
    pub metadata: Option<std::path::PathBuf>,
    /// The deployer's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

fn hex_bytes(text: &str, what: &str, len: usize) -> Result<Vec<u8>> {
    let bytes = hex::decode(text.trim_start_matches("0x"))
        .with_context(|| format!("{what} `{text}` is not hex"))?;
    if bytes.len() != len {
        bail!("{what} `{text}` is {} bytes, not {len}", bytes.len());
    }
    Ok(bytes)
}

/// Topic 0 of the event with Solidity signature `signature` (`Name(type,…)`, the types as
/// the ABI spells them, no spaces): its keccak-256.
fn event_topic(signature: &str) -> Result<Hash> {
    let well_formed = signature
        .split_once('(')
        .is_some_and(|(name, rest)| !name.is_empty() && rest.ends_with(')'))
        && !signature.contains(char::is_whitespace);
    if !well_formed {
        bail!(
            "the event `{signature}` is not a signature like `PriceRequested(uint256,string)` \
             (no spaces, no parameter names)"
        );
    }
    use sha3::Digest;
    Ok(Hash(sha3::Keccak256::digest(signature.as_bytes()).into()))
}

/// `phat subscribe`.
pub async fn run(args: SubscribeArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    match args.op {
        SubscribeCommand::Add(a) => {
            let id = parse_id(&a.contract)?;
            let handler = if a.handler.starts_with("0x") {
                hex_bytes(&a.handler, "the handler selector", 4)?
            } else {
                contract_metadata(&client, &id, a.metadata.as_deref())
                    .await?
                    .message_selector(&a.handler)?
                    .to_vec()
            };
            let event = a.event.as_deref().map(event_topic).transpose()?;
            let topics = event
                .into_iter()
                .map(|h| Ok(Some(h)))
                .chain(a.topics.iter().map(|t| match t.as_str() {
                    "any" => Ok(None),
                    t => {
                        let b = hex_bytes(t, "topic", 32)?;
                        let mut h = [0u8; 32];
                        h.copy_from_slice(&b);
                        Ok(Some(Hash(h)))
                    }
                }))
                .collect::<Result<Vec<_>>>()?;
            let def = SubscriptionDef {
                rpc_url: a.rpc.clone(),
                chain_id: a.chain_id,
                address: hex_bytes(&a.address, "the address", 20)?.into(),
                topics,
                confirmations: a.confirmations,
                from_block: a.from_block,
                handler: handler.into(),
                gas_limit: a.gas_limit,
                quorum: a.quorum,
            };
            let signer = Signer::from_suri(&a.suri)?;
            print_added(
                ctx,
                "subscription",
                client
                    .change_subscription(&signer, SubscriptionOp::Add { contract: id, def })
                    .await?,
            )?;
        }
        SubscribeCommand::List { contract } => {
            let id = parse_id(&contract)?;
            // Through an endpoint that spreads reads, the answering worker may lag a change
            // just made: read at the ledger head.
            client.read_latest().await?;
            let list = client.subscriptions(&id).await?;
            ctx.print(
                || {
                    if list.is_empty() {
                        return "no subscriptions".into();
                    }
                    list.iter()
                        .map(|s| {
                            let cursor = s.cursor.map_or("none yet".to_string(), |c| {
                                format!("block {} log {}", c.block_number, c.log_index)
                            });
                            format!(
                                "subscription {}  chain {} 0x{}  {} confirmations  quorum {}  \
                                 delivered {} (last: {cursor})  waiting {}",
                                s.id,
                                s.def.chain_id,
                                hex::encode(&s.def.address.0),
                                s.def.confirmations,
                                s.def.quorum,
                                s.delivered,
                                s.votes.len()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!(list),
            );
        }
        SubscribeCommand::Rm { contract, id, suri } => {
            let contract = parse_id(&contract)?;
            let signer = Signer::from_suri(&suri)?;
            print_removed(
                ctx,
                "subscription",
                id,
                client
                    .change_subscription(&signer, SubscriptionOp::Remove { contract, id })
                    .await?,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::event_topic;

    #[test]
    fn an_event_signature_is_its_topic() {
        let t = event_topic("Transfer(address,address,uint256)").unwrap();
        assert_eq!(
            hex::encode(t.0),
            "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
        for bad in [
            "Transfer",
            "(uint256)",
            "Transfer(address from)",
            "Transfer(uint256",
        ] {
            let e = event_topic(bad).unwrap_err().to_string();
            assert!(e.contains("not a signature"), "{bad}: {e}");
        }
    }
}
