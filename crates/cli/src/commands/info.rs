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
                    ) + &tee_lines(&i.attestation)
                        + &i.system_contract.map(|s| format!("\n  system       {s}")).unwrap_or_default()
                        + &i.envelope_key.map(|k| format!("\n  key epoch    {} (commands sealed to {k})", i.epoch)).unwrap_or_default()
                        + &i.diverged.as_ref().map(|d| format!("\n  DIVERGED     {d}")).unwrap_or_default()
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

/// For a hardware (`sgx-dcap`, `tdx-dcap`) report: what its quote proves now (kind,
/// measurements, debug flag, TCB status, advisories), or why it does not verify.
fn tee_lines(report: &phat_client::crypto::attest::AttestationReport) -> String {
    use phat_client::crypto::attest::DcapEvidence;
    if phat_client::TeeKind::from_provider(&report.provider).is_none() {
        return String::new();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match DcapEvidence::inspect(report, now) {
        Ok(v) => {
            let mut out = format!("\n  tee          {}", v.kind);
            if let Some(s) = &v.sgx {
                out += &format!(
                    "\n  mr_enclave   {}\n  mr_signer    {}\n  isv          product {} svn {}",
                    hex::encode(s.mr_enclave),
                    hex::encode(s.mr_signer),
                    s.isv_prod_id,
                    s.isv_svn
                );
            }
            if let Some(t) = &v.tdx {
                out += &format!("\n  mr_td        {}", hex::encode(t.mr_td));
                for (i, r) in t.rtmr.iter().enumerate() {
                    out += &format!("\n  rtmr{i}        {}", hex::encode(r));
                }
            }
            if v.debug {
                out += "\n  DEBUG ENCLAVE (its memory is readable by the host)";
            }
            out += &format!("\n  tcb status   {}", v.tcb_status);
            if !v.advisories.is_empty() {
                out += &format!("\n  advisories   {}", v.advisories.join(", "));
            }
            out
        }
        Err(e) => format!("\n  tee          the quote does not verify: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed unwrap is a failed test"
    )]
    use parity_scale_codec::Encode;
    use phat_client::crypto::attest::{AttestationReport, DcapEvidence};
    use phat_client::primitives::protocol::Bytes;
    use phat_client::primitives::Hash;

    #[test]
    fn hardware_reports_show_their_quote_and_dev_reports_show_nothing_more() {
        let evidence = DcapEvidence {
            quote: include_bytes!("../../../attest/tests/data/sgx_quote").to_vec(),
            collateral_json: include_bytes!("../../../attest/tests/data/sgx_quote_collateral.json")
                .to_vec(),
        };
        let mut report = AttestationReport {
            provider: "sgx-dcap".into(),
            measurement: Hash::default(),
            worker_key: Hash::default(),
            cluster_key: None,
            encryption: true,
            signing_key: None,
            issued_at: 0,
            signer: Hash::default(),
            signature: Bytes(evidence.encode()),
        };
        // The sample's collateral expired in July 2025: shown as such, not hidden.
        let lines = super::tee_lines(&report);
        assert!(lines.contains("the quote does not verify"), "{lines}");
        report.provider = "dev".into();
        assert_eq!(super::tee_lines(&report), "");
    }
}
