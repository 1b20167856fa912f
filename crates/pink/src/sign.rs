//! Signing and verification in sp-core's formats (pink's `sign`, `verify`, `get_public_key`
//! and the prehashed ECDSA pair).
//!
//! sr25519 secrets are 32-byte mini secrets (expanded in ed25519 mode) or 64-byte secret keys,
//! signatures 64 bytes in the `substrate` signing context; ed25519 secrets are 32-byte seeds;
//! ecdsa (secp256k1) secrets are 32 bytes, public keys 33 bytes compressed, signatures 65 bytes
//! `r ‖ s ‖ v` over `blake2_256(message)` (or the given prehash).

use ed25519_dalek::{Signer as _, Verifier as _};
use phat_primitives::{blake2_256, AccountId};

use crate::types::SigType;

/// sp-core's sr25519 signing context.
const SR25519_CONTEXT: &[u8] = b"substrate";

/// Why a key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    /// The key has the wrong length for its scheme.
    #[error("invalid {0:?} secret key: expected {1}, got {2} bytes")]
    Length(SigType, &'static str, usize),
    /// The key has the right length but is not a valid key.
    #[error("invalid {0:?} secret key")]
    Invalid(SigType),
}

/// The schnorrkel secret key of a 32-byte mini secret, expanded in ed25519 mode (as sp-core).
pub(crate) fn sr25519_expand(mini: &[u8; 32]) -> schnorrkel::SecretKey {
    // Every 32-byte string is a valid mini secret key.
    schnorrkel::MiniSecretKey::from_bytes(mini)
        .map(|m| m.expand(schnorrkel::ExpansionMode::Ed25519))
        .unwrap_or_else(|_| unreachable!("a mini secret key is any 32 bytes"))
}

/// An sr25519 secret key from a 32-byte mini secret or a 64-byte secret key (as sp-core).
fn sr25519_secret(key: &[u8]) -> Result<schnorrkel::SecretKey, KeyError> {
    match key.len() {
        32 => schnorrkel::MiniSecretKey::from_bytes(key)
            .map(|m| m.expand(schnorrkel::ExpansionMode::Ed25519))
            .map_err(|_| KeyError::Invalid(SigType::Sr25519)),
        64 => {
            schnorrkel::SecretKey::from_bytes(key).map_err(|_| KeyError::Invalid(SigType::Sr25519))
        }
        n => Err(KeyError::Length(SigType::Sr25519, "32 or 64", n)),
    }
}

