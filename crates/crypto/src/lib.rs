//! The cryptography of phat: caller signatures, enclave keys, envelopes, storage encryption,
//! sealing and attestation. Only well-kept crates do the primitives (schnorrkel, x25519-dalek,
//! chacha20poly1305, hkdf/sha2, blake2, ed25519-dalek); this crate composes them under
//! explicit, versioned domain tags. Secret key types zeroize on drop.
//!
//! Callers hold sr25519 keys as in Substrate: a secret URI such as `//Alice` (dev seeds), a
//! mnemonic with optional `//hard/soft` junctions, or a `0x` seed. Requests are signed over
//! [`RequestBody::signing_payload`] in the `substrate` signing context, so keys and signatures
//! are the ones Substrate tools produce.

use std::str::FromStr;

pub mod attest;
pub mod entry;
pub mod envelope;
pub mod evm;
pub mod keys;
pub mod seal;
pub mod storage;
pub mod vote;

pub use attest::{Attestation, AttestationPolicy, AttestationReport, Claims, DevAttestation};
pub use envelope::{
    seal, seal_with_ephemeral, EnvelopeSecret, Purpose, ReplyKey, Sealed, SessionKeys,
    ENVELOPE_VERSION,
};
pub use keys::{contract_key_material, derive, expand, ClusterSecret, ContractKeyKind, Secret32};
pub use seal::SealingKey;
pub use storage::StorageCipher;
pub use vote::{verify_vote, VoteKey};

use parity_scale_codec::{DecodeAll, Encode};
use phat_primitives::protocol::{Bytes, RequestBody, SignedRequest};
use phat_primitives::{AccountId, Hash};

/// Errors reading keys or checking requests.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The secret URI could not be parsed or derived.
    #[error("invalid secret URI: {0}")]
    BadSuri(String),
    /// The request body is not a valid SCALE `RequestBody`.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The request's wallet certificate does not hold (wrong session key or cluster, or not
    /// signed by its account).
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// The signature is not 64 bytes or does not verify against the signer.
    #[error("bad signature: the request was not signed by {0}")]
    BadSignature(AccountId),
    /// Authenticated decryption failed: altered ciphertext, a wrong key or a replayed counter.
    #[error("decryption failed: the ciphertext was altered or is not for this key")]
    Decrypt,
    /// An envelope of a format version this build does not read.
    #[error("unsupported envelope version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// A public key that gives no shared secret (a low-order point).
    #[error("weak public key: the key exchange gives no shared secret")]
    WeakKey,
    /// An attestation report was refused.
    #[error("attestation refused: {0}")]
    Attestation(String),
    /// A sealed file could not be opened.
    #[error("cannot unseal {0}")]
    Unseal(String),
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

    /// Signs a request body for the cluster whose envelope key is `cluster`.
    pub fn sign_request(&self, cluster: &Hash, body: &RequestBody) -> SignedRequest {
        SignedRequest {
            body: Bytes(body.encode()),
            signer: self.account(),
            signature: Bytes(self.sign(&body.signing_payload(cluster)).to_vec()),
        }
    }

    /// As a wallet: a certificate letting `session` sign requests made as this account on
    /// `cluster`, within `scope`, until `expires_at` (Unix ms).
    pub fn certify(
        &self,
        session: &AccountId,
        cluster: &Hash,
        expires_at: u64,
        scope: phat_primitives::protocol::CertificateScope,
    ) -> phat_primitives::protocol::Certificate {
        let mut cert = phat_primitives::protocol::Certificate {
            account: self.account(),
            session: *session,
            cluster: *cluster,
            expires_at,
            scope,
            signature: Bytes(Vec::new()),
        };
        cert.signature = Bytes(self.sign(&cert.signing_payload()).to_vec());
        cert
    }
}

/// Most decompressed public keys [`public_key`] keeps (then it starts over).
const PUBLIC_KEYS_KEPT: usize = 4096;

