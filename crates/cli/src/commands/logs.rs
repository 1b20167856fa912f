//! `phat logs`: a contract's log (events decoded with its metadata, debug output, pink log
//! lines), stored and, with `-f`, live.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use futures::StreamExt;
use phat_client::primitives::protocol::LogEntry;
use phat_client::Contract;
use serde_json::json;

use super::common::{contract_metadata, load_contract, parse_id};
use super::Ctx;

/// Arguments of `phat logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// The contract id.
    pub contract: String,
    /// Keep following new records.
    #[arg(short, long)]
    pub follow: bool,
    /// Metadata to decode events with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
}

/// The event of an `event` log entry, decoded with the contract's metadata (`None` without
/// an event, metadata, or a matching event in it).
fn decoded_event(contract: Option<&Contract>, entry: &LogEntry) -> Option<String> {
    let event = entry.event.as_ref()?;
    let topics: Vec<[u8; 32]> = event.topics.iter().map(|t| t.0).collect();
    contract?.decode_event(&topics, &event.data)
}

/// Prints one log entry: events decoded when the metadata allows, else the record's text. The
/// JSON form keeps the raw event (topics and data hex) and adds `decoded`.
fn print_log(ctx: &Ctx, contract: Option<&Contract>, entry: &LogEntry) {
    let decoded = decoded_event(contract, entry);
    ctx.print(
        || {
            let r = &entry.record;
            let origin = match r.seq {
                Some(s) => format!("seq {s}"),
                None => "query".into(),
            };
            let text = decoded.as_deref().unwrap_or(&r.message);
            // A time a person reads (UTC); the JSON form keeps the milliseconds.
            let at = super::schedule::tick_time(r.timestamp);
            let at = if at.is_empty() {
                r.timestamp.to_string()
            } else {
                at
            };
            format!("{at} [{origin}] {}: {text}", r.level)
        },
        || {
            let mut v = json!(entry);
            if let Some(d) = &decoded {
                v["decoded"] = json!(d);
            }
            v
        },
    );
}

/// `phat logs`.
pub async fn run(args: LogsArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let id = parse_id(&args.contract)?;
    // Fetched once; without metadata on the cluster, events stay in their hex form.
    let contract = match args.metadata.as_deref() {
        Some(path) => Some(load_contract(path)?),
        None => contract_metadata(&client, &id, None).await.ok(),
    };
    if !args.follow {
        for entry in client.logs(&id).await? {
            print_log(ctx, contract.as_ref(), &entry);
        }
        return Ok(());
    }
    let mut stream = Box::pin(client.follow_logs(&id).await?);
    while let Some(entry) = stream.next().await {
        print_log(ctx, contract.as_ref(), &entry?);
    }
    bail!("the log stream ended (worker stopped?)")
}
