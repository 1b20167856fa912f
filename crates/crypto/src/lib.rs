//! Caller keys and request signatures.
//!
//! Callers hold sr25519 keys as in Substrate: a secret URI such as `//Alice` (dev seeds), a
//! mnemonic with optional `//hard/soft` junctions, or a `0x` seed. Requests are signed over
//! [`RequestBody::signing_payload`] in the `substrate` signing context, so keys and signatures
//! are the ones Substrate tools produce.

use std::str::FromStr;

use parity_scale_codec::{Decode, Encode};
use phat_primitives::protocol::{Bytes, RequestBody, SignedRequest};
use phat_primitives::AccountId;

/// Errors reading keys or checking requests.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The secret URI could not be parsed or derived.
    #[error("invalid secret URI: {0}")]
    BadSuri(String),
    /// The request body is not a valid SCALE `RequestBody`.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The signature is not 64 bytes or does not verify against the signer.
    #[error("bad signature: the request was not signed by {0}")]
    BadSignature(AccountId),
}

/// An sr25519 key pair that signs requests.
#[derive(Clone)]
pub struct Signer {
    pair: subxt_signer::sr25519::Keypair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.account())
    }
}

impl Signer {
    /// Reads a Substrate secret URI: `//Alice`, `<mnemonic>//path///password`, or a `0x` seed.
    pub fn from_suri(suri: &str) -> Result<Self, CryptoError> {
        let uri = subxt_signer::SecretUri::from_str(suri)
            .map_err(|e| CryptoError::BadSuri(e.to_string()))?;
        let pair = subxt_signer::sr25519::Keypair::from_uri(&uri)
            .map_err(|e| CryptoError::BadSuri(e.to_string()))?;
        Ok(Self { pair })
    }

    /// The account (public key) of this signer.
    pub fn account(&self) -> AccountId {
        AccountId(self.pair.public_key().0)
    }

    /// Signs `message` in the `substrate` context.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair.sign(message).0
    }

    /// Signs a request body.
    pub fn sign_request(&self, body: &RequestBody) -> SignedRequest {
        SignedRequest {
            body: Bytes(body.encode()),
            signer: self.account(),
            signature: Bytes(self.sign(&body.signing_payload()).to_vec()),
        }
    }
}

/// Verifies an sr25519 signature in the `substrate` context.
pub fn sr25519_verify(signer: &AccountId, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = schnorrkel::Signature::from_bytes(signature) else {
        return false;
    };
    let Ok(pk) = schnorrkel::PublicKey::from_bytes(signer.as_bytes()) else {
        return false;
    };
    pk.verify_simple(b"substrate", message, &sig).is_ok()
}

/// Decodes a signed request's body and checks its signature.
pub fn verify_request(req: &SignedRequest) -> Result<RequestBody, CryptoError> {
    let body = RequestBody::decode(&mut &req.body[..])
        .map_err(|e| CryptoError::MalformedBody(e.to_string()))?;
    if !sr25519_verify(&req.signer, &body.signing_payload(), &req.signature) {
        return Err(CryptoError::BadSignature(req.signer));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::Call;
    use phat_primitives::Mode;

    fn body() -> RequestBody {
        RequestBody {
            mode: Mode::Command,
            call: Call::Call {
                dest: AccountId([9; 32]),
                value: 0,
                data: Bytes(vec![1]),
                gas_limit: 1,
            },
            nonce: 7,
            expires_at: 1,
        }
    }

    #[test]
    fn alice_is_the_substrate_dev_account() {
        let alice = Signer::from_suri("//Alice").unwrap();
        // 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY
        assert_eq!(
            alice.account().to_hex(),
            "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert_ne!(
            Signer::from_suri("//Bob").unwrap().account(),
            alice.account()
        );
    }

    #[test]
    fn signed_requests_verify_and_tampering_fails() {
        let alice = Signer::from_suri("//Alice").unwrap();
        let req = alice.sign_request(&body());
        assert_eq!(verify_request(&req).unwrap(), body());
        let mut forged = req.clone();
        forged.signer = Signer::from_suri("//Bob").unwrap().account();
        assert!(matches!(
            verify_request(&forged),
            Err(CryptoError::BadSignature(_))
        ));
        let mut tampered = req.clone();
        let mut b = body();
        b.nonce = 8;
        tampered.body = Bytes(b.encode());
        assert!(matches!(
            verify_request(&tampered),
            Err(CryptoError::BadSignature(_))
        ));
        let mut garbage = req;
        garbage.body = Bytes(vec![0xff]);
        assert!(matches!(
            verify_request(&garbage),
            Err(CryptoError::MalformedBody(_))
        ));
    }

    #[test]
    fn bad_suri_is_an_error() {
        assert!(matches!(
            Signer::from_suri("not a uri ///"),
            Err(CryptoError::BadSuri(_))
        ));
    }
}
