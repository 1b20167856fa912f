//! `phat keys`: the account of a secret URI.

use anyhow::Result;
use clap::Args;
use phat_client::Signer;
use serde_json::json;

use super::Ctx;

/// Arguments of `phat keys`.
#[derive(Args)]
pub struct KeysArgs {
    /// A secret URI.
    #[arg(default_value = "//Alice")]
    pub suri: String,
}

/// `phat keys`.
pub fn run(args: KeysArgs, ctx: &Ctx) -> Result<()> {
    let s = Signer::from_suri(&args.suri)?;
    ctx.print(
        || format!("account {}", s.account()),
        || json!({"account": s.account()}),
    );
    Ok(())
}
