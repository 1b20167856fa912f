//! Ethereum wallets as phat accounts: the account an EVM address maps to (Phala's mapping) and
//! certificates an Ethereum wallet signs as EIP-712 typed data (`eth_signTypedData_v4`, what
//! MetaMask shows as a readable form), checked by recovering the signer's address.
//!
//! The typed data is phat's own (its fields are the certificate's), under the domain
//! `{ name: "phat", version: "1", salt: keccak256("phat/certificate/v1") }`:
//!
//! ```text
//! PhatCertificate(string description,bytes32 cluster,bytes32 session,uint64 expiresAt,string scope)
//! ```
//!
//! The encoding follows EIP-712; keccak-256 and the secp256k1 recovery are the `sha3` and
//! `k256` crates'. The SDK asks the wallet to sign the same structure, and its test checks a
//! signature made by `viem` against a worker.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use phat_primitives::protocol::{Certificate, CertificateScope};
use phat_primitives::AccountId;
use sha3::{Digest, Keccak256};

/// What an EVM address's account ends with (Phala's mapping: the 20-byte address, then this).
pub const EVM_ACCOUNT_SUFFIX: &[u8; 12] = b"@evm_address";

/// The sentence a wallet shows above the certificate's fields.
pub const CERTIFICATE_DESCRIPTION: &str = "Sign in to a phat cluster: the session key below may \
sign requests as your account on this cluster until the time below.";

/// The account an Ethereum address speaks for: the address, then `@evm_address`.
pub fn evm_account(address: &[u8; 20]) -> AccountId {
    let mut raw = [0u8; 32];
    raw[..20].copy_from_slice(address);
    raw[20..].copy_from_slice(EVM_ACCOUNT_SUFFIX);
    AccountId(raw)
}

/// The Ethereum address `account` maps from, if it is such an account.
pub fn evm_address(account: &AccountId) -> Option<[u8; 20]> {
    if &account.0[20..] != EVM_ACCOUNT_SUFFIX {
        return None;
    }
    account.0[..20].try_into().ok()
}

fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The EIP-712 hash an Ethereum wallet signs for `cert`.
pub fn certificate_hash(cert: &Certificate) -> [u8; 32] {
    let domain_type = keccak(&[b"EIP712Domain(string name,string version,bytes32 salt)"]);
    let salt = keccak(&[b"phat/certificate/v1"]);
    let domain = keccak(&[&domain_type, &keccak(&[b"phat"]), &keccak(&[b"1"]), &salt]);
    let struct_type = keccak(&[
        b"PhatCertificate(string description,bytes32 cluster,bytes32 \
session,uint64 expiresAt,string scope)",
    ]);
    let mut expires = [0u8; 32];
    expires[24..].copy_from_slice(&cert.expires_at.to_be_bytes());
    let scope: &[u8] = match cert.scope {
        CertificateScope::Queries => b"queries",
        CertificateScope::All => b"all",
    };
    let message = keccak(&[
        &struct_type,
        &keccak(&[CERTIFICATE_DESCRIPTION.as_bytes()]),
        &cert.cluster.0,
        &cert.session.0,
        &expires,
        &keccak(&[scope]),
    ]);
    keccak(&[&[0x19, 0x01], &domain, &message])
}

/// The address whose key made `signature` (65 bytes: r, s, v with v 0/1 or 27/28) of `hash`.
pub fn recover_address(hash: &[u8; 32], signature: &[u8]) -> Option<[u8; 20]> {
    let [rs @ .., v] = <&[u8; 65]>::try_from(signature).ok()?;
    let v = match *v {
        27 | 28 => v - 27,
        0 | 1 => *v,
        _ => return None,
    };
    let sig = Signature::from_slice(rs).ok()?;
    let key = VerifyingKey::recover_from_prehash(hash, &sig, RecoveryId::from_byte(v)?).ok()?;
    let point = key.to_encoded_point(false);
    let digest = keccak(&[&point.as_bytes()[1..]]);
    digest[12..].try_into().ok()
}

/// Whether `cert` is signed by the Ethereum wallet its account maps from.
pub fn verify_certificate(cert: &Certificate) -> bool {
    let Some(address) = evm_address(&cert.account) else {
        return false;
    };
    recover_address(&certificate_hash(cert), &cert.signature.0) == Some(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::Bytes;
    use phat_primitives::Hash;

    #[test]
    fn an_address_maps_to_its_account_and_back() {
        let address = [0xab; 20];
        let account = evm_account(&address);
        assert_eq!(&account.0[20..], b"@evm_address");
        assert_eq!(evm_address(&account), Some(address));
        assert_eq!(evm_address(&AccountId([1; 32])), None);
    }

    /// A certificate signed by `viem`'s `signTypedData` (key 0x07…07): the encoding here is
    /// what Ethereum wallets sign.
    #[test]
    fn a_signature_made_by_viem_verifies() {
        let address: [u8; 20] = hex::decode("4a62316623ad457F02cDC5D997deD67a383EC569")
            .unwrap()
            .try_into()
            .unwrap();
        let cert = Certificate {
            account: evm_account(&address),
            session: AccountId([2; 32]),
            cluster: Hash([3; 32]),
            expires_at: 1_700_000_000_000,
            scope: CertificateScope::All,
            signature: Bytes(
                hex::decode(
                    "bf1b955e66107ee82657460e7b8fb6d7f4e7e3763284fae1119ff2df9f629168\
                     0c80af4766c71589665446fdbd51b68664c98044d7398381d11abbb2eaf768611c",
                )
                .unwrap(),
            ),
        };
        assert!(verify_certificate(&cert));
    }

    #[test]
    fn a_signature_recovers_its_address_and_nothing_else_verifies() {
        use k256::ecdsa::SigningKey;
        let key = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let address: [u8; 20] = keccak(&[&point.as_bytes()[1..]])[12..].try_into().unwrap();
        let mut cert = Certificate {
            account: evm_account(&address),
            session: AccountId([2; 32]),
            cluster: Hash([3; 32]),
            expires_at: 1_700_000_000_000,
            scope: CertificateScope::All,
            signature: Bytes(Vec::new()),
        };
        let (sig, recid) = key
            .sign_prehash_recoverable(&certificate_hash(&cert))
            .unwrap();
        let mut raw = sig.to_bytes().to_vec();
        raw.push(27 + recid.to_byte());
        cert.signature = Bytes(raw);
        assert!(verify_certificate(&cert));
        // Another field, another account, a damaged signature: refused.
        let mut other = cert.clone();
        other.scope = CertificateScope::Queries;
        assert!(!verify_certificate(&other));
        let mut other = cert.clone();
        other.account = evm_account(&[1; 20]);
        assert!(!verify_certificate(&other));
        let mut other = cert.clone();
        other.signature.0[64] = 99;
        assert!(!verify_certificate(&other));
        other.signature.0.truncate(64);
        assert!(!verify_certificate(&other));
    }
}
