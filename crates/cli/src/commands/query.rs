//! `phat query`: call a message read-only on one worker and print the decoded result.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use phat_client::primitives::protocol::CallResult;
use phat_client::Signer;
use serde_json::json;

use super::common::{contract_metadata, decode, encode_call, parse_id};
use super::Ctx;

/// Arguments of `phat query`.
#[derive(Args)]
pub struct CallArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The message label (`balance_of`), or a `0x…` selector with SCALE arguments appended.
    pub message: String,
    /// Message arguments, as text.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Metadata to encode with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// The caller's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
    /// Native value to transfer.
    #[arg(long, default_value_t = 0)]
    pub value: u128,
}

/// `phat query`.
pub async fn run(args: CallArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(&args.suri)?;
    let id = parse_id(&args.contract)?;
    let contract = if args.message.starts_with("0x") {
        None
    } else {
        Some(contract_metadata(&client, &id, args.metadata.as_deref()).await?)
    };
    let data = encode_call(contract.as_ref(), &args.message, &args.args)?;
    let mut call = phat_client::call(id, data);
    if let phat_client::primitives::protocol::Call::Call { value, .. } = &mut call {
        *value = args.value;
    }
    let r = client.query(&signer, call, None).await?;
    let out = match &r.result {
        CallResult::Ok(o) => o,
        CallResult::Err(e) => bail!("{}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("the answer is sealed to another key"),
    };
    let decoded = decode(contract.as_ref(), &args.message, &out.data);
    ctx.print(
        || {
            let mut s = decoded.clone();
            if out.reverted {
                s.push_str("  (reverted)");
            }
            if !r.debug_message.is_empty() {
                s.push_str(&format!("\n  debug: {}", r.debug_message.trim_end()));
            }
            s
        },
        || json!({"decoded": decoded, "response": r}),
    );
    // A message that returns an error reverts; for a query that is still an answer.
    Ok(())
}
