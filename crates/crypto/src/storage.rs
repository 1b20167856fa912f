//! Encryption at rest: how a worker stores state, receipts and logs on its disk.
//!
//! Values are XChaCha20-Poly1305 with a random 192-bit nonce (stored in front of the
//! ciphertext) and the value's (hashed) name as associated data, so a value moved to another
//! name does not open. Names (state keys, signer accounts) are replaced by a keyed BLAKE2b-256
//! MAC, which keeps equality (lookups work) and hides the name itself.
//!
//! Key epochs: when the cluster secret is rotated, new values are sealed under the new
//! epoch's value key, tagged with the epoch (`0xFF`, epoch as u32 LE, then nonce and
//! ciphertext); values of older epochs stay readable with the keys the cipher still holds.
//! Epoch 0 keeps the untagged layout (nonce, ciphertext) of stores written before epochs
//! existed. Names keep the epoch-0 name key for ever: lookups of old state must still find it,
//! and the state root (which MACs writes) must not change meaning with the epoch.

use std::sync::{Arc, RwLock};

use blake2::digest::{consts::U32, Mac};
use blake2::Blake2bMac;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::keys::{derive, Secret32};
use crate::CryptoError;

/// Length of the nonce stored in front of every sealed value.
const NONCE_LEN: usize = 24;
/// First byte of a value sealed under an epoch after 0.
const EPOCH_TAG: u8 = 0xFF;
/// Length of the epoch prefix (tag and u32 epoch).
const EPOCH_PREFIX: usize = 5;

/// The storage key of a cluster: seals values and hashes names. Clones share their epoch
/// keys, so an epoch added to one (a key rotation) is used by all.
#[derive(Clone, Debug)]
pub struct StorageCipher {
    /// The value key of each epoch, index = epoch; the last one seals.
    value_keys: Arc<RwLock<Vec<Secret32>>>,
    name_key: Secret32,
}

impl StorageCipher {
    /// The cipher for a storage master key (epoch 0).
    pub fn new(master: &Secret32) -> Self {
        Self {
            value_keys: Arc::new(RwLock::new(vec![value_key(master)])),
            name_key: derive(master.expose(), "phat/v1/storage/names", &[]),
        }
    }

    /// Adds the value key of the next epoch from its storage master key: values sealed from
    /// now on use it. Returns the new epoch.
    pub fn push_epoch(&self, master: &Secret32) -> u32 {
        let mut keys = self.value_keys.write().unwrap_or_else(|e| e.into_inner());
        keys.push(value_key(master));
        u32::try_from(keys.len() - 1).unwrap_or(u32::MAX)
    }

    /// The epoch new values are sealed under.
    pub fn epoch(&self) -> u32 {
        let keys = self.value_keys.read().unwrap_or_else(|e| e.into_inner());
        u32::try_from(keys.len().saturating_sub(1)).unwrap_or(u32::MAX)
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
        let keys = self.value_keys.read().unwrap_or_else(|e| e.into_inner());
        let epoch = keys.len().saturating_sub(1);
        let Some(key) = keys.last() else {
            unreachable!("a cipher is made with its epoch-0 key and keys are never removed")
        };
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value,
                    aad: name,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for values below 256 GiB");
        let mut out = Vec::with_capacity(EPOCH_PREFIX + NONCE_LEN + ct.len());
        if epoch > 0 {
            out.push(EPOCH_TAG);
            out.extend_from_slice(&(epoch as u32).to_le_bytes());
        }
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a value sealed under `name`.
    pub fn open(&self, name: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let keys = self.value_keys.read().unwrap_or_else(|e| e.into_inner());
        // A tagged value of an epoch this cipher holds; an untagged (epoch 0) value whose
        // random nonce happens to start with the tag fails there and opens below.
        if let Some((&[EPOCH_TAG, a, b, c, d], rest)) = sealed.split_first_chunk::<EPOCH_PREFIX>() {
            let epoch = u32::from_le_bytes([a, b, c, d]) as usize;
            if let Some(key) = keys.get(epoch).filter(|_| epoch > 0) {
                if let Ok(v) = open_with(key, name, rest) {
                    return Ok(v);
                }
            }
        }
        let Some(key) = keys.first() else {
            return Err(CryptoError::Decrypt);
        };
        open_with(key, name, sealed)
    }
}

/// The value key of a storage master key.
fn value_key(master: &Secret32) -> Secret32 {
    derive(master.expose(), "phat/v1/storage/values", &[])
}

/// Opens `nonce || ciphertext` with `key`.
fn open_with(key: &Secret32, name: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Decrypt);
    }
    let Some((nonce, ct)) = sealed.split_first_chunk::<NONCE_LEN>() else {
        return Err(CryptoError::Decrypt);
    };
    XChaCha20Poly1305::new(key.expose().into())
        .decrypt(&XNonce::from(*nonce), Payload { msg: ct, aad: name })
        .map_err(|_| CryptoError::Decrypt)
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

    #[test]
    fn a_new_epoch_seals_new_values_and_old_ones_still_open() {
        let c = StorageCipher::new(&Secret32::from_bytes([1; 32]));
        let name = c.hash_name(b"k");
        let old = c.seal(&name, b"epoch 0");
        assert_eq!(c.epoch(), 0);
        // A clone (the store's) sees the new epoch too.
        let store_copy = c.clone();
        assert_eq!(c.push_epoch(&Secret32::from_bytes([2; 32])), 1);
        let new = store_copy.seal(&name, b"epoch 1");
        assert_eq!(new[0], EPOCH_TAG);
        assert_eq!(&new[1..5], &1u32.to_le_bytes());
        assert_eq!(store_copy.open(&name, &old).unwrap(), b"epoch 0");
        assert_eq!(store_copy.open(&name, &new).unwrap(), b"epoch 1");
        assert_eq!(
            store_copy.hash_name(b"k"),
            name,
            "names keep the epoch-0 key"
        );
        // A holder of epoch 0 only (a revoked worker) cannot read epoch-1 values.
        let revoked = StorageCipher::new(&Secret32::from_bytes([1; 32]));
        assert_eq!(revoked.open(&name, &old).unwrap(), b"epoch 0");
        assert_eq!(revoked.open(&name, &new), Err(CryptoError::Decrypt));
        // Nor does another epoch-1 key open them.
        let other = StorageCipher::new(&Secret32::from_bytes([1; 32]));
        other.push_epoch(&Secret32::from_bytes([3; 32]));
        assert_eq!(other.open(&name, &new), Err(CryptoError::Decrypt));
        // An epoch-0 value whose nonce starts with the tag still opens.
        let tagged_like = loop {
            let v = revoked.seal(&name, b"x");
            if v[0] == EPOCH_TAG {
                break v;
            }
        };
        assert_eq!(c.open(&name, &tagged_like).unwrap(), b"x");
    }
}