/// How many keys the memo held at the last call (tests read the bound).
#[cfg(test)]
static HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The sr25519 public key of `account`, decompressed once: decompressing a Ristretto point is
/// a field inversion (about 10 µs), and the same callers sign request after request. The memo
/// is bounded: past [`PUBLIC_KEYS_KEPT`] keys it is cleared, so strangers who sign with fresh
/// keys cost only their own decompression. A pure function of the bytes either way.
fn public_key(account: &AccountId) -> Option<schnorrkel::PublicKey> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<HashMap<[u8; 32], schnorrkel::PublicKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    #[cfg(test)]
    HELD.store(
        keys.lock().unwrap_or_else(|e| e.into_inner()).len(),
        std::sync::atomic::Ordering::Relaxed,
    );
    // A poisoned memo is still a correct memo: every value in it was inserted whole.
    if let Some(pk) = keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&account.0)
    {
        return Some(*pk);
    }
    let pk = schnorrkel::PublicKey::from_bytes(account.as_bytes()).ok()?;
    let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
    if keys.len() >= PUBLIC_KEYS_KEPT {
        keys.clear();
    }
    keys.insert(account.0, pk);
    Some(pk)
}

/// Verifies an sr25519 signature in the `substrate` context.
pub fn sr25519_verify(signer: &AccountId, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = schnorrkel::Signature::from_bytes(signature) else {
        return false;
    };
    let Some(pk) = public_key(signer) else {
        return false;
    };
    pk.verify_simple(b"substrate", message, &sig).is_ok()
}

/// Decodes a signed request's body strictly: bytes after the `RequestBody` are refused, since
/// the signature covers the decoded body only and they would make the same signed request
/// travel under another identity.
fn decode_body(req: &SignedRequest) -> Result<RequestBody, CryptoError> {
    RequestBody::decode_all(&mut &req.body[..])
        .map_err(|e| CryptoError::MalformedBody(e.to_string()))
}

/// Decodes a signed request's body (strictly: no trailing bytes) and checks its signature,
/// and its certificate when it carries one ([`verify_certificate`]).
pub fn verify_request(req: &SignedRequest, cluster: &Hash) -> Result<RequestBody, CryptoError> {
    let body = decode_body(req)?;
    if !sr25519_verify(&req.signer, &body.signing_payload(cluster), &req.signature) {
        return Err(CryptoError::BadSignature(req.signer));
    }
    verify_certificate(req, &body, cluster)?;
    Ok(body)
}

/// Checks the certificate `body` carries, if any: it names `req`'s signer as its session key
/// and `cluster` as its cluster, and its account signed it (as it is, or wrapped in
/// `<Bytes>`…`</Bytes>` as wallets sign raw bytes). Its expiry and scope depend on the time
/// and the request's mode: the worker checks them with the request's own.
pub fn verify_certificate(
    req: &SignedRequest,
    body: &RequestBody,
    cluster: &Hash,
) -> Result<(), CryptoError> {
    let Some(cert) = &body.certificate else {
        return Ok(());
    };
    let bad = |m: String| Err(CryptoError::BadCertificate(m));
    if cert.session != req.signer {
        return bad(format!(
            "it authorises {}, not the request's signer {}",
            cert.session, req.signer
        ));
    }
    if cert.cluster != *cluster {
        return bad(format!("it is for cluster {}, not this one", cert.cluster));
    }
    // An Ethereum wallet's (65 bytes, EIP-712) for the account its address maps to; an sr25519
    // wallet's (64 bytes) otherwise.
    if cert.signature.0.len() == 65 {
        if !evm::verify_certificate(cert) {
            return bad(format!(
                "{} is not the account of the Ethereum wallet that signed it",
                cert.account
            ));
        }
        return Ok(());
    }
    let payload = cert.signing_payload();
    let mut wrapped = b"<Bytes>".to_vec();
    wrapped.extend_from_slice(&payload);
    wrapped.extend_from_slice(b"</Bytes>");
    if !sr25519_verify(&cert.account, &payload, &cert.signature)
        && !sr25519_verify(&cert.account, &wrapped, &cert.signature)
    {
        return bad(format!("{} did not sign it", cert.account));
    }
    Ok(())
}

