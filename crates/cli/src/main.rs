//! The `phat` command line.

mod build;
mod demo;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// phat: off-chain computation for smart contracts.
#[derive(Parser)]
#[command(name = "phat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build ink! contracts to wasm + metadata + a `.contract` bundle.
    Build(build::BuildArgs),
    /// Build the example contracts and run them in-process, printing each step.
    Demo(demo::DemoArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Demo(args) => demo::run(args),
    }
}
