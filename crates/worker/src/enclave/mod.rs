//! The enclave boundary: the worker's identity key, the cluster secret and what derives from
//! it, attestation, the cluster-secret handover, and query sessions.
//!
//! Without a TEE the worker process is the enclave. Its identity key, its vote key and the
//! cluster secret are kept on disk sealed (`identity.sealed`, `vote-key.sealed`,
//! `cluster.sealed`) under a key derived from the
//! machine id (`/etc/machine-id`) and the product identity: copied elsewhere or read on their
//! own the files are useless, but root on the same machine can derive the key, as it can read
//! the process's memory. Attestation uses the insecure `dev` provider (a local ed25519 root).
//!
//! Handover, through the ledger's metadata (a JetStream KV bucket in production):
//! - `cluster`: written once (`create_meta`) by the first worker: the cluster key and that
//!   worker's report. Whoever wins the race is the creator; the others join.
//! - `cluster-join/<worker key>`: a joining worker's attestation report (it also appends a
//!   `Join` entry with it: membership is decided at apply, `apply/members.rs`).
//! - `cluster-key/<worker key>`: the cluster secret sealed to that worker's key by an existing
//!   worker that verified the report (same measurement, the cluster's dev root) and whose
//!   applied state lists the worker as a member.
//! - `cluster-refused/<worker key>`: why a report was refused.
//!
//! Key epochs (`phat cluster rotate-key`, `phat cluster revoke`) never touch the metadata:
//! the owner's command at seq S starts epoch e in replicated state, and every member that
//! holds the epochs before deals it: a `DealEpoch` ledger entry with the new envelope key and
//! the secret sealed to each member not revoked, signed with the dealer's vote key. The first
//! valid deal ordered after S keys the epoch (`apply/members.rs`): the same on every worker,
//! and nobody with ledger credentials can withhold or replace a share, only append deals that
//! are refused. Each worker then opens its share from that entry (a worker admitted later gets
//! the epoch in its handover) and checks it against the key in state.
//!
//! Names and the contract seed stay those of epoch 0 (lookups and contract keys must not
//! change); envelopes, values at rest and snapshots use the newest epoch a worker holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parity_scale_codec::{Decode, Encode};
use parking_lot::Mutex;
use phat_crypto::{
    Attestation, AttestationPolicy, AttestationReport, Claims, ClusterSecret, DevAttestation,
    EnvelopeSecret, Purpose, SealingKey, Secret32, SessionKeys, VoteKey,
};
use phat_ledger::Ledger;
use phat_primitives::protocol::{MemberTable, Sealed};
use phat_primitives::{AccountId, Hash, MetaKey, MetaPrefix};

use crate::{data_dir_err, Genesis, WorkerError};

/// The product identity sealed files are bound to (not the exact build, so upgrades unseal).
pub(super) const SEAL_IDENTITY: &str = "phat-worker/v1";
/// Metadata key of the cluster record.
pub const CLUSTER_KEY: &str = phat_primitives::meta::CLUSTER;
/// How often a joining worker looks for its handover, and workers for joiners.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// What the ledger's `cluster` record holds.
#[derive(Clone, Debug, Encode, Decode)]
pub struct ClusterRecord {
    /// The cluster's X25519 envelope key.
    pub cluster_key: Hash,
    /// The creating worker's report.
    pub creator: AttestationReport,
}

/// The sealed handover of the cluster secret to one worker.
#[derive(Clone, Debug, Encode, Decode)]
pub(super) struct Handover {
    /// The cluster secrets sealed to the joiner's key: epoch 0's, then each later epoch's
    /// (32 bytes each); an epoch share holds that epoch's only.
    sealed: Sealed,
    /// The report of the worker that handed it over.
    from: AttestationReport,
}

/// Why a worker cannot take a key epoch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EpochError {
    /// This worker was revoked: it gets no later epoch.
    #[error("this worker was revoked from the cluster at seq {seq}")]
    Revoked {
        /// The seq of the revocation.
        seq: u64,
    },
    /// Anything else (retried).
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

impl From<phat_ledger::LedgerError> for EpochError {
    fn from(e: phat_ledger::LedgerError) -> Self {
        Self::Worker(WorkerError::Ledger(e))
    }
}

/// Keys and state that exist in plaintext only inside this process.
pub(crate) struct Enclave {
    /// The worker's X25519 identity key.
    pub(crate) identity: EnvelopeSecret,
    /// The worker's ed25519 vote key (attested in its reports).
    pub(crate) vote_key: VoteKey,
    /// The attestation provider of a worker outside a TEE.
    provider: DevAttestation,
    /// The hardware provider, inside a TEE (then it makes every report).
    hardware: Option<phat_crypto::attest::DcapAttestation>,
    /// SHA-256 of the worker executable, or the TEE's measurement inside one.
    pub(crate) measurement: [u8; 32],
    /// The cluster secret and derived keys (set once the worker holds them).
    pub(crate) cluster: OnceLock<ClusterKeys>,
    /// Open query sessions.
    pub(crate) sessions: Mutex<Sessions>,
    /// Workers revoked in the state applied so far (refused handovers and epoch shares).
    pub(crate) revoked: Mutex<Vec<Hash>>,
    /// Secrets of epochs after 0 from this worker's handover, not yet checked (index e - 1).
    hints: Mutex<Vec<ClusterSecret>>,
    /// The last deal this worker made: the epoch and the members it sealed the secret to.
    pub(crate) dealt: Mutex<Option<(u32, Vec<Hash>)>>,
    /// The verdicts on the workers named in the ledger's metadata.
    members: tokio::sync::Mutex<Members>,
}

