//! `phat job add|list|rm`: a contract's off-chain jobs (a query run by one worker per tick,
//! its output committed to a handler message).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use phat_client::primitives::protocol::{JobDef, JobOp, ScheduleSpec};
use phat_client::Signer;
use serde_json::json;

use super::common::{contract_metadata, encode_call, parse_id};
use super::schedule::{parse_period, print_added, print_removed, spec_text, tick_time};
use super::Ctx;

/// Arguments of `phat job`.
#[derive(Args)]
pub struct JobArgs {
    #[command(subcommand)]
    pub op: JobCommand,
}

/// What `phat job` does.
#[derive(Subcommand)]
pub enum JobCommand {
    /// On each tick, run a message in query mode on one worker (HTTP allowed) and commit its
    /// output to a handler message (as the contract's deployer); prints the job's id.
    Add(AddArgs),
    /// List a contract's jobs: schedule, last tick answered, runs.
    List {
        /// The contract id (`0x…`).
        contract: String,
    },
    /// Remove a job (as the contract's deployer).
    Rm {
        /// The contract id (`0x…`).
        contract: String,
        /// The job's id (`phat job list`).
        id: u32,
        /// The deployer's secret URI.
        #[arg(long, default_value = "//Alice")]
        suri: String,
    },
}

/// Arguments of `phat job add`.
#[derive(Args)]
pub struct AddArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The message run in query mode: a label, or a `0x…` selector with SCALE arguments.
    pub query: String,
    /// The query's arguments, as text.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// The handler: a message label taking `(tick: u64, output: Vec<u8>)`, or its `0x…`
    /// selector.
    #[arg(long)]
    pub handler: String,
    /// A fixed period: `10s`, `1m` (at least 1 s).
    #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<String>,
    /// A cron expression in UTC with seconds: `"*/10 * * * * *"`.
    #[arg(long)]
    pub cron: Option<String>,
    /// The spread of the workers' turns on each tick: each waits its own fraction of it
    /// (from the tick and its key) before running the query, so a later one answers when
    /// earlier ones are down or slow. Shorter than the period (default: half the period, at
    /// most 5 s; 500 ms for a cron expression).
    #[arg(long)]
    pub timeout: Option<String>,
    /// Gas limit of the query and of the handler's run.
    #[arg(long, default_value_t = phat_client::DEFAULT_GAS_LIMIT)]
    pub gas_limit: u64,
    /// Metadata to encode with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<std::path::PathBuf>,
    /// The deployer's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

/// `phat job`.
pub async fn run(args: JobArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    match args.op {
        JobCommand::Add(a) => {
            let id = parse_id(&a.contract)?;
            let contract = if a.query.starts_with("0x") && a.handler.starts_with("0x") {
                None
            } else {
                Some(contract_metadata(&client, &id, a.metadata.as_deref()).await?)
            };
            let query = encode_call(contract.as_ref(), &a.query, &a.args)?;
            let handler = match (a.handler.strip_prefix("0x"), &contract) {
                (Some(hex_sel), _) => hex::decode(hex_sel)?,
                (None, Some(c)) => c.message_selector(&a.handler)?.to_vec(),
                (None, None) => bail!("metadata needed to find the handler by name"),
            };
            let spec = match (&a.every, &a.cron) {
                (Some(p), _) => ScheduleSpec::Every {
                    ms: parse_period(p)?,
                },
                (None, Some(expr)) => ScheduleSpec::Cron { expr: expr.clone() },
                (None, None) => bail!("give --every PERIOD or --cron EXPR"),
            };
            let timeout_ms = match (&a.timeout, &spec) {
                (Some(t), _) => u32::try_from(parse_period(t)?)
                    .map_err(|_| anyhow::anyhow!("--timeout {t} is too long"))?,
                (None, ScheduleSpec::Every { ms }) => (ms / 2).clamp(500, 5_000) as u32,
                (None, ScheduleSpec::Cron { .. }) => 500,
            };
            let def = JobDef {
                spec,
                query: query.into(),
                handler: handler.into(),
                gas_limit: a.gas_limit,
                timeout_ms,
            };
            let signer = Signer::from_suri(&a.suri)?;
            print_added(
                ctx,
                "job",
                client
                    .change_job(&signer, JobOp::Add { contract: id, def })
                    .await?,
            )?;
        }
        JobCommand::List { contract } => {
            let id = parse_id(&contract)?;
            // Through an endpoint that spreads reads, the answering worker may lag a change
            // just made: read at the ledger head (as far as the endpoint has seen it).
            client.read_latest().await?;
            let list = client.jobs(&id).await?;
            ctx.print(
                || {
                    if list.is_empty() {
                        return "no jobs".into();
                    }
                    list.iter()
                        .map(|j| {
                            let when = spec_text(&j.def.spec);
                            let last = tick_time(j.last_tick);
                            format!(
                                "job {}  {when}  timeout {} ms  runs {}  last tick {last}",
                                j.id, j.def.timeout_ms, j.runs
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!(list),
            );
        }
        JobCommand::Rm { contract, id, suri } => {
            let contract = parse_id(&contract)?;
            let signer = Signer::from_suri(&suri)?;
            print_removed(
                ctx,
                "job",
                id,
                client
                    .change_job(&signer, JobOp::Remove { contract, id })
                    .await?,
            )?;
        }
    }
    Ok(())
}
