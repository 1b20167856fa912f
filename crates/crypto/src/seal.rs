//! Sealing: how a worker keeps its own secrets (identity key, cluster secret) on disk.
//!
//! A TEE seals with a key only the enclave can derive from the CPU. Without one, phat derives
//! the sealing key with HKDF from machine-bound material the worker reads at start (see
//! `phat-worker`'s identity module and `docs/ENVELOPES.md`): the sealed files are useless when
//! copied to another machine or read on their own, but root on the same machine can derive the
//! key, exactly as it can read the worker's memory. That is the honest limit of the emulation.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::keys::{derive, Secret32};
use crate::CryptoError;

/// Magic and version in front of every sealed file.
const MAGIC: &[u8; 8] = b"phatSL01";

/// A key that seals a worker's secrets to its machine and software identity.
#[derive(Debug, Clone)]
pub struct SealingKey(Secret32);

impl SealingKey {
    /// Derives the sealing key from machine-bound `material` and the software `identity`
    /// (the product line, not the exact build, so upgrades can still unseal).
    pub fn derive(material: &[u8], identity: &str) -> Self {
        Self(derive(material, "phat/v1/sealing", &[identity.as_bytes()]))
    }

    /// Seals `secret` under `label` (the file's purpose, bound as associated data).
    #[allow(
        clippy::expect_used,
        reason = "XChaCha20-Poly1305 encryption fails only for messages over 256 GiB; sealed secrets are small"
    )]
    pub fn seal(&self, label: &str, secret: &[u8]) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let ct = XChaCha20Poly1305::new(self.0.expose().into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: label.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for small secrets");
        [MAGIC.as_slice(), &nonce, &ct].concat()
    }

    /// Opens a sealed file made by [`SealingKey::seal`] with the same label.
    pub fn unseal(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < MAGIC.len() + 24 + 16 || &sealed[..MAGIC.len()] != MAGIC {
            return Err(CryptoError::Unseal(format!(
                "{label}: not a sealed file of this format"
            )));
        }
        let Some((nonce, ct)) = sealed[MAGIC.len()..].split_first_chunk::<24>() else {
            return Err(CryptoError::Unseal(format!(
                "{label}: not a sealed file of this format"
            )));
        };
        XChaCha20Poly1305::new(self.0.expose().into())
            .decrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: ct,
                    aad: label.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                CryptoError::Unseal(format!(
                    "{label}: sealed on another machine or by other software, or altered"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_to_material_identity_and_label() {
        let k = SealingKey::derive(b"machine-a", "phat-worker/1");
        let sealed = k.seal("identity", b"secret");
        assert_eq!(&*k.unseal("identity", &sealed).unwrap(), b"secret");
        assert!(k.unseal("cluster", &sealed).is_err());
        assert!(SealingKey::derive(b"machine-b", "phat-worker/1")
            .unseal("identity", &sealed)
            .is_err());
        assert!(SealingKey::derive(b"machine-a", "other/1")
            .unseal("identity", &sealed)
            .is_err());
        assert!(k.unseal("identity", b"short").is_err());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }
}
