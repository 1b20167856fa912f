//! `phat schedule add|list|rm` (a contract's schedules) and `phat triggers` (the runs they
//! started).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use phat_client::primitives::protocol::{
    CallResult, MissedTicks, ScheduleDef, ScheduleOp, ScheduleOrigin, ScheduleSpec,
};
use phat_client::Signer;
use serde_json::json;

use super::common::{contract_metadata, encode_call, parse_id};
use super::Ctx;

/// Arguments of `phat schedule`.
#[derive(Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub op: ScheduleCommand,
}

/// What `phat schedule` does.
#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Run a message of a contract on a schedule (as its deployer); prints the schedule's id.
    Add(AddArgs),
    /// List a contract's schedules: period or cron expression, last tick, runs.
    List {
        /// The contract id (`0x…`).
        contract: String,
    },
    /// Remove a schedule (as the contract's deployer).
    Rm {
        /// The contract id (`0x…`).
        contract: String,
        /// The schedule's id (`phat schedule list`).
        id: u32,
        /// The deployer's secret URI.
        #[arg(long, default_value = "//Alice")]
        suri: String,
    },
}

/// Missed-tick policies on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum Missed {
    /// Ticks missed while the cluster was down are dropped.
    Skip,
    /// One run catches up: the message's last argument, `ticks: u64`, is filled in with the
    /// number of ticks the run stands for.
    RunOnce,
}

/// Arguments of `phat schedule add`.
#[derive(Args)]
pub struct AddArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The message label, or a `0x…` selector with SCALE arguments appended.
    pub message: String,
    /// Message arguments, as text (with `--missed run-once`, all but the last, `ticks: u64`).
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// A fixed period: `1s`, `500ms`, `5m`, `1h` (at least 1 s).
    #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<String>,
    /// A cron expression in UTC with seconds: `"*/10 * * * * *"` (every 10 s).
    #[arg(long)]
    pub cron: Option<String>,
    /// What happens to ticks missed while the cluster was down.
    #[arg(long, value_enum, default_value = "skip")]
    pub missed: Missed,
    /// Gas limit of each run.
    #[arg(long, default_value_t = phat_client::DEFAULT_GAS_LIMIT)]
    pub gas_limit: u64,
    /// Metadata to encode with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<std::path::PathBuf>,
    /// The deployer's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

/// Arguments of `phat triggers`.
#[derive(Args)]
pub struct TriggersArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The secret URI of the contract's deployer (or a reader it allowed: the runs are
    /// records of its log).
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

/// A period as `1s`, `500ms`, `5m`, `1h` or plain milliseconds.
pub fn parse_period(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("`{text}` is not a period (1s, 500ms, 5m, 1h)"))?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => bail!("`{text}`: the unit is one of ms, s, m, h"),
    };
    n.checked_mul(scale)
        .with_context(|| format!("`{text}` is too long a period"))
}

