//! Identifiers, state keys, events and hashing shared by every phat crate.
//!
//! Everything here is plain data with a stable SCALE encoding: these types cross the boundary
//! between the runtime, the store, the ledger and clients, so their encodings are part of the
//! protocol and change only with a version bump.

use std::fmt;

use blake2::digest::{consts::U32, Digest};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub mod meta;
pub mod protocol;
pub mod refusal;

pub use meta::{MetaKey, MetaPrefix};
pub use refusal::Refusal;

/// Native balance of an account (ink!'s default environment uses `u128`).
pub type Balance = u128;
/// Block number as seen by contracts (ink!'s default environment uses `u32`).
pub type BlockNumber = u32;
/// Milliseconds since the Unix epoch, as seen by contracts.
pub type Timestamp = u64;
/// Gas, measured in wasmtime fuel units plus host-call charges.
pub type Gas = u64;

/// Blake2b with a 256-bit output.
pub fn blake2_256(data: &[u8]) -> [u8; 32] {
    blake2::Blake2b::<U32>::digest(data).into()
}

/// Blake2b with a 128-bit output.
pub fn blake2_128(data: &[u8]) -> [u8; 16] {
    blake2::Blake2b::<blake2::digest::consts::U16>::digest(data).into()
}

macro_rules! id32 {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode,
        )]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Hex with a `0x` prefix.
            pub fn to_hex(&self) -> String {
                const_hex::encode_prefixed(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                if s.starts_with("0x") {
                    return Err(ParseIdError::NotHex);
                }
                let bytes = const_hex::decode(s).map_err(|_| ParseIdError::NotHex)?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|v: Vec<u8>| ParseIdError::WrongLength(v.len()))?;
                Ok(Self(arr))
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                Self(b)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id32!(
    /// A 32-byte account: a caller's sr25519 public key or a contract's id.
    AccountId
);
id32!(
    /// blake2-256 of a contract's original (unprocessed) Wasm code.
    CodeHash
);
id32!(
    /// An event topic or any other 32-byte hash.
    Hash
);

/// Error parsing a 32-byte id from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text is not hexadecimal.
    #[error("not a hex string")]
    NotHex,
    /// The text decodes to the wrong number of bytes.
    #[error("expected 32 bytes, got {0}")]
    WrongLength(usize),
}

impl CodeHash {
    /// The code hash of a Wasm blob: blake2-256 of its bytes.
    pub fn of(wasm: &[u8]) -> Self {
        Self(blake2_256(wasm))
    }
}

/// How a call is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read-only: answered by one worker, writes discarded, may use non-deterministic powers.
    Query,
    /// State-changing: ordered by the ledger, applied deterministically by every worker.
    Command,
}

/// The on-chain record of an instantiated contract.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ContractInfo {
    /// The code the contract runs.
    pub code_hash: CodeHash,
    /// The account that instantiated it.
    pub deployer: AccountId,
    /// Namespace of its storage cells; fresh for every instantiation, so a contract
    /// re-instantiated at the address of a terminated one never sees the old cells.
    pub storage_id: Hash,
}

/// A key in the replicated state. Every piece of replicated state lives under one of these.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum StateKey {
    /// The original Wasm of uploaded code.
    Code(CodeHash),
    /// The [`ContractInfo`] of a contract.
    Contract(AccountId),
    /// The native balance of an account (SCALE `u128`).
    Balance(AccountId),
    /// A contract storage cell: the contract's `storage_id` and the raw key it used.
    Storage(Hash, Vec<u8>),
    /// The number of instantiations so far (SCALE `u64`); seeds storage ids.
    InstantiationNonce,
    /// Bytes (keys plus values) a contract keeps in storage, by its `storage_id` (SCALE `u64`).
    StorageUsage(Hash),
    /// The cluster's key epochs and revoked workers (SCALE [`protocol::ClusterEpochs`]).
    ClusterEpochs,
    /// Every schedule of the cluster (SCALE [`protocol::ScheduleTable`]).
    Schedules,
    /// Every Ethereum log subscription of the cluster (SCALE [`protocol::SubscriptionTable`]).
    Subscriptions,
    /// Every off-chain job of the cluster (SCALE [`protocol::JobTable`]).
    Jobs,
    /// The workers of the cluster (SCALE [`protocol::MemberTable`]).
    Members,
    /// Who besides its deployer reads a contract's log (SCALE `Vec<AccountId>`).
    LogReaders(AccountId),
    /// The accounts besides the owner that may deploy on an owner-only cluster (SCALE
    /// `Vec<AccountId>`, sorted).
    Deployers,
}

impl StateKey {
    /// A stable byte encoding of the key (its SCALE encoding), for databases.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }
}

/// An event deposited by a contract.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Event {
    /// The contract that emitted it.
    pub contract: AccountId,
    /// Indexed topics.
    pub topics: Vec<Hash>,
    /// SCALE-encoded event data.
    pub data: Vec<u8>,
}

/// The address a contract gets when `deployer` instantiates `code_hash` with `input` and `salt`.
///
/// Same derivation as pallet-contracts' default address generator, so addresses match.
pub fn contract_address(
    deployer: &AccountId,
    code_hash: &CodeHash,
    input: &[u8],
    salt: &[u8],
) -> AccountId {
    let entropy = (b"contract_addr_v1", deployer, code_hash, input, salt).encode();
    AccountId(blake2_256(&entropy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let id = AccountId([7u8; 32]);
        let parsed: AccountId = id.to_hex().parse().unwrap();
        assert_eq!(parsed, id);
        assert_eq!(
            "0x12".parse::<AccountId>(),
            Err(ParseIdError::WrongLength(1))
        );
        assert_eq!("zz".parse::<AccountId>(), Err(ParseIdError::NotHex));
    }

    #[test]
    fn blake2_matches_known_vector() {
        // blake2b-256 of the empty string.
        assert_eq!(
            hex::encode(blake2_256(b"")),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }

    #[test]
    fn contract_address_depends_on_every_input() {
        let d = AccountId([1; 32]);
        let c = CodeHash([2; 32]);
        let a = contract_address(&d, &c, b"in", b"salt");
        assert_ne!(a, contract_address(&d, &c, b"in", b"salt2"));
        assert_ne!(a, contract_address(&d, &c, b"in2", b"salt"));
        assert_ne!(a, contract_address(&AccountId([3; 32]), &c, b"in", b"salt"));
        assert_eq!(a, contract_address(&d, &c, b"in", b"salt"));
    }
}
