//! What the ledger holds: entries with their position and time, and the command each one's
//! payload decodes to (plain, sealed, or a worker's trigger, vote or deal).

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{Hash, Timestamp};

use super::{
    Bytes, EpochDeal, EthLogEntry, JobResultEntry, JoinEntry, QueryLogsEntry, Seq, SignedRequest,
    TriggerEntry,
};

/// A command as the ledger stores it: opaque bytes plus the position and time the ledger gave it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LedgerEntry {
    /// Position in the ledger.
    pub seq: Seq,
    /// Ledger time (Unix ms) at append; the time contracts see while the command applies.
    pub timestamp: Timestamp,
    /// The command bytes (a SCALE [`SignedRequest`]; an envelope once encrypted).
    pub payload: Vec<u8>,
}

/// An envelope's first message (format in `docs/ENVELOPES.md`): the sender's ephemeral
/// X25519 key and a ChaCha20-Poly1305 ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Sealed {
    /// Format version (1).
    pub version: u8,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral: Hash,
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: Bytes,
}

/// A ledger entry's payload: one command, sealed to the cluster key or (only on clusters
/// created with encryption off) in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum LedgerCommand {
    /// A signed request in the clear.
    #[codec(index = 0)]
    Plain(SignedRequest),
    /// A SCALE-encoded [`SignedRequest`] sealed to the cluster key of epoch 0.
    #[codec(index = 1)]
    Sealed(Sealed),
    /// A SCALE-encoded [`SignedRequest`] sealed to the cluster key of a later epoch.
    #[codec(index = 2)]
    SealedAt {
        /// The key epoch (at least 1).
        epoch: u32,
        /// The envelope.
        sealed: Sealed,
    },
    /// A schedule's due tick, proposed by a worker (in the clear: it carries no secret).
    #[codec(index = 3)]
    Trigger(TriggerEntry),
    /// An Ethereum log a worker saw for a subscription, authenticated by that worker (in the
    /// clear: logs are public on their chain).
    #[codec(index = 4)]
    EthLog(EthLogEntry),
    /// A job's output for a tick, run by a worker in query mode and authenticated by it.
    #[codec(index = 5)]
    JobResult(JobResultEntry),
    /// A worker asking to be a member of the cluster, with its attestation report (in the
    /// clear: a report holds no secret). Every worker checks it at apply against the genesis
    /// policy, so membership is replicated state ([`MemberTable`](super::MemberTable)).
    #[codec(index = 6)]
    Join(JoinEntry),
    /// A member's deal of the secret of the key epoch the cluster started last: the first
    /// valid deal ordered after the start keys the epoch ([`EpochDeal`]).
    #[codec(index = 7)]
    DealEpoch(EpochDeal),
    /// The records of queries a worker ran, authenticated by it (sealed for the workers on a
    /// cluster that encrypts).
    #[codec(index = 8)]
    QueryLogs(QueryLogsEntry),
    /// A sealed command as the worker that opened it passes it on: the signed request and
    /// the key that seals its result to the caller, sealed under the worker-entry key of the
    /// epoch (`phat_crypto::entry`). The other workers open it with one AEAD pass instead of
    /// an X25519 exchange, and still check the request's signature themselves.
    #[codec(index = 9)]
    Forwarded {
        /// The key epoch whose secret sealed it.
        epoch: u32,
        /// The sealed request and reply key.
        data: Bytes,
    },
}
