//! `phat transfer` and `phat faucet`: move native balance between accounts with an ordered
//! command (`Call::Transfer`).

use anyhow::{bail, Result};
use clap::Args;
use phat_client::primitives::protocol::CallResult;
use phat_client::Signer;
use serde_json::json;

use super::Ctx;

/// What `phat faucet` sends unless told otherwise: a thousandth of a dev account's funding.
pub const FAUCET_AMOUNT: u128 = 1_000_000_000_000_000_000;

/// Arguments of `phat transfer`.
#[derive(Args)]
pub struct TransferArgs {
    /// The receiving account (0x…, SS58) or a secret URI (`//Bob`).
    pub to: String,
    /// How much (native units).
    pub amount: u128,
    /// The sender's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
}

/// Arguments of `phat faucet`.
#[derive(Args)]
pub struct FaucetArgs {
    /// The account to fund (0x…, SS58) or a secret URI.
    pub to: String,
    /// How much (native units).
    #[arg(long, default_value_t = FAUCET_AMOUNT)]
    pub amount: u128,
    /// The dev account that pays (funded at genesis on `phat dev`).
    #[arg(long, default_value = "//Alice")]
    pub from: String,
}

/// `phat transfer`.
pub async fn run(args: TransferArgs, ctx: &Ctx) -> Result<()> {
    send(ctx, &args.suri, &args.to, args.amount).await
}

/// `phat faucet`: a transfer from a dev account, for `phat dev` (any cluster where that
/// account holds a balance).
pub async fn faucet(args: FaucetArgs, ctx: &Ctx) -> Result<()> {
    send(ctx, &args.from, &args.to, args.amount).await
}

async fn send(ctx: &Ctx, from: &str, to: &str, amount: u128) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(from)?;
    let dest = crate::genesis::parse_account(to)?;
    let submitted = client.transfer(&signer, dest, amount).await?;
    let Some(receipt) = submitted.receipt else {
        bail!(
            "seq {}: ordered, but this worker has no receipt to show (read /v1/receipts/{})",
            submitted.seq,
            submitted.seq
        );
    };
    if let CallResult::Err(e) = &receipt.result {
        bail!("seq {}: {}: {}", receipt.seq, e.kind, e.message);
    }
    ctx.print(
        || format!("sent {amount} to {dest} (seq {})", receipt.seq),
        || json!({"seq": receipt.seq, "to": dest, "amount": amount.to_string()}),
    );
    Ok(())
}
