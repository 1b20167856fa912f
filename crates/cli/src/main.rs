//! The `phat` command line, shaped like cargo-contract and foundry: build contracts, run a
//! local cluster, deploy and call contracts, follow their logs.

mod build;
mod commands;
mod dev;
mod function;
mod gateway;
mod genesis;
mod ledger;
mod new;
mod process;
mod worker;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

/// The `phat dev` endpoint, the default for every command that talks to a cluster.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8700";

/// phat: off-chain computation for smart contracts.
#[derive(Parser)]
#[command(name = "phat", version, about)]
struct Cli {
    /// The cluster endpoint (a worker, or the `phat dev` endpoint).
    #[arg(long, global = true, env = "PHAT_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    endpoint: String,
    /// Trust workers attested by the insecure `dev` provider (loopback endpoints, where
    /// `phat dev` runs, accept them by default; others need `--dev-root` as well).
    #[arg(long, global = true, env = "PHAT_ACCEPT_DEV_ATTESTATION")]
    accept_dev_attestation: bool,
    #[command(flatten)]
    trust: commands::TrustArgs,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text.
    Human,
    /// One JSON document per result.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new ink! 5 contract project that `phat build` builds.
    New(new::NewArgs),
    /// Build ink! contracts to wasm + metadata + a `.contract` bundle.
    Build(build::BuildArgs),
    /// Run a local cluster: the embedded ledger, N workers and one endpoint.
    Dev(dev::DevArgs),
    /// Run one worker following a ledger.
    Worker(Box<worker::WorkerArgs>),
    /// Serve an embedded ledger over HTTP (what `phat dev` runs inside).
    Ledger(ledger::LedgerArgs),
    /// Write a new cluster's genesis to its ledger (funded accounts, bounds, dev root), before
    /// its first worker starts.
    Genesis(genesis::GenesisArgs),
    /// Upload a contract's code and instantiate it; prints the contract id.
    Deploy(commands::deploy::DeployArgs),
    /// Call a message read-only on one worker and print the decoded result.
    Query(commands::query::CallArgs),
    /// Send a message as a command, wait for its receipt, print result, events and gas.
    Tx(commands::tx::TxArgs),
    /// Print a contract's log (events decoded with its metadata, debug output, pink log lines);
    /// `-f` follows it live.
    Logs(commands::logs::LogsArgs),
    /// Print the cluster's state, or a contract's.
    Info(commands::info::InfoArgs),
    /// Print the account of a secret URI (`//Alice`).
    Keys(commands::keys::KeysArgs),
    /// Send native balance to an account (an ordered command).
    Transfer(commands::transfer::TransferArgs),
    /// Fund an account from a dev account (`phat dev`: //Alice, funded at genesis).
    Faucet(commands::transfer::FaucetArgs),
    /// Change the cluster as its owner: rotate its key, revoke a worker.
    Cluster(commands::cluster::ClusterArgs),
    /// Run a contract's message on a schedule (cron or period), once per tick per cluster.
    Schedule(commands::schedule::ScheduleArgs),
    /// Deliver an Ethereum contract's logs to a contract's handler, once each, in chain order.
    Subscribe(commands::subscribe::SubscribeArgs),
    /// Run a query off-chain on one worker per tick and commit its output to a handler.
    Job(commands::job::JobArgs),
    /// The runs a contract's triggers started: seq, tick or log, outcome.
    Triggers(commands::schedule::TriggersArgs),
    /// Phat Functions: build a TypeScript `main(request, secrets)` to one script, run it.
    Fn(function::FnArgs),
}

/// mimalloc instead of glibc's malloc: a worker allocates and frees small buffers for every
/// request from many threads, where glibc's arenas cost about a tenth of its CPU
/// (docs/PERFORMANCE.md, the per-stage profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let result = run(cli);
    if let Err(e) = result {
        // One line: the reason, with its causes.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    commands::set_trust(cli.trust);
    let ctx = commands::Ctx {
        endpoint: cli.endpoint,
        accept_dev_attestation: cli.accept_dev_attestation,
        output: cli.output,
    };
    match cli.command {
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Dev(args) => runtime()?.block_on(dev::dev(args, &ctx)),
        Command::Worker(args) => runtime()?.block_on(worker::worker(*args)),
        Command::Ledger(args) => runtime()?.block_on(ledger::ledger(args)),
        Command::Genesis(args) => runtime()?.block_on(genesis::genesis(args)),
        Command::Deploy(args) => runtime()?.block_on(commands::deploy::run(args, &ctx)),
        Command::Query(args) => runtime()?.block_on(commands::query::run(args, &ctx)),
        Command::Tx(args) => runtime()?.block_on(commands::tx::run(args, &ctx)),
        Command::Logs(args) => runtime()?.block_on(commands::logs::run(args, &ctx)),
        Command::Info(args) => runtime()?.block_on(commands::info::run(args, &ctx)),
        Command::Keys(args) => commands::keys::run(args, &ctx),
        Command::Transfer(args) => runtime()?.block_on(commands::transfer::run(args, &ctx)),
        Command::Faucet(args) => runtime()?.block_on(commands::transfer::faucet(args, &ctx)),
        Command::Cluster(args) => runtime()?.block_on(commands::cluster::run(args, &ctx)),
        Command::Schedule(args) => runtime()?.block_on(commands::schedule::run(args, &ctx)),
        Command::Subscribe(args) => runtime()?.block_on(commands::subscribe::run(args, &ctx)),
        Command::Job(args) => runtime()?.block_on(commands::job::run(args, &ctx)),
        Command::Triggers(args) => runtime()?.block_on(commands::schedule::triggers(args, &ctx)),
        Command::Fn(args) => function::run(args, &ctx),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
