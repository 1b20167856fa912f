//! Signature primitives behind `ecdsa_recover`, `ecdsa_to_eth_address` and `sr25519_verify`,
//! from well-kept crates (k256, sha3, schnorrkel).

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use sha3::Digest as _;

/// Recovers the compressed secp256k1 public key that signed the 32-byte `message_hash`.
/// The last signature byte is the recovery id (0/1, or 27/28 as Ethereum writes it).
pub fn ecdsa_recover(signature: &[u8; 65], message_hash: &[u8; 32]) -> Option<[u8; 33]> {
    let v = signature[64];
    let v = if v >= 27 { v - 27 } else { v };
    let recovery_id = RecoveryId::from_byte(v)?;
    let sig = Signature::from_slice(&signature[..64]).ok()?;
    // Accept high-s signatures as pallet-contracts does, by normalizing them.
    let (sig, recovery_id) = match sig.normalize_s() {
        Some(normalized) => (
            normalized,
            RecoveryId::new(!recovery_id.is_y_odd(), recovery_id.is_x_reduced()),
        ),
        None => (sig, recovery_id),
    };
    let key = VerifyingKey::recover_from_prehash(message_hash, &sig, recovery_id).ok()?;
    key.to_encoded_point(true).as_bytes().try_into().ok()
}

/// The Ethereum address of a compressed secp256k1 public key.
pub fn ecdsa_to_eth_address(compressed: &[u8; 33]) -> Option<[u8; 20]> {
    let key = k256::PublicKey::from_sec1_bytes(compressed).ok()?;
    let uncompressed = key.to_encoded_point(false);
    let hash = sha3::Keccak256::digest(&uncompressed.as_bytes()[1..]);
    hash[12..].try_into().ok()
}

/// Verifies an sr25519 signature in the Substrate signing context.
pub fn sr25519_verify(signature: &[u8; 64], message: &[u8], public: &[u8; 32]) -> bool {
    let (Ok(key), Ok(sig)) = (
        schnorrkel::PublicKey::from_bytes(public),
        schnorrkel::Signature::from_bytes(signature),
    ) else {
        return false;
    };
    key.verify_simple(b"substrate", message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    #[test]
    fn ecdsa_recover_finds_the_signer_and_its_eth_address() {
        let sk = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let hash = [9u8; 32];
        let (sig, rid) = sk.sign_prehash_recoverable(&hash).unwrap();
        let mut raw = [0u8; 65];
        raw[..64].copy_from_slice(&sig.to_bytes());
        raw[64] = rid.to_byte();
        let expected: [u8; 33] = sk
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .try_into()
            .unwrap();
        assert_eq!(ecdsa_recover(&raw, &hash), Some(expected));
        raw[64] += 27;
        assert_eq!(ecdsa_recover(&raw, &hash), Some(expected));
        raw[64] = 9;
        assert_eq!(ecdsa_recover(&raw, &hash), None);
        // Private key 1 has a well-known Ethereum address.
        let one = SigningKey::from_bytes(&{
            let mut k = [0u8; 32];
            k[31] = 1;
            k.into()
        })
        .unwrap();
        let key: [u8; 33] = one
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(ecdsa_to_eth_address(&key).unwrap()),
            "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }

    #[test]
    fn sr25519_verify_accepts_only_the_right_signature() {
        let kp = schnorrkel::MiniSecretKey::from_bytes(&[1u8; 32])
            .unwrap()
            .expand_to_keypair(schnorrkel::ExpansionMode::Ed25519);
        let sig = kp.sign_simple(b"substrate", b"hello").to_bytes();
        let public = kp.public.to_bytes();
        assert!(sr25519_verify(&sig, b"hello", &public));
        assert!(!sr25519_verify(&sig, b"hellO", &public));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!sr25519_verify(&bad, b"hello", &public));
    }
}
