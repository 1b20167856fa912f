//! Worker votes: what one worker states to the others (checkpoint roots, Ethereum log reports,
//! job results), signed with its own ed25519 key. The key's public half is in the worker's
//! attestation report, so a vote names its worker for real: unlike a MAC under the cluster
//! secret, which every worker holds, nobody but that worker can make it, and every worker
//! checks it the same way (a ledger entry's verdict must not depend on who checks it).

use ed25519_dalek::Signer as _;

use crate::keys::Secret32;

/// A worker's vote-signing key (ed25519). The secret zeroizes on drop.
pub struct VoteKey(ed25519_dalek::SigningKey);

impl VoteKey {
    /// A fresh key from the operating system's generator.
    pub fn generate() -> Self {
        Self::from_secret(&Secret32::random())
    }

    /// The key with secret seed `secret`.
    pub fn from_secret(secret: &Secret32) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret.expose()))
    }

    /// The secret seed (to seal it to disk).
    pub fn to_secret(&self) -> Secret32 {
        Secret32::from_bytes(self.0.to_bytes())
    }

    /// The public key (what reports attest).
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `message` under `domain` (each kind of vote has its own).
    pub fn sign(&self, domain: &str, message: &[u8]) -> [u8; 64] {
        self.0.sign(&payload(domain, message)).to_bytes()
    }
}

/// Whether `signature` is `public`'s vote on `message` under `domain`. A key that is not a
/// valid point, or a signature that does not verify, is `false`; the check is strict
/// (`verify_strict`: no malleable signatures, no small-order keys), so every worker gets the
/// same answer for the same bytes.
pub fn verify_vote(public: &[u8; 32], domain: &str, message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(&payload(domain, message), &signature)
        .is_ok()
}

/// The signed bytes: the domain's length and the domain, then the message (no two domains
/// can make the same bytes).
fn payload(domain: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + domain.len() + message.len());
    out.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_domain_and_message_signed_verify() {
        let key = VoteKey::from_secret(&Secret32::from_bytes([3; 32]));
        let other = VoteKey::from_secret(&Secret32::from_bytes([4; 32]));
        let sig = key.sign("phat/v1/checkpoint", b"record");
        assert!(verify_vote(
            &key.public(),
            "phat/v1/checkpoint",
            b"record",
            &sig
        ));
        assert!(!verify_vote(
            &other.public(),
            "phat/v1/checkpoint",
            b"record",
            &sig
        ));
        assert!(!verify_vote(
            &key.public(),
            "phat/v1/eth-log",
            b"record",
            &sig
        ));
        assert!(!verify_vote(
            &key.public(),
            "phat/v1/checkpoint",
            b"recorD",
            &sig
        ));
        // Domain and message cannot trade bytes.
        let shifted = key.sign("phat/v1/checkpointr", b"ecord");
        assert!(!verify_vote(
            &key.public(),
            "phat/v1/checkpoint",
            b"record",
            &shifted
        ));
        // Not a point: refused, not a panic.
        assert!(!verify_vote(&[0xff; 32], "d", b"m", &sig));
        let again = VoteKey::from_secret(&key.to_secret());
        assert_eq!(again.public(), key.public());
    }
}
