//! Encryption at rest: how a worker stores state, receipts and logs on its disk.
//!
//! Values are XChaCha20-Poly1305 with a random 192-bit nonce (stored in front of the
//! ciphertext) and the value's (hashed) name as associated data, so a value moved to another
//! name does not open. Names (state keys, signer accounts) are replaced by a keyed BLAKE2b-256
//! MAC, which keeps equality (lookups work) and hides the name itself.

use blake2::digest::{consts::U32, Mac};
use blake2::Blake2bMac;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::keys::{derive, Secret32};
use crate::CryptoError;

/// Length of the nonce stored in front of every sealed value.
const NONCE_LEN: usize = 24;

/// The storage key of a cluster: seals values and hashes names.
#[derive(Clone, Debug)]
pub struct StorageCipher {
    value_key: Secret32,
    name_key: Secret32,
}

impl StorageCipher {
    /// The cipher for a storage master key.
    pub fn new(master: &Secret32) -> Self {
        Self {
            value_key: derive(master.expose(), "phat/v1/storage/values", &[]),
            name_key: derive(master.expose(), "phat/v1/storage/names", &[]),
        }
    }

    /// The keyed hash of a name (32 bytes).
    pub fn hash_name(&self, name: &[u8]) -> [u8; 32] {
        self.mac(&[name])
    }

    /// A keyed BLAKE2b-256 MAC over length-prefixed `parts` (also used to commit to state
    /// changes in the state root without exposing them to offline guessing).
    #[allow(
        clippy::expect_used,
        reason = "BLAKE2b-MAC accepts any key up to 64 bytes; this one is 32"
    )]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(self.name_key.expose())
            .expect("a 32-byte key is valid for BLAKE2b");
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Seals `value` stored under `name` (the hashed name, or any binding label).
    #[allow(
        clippy::expect_used,
        reason = "XChaCha20-Poly1305 encryption fails only for values over 256 GiB"
    )]
    pub fn seal(&self, name: &[u8], value: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let cipher = XChaCha20Poly1305::new(self.value_key.expose().into());
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value,
                    aad: name,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for values below 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a value sealed under `name`.
    pub fn open(&self, name: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Decrypt);
        }
        let Some((nonce, ct)) = sealed.split_first_chunk::<NONCE_LEN>() else {
            return Err(CryptoError::Decrypt);
        };
        XChaCha20Poly1305::new(self.value_key.expose().into())
            .decrypt(&XNonce::from(*nonce), Payload { msg: ct, aad: name })
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bound_to_their_name() {
        let c = StorageCipher::new(&Secret32::from_bytes([1; 32]));
        let name = c.hash_name(b"contract/key");
        let sealed = c.seal(&name, b"value");
        assert_eq!(c.open(&name, &sealed).unwrap(), b"value");
        assert_ne!(c.seal(&name, b"value"), sealed, "random nonces");
        assert_eq!(
            c.open(&c.hash_name(b"other"), &sealed),
            Err(CryptoError::Decrypt)
        );
        let mut t = sealed.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(c.open(&name, &t), Err(CryptoError::Decrypt));
        assert_eq!(c.open(&name, &[0; 10]), Err(CryptoError::Decrypt));
        let other = StorageCipher::new(&Secret32::from_bytes([2; 32]));
        assert_eq!(other.open(&name, &sealed), Err(CryptoError::Decrypt));
        assert_ne!(other.hash_name(b"contract/key"), name);
        assert_eq!(c.hash_name(b"contract/key"), name);
    }
}
