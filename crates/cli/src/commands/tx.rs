//! `phat tx`: send a message as a command, wait for its receipt, print result, events and
//! gas.

use anyhow::{bail, Result};
use clap::Args;
use phat_client::primitives::protocol::{CallResult, EventRecord, Receipt};
use phat_client::{Contract, MessageKind, Signer};
use serde_json::json;

use super::common::{contract_metadata, decode, encode_call, parse_id};
use super::query::CallArgs;
use super::Ctx;

/// Arguments of `phat tx`.
#[derive(Args)]
pub struct TxArgs {
    #[command(flatten)]
    pub call: CallArgs,
    /// Return once the ledger ordered the command, without waiting for the receipt.
    #[arg(long)]
    pub no_wait: bool,
    /// Gas limit (default: estimated by running the call as a query first, plus a quarter).
    #[arg(long)]
    pub gas_limit: Option<u64>,
}

/// `phat tx`.
pub async fn run(args: TxArgs, ctx: &Ctx) -> Result<()> {
    let a = args.call;
    let client = ctx.client()?;
    let signer = Signer::from_suri(&a.suri)?;
    let id = parse_id(&a.contract)?;
    let contract = if a.message.starts_with("0x") {
        None
    } else {
        Some(contract_metadata(&client, &id, a.metadata.as_deref()).await?)
    };
    if let (Some(c), false) = (&contract, a.message.starts_with("0x")) {
        if c.kind(&a.message) == Some(MessageKind::Query) {
            eprintln!(
                "note: `{}` does not change state; `phat query` answers it faster",
                a.message
            );
        }
    }
    let data = encode_call(contract.as_ref(), &a.message, &a.args)?;
    let mut call = phat_client::call(id, data);
    if let phat_client::primitives::protocol::Call::Call { value, .. } = &mut call {
        *value = a.value;
    }
    // The estimate's limit when the dry run succeeds; else the default, and the command says
    // what went wrong.
    let limit = match args.gas_limit {
        Some(limit) => limit,
        None => match client.estimate(&signer, call.clone()).await {
            Ok(e) if matches!(&e.result, CallResult::Ok(o) if !o.reverted) => e.gas_limit,
            _ => phat_client::DEFAULT_GAS_LIMIT,
        },
    };
    if let phat_client::primitives::protocol::Call::Call { gas_limit, .. } = &mut call {
        *gas_limit = limit;
    }
    let submitted = client.submit(&signer, call, !args.no_wait).await?;
    let Some(receipt) = submitted.receipt else {
        ctx.print(
            || {
                let why = if args.no_wait {
                    ""
                } else {
                    // The worker ordered it but cannot show its receipt (it restored a
                    // snapshot past it, or did not apply it within its wait).
                    "\n(this worker has no receipt to show: another worker serves it at /v1/receipts/SEQ)"
                };
                format!(
                    "submitted: seq {} request {}{why}",
                    submitted.seq, submitted.request
                )
            },
            || json!({"seq": submitted.seq, "request": submitted.request}),
        );
        return Ok(());
    };
    print_receipt(ctx, contract.as_ref(), &a.message, &receipt)
}

/// Prints a command's receipt: its result and events decoded; fails if the call reverted.
fn print_receipt(
    ctx: &Ctx,
    contract: Option<&Contract>,
    message: &str,
    receipt: &Receipt,
) -> Result<()> {
    let out = match &receipt.result {
        CallResult::Ok(o) => o,
        CallResult::Err(e) => bail!("seq {}: {}: {}", receipt.seq, e.kind, e.message),
        CallResult::Sealed(_) => bail!(
            "seq {}: the result is encrypted to the command's sender",
            receipt.seq
        ),
    };
    let decoded = decode(contract, message, &out.data);
    let events: Vec<String> = receipt
        .events
        .iter()
        .map(|e| event_text(contract, e))
        .collect();
    ctx.print(
        || {
            let mut s = format!(
                "seq {}  gas {}  root {}\nresult {}{}",
                receipt.seq,
                receipt.gas_used,
                receipt.state_root,
                decoded,
                if out.reverted { "  (reverted)" } else { "" }
            );
            for e in &events {
                s.push_str(&format!("\nevent  {e}"));
            }
            s
        },
        || json!({"decoded": decoded, "events_decoded": events, "receipt": receipt}),
    );
    if out.reverted {
        bail!("the call reverted; nothing was applied");
    }
    Ok(())
}

/// An event decoded with the metadata, else its topics and data.
fn event_text(contract: Option<&Contract>, e: &EventRecord) -> String {
    let topics: Vec<[u8; 32]> = e.topics.iter().map(|t| t.0).collect();
    contract
        .and_then(|c| c.decode_event(&topics, &e.data))
        .unwrap_or_else(|| {
            format!(
                "topics=[{}] data={:?}",
                e.topics
                    .iter()
                    .map(|t| t.to_hex())
                    .collect::<Vec<_>>()
                    .join(","),
                e.data
            )
        })
}
