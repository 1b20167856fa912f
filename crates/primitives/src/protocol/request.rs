//! Signed requests: what a caller asks ([`Call`]), the signed body, wallet certificates for
//! session keys, and the signed request itself.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{blake2_256, AccountId, Balance, CodeHash, Gas, Hash, Mode, Timestamp};

use super::{Bytes, ClusterOp, JobOp, LogFilter, ScheduleOp, SubscriptionOp};

/// Domain tag prefixed to every signed request body.
pub const REQUEST_SIGNING_DOMAIN: &[u8] = b"phat/request/v2:";

/// The longest a request may stay valid after it is signed (one hour, in ms). Bounds the
/// replay-protection memory of every worker.
pub const MAX_REQUEST_TTL_MS: u64 = 60 * 60 * 1000;

/// What a request asks a worker (query) or the cluster (command) to do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Call {
    /// Instantiate uploaded code (a command uploads it from the ledger's blob store first).
    Instantiate {
        /// The code to instantiate.
        code_hash: CodeHash,
        /// Native value transferred to the new contract.
        value: Balance,
        /// Constructor selector and SCALE-encoded arguments.
        data: Bytes,
        /// Salt for the contract address.
        salt: Bytes,
        /// Gas limit.
        gas_limit: Gas,
    },
    /// Call a message of a contract.
    Call {
        /// The contract.
        dest: AccountId,
        /// Native value transferred.
        value: Balance,
        /// Message selector and SCALE-encoded arguments.
        data: Bytes,
        /// Gas limit.
        gas_limit: Gas,
    },
    /// Change the cluster itself (commands signed by the cluster owner only).
    Cluster {
        /// What to change.
        op: ClusterOp,
    },
    /// Add or remove a contract's schedule (commands signed by the contract's deployer).
    Schedule {
        /// What to change.
        op: ScheduleOp,
    },
    /// Add or remove a contract's subscription to Ethereum logs (commands signed by the
    /// contract's deployer).
    Subscription {
        /// What to change.
        op: SubscriptionOp,
    },
    /// Add or remove a contract's off-chain job (commands signed by the contract's deployer).
    Job {
        /// What to change.
        op: JobOp,
    },
    /// Read a contract's log (queries signed by its deployer or one of its log readers); the
    /// output is a SCALE [`LogPage`](super::LogPage).
    Logs {
        /// The contract.
        contract: AccountId,
        /// Which records.
        filter: LogFilter,
    },
    /// Set who besides the deployer may read a contract's log (commands signed by the
    /// contract's deployer; at most [`MAX_LOG_READERS`](super::MAX_LOG_READERS), none to allow
    /// only the deployer).
    LogReaders {
        /// The contract.
        contract: AccountId,
        /// The accounts.
        readers: Vec<AccountId>,
    },
    /// Move native balance from the signer to `dest` (any account, a contract too: its code
    /// does not run). Commands only.
    Transfer {
        /// The receiving account.
        dest: AccountId,
        /// How much.
        value: Balance,
    },
    /// Estimate what a command of `call` (the SCALE bytes of a [`Call::Call`] or
    /// [`Call::Instantiate`]) would cost: run as a query whose cache writes and log lines are
    /// dropped, answering its gas and storage deposit. Queries only.
    Estimate {
        /// The call, SCALE-encoded.
        call: Bytes,
    },
}

impl Call {
    /// The contract a call addresses, if it is a message call.
    pub fn dest(&self) -> Option<AccountId> {
        match self {
            Call::Call { dest, .. } => Some(*dest),
            Call::Instantiate { .. }
            | Call::Cluster { .. }
            | Call::Schedule { .. }
            | Call::Subscription { .. }
            | Call::Job { .. }
            | Call::Logs { .. }
            | Call::LogReaders { .. }
            | Call::Transfer { .. }
            | Call::Estimate { .. } => None,
        }
    }
}

/// The signed part of a request.
///
/// SCALE layout: `mode`, `call`, `nonce`, `expires_at`, then, only when there is one, the byte
/// 1 and the certificate. A body without a certificate has the layout of bodies from before
/// certificates existed, so their signatures still verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBody {
    /// Query or command; a signature for one is never valid for the other.
    pub mode: Mode,
    /// What to run.
    pub call: Call,
    /// Caller-chosen number, used once per caller within the validity window.
    pub nonce: u64,
    /// Unix time (ms) after which the request is refused.
    pub expires_at: Timestamp,
    /// A wallet's certificate for the key that signed the request: the request is then made
    /// as the certificate's account (see [`Certificate`]).
    pub certificate: Option<Certificate>,
}

