//! `phat cluster`: the owner's changes to a cluster (key rotation, worker revocation, who may
//! deploy).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use phat_client::primitives::protocol::{CallResult, ClusterOp};
use phat_client::primitives::Hash;
use phat_client::Signer;
use serde_json::json;

use super::Ctx;

/// Arguments of `phat cluster`.
#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub op: ClusterCommand,
    /// The cluster owner's secret URI (the owner is named in the genesis).
    #[arg(long, global = true, default_value = "//Alice")]
    pub suri: String,
}

/// What `phat cluster` changes.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start a new key epoch: a new cluster secret for the workers of the cluster; new
    /// commands, state and snapshots use it, older state stays readable.
    RotateKey,
    /// Remove a worker (its identity key, as `phat info` prints it) and rotate the key
    /// without it: it can no longer open new commands or join again.
    Revoke {
        /// The worker's identity key (0x…).
        worker: String,
    },
    /// Set who besides the owner may deploy on an owner-only cluster (accounts or secret
    /// URIs; none: the owner alone). Replaces the list.
    Deployers {
        /// The accounts.
        accounts: Vec<String>,
    },
}

/// `phat cluster`.
pub async fn run(args: ClusterArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(&args.suri)?;
    let op = match &args.op {
        ClusterCommand::RotateKey => ClusterOp::RotateKey,
        ClusterCommand::Deployers { accounts } => ClusterOp::SetDeployers {
            accounts: accounts
                .iter()
                .map(|a| crate::genesis::parse_account(a))
                .collect::<Result<_>>()?,
        },
        ClusterCommand::Revoke { worker } => ClusterOp::RevokeWorker {
            worker: worker.parse::<Hash>().map_err(|e| {
                anyhow::anyhow!("worker key `{worker}` is not a 0x-prefixed 32-byte hex key: {e}")
            })?,
        },
    };
    let submitted = client.change_cluster(&signer, op).await?;
    let Some(receipt) = submitted.receipt else {
        bail!("seq {}: no receipt", submitted.seq);
    };
    let number = match &receipt.result {
        CallResult::Ok(o) => {
            <u32 as parity_scale_codec::Decode>::decode(&mut &o.data.0[..]).unwrap_or_default()
        }
        CallResult::Err(e) => bail!("seq {}: {}: {}", receipt.seq, e.kind, e.message),
        CallResult::Sealed(_) => bail!("seq {}: the result is sealed", receipt.seq),
    };
    let what = match &args.op {
        ClusterCommand::RotateKey => "key rotated".to_string(),
        ClusterCommand::Revoke { worker } => format!("worker {worker} revoked"),
        ClusterCommand::Deployers { .. } => {
            ctx.print(
                || {
                    format!(
                        "{number} account(s) besides the owner may deploy (seq {})",
                        receipt.seq
                    )
                },
                || json!({"seq": receipt.seq, "deployers": number}),
            );
            return Ok(());
        }
    };
    let epoch = number;
    ctx.print(
        || {
            format!(
                "{what} at seq {}: the cluster is at key epoch {epoch}",
                receipt.seq
            )
        },
        || json!({"seq": receipt.seq, "epoch": epoch}),
    );
    Ok(())
}