mod epochs;
mod handover;
mod keys;
mod sealed;
mod sessions;
mod tee;

pub(crate) use handover::*;
pub(crate) use keys::*;
pub use sealed::*;
pub(crate) use sessions::*;
pub(crate) use tee::*;

impl Enclave {
    /// Loads (or creates at first start) the identity in `dir`.
    pub(crate) fn open(
        dir: &Path,
        dev_root: Option<&Path>,
        tee: Option<(&crate::TeeConfig, Vec<u8>)>,
    ) -> Result<Self, WorkerError> {
        let identity = EnvelopeSecret::from_secret(&sealed_or_new(dir, "identity")?);
        // The vote key (a worker from before vote keys gets one at its next start).
        let vote_key = VoteKey::from_secret(&sealed_or_new(dir, "vote-key")?);
        let root = match dev_root {
            Some(path) => read_root(path)?,
            None => read_or_create_root(&dir.join("dev-attestation-root.key"))?,
        };
        let hardware = tee
            .map(|(tee, collateral)| hardware_provider(tee, collateral))
            .transpose()?;
        let measurement = hardware
            .as_ref()
            .map_or_else(measurement, |h| h.measurement());
        Ok(Self {
            identity,
            vote_key,
            provider: DevAttestation::new(&root),
            hardware,
            measurement,
            cluster: OnceLock::new(),
            sessions: Mutex::new(Sessions::default()),
            revoked: Mutex::new(Vec::new()),
            hints: Mutex::new(Vec::new()),
            dealt: Mutex::new(None),
            members: tokio::sync::Mutex::new(Members::default()),
        })
    }

    /// The dev root's public key.
    pub(crate) fn dev_root(&self) -> [u8; 32] {
        self.provider.root_public()
    }

    pub(super) fn report(
        &self,
        cluster_key: Option<[u8; 32]>,
        encryption: bool,
    ) -> Result<AttestationReport, WorkerError> {
        let claims = Claims {
            measurement: self.measurement,
            worker_key: self.identity.public(),
            cluster_key,
            encryption,
            signing_key: Some(self.vote_key.public()),
        };
        match &self.hardware {
            Some(h) => h.report(&claims, crate::now_ms()),
            None => self.provider.report(&claims, crate::now_ms()),
        }
        .map_err(|e| WorkerError::Enclave(e.to_string()))
    }

    /// The policy joiners are checked against: the cluster's dev root, our own software.
    pub(super) fn policy(&self, genesis: &Genesis) -> AttestationPolicy {
        // A cluster with a TEE policy accepts hardware workers only; a policy that does not
        // parse accepts nobody (never a silent fall back to `dev`).
        let tee = genesis.tee_policy.as_deref().map(|json| {
            phat_attest::TeePolicy::from_json(json).unwrap_or_else(|e| {
                tracing::error!(
                    "the genesis TEE policy does not parse ({e}): refusing every joiner"
                );
                phat_attest::TeePolicy::default()
            })
        });
        AttestationPolicy {
            accept_dev: tee.is_none(),
            dev_root: Some(genesis.dev_root.unwrap_or(self.dev_root())),
            measurement: Some(self.measurement),
            tee,
            tee_time: None,
        }
    }

    /// The policy a `Join` entry is checked against at apply: like [`Enclave::policy`], but
    /// on replicated inputs only, so every worker gets the same verdict: the measurement of
    /// the cluster's first member (none before it), hardware collateral judged at the
    /// entry's ledger time.
    pub(crate) fn apply_policy(
        &self,
        genesis: &Genesis,
        first_member: Option<[u8; 32]>,
        ledger_time_ms: u64,
    ) -> AttestationPolicy {
        AttestationPolicy {
            measurement: first_member,
            tee_time: Some(ledger_time_ms / 1000),
            ..self.policy(genesis)
        }
    }

    /// The cluster keys (after [`Enclave::join`]).
    #[allow(
        clippy::expect_used,
        reason = "the worker joins the cluster before it serves anything"
    )]
    pub(crate) fn keys(&self) -> &ClusterKeys {
        self.cluster
            .get()
            .expect("the worker joins the cluster before serving")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_with_a_tee_policy_accepts_no_dev_worker() {
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::open(dir.path(), None, None).unwrap();
        let dev = enclave.report(None, true).unwrap();
        let dev_cluster = Genesis {
            dev_root: Some(enclave.dev_root()),
            ..Genesis::default()
        };
        enclave.policy(&dev_cluster).verify(&dev).unwrap();
        for tee_policy in [r#"{"kinds": ["sgx-dcap"]}"#, "not json"] {
            let hardware_cluster = Genesis {
                tee_policy: Some(tee_policy.into()),
                ..dev_cluster.clone()
            };
            let policy = enclave.policy(&hardware_cluster);
            assert!(!policy.accept_dev);
            assert!(policy.tee.is_some(), "a bad policy refuses everything");
            match policy.verify(&dev) {
                Err(phat_crypto::CryptoError::Attestation(m)) => {
                    assert!(m.contains("insecure `dev` attestation"), "{m}")
                }
                other => panic!("a dev worker was accepted: {other:?}"),
            }
        }
    }
}