impl Encode for RequestBody {
    fn encode_to<T: parity_scale_codec::Output + ?Sized>(&self, dest: &mut T) {
        self.mode.encode_to(dest);
        self.call.encode_to(dest);
        self.nonce.encode_to(dest);
        self.expires_at.encode_to(dest);
        if let Some(c) = &self.certificate {
            1u8.encode_to(dest);
            c.encode_to(dest);
        }
    }
}

impl Decode for RequestBody {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let mode = Mode::decode(input)?;
        let call = Call::decode(input)?;
        let nonce = u64::decode(input)?;
        let expires_at = Timestamp::decode(input)?;
        let certificate = match input.remaining_len()? {
            Some(0) | None => None,
            Some(_) => match u8::decode(input)? {
                1 => Some(Certificate::decode(input)?),
                _ => return Err("a request body's certificate is tagged 1".into()),
            },
        };
        Ok(Self {
            mode,
            call,
            nonce,
            expires_at,
            certificate,
        })
    }
}

/// What a [`Certificate`] lets its session key sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateScope {
    /// Queries only.
    Queries,
    /// Queries and commands.
    All,
}

/// The longest a certificate may be valid for, from when it is used (24 hours).
pub const MAX_CERTIFICATE_TTL_MS: u64 = 24 * 60 * 60 * 1000;
// A certificate may outlive any request it signs for.
const _: () = assert!(MAX_REQUEST_TTL_MS <= MAX_CERTIFICATE_TTL_MS);

/// The domain tag a wallet's certificate signature covers.
pub const CERTIFICATE_DOMAIN: &[u8] = b"phat/certificate/v1:";

/// A wallet's authorisation of a session key (docs/ENVELOPES.md, "Certificates"): requests
/// signed by `session` and carrying this certificate are made as `account`, within `scope`,
/// until `expires_at`, on the cluster `cluster` only. A browser asks the wallet to sign once;
/// the session key it holds in memory signs every request after that.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Certificate {
    /// The wallet's account (sr25519): the caller of the requests.
    pub account: AccountId,
    /// The session key's sr25519 public key: the requests' signer.
    pub session: AccountId,
    /// The cluster (its id, epoch 0's envelope key) the certificate is for.
    pub cluster: Hash,
    /// Unix time (ms) after which requests carrying it are refused.
    pub expires_at: Timestamp,
    /// What the session key may sign.
    pub scope: CertificateScope,
    /// `account`'s sr25519 signature of [`Certificate::signing_payload`], either as it is or
    /// wrapped in `<Bytes>`…`</Bytes>` (what polkadot.js wallets sign for `signRaw`).
    pub signature: Bytes,
}

impl Certificate {
    /// What the wallet signs: the domain tag, then the SCALE fields before the signature.
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = CERTIFICATE_DOMAIN.to_vec();
        (
            &self.account,
            &self.session,
            &self.cluster,
            self.expires_at,
            self.scope,
        )
            .encode_to(&mut out);
        out
    }
}

impl RequestBody {
    /// Whom the request is made as: the certificate's account, else the signer.
    pub fn caller(&self, signer: &AccountId) -> AccountId {
        self.certificate.as_ref().map_or(*signer, |c| c.account)
    }

    /// The bytes the caller signs for the cluster whose envelope key is `cluster`: a domain
    /// tag, the cluster, then the SCALE encoding. A signature for one cluster is never valid
    /// on another.
    pub fn signing_payload(&self, cluster: &Hash) -> Vec<u8> {
        let mut out = REQUEST_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&cluster.0);
        self.encode_to(&mut out);
        out
    }
}

/// A request with the caller's sr25519 signature over [`RequestBody::signing_payload`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SignedRequest {
    /// SCALE-encoded [`RequestBody`].
    pub body: Bytes,
    /// The caller's sr25519 public key.
    pub signer: AccountId,
    /// sr25519 signature (64 bytes, `substrate` signing context).
    pub signature: Bytes,
}

impl SignedRequest {
    /// The request's identity: blake2-256 of its SCALE encoding.
    pub fn hash(&self) -> Hash {
        Hash(blake2_256(&self.encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_payload_is_domain_separated() {
        let body = RequestBody {
            mode: Mode::Query,
            call: Call::Call {
                dest: AccountId([1; 32]),
                value: 0,
                data: Bytes(vec![1, 2]),
                gas_limit: 10,
            },
            nonce: 1,
            expires_at: 2,
            certificate: None,
        };
        let cluster = Hash([5; 32]);
        let p = body.signing_payload(&cluster);
        assert!(p.starts_with(REQUEST_SIGNING_DOMAIN));
        assert_ne!(
            p,
            body.signing_payload(&Hash([6; 32])),
            "bound to the cluster"
        );
        let cmd = RequestBody {
            mode: Mode::Command,
            ..body
        };
        assert_ne!(p, cmd.signing_payload(&cluster));
    }
}
