//! `phat info`: the cluster's state (the worker's keys and attestation), or a contract's.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::common::parse_id;
use super::Ctx;

/// Arguments of `phat info`.
#[derive(Args)]
pub struct InfoArgs {
    /// A contract id; without it, the worker's state.
    pub contract: Option<String>,
}

/// `phat info`.
pub async fn run(args: InfoArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    match args.contract {
        None => {
            let i = client.trusted_info().await?;
            let insecure = phat_client::crypto::attest::is_insecure(&i.attestation);
            let label = if insecure {
                format!("{} (INSECURE: development only)", i.attestation.provider)
            } else {
                i.attestation.provider.clone()
            };
            ctx.print(
                || {
                    format!(
                        "worker {} (phat {}, pid {})\n  applied seq  {}\n  ledger head  {}\n  state root   {}\n  worker key   {}\n  cluster key  {}\n  encryption   {}\n  attestation  {}\n  measurement  {}",
                        i.name,
                        i.version,
                        i.pid,
                        i.seq,
                        i.ledger_head,
                        i.state_root,
                        i.worker_key,
                        i.cluster_key,
                        if i.encryption { "on" } else { "OFF (insecure)" },
                        label,
                        i.attestation.measurement
                    ) + &i.diverged.as_ref().map(|d| format!("\n  DIVERGED     {d}")).unwrap_or_default()
                },
                || json!({"worker": i, "attestation_insecure": insecure}),
            );
        }
        Some(c) => {
            let id = parse_id(&c)?;
            let v = client.contract(&id).await?;
            let name = client
                .contract_metadata(&id)
                .await
                .ok()
                .and_then(|m| m["contract"]["name"].as_str().map(String::from));
            ctx.print(
                || {
                    format!(
                        "contract {}\n  name      {}\n  code      {}\n  deployer  {}\n  sr25519   {}\n  ed25519   {}\n  secp256k1 {:?}\n  ethereum  {}",
                        v.id,
                        name.as_deref().unwrap_or("(no metadata)"),
                        v.code_hash,
                        v.deployer,
                        v.keys.sr25519,
                        v.keys.ed25519,
                        v.keys.secp256k1,
                        v.keys.ethereum_address
                    )
                },
                || json!({"contract": v, "name": name}),
            );
        }
    }
    Ok(())
}
