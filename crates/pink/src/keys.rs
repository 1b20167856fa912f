//! A contract's own keys: pink's key formats over the cluster seed, derived by phat-crypto.
//!
//! The key material comes from [`phat_crypto::contract_key_material`] (HKDF-SHA256 under
//! `phat/v1/contract-key` with the kind, contract and salt); this module only turns it into
//! the keys pink hands out: sr25519 secrets in schnorrkel's 64-byte format, the ed25519 key,
//! and the secp256k1 key behind the contract's Ethereum address.

use phat_primitives::AccountId;

use crate::sign::{compressed, sr25519_expand};

/// The kinds of contract key, each derived under its own label (phat-crypto's kinds).
pub use phat_crypto::ContractKeyKind as KeyKind;

/// 32 bytes of key material for `contract` from the cluster's contract-key `seed`
/// (HKDF-SHA256 under `phat/v1/contract-key`, see [`phat_crypto::contract_key_material`]).
/// The same on every worker holding `seed`, different per contract, kind and salt.
pub fn derive_key_material(
    seed: &[u8; 32],
    contract: &AccountId,
    kind: KeyKind,
    salt: &[u8],
) -> [u8; 32] {
    *phat_crypto::contract_key_material(seed, contract.as_bytes(), kind, salt).expose()
}

/// The salt of a contract's Ethereum key: its secp256k1 secret is the first 32 bytes of
/// `derive_sr25519_key(ETHEREUM_KEY_SALT)` (the convention of Phala's `pink-web3`, with a
/// dedicated salt), so contracts can sign with it through `ecdsa_sign_prehashed`.
pub const ETHEREUM_KEY_SALT: &[u8] = b"ethereum";

/// The 64-byte sr25519 secret key `derive_sr25519_key(salt)` gives `contract` (pink's format:
/// schnorrkel scalar ‖ nonce; `sign` and `get_public_key` take it back).
pub fn derive_sr25519_secret(seed: &[u8; 32], contract: &AccountId, salt: &[u8]) -> [u8; 64] {
    sr25519_expand(&derive_key_material(seed, contract, KeyKind::Sr25519, salt)).to_bytes()
}

/// The secp256k1 key `contract` signs Ethereum transactions with (see [`ETHEREUM_KEY_SALT`]).
#[allow(
    clippy::expect_used,
    reason = "an sr25519 scalar (< 2^253) is a valid non-zero secp256k1 secret"
)]
pub fn contract_ethereum_key(seed: &[u8; 32], contract: &AccountId) -> k256::ecdsa::SigningKey {
    let secret = derive_sr25519_secret(seed, contract, ETHEREUM_KEY_SALT);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&secret[..32]);
    // An sr25519 scalar is below the ed25519 group order (< 2^253), so it is a valid non-zero
    // secp256k1 scalar except with negligible probability (zero).
    k256::ecdsa::SigningKey::from_bytes(&bytes.into())
        .expect("an sr25519 scalar is a valid secp256k1 secret")
}

/// The public keys of a contract's own keys (no salt), for showing its identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContractPublicKeys {
    /// sr25519 public key (that of `derive_sr25519_key` with an empty salt).
    pub sr25519: [u8; 32],
    /// ed25519 public key.
    pub ed25519: [u8; 32],
    /// Compressed secp256k1 public key of the contract's Ethereum key.
    pub ecdsa: [u8; 33],
    /// The Ethereum address of that key.
    pub ethereum_address: [u8; 20],
}

/// The public keys of `contract`'s own keys derived from `seed`.
pub fn contract_public_keys(seed: &[u8; 32], contract: &AccountId) -> ContractPublicKeys {
    let sr25519 =
        sr25519_expand(&derive_key_material(seed, contract, KeyKind::Sr25519, b"")).to_public();
    let ed25519 = ed25519_dalek::SigningKey::from_bytes(&derive_key_material(
        seed,
        contract,
        KeyKind::Ed25519,
        b"",
    ));
    let ecdsa = compressed(contract_ethereum_key(seed, contract).verifying_key());
    #[allow(
        clippy::expect_used,
        reason = "a key's own compressed point always decompresses"
    )]
    let ethereum_address = phat_runtime::crypto::ecdsa_to_eth_address(&ecdsa)
        .expect("a key's own compressed point decompresses");
    ContractPublicKeys {
        sr25519: sr25519.to_bytes(),
        ed25519: ed25519.verifying_key().to_bytes(),
        ecdsa,
        ethereum_address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned outputs: every worker, before and after any refactoring, derives these bytes.
    #[test]
    fn derived_keys_are_pinned() {
        let (seed, contract) = ([3; 32], AccountId([7; 32]));
        let keys = contract_public_keys(&seed, &contract);
        assert_eq!(
            hex::encode(keys.sr25519),
            "3e8557970506decb1b643a4542aef671c4d4be9c2a5bf0fc8c70507c4bc0af0e"
        );
        assert_eq!(
            hex::encode(keys.ed25519),
            "2c4f6b42c47f46a5c6064b6d85a4773b24854735d7e86c0024681aabcff92773"
        );
        assert_eq!(
            hex::encode(keys.ecdsa),
            "02513bb1e8ab675e4775c0ed1d4a59cb3eed3ae0d097705399cb14bcae870f0e4e"
        );
        assert_eq!(
            hex::encode(keys.ethereum_address),
            "49ed0afe035ffd08b80cd6557ddcba89623e1256"
        );
        assert_eq!(
            hex::encode(derive_sr25519_secret(&seed, &contract, b"salt")),
            "710a31d1f8f0aed75dc598a6182873719bc3c2e7aecf122db9088578c5f93f0d\
             2401094e3046eabb0b82dd838d71a5f3ca7f010e1ae771dbbb8161c94c42e49a"
        );
        assert_eq!(
            derive_key_material(&seed, &contract, KeyKind::Ed25519, b""),
            *phat_crypto::contract_key_material(
                &seed,
                contract.as_bytes(),
                phat_crypto::ContractKeyKind::Ed25519,
                b""
            )
            .expose()
        );
    }
}
