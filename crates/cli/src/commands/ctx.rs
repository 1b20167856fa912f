//! What every cluster command shares: the endpoint, the trust flags (global pins and the
//! plaintext opt-in) and the output format.

use anyhow::{Context, Result};
use clap::Args;
use phat_client::Client;

use crate::Output;

/// What every cluster command shares: where to send and how to print.
pub struct Ctx {
    /// The endpoint URL.
    pub endpoint: String,
    /// Accept `dev` attestation reports on any endpoint.
    pub accept_dev_attestation: bool,
    /// Output format.
    pub output: Output,
}

/// What the command line trusts (global flags): pins and the plaintext opt-in.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// Pin the dev attestation root: its public key (hex) or a file holding it. `dev` reports
    /// must be signed by it; on non-loopback endpoints they are accepted only with this pin.
    #[arg(long, global = true, env = "PHAT_DEV_ROOT", value_name = "HEX|FILE")]
    pub dev_root: Option<String>,
    /// Require this software measurement (hex) in the worker's attestation report.
    #[arg(long, global = true, env = "PHAT_MEASUREMENT", value_name = "HEX")]
    pub measurement: Option<String>,
    /// Accept hardware-attested workers (SGX, TDX) that satisfy this policy (a JSON file:
    /// kinds, measurements, TCB statuses, advisories; see docs/ENVELOPES.md).
    #[arg(long, global = true, env = "PHAT_TEE_POLICY", value_name = "FILE")]
    pub tee_policy: Option<std::path::PathBuf>,
    /// Talk to a cluster made with `--insecure-no-encryption` (refused by default).
    #[arg(long, global = true, env = "PHAT_ALLOW_UNENCRYPTED")]
    pub allow_unencrypted: bool,
}

static TRUST: std::sync::OnceLock<TrustArgs> = std::sync::OnceLock::new();

/// Sets the trust flags every [`Ctx::client`] of this process applies (once, from `main`).
pub fn set_trust(trust: TrustArgs) {
    let _ = TRUST.set(trust);
}

impl Ctx {
    pub(crate) fn client(&self) -> Result<Client> {
        let mut client = Client::new(&self.endpoint)?;
        if self.accept_dev_attestation {
            client = client.accept_dev_attestation(true);
        }
        let trust = TRUST.get().cloned().unwrap_or_default();
        if let Some(root) = &trust.dev_root {
            client = client.pin_dev_root(phat_client::parse_pin(root).context("--dev-root")?);
        }
        if let Some(m) = &trust.measurement {
            client = client.pin_measurement(phat_client::parse_pin(m).context("--measurement")?);
        }
        if let Some(path) = &trust.tee_policy {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--tee-policy {}", path.display()))?;
            let policy = phat_client::TeePolicy::from_json(&text)
                .with_context(|| format!("--tee-policy {}", path.display()))?;
            client = client.tee_policy(policy);
        }
        Ok(client.allow_unencrypted(trust.allow_unencrypted))
    }

    /// Prints `human()` or `json()`, as the output format asks.
    pub(super) fn print(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> serde_json::Value,
    ) {
        match self.output {
            Output::Human => println!("{}", human()),
            Output::Json => println!("{}", json()),
        }
    }
}
