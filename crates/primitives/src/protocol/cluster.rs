//! The cluster's own replicated state: owner-only changes, key epochs and their deals, and
//! the member table workers join through attestation reports.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Hash};

use super::{Bytes, Sealed, Seq};

/// A change to the cluster that only its owner (named in the genesis) may order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum ClusterOp {
    /// Start a new key epoch: a new cluster secret, handed to the workers of the cluster.
    RotateKey,
    /// Remove a worker (by its identity key) from the cluster, then start a new key epoch
    /// it does not get.
    RevokeWorker {
        /// The worker's X25519 identity key.
        worker: Hash,
    },
    /// Set the accounts besides the owner that may upload code and instantiate contracts on
    /// a cluster whose genesis makes deploying owner-only (at most [`MAX_DEPLOYERS`]; none:
    /// the owner alone).
    SetDeployers {
        /// The accounts.
        accounts: Vec<AccountId>,
    },
}

/// The most accounts [`ClusterOp::SetDeployers`] allows besides the owner.
pub const MAX_DEPLOYERS: usize = 256;

/// The cluster's key epochs, kept in replicated state ([`crate::StateKey::ClusterEpochs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ClusterEpochs {
    /// Every change, oldest first; epoch `n` is the `n`-th (epoch 0 is the genesis key).
    pub changes: Vec<EpochChange>,
}

/// One key epoch's start.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochChange {
    /// The seq of the command that started it.
    pub seq: Seq,
    /// The worker revoked with it, if any.
    pub revoked: Option<Hash>,
    /// The deal that keyed it, once one was applied.
    pub dealt: Option<EpochDealt>,
}

/// The deal that keyed an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochDealt {
    /// The seq of the [`EpochDeal`] entry (its shares are read from there).
    pub seq: Seq,
    /// The epoch's envelope key.
    pub key: Hash,
}

impl ClusterEpochs {
    /// The epoch started last (keyed or not).
    pub fn epoch(&self) -> u32 {
        u32::try_from(self.changes.len()).unwrap_or(u32::MAX)
    }

    /// The newest keyed epoch: the one commands are sealed to and votes are made in. Epochs
    /// are keyed in order and a change waits for the one before to be keyed, so only the
    /// last one started can be unkeyed.
    pub fn keyed(&self) -> u32 {
        let keyed = self.epoch() - u32::from(self.pending().is_some());
        debug_assert!(self.changes[..keyed as usize]
            .iter()
            .all(|c| c.dealt.is_some()));
        keyed
    }

    /// The epoch started and not keyed yet, if any.
    pub fn pending(&self) -> Option<u32> {
        match self.changes.last() {
            Some(c) if c.dealt.is_none() => Some(self.epoch()),
            _ => None,
        }
    }

    /// The deal that keyed `epoch` (none for epoch 0, the genesis key).
    pub fn dealt(&self, epoch: u32) -> Option<&EpochDealt> {
        let index = usize::try_from(epoch.checked_sub(1)?).ok()?;
        self.changes.get(index)?.dealt.as_ref()
    }

    /// Whether `worker` was revoked.
    pub fn is_revoked(&self, worker: &Hash) -> bool {
        self.changes
            .iter()
            .any(|c| c.revoked.as_ref() == Some(worker))
    }

    /// The revoked workers.
    pub fn revoked(&self) -> impl Iterator<Item = &Hash> {
        self.changes.iter().filter_map(|c| c.revoked.as_ref())
    }
}

/// A member's deal of a new key epoch: the epoch's envelope key, and its secret sealed to
/// every member that is not revoked, signed with the dealer's vote key. Every worker checks
/// it at apply against the member table, so the first valid deal after the epoch's start is
/// the same on every worker, and nothing outside the ordered log can withhold a share.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochDeal {
    /// The epoch dealt (the one the cluster started last).
    pub epoch: u32,
    /// The epoch's X25519 envelope key.
    pub key: Hash,
    /// The dealing member's identity key.
    pub dealer: Hash,
    /// The secret sealed to each member that is not revoked, one share per member.
    pub shares: Vec<EpochShare>,
    /// The dealer's ed25519 signature of [`EpochDeal::signed_payload`] (64 bytes).
    pub signature: Bytes,
}

/// A key epoch's secret sealed to one member's identity key.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochShare {
    /// The member's identity key.
    pub member: Hash,
    /// The secret (32 bytes), sealed to it.
    pub sealed: Sealed,
}

impl EpochDeal {
    /// The domain its dealer signs [`EpochDeal::signed_payload`] under.
    pub const VOTE_DOMAIN: &'static str = "phat/v1/vote/epoch-deal";

    /// The bytes the signature covers: everything but the signature, under a domain tag (the
    /// epoch included, so one epoch's deal is no deal of another).
    pub fn signed_payload(&self) -> Vec<u8> {
        (
            b"phat/v1/epoch-deal",
            self.epoch,
            &self.key,
            &self.dealer,
            &self.shares,
        )
            .encode()
    }
}

/// A worker's request to join the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct JoinEntry {
    /// Its report: identity key, vote key, measurement, signed by its TEE (or the dev root).
    pub report: AttestationReport,
}

/// Most workers a cluster has (members, the revoked included): a bound on the member table
/// and on what a vote's check reads.
pub const MAX_MEMBERS: usize = 64;

/// One worker of the cluster, as admitted by an applied [`JoinEntry`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Member {
    /// Its X25519 identity key (secrets are sealed to it).
    pub identity: Hash,
    /// Its ed25519 vote key (its votes are signed with it).
    pub vote_key: Hash,
    /// The measurement its report attested.
    pub measurement: Hash,
    /// The seq of the entry that admitted it.
    pub joined: Seq,
}

/// The workers of the cluster, in the order they joined ([`crate::StateKey::Members`]).
/// Revocations are in [`ClusterEpochs`]; a revoked worker stays listed (it cannot join again).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MemberTable {
    /// The members, oldest first.
    pub members: Vec<Member>,
}

impl MemberTable {
    /// The member with identity key `identity`, if any.
    pub fn get(&self, identity: &Hash) -> Option<&Member> {
        self.members.iter().find(|m| m.identity == *identity)
    }
}

/// A signed statement binding a worker's software measurement to its keys (see
/// `phat_crypto::attest`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AttestationReport {
    /// Who signed it (`dev` is insecure: a local root anybody can create).
    pub provider: String,
    /// The worker software's measurement.
    pub measurement: Hash,
    /// The worker's X25519 identity key.
    pub worker_key: Hash,
    /// The cluster envelope key the worker serves, once it holds the cluster secret.
    pub cluster_key: Option<Hash>,
    /// Whether the worker requires encrypted commands and queries (attested, so a man in
    /// the middle cannot talk a client into plaintext).
    pub encryption: bool,
    /// The worker's ed25519 signing key: what it signs its votes and reports with (checkpoints,
    /// Ethereum log reports, job results), counted only for members of the cluster.
    #[serde(default)]
    pub signing_key: Option<Hash>,
    /// When the report was made (Unix ms).
    pub issued_at: u64,
    /// The key that signed the report.
    pub signer: Hash,
    /// The provider's signature.
    pub signature: Bytes,
}