fn ed25519_secret(key: &[u8]) -> Result<ed25519_dalek::SigningKey, KeyError> {
    let seed: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Length(SigType::Ed25519, "32", key.len()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn ecdsa_secret(key: &[u8]) -> Result<k256::ecdsa::SigningKey, KeyError> {
    let bytes: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Length(SigType::Ecdsa, "32", key.len()))?;
    k256::ecdsa::SigningKey::from_bytes(&bytes.into())
        .map_err(|_| KeyError::Invalid(SigType::Ecdsa))
}

/// The 33-byte compressed form of a secp256k1 public key.
pub(crate) fn compressed(key: &k256::ecdsa::VerifyingKey) -> [u8; 33] {
    let mut out = [0; 33];
    out.copy_from_slice(key.to_encoded_point(true).as_bytes());
    out
}

/// Nonce entropy for sr25519 signing: 32 given bytes, repeated. schnorrkel mixes them with the
/// secret nonce and the transcript (message, public key), so zero entropy still gives a secure,
/// deterministic signature (like ed25519's), and host randomness hedges it in queries.
struct NonceEntropy {
    bytes: [u8; 32],
    pos: usize,
}

impl rand_core::RngCore for NonceEntropy {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.bytes[self.pos % 32];
            self.pos = self.pos.wrapping_add(1);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for NonceEntropy {}

/// Signs `message` with `key` (pink's `sign`); `entropy` hedges sr25519 nonces.
pub(crate) fn sign(
    sigtype: SigType,
    key: &[u8],
    message: &[u8],
    entropy: [u8; 32],
) -> Result<Vec<u8>, KeyError> {
    Ok(match sigtype {
        SigType::Sr25519 => {
            let secret = sr25519_secret(key)?;
            let public = secret.to_public();
            let transcript = schnorrkel::signing_context(SR25519_CONTEXT).bytes(message);
            let rng = NonceEntropy {
                bytes: entropy,
                pos: 0,
            };
            secret
                .sign(schnorrkel::context::attach_rng(transcript, rng), &public)
                .to_bytes()
                .to_vec()
        }
        SigType::Ed25519 => ed25519_secret(key)?.sign(message).to_bytes().to_vec(),
        SigType::Ecdsa => ecdsa_sign_prehashed(key, &blake2_256(message))?.to_vec(),
    })
}

/// Whether `signature` is `pubkey`'s signature of `message` (pink's `verify`); malformed keys
/// and signatures are simply not valid.
pub(crate) fn verify(sigtype: SigType, pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    match sigtype {
        SigType::Sr25519 => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 32]>::try_from(pubkey),
                <[u8; 64]>::try_from(signature),
            ) else {
                return false;
            };
            phat_crypto::sr25519_verify(&AccountId(public), message, &signature)
        }
        SigType::Ed25519 => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 32]>::try_from(pubkey),
                <[u8; 64]>::try_from(signature),
            ) else {
                return false;
            };
            let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
                return false;
            };
            public
                .verify(message, &ed25519_dalek::Signature::from_bytes(&signature))
                .is_ok()
        }
        SigType::Ecdsa => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 33]>::try_from(pubkey),
                <[u8; 65]>::try_from(signature),
            ) else {
                return false;
            };
            ecdsa_verify_prehashed(&signature, &blake2_256(message), &public)
        }
    }
}

/// The public key of secret `key` (pink's `get_public_key`).
pub(crate) fn public_key(sigtype: SigType, key: &[u8]) -> Result<Vec<u8>, KeyError> {
    Ok(match sigtype {
        SigType::Sr25519 => sr25519_secret(key)?.to_public().to_bytes().to_vec(),
        SigType::Ed25519 => ed25519_secret(key)?.verifying_key().to_bytes().to_vec(),
        SigType::Ecdsa => compressed(ecdsa_secret(key)?.verifying_key()).to_vec(),
    })
}

/// A 65-byte recoverable ECDSA signature `r ‖ s ‖ v` of `hash` (low `s`, `v` 0 or 1).
pub(crate) fn ecdsa_sign_prehashed(key: &[u8], hash: &[u8; 32]) -> Result<[u8; 65], KeyError> {
    let key = ecdsa_secret(key)?;
    let (signature, recovery_id) = key
        .sign_prehash_recoverable(hash)
        .map_err(|_| KeyError::Invalid(SigType::Ecdsa))?;
    let mut out = [0; 65];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = recovery_id.to_byte();
    Ok(out)
}

/// Whether `signature` of `hash` recovers to `pubkey` (with the runtime's `ecdsa_recover`, so
/// pink and the `seal` host function accept the same signatures).
pub(crate) fn ecdsa_verify_prehashed(
    signature: &[u8; 65],
    hash: &[u8; 32],
    pubkey: &[u8; 33],
) -> bool {
    phat_runtime::crypto::ecdsa_recover(signature, hash).is_some_and(|found| &found == pubkey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr25519_matches_sp_core_test_vector() {
        // sp-core's sr25519 `test_vector_should_work`: seed → public key.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let public = public_key(SigType::Sr25519, &seed).unwrap();
        assert_eq!(
            hex::encode(public),
            "44a996beb1eef7bdcab976ab6d2ca26104834164ecf28fb375600576fcc6eb0f"
        );
    }
}