/// `phat schedule`.
pub async fn run(args: ScheduleArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    match args.op {
        ScheduleCommand::Add(a) => {
            let id = parse_id(&a.contract)?;
            let contract = if a.message.starts_with("0x") {
                None
            } else {
                Some(contract_metadata(&client, &id, a.metadata.as_deref()).await?)
            };
            let data = match a.missed {
                Missed::Skip => encode_call(contract.as_ref(), &a.message, &a.args)?,
                Missed::RunOnce if a.message.starts_with("0x") => {
                    encode_call(None, &a.message, &a.args)?
                }
                Missed::RunOnce => {
                    // Encoded with the last argument as 0 and 1: it must be a u64 (8 bytes at
                    // the end), which the cluster then fills in for each run.
                    let with = |t: &str| {
                        let mut all = a.args.clone();
                        all.push(t.into());
                        encode_call(contract.as_ref(), &a.message, &all).with_context(|| {
                            format!(
                                "with --missed run-once, `{}`'s last argument must be `ticks: \
                                 u64` (the cluster passes the ticks each run stands for)",
                                a.message
                            )
                        })
                    };
                    let (zero, one) = (with("0")?, with("1")?);
                    let n = zero.len();
                    if n < 12 || one.len() != n || zero[..n - 8] != one[..n - 8] {
                        bail!(
                            "with --missed run-once, `{}`'s last argument must be `ticks: u64` \
                             (the cluster passes the ticks each run stands for)",
                            a.message
                        );
                    }
                    zero[..n - 8].to_vec()
                }
            };
            let spec = match (&a.every, &a.cron) {
                (Some(p), _) => ScheduleSpec::Every {
                    ms: parse_period(p)?,
                },
                (None, Some(expr)) => ScheduleSpec::Cron { expr: expr.clone() },
                (None, None) => bail!("give --every PERIOD or --cron EXPR"),
            };
            let def = ScheduleDef {
                spec,
                data: data.into(),
                gas_limit: a.gas_limit,
                missed: match a.missed {
                    Missed::Skip => MissedTicks::Skip,
                    Missed::RunOnce => MissedTicks::RunOnce,
                },
            };
            let signer = Signer::from_suri(&a.suri)?;
            print_added(
                ctx,
                "schedule",
                client
                    .change_schedule(&signer, ScheduleOp::Add { contract: id, def })
                    .await?,
            )?;
        }
        ScheduleCommand::List { contract } => {
            let id = parse_id(&contract)?;
            // Through an endpoint that spreads reads, the answering worker may lag a change
            // just made: read at the ledger head.
            client.read_latest().await?;
            let list = client.schedules(&id).await?;
            ctx.print(
                || {
                    if list.is_empty() {
                        return "no schedules".into();
                    }
                    list.iter()
                        .map(|s| {
                            let when = spec_text(&s.def.spec);
                            let missed = match s.def.missed {
                                MissedTicks::Skip => "skip",
                                MissedTicks::RunOnce => "run-once",
                            };
                            let last = tick_time(s.last_tick);
                            let by = match s.origin {
                                ScheduleOrigin::Deployer => "",
                                ScheduleOrigin::Contract => "  (set by the contract)",
                            };
                            format!(
                                "schedule {}  {when}  missed: {missed}  runs {}  last tick \
                                 {last}{by}",
                                s.id, s.runs
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!(list),
            );
        }
        ScheduleCommand::Rm { contract, id, suri } => {
            let contract = parse_id(&contract)?;
            let signer = Signer::from_suri(&suri)?;
            print_removed(
                ctx,
                "schedule",
                id,
                client
                    .change_schedule(&signer, ScheduleOp::Remove { contract, id })
                    .await?,
            )?;
        }
    }
    Ok(())
}

/// Prints what adding a trigger (`kind`: schedule, subscription, job) answered: its id (the
/// receipt's output, SCALE `u32`) and the command's seq.
pub(super) fn print_added(
    ctx: &Ctx,
    kind: &str,
    submitted: phat_client::primitives::protocol::Submitted,
) -> Result<()> {
    let (seq, out) = receipt_output(submitted)?;
    let id = <u32 as parity_scale_codec::Decode>::decode(&mut &out[..]).unwrap_or_default();
    ctx.print(|| format!("{kind} {id}"), || json!({kind: id, "seq": seq}));
    Ok(())
}

/// Prints that trigger `id` of `kind` was removed, with the command's seq (or its error).
pub(super) fn print_removed(
    ctx: &Ctx,
    kind: &str,
    id: u32,
    submitted: phat_client::primitives::protocol::Submitted,
) -> Result<()> {
    let (seq, _) = receipt_output(submitted)?;
    ctx.print(
        || format!("{kind} {id} removed"),
        || json!({"removed": id, "seq": seq}),
    );
    Ok(())
}

/// A schedule's spec as the lists print it: `every 2000 ms` or `cron "…"`.
pub(super) fn spec_text(spec: &ScheduleSpec) -> String {
    match spec {
        ScheduleSpec::Every { ms } => format!("every {ms} ms"),
        ScheduleSpec::Cron { expr } => format!("cron \"{expr}\""),
    }
}

/// A tick (Unix ms) as RFC 3339 UTC with milliseconds.
pub(super) fn tick_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The seq and output of a command's receipt, or its error.
fn receipt_output(
    submitted: phat_client::primitives::protocol::Submitted,
) -> Result<(u64, Vec<u8>)> {
    let receipt = submitted.receipt.context("no receipt")?;
    match receipt.result {
        CallResult::Ok(o) => Ok((receipt.seq, o.data.0)),
        CallResult::Err(e) => bail!("seq {}: {}: {}", receipt.seq, e.kind, e.message),
        CallResult::Sealed(_) => bail!("seq {}: the result is sealed", receipt.seq),
    }
}

/// `phat triggers`.
pub async fn triggers(args: TriggersArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let id = parse_id(&args.contract)?;
    let signer = Signer::from_suri(&args.suri)?;
    let runs = client.triggers(&signer, &id).await?;
    ctx.print(
        || {
            if runs.is_empty() {
                return "no runs".into();
            }
            runs.iter()
                .map(|r| {
                    format!(
                        "seq {}  {}",
                        r.record.seq.unwrap_or_default(),
                        r.record.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
        || json!(runs),
    );
    Ok(())
}