/// Checks many signed requests at once: one batch verification when all signatures are good
/// (several times cheaper than one by one), each request on its own otherwise. The results
/// are those [`verify_request`] gives for each request, in order.
pub fn verify_requests(
    reqs: &[&SignedRequest],
    cluster: &Hash,
) -> Vec<Result<RequestBody, CryptoError>> {
    let mut out: Vec<Result<RequestBody, CryptoError>> = Vec::with_capacity(reqs.len());
    let mut batch = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let body = match decode_body(req) {
            Ok(b) => b,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let sig = schnorrkel::Signature::from_bytes(&req.signature);
        let pk = public_key(&req.signer);
        match (sig, pk) {
            (Ok(sig), Some(pk)) => batch.push((i, body.signing_payload(cluster), sig, pk)),
            _ => {
                out.push(Err(CryptoError::BadSignature(req.signer)));
                continue;
            }
        }
        out.push(Ok(body));
    }
    if batch.is_empty() {
        return out;
    }
    let ctx = schnorrkel::signing_context(b"substrate");
    let transcripts = batch.iter().map(|(_, msg, _, _)| ctx.bytes(msg));
    let sigs: Vec<_> = batch.iter().map(|(_, _, sig, _)| *sig).collect();
    let pks: Vec<_> = batch.iter().map(|(_, _, _, pk)| *pk).collect();
    if schnorrkel::verify_batch(transcripts, &sigs, &pks, true).is_err() {
        for (i, msg, sig, pk) in &batch {
            if pk.verify(ctx.bytes(msg), sig).is_err() {
                out[*i] = Err(CryptoError::BadSignature(reqs[*i].signer));
            }
        }
    }
    // Certificates (rare: browser sessions) are checked one by one.
    for (req, result) in reqs.iter().zip(out.iter_mut()) {
        if let Ok(body) = result {
            if let Err(e) = verify_certificate(req, body, cluster) {
                *result = Err(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::{Call, CertificateScope};
    use phat_primitives::Mode;

    #[test]
    fn remembered_public_keys_verify_as_fresh_ones_and_stay_bounded() {
        let msg = b"phat";
        let signer = Signer::from_suri("//Alice").unwrap();
        let sig = signer.sign(msg);
        let mut forged = sig;
        forged[0] ^= 1;
        // Twice: the second answer comes from the memo.
        for _ in 0..2 {
            assert!(sr25519_verify(&signer.account(), msg, &sig));
            assert!(!sr25519_verify(&signer.account(), msg, &forged));
            assert!(!sr25519_verify(&signer.account(), b"other", &sig));
        }
        // Bytes that are no point are refused each time, never remembered as a key.
        let not_a_point = AccountId([0xff; 32]);
        assert!(public_key(&not_a_point).is_none());
        assert!(public_key(&not_a_point).is_none());
        // More distinct keys than the memo keeps: it starts over, answers stay right.
        let mut rng = rand::thread_rng();
        for _ in 0..=PUBLIC_KEYS_KEPT {
            let pair = schnorrkel::Keypair::generate_with(&mut rng);
            let account = AccountId(pair.public.to_bytes());
            assert_eq!(
                public_key(&account).unwrap().to_bytes(),
                pair.public.to_bytes()
            );
            assert!(HELD.load(std::sync::atomic::Ordering::Relaxed) <= PUBLIC_KEYS_KEPT);
        }
        assert!(sr25519_verify(&signer.account(), msg, &sig));
        assert!(!sr25519_verify(&signer.account(), msg, &forged));
    }

    #[test]
    fn a_certificate_lets_its_session_key_speak_for_the_wallet() {
        let wallet = Signer::from_suri("//Alice").unwrap();
        let session = Signer::from_suri("//session").unwrap();
        let cert = wallet.certify(&session.account(), &CLUSTER, 5, CertificateScope::All);
        let certified = RequestBody {
            certificate: Some(cert.clone()),
            ..body()
        };
        let req = session.sign_request(&CLUSTER, &certified);
        let got = verify_request(&req, &CLUSTER).unwrap();
        assert_eq!(got, certified, "the body round-trips with its certificate");
        assert_eq!(got.caller(&req.signer), wallet.account());
        assert_eq!(body().caller(&req.signer), session.account());
        // A body without a certificate keeps the old layout (old signatures verify).
        assert_eq!(
            body().encode(),
            (body().mode, body().call, body().nonce, body().expires_at).encode()
        );
        // Batch verification gives the same answers.
        let plain = session.sign_request(&CLUSTER, &body());
        let results = verify_requests(&[&req, &plain], &CLUSTER);
        assert_eq!(results[0].as_ref().unwrap(), &certified);

        let refused = |cert: phat_primitives::protocol::Certificate, signer: &Signer| {
            let b = RequestBody {
                certificate: Some(cert),
                ..body()
            };
            let req = signer.sign_request(&CLUSTER, &b);
            let one = verify_request(&req, &CLUSTER).unwrap_err();
            let batch = verify_requests(&[&req], &CLUSTER).remove(0).unwrap_err();
            assert_eq!(one, batch);
            match one {
                CryptoError::BadCertificate(m) => m,
                other => panic!("{other:?}"),
            }
        };
        // Another key than the certified one signs the request.
        let stranger = Signer::from_suri("//Mallory").unwrap();
        assert!(refused(cert.clone(), &stranger).contains("not the request's signer"));
        // A certificate for another cluster.
        let other = wallet.certify(&session.account(), &Hash([4; 32]), 5, CertificateScope::All);
        assert!(refused(other, &session).contains("for cluster"));
        // A certificate the wallet did not sign (another account claimed).
        let forged = phat_primitives::protocol::Certificate {
            account: stranger.account(),
            ..cert.clone()
        };
        assert!(refused(forged, &session).contains("did not sign it"));
        // Wallets sign raw bytes wrapped in <Bytes>…</Bytes>: accepted too.
        let mut wrapped = cert.clone();
        let mut msg = b"<Bytes>".to_vec();
        msg.extend_from_slice(&cert.signing_payload());
        msg.extend_from_slice(b"</Bytes>");
        wrapped.signature = Bytes(wallet.sign(&msg).to_vec());
        let b = RequestBody {
            certificate: Some(wrapped),
            ..body()
        };
        assert!(verify_request(&session.sign_request(&CLUSTER, &b), &CLUSTER).is_ok());
        // A body with a trailing byte that is not a certificate is malformed.
        let mut bytes = body().encode();
        bytes.push(0);
        let odd = SignedRequest {
            body: Bytes(bytes),
            ..plain
        };
        assert!(matches!(
            verify_request(&odd, &CLUSTER),
            Err(CryptoError::MalformedBody(_))
        ));
    }

    const CLUSTER: Hash = Hash([3; 32]);

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
            certificate: None,
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
        let req = alice.sign_request(&CLUSTER, &body());
        assert_eq!(verify_request(&req, &CLUSTER).unwrap(), body());
        let mut forged = req.clone();
        forged.signer = Signer::from_suri("//Bob").unwrap().account();
        assert!(matches!(
            verify_request(&forged, &CLUSTER),
            Err(CryptoError::BadSignature(_))
        ));
        let mut tampered = req.clone();
        let mut b = body();
        b.nonce = 8;
        tampered.body = Bytes(b.encode());
        assert!(matches!(
            verify_request(&tampered, &CLUSTER),
            Err(CryptoError::BadSignature(_))
        ));
        let mut garbage = req;
        garbage.body = Bytes(vec![0xff]);
        assert!(matches!(
            verify_request(&garbage, &CLUSTER),
            Err(CryptoError::MalformedBody(_))
        ));
    }

    #[test]
    fn batch_verification_matches_one_by_one() {
        let alice = Signer::from_suri("//Alice").unwrap();
        let bob = Signer::from_suri("//Bob").unwrap();
        let mut reqs: Vec<SignedRequest> = (0..6)
            .map(|i| {
                let signer = if i % 2 == 0 { &alice } else { &bob };
                signer.sign_request(&CLUSTER, &RequestBody { nonce: i, ..body() })
            })
            .collect();
        let all: Vec<&SignedRequest> = reqs.iter().collect();
        assert!(verify_requests(&all, &CLUSTER).iter().all(|r| r.is_ok()));
        // One forged, one garbage, one with a short signature: only those fail.
        reqs[1].signer = alice.account();
        reqs[3].body = Bytes(vec![0xff]);
        reqs[4].signature = Bytes(vec![1, 2, 3]);
        let all: Vec<&SignedRequest> = reqs.iter().collect();
        let batch = verify_requests(&all, &CLUSTER);
        for (req, got) in reqs.iter().zip(&batch) {
            assert_eq!(got, &verify_request(req, &CLUSTER));
        }
        assert!(batch[0].is_ok() && batch[2].is_ok() && batch[5].is_ok());
        assert!(matches!(batch[1], Err(CryptoError::BadSignature(_))));
        assert!(matches!(batch[3], Err(CryptoError::MalformedBody(_))));
        assert!(matches!(batch[4], Err(CryptoError::BadSignature(_))));
    }

    #[test]
    fn a_request_signed_for_one_cluster_is_refused_by_another() {
        let alice = Signer::from_suri("//Alice").unwrap();
        let req = alice.sign_request(&CLUSTER, &body());
        assert!(verify_request(&req, &CLUSTER).is_ok());
        let other = Hash([4; 32]);
        assert!(matches!(
            verify_request(&req, &other),
            Err(CryptoError::BadSignature(_))
        ));
        assert!(verify_requests(&[&req], &other)[0].is_err());
    }

    #[test]
    fn trailing_bytes_after_a_signed_body_are_refused() {
        let alice = Signer::from_suri("//Alice").unwrap();
        let req = alice.sign_request(&CLUSTER, &body());
        // The signature still matches the decoded body: only strict decoding refuses it.
        let mut padded = req.clone();
        padded.body.0.push(0);
        // A trailing byte is read as the optional certificate's tag, which must be 1.
        assert!(matches!(
            verify_request(&padded, &CLUSTER),
            Err(CryptoError::MalformedBody(m)) if m.contains("certificate is tagged 1")
        ));
        // Bytes after a certificate are left over.
        let wallet = Signer::from_suri("//Bob").unwrap();
        let cert = wallet.certify(&alice.account(), &CLUSTER, 9, CertificateScope::All);
        let certified = RequestBody {
            certificate: Some(cert),
            ..body()
        };
        let mut after = alice.sign_request(&CLUSTER, &certified);
        after.body.0.push(0);
        assert!(matches!(
            verify_request(&after, &CLUSTER),
            Err(CryptoError::MalformedBody(m)) if m.contains("left after decoding")
        ));
        let batch = verify_requests(&[&req, &padded], &CLUSTER);
        assert_eq!(batch[0], Ok(body()));
        assert!(matches!(batch[1], Err(CryptoError::MalformedBody(_))));
    }

    #[test]
    fn bad_suri_is_an_error() {
        assert!(matches!(
            Signer::from_suri("not a uri ///"),
            Err(CryptoError::BadSuri(_))
        ));
    }
}
