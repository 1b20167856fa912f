//! Secret key material: zeroized on drop, derived with HKDF-SHA256 under explicit domains.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::envelope::EnvelopeSecret;
use crate::storage::StorageCipher;

/// 32 secret bytes, wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret32([u8; 32]);

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret32(..)")
    }
}

impl Secret32 {
    /// Fresh random bytes from the operating system's generator.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Wraps existing secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret bytes (keep the borrow short; do not copy them out of zeroizing types).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// HKDF-SHA256 of `ikm` into 32 bytes. `domain` names the purpose (a fixed ASCII tag such as
/// `phat/v1/storage`); each of `parts` is length-prefixed into the info string, so no two
/// (domain, parts) lists give the same info.
pub fn derive(ikm: &[u8], domain: &str, parts: &[&[u8]]) -> Secret32 {
    let mut out = Secret32([0; 32]);
    expand(ikm, domain, parts, &mut out.0);
    out
}

/// Like [`derive`], filling `out` (any length up to 8160 bytes; longer panics).
#[allow(
    clippy::expect_used,
    reason = "HKDF-SHA256 fails only past 8160 bytes of output; callers ask for far less"
)]
pub fn expand(ikm: &[u8], domain: &str, parts: &[&[u8]], out: &mut [u8]) {
    let mut info = Vec::with_capacity(domain.len() + 64);
    info.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    info.extend_from_slice(domain.as_bytes());
    for p in parts {
        info.extend_from_slice(&(p.len() as u32).to_le_bytes());
        info.extend_from_slice(p);
    }
    Hkdf::<Sha256>::new(Some(b"phat".as_slice()), ikm)
        .expand(&info, out)
        .expect("HKDF output lengths used here are far below the 8160-byte limit");
    info.zeroize();
}

/// The cluster secret: created by the first worker, handed to every attested worker, and the
/// root of every cluster-wide key. It exists in plaintext only inside workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSecret(Secret32);

/// The key kinds a contract holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContractKeyKind {
    /// sr25519 (the contract's own key and `derive_sr25519_key`).
    Sr25519,
    /// ed25519.
    Ed25519,
    /// secp256k1 ECDSA.
    Secp256k1,
}

impl ClusterSecret {
    /// A new random secret (the first worker of a cluster calls this once).
    pub fn generate() -> Self {
        Self(Secret32::random())
    }

    /// Wraps secret bytes received in a handover or unsealed from disk.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Secret32(bytes))
    }

    /// The raw secret, for sealing and handover only.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The key that encrypts state, receipts and logs at rest.
    pub fn storage_cipher(&self) -> StorageCipher {
        StorageCipher::new(&self.storage_master())
    }

    /// The storage master key of this secret (a rotated epoch adds it to the cipher with
    /// [`StorageCipher::push_epoch`]).
    pub fn storage_master(&self) -> Secret32 {
        derive(self.expose(), "phat/v1/storage", &[])
    }

    /// The key that seals state snapshots a worker leaves in the ledger for other workers.
    pub fn snapshot_cipher(&self) -> StorageCipher {
        StorageCipher::new(&self.snapshot_master())
    }

    /// The snapshot master key of this secret (see [`ClusterSecret::storage_master`]).
    pub fn snapshot_master(&self) -> Secret32 {
        derive(self.expose(), "phat/v1/snapshot", &[])
    }

    /// The cluster's X25519 key: commands are encrypted to its public half.
    pub fn envelope_secret(&self) -> EnvelopeSecret {
        EnvelopeSecret::from_secret(&derive(self.expose(), "phat/v1/cluster-envelope", &[]))
    }

    /// The seed every contract key derives from (see [`contract_key_material`]).
    pub fn contract_seed(&self) -> Secret32 {
        derive(self.expose(), "phat/v1/contract-keys", &[])
    }
}

/// 32 bytes of key material for `contract`'s key of `kind` with `salt`, from the cluster's
/// contract seed: the same on every worker, different per contract, kind and salt.
pub fn contract_key_material(
    seed: &[u8; 32],
    contract: &[u8; 32],
    kind: ContractKeyKind,
    salt: &[u8],
) -> Secret32 {
    let kind: &[u8] = match kind {
        ContractKeyKind::Sr25519 => b"sr25519",
        ContractKeyKind::Ed25519 => b"ed25519",
        ContractKeyKind::Secp256k1 => b"secp256k1",
    };
    derive(seed, "phat/v1/contract-key", &[kind, contract, salt])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_are_deterministic_and_separated() {
        let s = ClusterSecret::from_bytes([7; 32]);
        assert_eq!(s.contract_seed(), s.contract_seed());
        assert_ne!(
            s.contract_seed(),
            derive(s.expose(), "phat/v1/storage", &[])
        );
        assert_ne!(
            s.envelope_secret().public(),
            ClusterSecret::from_bytes([8; 32])
                .envelope_secret()
                .public()
        );
        let seed = s.contract_seed();
        let a = contract_key_material(seed.expose(), &[1; 32], ContractKeyKind::Sr25519, b"");
        let b = contract_key_material(seed.expose(), &[2; 32], ContractKeyKind::Sr25519, b"");
        let c = contract_key_material(seed.expose(), &[1; 32], ContractKeyKind::Ed25519, b"");
        let d = contract_key_material(seed.expose(), &[1; 32], ContractKeyKind::Sr25519, b"x");
        assert!(a != b && a != c && a != d && b != c);
        // Length prefixes: moving bytes between parts changes the result.
        assert_ne!(
            derive(b"k", "d", &[b"ab", b"c"]),
            derive(b"k", "d", &[b"a", b"bc"])
        );
        assert_eq!(format!("{:?}", seed), "Secret32(..)");
    }
}
