//! `phat genesis`: what a new cluster's genesis holds (funded dev accounts, bounds, dev root,
//! TEE policy, owner, who may deploy), written to its ledger once.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use phat_client::Signer;
use phat_worker::ledger::Ledger;

use crate::ledger::LedgerConnArgs;
use crate::process::init_tracing;

/// Dev accounts funded at genesis by `phat dev` (`//Alice` …).
const DEV_ACCOUNTS: [&str; 6] = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"];
/// Their native balance.
pub(crate) const DEV_BALANCE: u128 = 1_000_000_000_000_000_000_000;

/// Arguments of `phat genesis`.
#[derive(Args)]
pub struct GenesisArgs {
    #[command(flatten)]
    pub conn: LedgerConnArgs,
    #[command(flatten)]
    pub genesis: GenesisOptions,
}

/// What a new cluster's genesis holds.
#[derive(Args, Clone, Debug)]
pub struct GenesisOptions {
    /// Fund the dev accounts (`//Alice` … `//Ferdie`); uploads need a funded signer.
    #[arg(long)]
    pub fund_dev_accounts: bool,
    /// A resource bound of the new cluster, `NAME=VALUE` (repeatable; see docs/BOUNDS.md).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// Pin this dev attestation root (give every worker the same `--dev-attestation-root`).
    #[arg(long, env = "PHAT_DEV_ATTESTATION_ROOT")]
    pub dev_attestation_root: Option<PathBuf>,
    /// The TEE policy (JSON, see docs/ENVELOPES.md) hardware workers judge joiners by; a
    /// cluster with one accepts no `dev` worker.
    #[arg(long = "tee-policy", value_name = "FILE")]
    pub tee_policy: Option<PathBuf>,
    /// The cluster owner (an account, or a secret URI such as `//Alice`): the only signer of
    /// `phat cluster rotate-key` and `phat cluster revoke`. Without one nobody may.
    #[arg(long, value_name = "ACCOUNT")]
    pub owner: Option<String>,
    /// Who may deploy: `public` (any funded account) or `owner-only` (the owner and the
    /// accounts it allows with `phat cluster deployers`).
    #[arg(long, value_enum, default_value = "public")]
    pub deploy: Deploy,
}

/// Who may deploy on a new cluster (the genesis's `DeployPermission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deploy {
    /// Any account that holds a balance.
    Public,
    /// The owner, and the accounts the owner allows.
    OwnerOnly,
}

impl From<Deploy> for phat_worker::DeployPermission {
    fn from(d: Deploy) -> Self {
        match d {
            Deploy::Public => phat_worker::DeployPermission::Public,
            Deploy::OwnerOnly => phat_worker::DeployPermission::OwnerOnly,
        }
    }
}

/// An account given as a secret URI (`//Alice`, a mnemonic) or as the account itself.
pub fn parse_account(s: &str) -> Result<phat_client::primitives::AccountId> {
    if let Ok(a) = s.parse::<phat_client::primitives::AccountId>() {
        return Ok(a);
    }
    Ok(phat_client::Signer::from_suri(s)
        .with_context(|| format!("`{s}` is neither an account (0x…, SS58) nor a secret URI"))?
        .account())
}

impl GenesisOptions {
    pub(crate) fn any(&self) -> bool {
        self.fund_dev_accounts
            || !self.limits.is_empty()
            || self.dev_attestation_root.is_some()
            || self.tee_policy.is_some()
            || self.owner.is_some()
            || self.deploy != Deploy::Public
    }

    /// Writes the genesis unless the ledger holds one; returns whether it did.
    pub(crate) async fn write(&self, ledger: &dyn Ledger) -> Result<bool> {
        let dev_root = match &self.dev_attestation_root {
            Some(path) => Some(phat_worker::dev_root_public(path)?),
            None => None,
        };
        let genesis = phat_worker::Genesis {
            balances: if self.fund_dev_accounts {
                dev_balances()?
            } else {
                Vec::new()
            },
            encryption: true,
            dev_root,
            limits: Some(parse_limits(&self.limits)?),
            tee_policy: match &self.tee_policy {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("--tee-policy {}", path.display()))?;
                    // Checked here, so a bad file never becomes a cluster's genesis.
                    phat_attest::TeePolicy::from_json(&text)
                        .with_context(|| format!("--tee-policy {}", path.display()))?;
                    Some(text)
                }
                None => None,
            },
            owner: self.owner.as_deref().map(parse_account).transpose()?,
            system: Some(phat_worker::SystemSetup::bundled()),
            deploy: self.deploy.into(),
        };
        if self.deploy == Deploy::OwnerOnly && genesis.owner.is_none() {
            bail!("--deploy owner-only needs an --owner (who else would deploy?)");
        }
        // Only a new cluster gets a genesis; an existing one keeps its own.
        Ok(ledger
            .create_meta(
                phat_worker::GENESIS_KEY,
                parity_scale_codec::Encode::encode(&genesis),
            )
            .await?)
    }
}

/// The digest of the genesis `ledger` holds, if any (what `phat worker --genesis` pins).
pub(crate) async fn stored_genesis_digest(
    ledger: &dyn Ledger,
) -> Result<Option<phat_client::primitives::Hash>> {
    match ledger.get_meta(phat_worker::GENESIS_KEY).await? {
        Some(raw) => Ok(Some(phat_client::primitives::Hash(
            phat_worker::Genesis::decode_stored(&raw)?.digest(),
        ))),
        None => Ok(None),
    }
}

/// `phat genesis`: writes a new cluster's genesis to its ledger (before its first worker).
pub async fn genesis(args: GenesisArgs) -> Result<()> {
    init_tracing();
    let ledger = args.conn.connect().await?;
    if args.genesis.write(&*ledger).await? {
        let digest = stored_genesis_digest(&*ledger)
            .await?
            .context("the genesis just written is not in the ledger")?;
        eprintln!(
            "genesis {digest} written to {}: start every worker with `--genesis {digest}`",
            args.conn.ledger
        );
        Ok(())
    } else {
        bail!(
            "the ledger {} already holds a genesis (a cluster's genesis never changes)",
            args.conn.ledger
        )
    }
}

/// The dev accounts (`//Alice` … `//Ferdie`), each with [`DEV_BALANCE`].
pub(crate) fn dev_balances() -> Result<Vec<(phat_client::primitives::AccountId, u128)>> {
    DEV_ACCOUNTS
        .iter()
        .map(|name| {
            Ok((
                Signer::from_suri(&format!("//{name}"))?.account(),
                DEV_BALANCE,
            ))
        })
        .collect()
}

/// The cluster bounds of `--limit NAME=VALUE` arguments, over the defaults.
pub(crate) fn parse_limits(args: &[String]) -> Result<phat_worker::ClusterLimits> {
    let mut limits = phat_worker::ClusterLimits::default();
    for l in args {
        let (name, value) = l
            .split_once('=')
            .with_context(|| format!("--limit {l}: expected NAME=VALUE"))?;
        let value: u64 = value
            .trim()
            .parse()
            .with_context(|| format!("--limit {l}: the value is not a number"))?;
        limits
            .set(name.trim(), value)
            .map_err(|e| anyhow::anyhow!("--limit {l}: {e}"))?;
    }
    Ok(limits)
}
