//! The worker's REST API: query requests, signed-upload headers and payloads, and the JSON
//! response bodies.

use parity_scale_codec::Encode;
use serde::{Deserialize, Serialize};

use crate::{AccountId, CodeHash, Gas, Hash};

use super::{
    AttestationReport, Bytes, CallError, CallResult, EventRecord, Receipt, Seq, SignedRequest,
};

/// A query as sent to a worker: the signed request and an optional read-your-writes bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The signed request (mode must be `Query`).
    #[serde(flatten)]
    pub request: SignedRequest,
    /// Answer only once the worker has applied this command (waits up to its limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq: Option<Seq>,
}

/// Header naming the account that signs an upload or a metadata write.
pub const SIGNER_HEADER: &str = "x-phat-signer";
/// Header carrying the sr25519 signature (hex) of an upload or a metadata write.
pub const SIGNATURE_HEADER: &str = "x-phat-signature";
/// Header carrying the expiry (Unix ms) the signature of an upload or metadata write covers.
pub const EXPIRES_HEADER: &str = "x-phat-expires";

/// Set on a worker's 503 `diverged` answer: the request was refused unread, so an endpoint
/// may send it to another worker.
pub const DIVERGED_HEADER: &str = "x-phat-diverged";

/// What the signer of a code upload signs: the cluster (its envelope key), the code and an
/// expiry, under a domain tag of its own (a signed upload can never pass for anything else).
pub fn upload_payload(cluster: &Hash, code_hash: &CodeHash, expires_at: u64) -> Vec<u8> {
    (b"phat/upload/v1", cluster, code_hash, expires_at).encode()
}

/// What the deployer signs to publish the ink! metadata of their contracts' code: the cluster,
/// the code, blake2-256 of the metadata's bytes exactly as sent, and an expiry.
pub fn metadata_payload(
    cluster: &Hash,
    code_hash: &CodeHash,
    metadata_hash: &[u8; 32],
    expires_at: u64,
) -> Vec<u8> {
    (
        b"phat/metadata/v1",
        cluster,
        code_hash,
        metadata_hash,
        expires_at,
    )
        .encode()
}

/// The answer to a code upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeUploaded {
    /// blake2-256 of the code.
    pub code_hash: CodeHash,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// Output or error.
    pub result: CallResult,
    /// Gas used.
    pub gas_used: Gas,
    /// Events the call would have emitted.
    pub events: Vec<EventRecord>,
    /// Debug messages printed by the contracts.
    pub debug_message: String,
    /// The last command applied in the snapshot the query read.
    pub seq: Seq,
    /// The state root of that snapshot.
    pub state_root: Hash,
    /// The storage deposit the call would take from its signer (negative: give back): with
    /// `gas_used`, what a command of the same call is estimated to cost.
    #[serde(default)]
    pub storage_deposit: DepositDelta,
}

/// A storage deposit a call takes (positive) or gives back (negative), in native units. JSON:
/// a decimal string, as a JavaScript number does not hold 128 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DepositDelta(pub i128);

impl Serialize for DepositDelta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DepositDelta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(DepositDelta)
            .map_err(|e| serde::de::Error::custom(format!("a deposit `{text}`: {e}")))
    }
}

/// The answer to a command submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The command's position in the ledger.
    pub seq: Seq,
    /// The command's request hash.
    pub request: Hash,
    /// The receipt, when the submission asked to wait for it.
    pub receipt: Option<Receipt>,
}

/// Public facts about a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's X25519 identity key (queries are encrypted to it).
    pub worker_key: Hash,
    /// The cluster's identity: the envelope key of epoch 0 (requests sign it; commands are
    /// sealed to `envelope_key` when it is set, else to this).
    pub cluster_key: Hash,
    /// The key epoch (0 until the cluster secret is first rotated).
    #[serde(default)]
    pub epoch: u32,
    /// The current epoch's envelope key, after a rotation (commands are sealed to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_key: Option<Hash>,
    /// Whether the cluster requires encrypted commands and queries.
    pub encryption: bool,
    /// The worker's attestation report (covering both keys).
    pub attestation: AttestationReport,
    /// phat version.
    pub version: String,
    /// The worker's name (from its data directory).
    pub name: String,
    /// The last command applied.
    pub seq: Seq,
    /// The state root after it.
    pub state_root: Hash,
    /// The ledger's head as last seen.
    pub ledger_head: Seq,
    /// Operating-system process id (for operators and crash tests).
    pub pid: u32,
    /// Set when this worker's state differs from what the other workers report (it then
    /// answers no queries until resynced): what differs, and since which seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
    /// The cluster's system contract (`None` in clusters created before genesis carried one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_contract: Option<AccountId>,
}

impl WorkerInfo {
    /// The key commands are sealed to: the current epoch's envelope key.
    pub fn sealing_key(&self) -> Hash {
        self.envelope_key.unwrap_or(self.cluster_key)
    }
}

/// A contract as the worker API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractView {
    /// The contract's id.
    pub id: AccountId,
    /// The code it runs.
    pub code_hash: CodeHash,
    /// Who instantiated it.
    pub deployer: AccountId,
    /// The contract's public keys.
    pub keys: ContractKeys,
}

/// The API's error body: `{"error": {"kind": ..., "message": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: CallError,
}

/// A contract's public keys, derived inside the workers from the cluster secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractKeys {
    /// sr25519 public key (salt `""`).
    pub sr25519: Hash,
    /// ed25519 public key.
    pub ed25519: Hash,
    /// secp256k1 public key, 33 bytes compressed (the key `phat-evm` signs with).
    pub secp256k1: Bytes,
    /// The Ethereum address of the secp256k1 key (`0x`, EIP-55 checksummed).
    pub ethereum_address: String,
}
