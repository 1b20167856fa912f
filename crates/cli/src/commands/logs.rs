//! `phat logs`: a contract's log as its deployer (or a reader it allowed) reads it, from any
//! worker: command and trigger runs, and the queries that logged or failed; events decoded
//! with its metadata, times a person reads; `-f` follows it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use phat_client::primitives::protocol::{LogEntry, LogFilter, LogKind, MAX_LOG_PAGE};
use phat_client::{Contract, Signer};
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
    /// The first N records (oldest first).
    #[arg(long, value_name = "N", conflicts_with = "tail")]
    pub head: Option<u32>,
    /// The last N records (default: the last 100).
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Only records from this long ago (`30s`, `10m`, `2h`) or since this time (RFC 3339,
    /// `2026-12-07T10:00:00Z`).
    #[arg(long, value_name = "AGO|TIME")]
    pub since: Option<String>,
    /// Only records of these kinds: log, event, output, query, trigger (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub kind: Vec<String>,
    /// Set who besides the deployer may read the log (accounts or secret URIs,
    /// comma-separated; `none` for the deployer alone), then exit.
    #[arg(long, value_delimiter = ',', value_name = "ACCOUNTS")]
    pub allow: Option<Vec<String>>,
    /// Metadata to decode events with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// The reader's secret URI: the contract's deployer or an account it allowed.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

/// The filter the arguments ask for (`now`: Unix ms, for `--since AGO`).
pub fn filter(args: &LogsArgs, now: u64) -> Result<LogFilter> {
    let kinds = args
        .kind
        .iter()
        .map(|k| {
            LogKind::parse(k.trim()).with_context(|| {
                format!("`{k}` is not a kind of record (log, event, output, query, trigger)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let since = match &args.since {
        None => None,
        Some(s) => Some(parse_since(s, now)?),
    };
    let (limit, tail) = match (args.head, args.tail) {
        (Some(n), _) => (n, false),
        (None, Some(n)) => (n, true),
        (None, None) => (100, true),
    };
    if limit == 0 || limit > MAX_LOG_PAGE {
        bail!("--head and --tail take 1 to {MAX_LOG_PAGE} records");
    }
    Ok(LogFilter {
        after: None,
        since,
        kinds,
        limit,
        tail,
        wait_ms: 0,
    })
}

/// `--since`: an RFC 3339 time, or how long ago (`30s`, `10m`, `2h`).
fn parse_since(text: &str, now: u64) -> Result<u64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(t.timestamp_millis())
            .with_context(|| format!("`{text}` is before 1970"));
    }
    let ago = super::schedule::parse_period(text).with_context(|| {
        format!("`{text}` is neither a time (2026-12-07T10:00:00Z) nor an age (30s, 10m, 2h)")
    })?;
    Ok(now.saturating_sub(ago))
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
    let signer = Signer::from_suri(&args.suri)?;
    if let Some(allow) = &args.allow {
        let readers = allow
            .iter()
            .filter(|a| a.as_str() != "none")
            .map(|a| crate::genesis::parse_account(a))
            .collect::<Result<Vec<_>>>()?;
        let n = readers.len();
        let submitted = client.set_log_readers(&signer, &id, readers).await?;
        if let Some(phat_client::primitives::protocol::CallResult::Err(e)) =
            submitted.receipt.as_ref().map(|r| &r.result)
        {
            bail!("seq {}: {}: {}", submitted.seq, e.kind, e.message);
        }
        ctx.print(
            || {
                format!(
                    "{n} log reader(s) besides the deployer (seq {})",
                    submitted.seq
                )
            },
            || json!({ "seq": submitted.seq, "readers": n }),
        );
        return Ok(());
    }
    let filter = filter(&args, now_ms())?;
    // Fetched once; without metadata on the cluster, events stay in their hex form.
    let contract = match args.metadata.as_deref() {
        Some(path) => Some(load_contract(path)?),
        None => contract_metadata(&client, &id, None).await.ok(),
    };
    if !args.follow {
        let (entries, _) = client.read_logs(&signer, &id, filter).await?;
        for entry in &entries {
            print_log(ctx, contract.as_ref(), entry);
        }
        return Ok(());
    }
    let mut stream = Box::pin(client.follow_logs(&signer, id, filter));
    while let Some(entry) = stream.next().await {
        match entry {
            Ok(entry) => print_log(ctx, contract.as_ref(), &entry),
            Err(e) => eprintln!("phat logs: {e} (retrying)"),
        }
    }
    bail!("the log could not be read twice in a row (the worker stopped?)")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        logs: LogsArgs,
    }

    fn parse(args: &[&str]) -> Result<LogFilter> {
        let mut argv = vec!["phat-logs", "0x00"];
        argv.extend_from_slice(args);
        filter(&Cli::try_parse_from(argv)?.logs, 1_000_000)
    }

    #[test]
    fn the_arguments_make_the_filter_a_reader_expects() {
        let default = parse(&[]).unwrap();
        assert_eq!((default.limit, default.tail), (100, true));
        let head = parse(&["--head", "5", "--kind", "event,query"]).unwrap();
        assert_eq!((head.limit, head.tail), (5, false));
        assert_eq!(head.kinds, vec![LogKind::Event, LogKind::Query]);
        assert_eq!(parse(&["--since", "10s"]).unwrap().since, Some(990_000));
        assert_eq!(
            parse(&["--since", "1970-01-01T00:00:02Z"]).unwrap().since,
            Some(2_000)
        );
        for bad in [
            &["--kind", "logs"][..],
            &["--since", "yesterday"],
            &["--tail", "0"],
            &["--head", "1001"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&["--head", "1", "--tail", "1"]).is_err());
    }
}
