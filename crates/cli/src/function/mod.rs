//! `phat fn`: Phat Functions, Phala's TypeScript `main(request, secrets)` bundled to one
//! script. `build` bundles it with esbuild and Phala's wrapper, `run` runs a script locally in
//! the worker's JavaScript engine with real HTTP, `deploy` makes it answer an Ethereum
//! contract's rollup-anchor queue from the cluster, `update`, `status` and `logs` follow it.

mod build;
mod deploy;
mod new;
mod run;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::commands::Ctx;

/// `phat fn`.
#[derive(Args)]
pub struct FnArgs {
    #[command(subcommand)]
    command: FnCommand,
}

#[derive(Subcommand)]
enum FnCommand {
    /// Create a TypeScript function project with the Ethereum consumer contract it answers.
    New(new::NewArgs),
    /// Bundle a function (`export default function main(request, secrets)`) to one script.
    Build(build::BuildArgs),
    /// Run a built script locally, in the same engine and limits as a worker (real HTTP).
    Run(run::RunArgs),
    /// Deploy a script to the cluster: it answers the queue of a rollup anchor on Ethereum.
    Deploy(deploy::DeployArgs),
    /// Replace a deployed function's script or secrets.
    Update(deploy::UpdateArgs),
    /// A function's queue on chain, its answers, last error and attestor balance.
    Status(deploy::StatusArgs),
    /// A function's log (answers, failures, its script's console lines); `-f` follows it.
    Logs(crate::commands::logs::LogsArgs),
}

/// Runs `phat fn ARGS`.
pub fn run(args: FnArgs, ctx: &Ctx) -> Result<()> {
    match args.command {
        FnCommand::New(a) => new::run(a, ctx),
        FnCommand::Build(a) => build::run(a, ctx),
        FnCommand::Run(a) => run::run(a, ctx),
        FnCommand::Deploy(a) => crate::runtime()?.block_on(deploy::deploy(a, ctx)),
        FnCommand::Update(a) => crate::runtime()?.block_on(deploy::update(a, ctx)),
        FnCommand::Status(a) => crate::runtime()?.block_on(deploy::status(a, ctx)),
        FnCommand::Logs(a) => crate::runtime()?.block_on(crate::commands::logs::run(a, ctx)),
    }
}
