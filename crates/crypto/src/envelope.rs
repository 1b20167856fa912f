//! Envelopes: how requests and replies cross the network and the ledger encrypted.
//!
//! Format v1 (`docs/ENVELOPES.md` has the full description):
//! - the sender makes an ephemeral X25519 key pair and computes the shared secret with the
//!   recipient's public key (a worker's key for queries, the cluster key for commands, a
//!   joining worker's key for the cluster-secret handover);
//! - HKDF-SHA256 over the shared secret, salted with both public keys and the purpose, gives
//!   two 32-byte keys: one for messages to the recipient, one for its replies;
//! - messages are ChaCha20-Poly1305 under those keys with a 96-bit nonce holding a message
//!   counter (0 for the first message), so one key exchange serves a whole session;
//! - the associated data binds the version and the purpose.
//!
//! The plaintext inside is the caller's sr25519-signed request (with its own nonce and
//! expiry): the envelope gives confidentiality, the signature authenticity and replay
//! protection.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use phat_primitives::protocol::Bytes;
pub use phat_primitives::protocol::Sealed;
use phat_primitives::Hash;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::keys::{expand, Secret32};
use crate::CryptoError;

/// The envelope format version this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// What an envelope carries; part of the key derivation, so an envelope made for one purpose
/// never opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A command, encrypted to the cluster key.
    Command,
    /// A query session, encrypted to one worker's key.
    Query,
    /// The cluster secret, encrypted to a joining worker's key.
    Handover,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Command => b"command",
            Purpose::Query => b"query",
            Purpose::Handover => b"handover",
        }
    }
}

/// An X25519 secret key (a worker's identity key or the cluster envelope key), with its
/// public key computed once.
#[derive(Clone)]
pub struct EnvelopeSecret(StaticSecret, [u8; 32]);

impl std::fmt::Debug for EnvelopeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvelopeSecret(public {})", hex::encode(self.public()))
    }
}

impl EnvelopeSecret {
    /// A new random key.
    pub fn generate() -> Self {
        Self::from_secret(&Secret32::random())
    }

    /// The key with these secret bytes.
    pub fn from_secret(secret: &Secret32) -> Self {
        let key = StaticSecret::from(*secret.expose());
        let public = PublicKey::from(&key).to_bytes();
        Self(key, public)
    }

    /// The secret bytes, for sealing to disk.
    pub fn to_secret(&self) -> Secret32 {
        Secret32::from_bytes(self.0.to_bytes())
    }

    /// The public key senders encrypt to.
    pub fn public(&self) -> [u8; 32] {
        self.1
    }

    /// Opens the first message of an envelope addressed to this key: returns its plaintext and
    /// the session keys for the rest of the exchange.
    pub fn open(
        &self,
        purpose: Purpose,
        sealed: &Sealed,
    ) -> Result<(Vec<u8>, SessionKeys), CryptoError> {
        if sealed.version != ENVELOPE_VERSION {
            return Err(CryptoError::UnsupportedVersion(sealed.version));
        }
        let shared = self.0.diffie_hellman(&PublicKey::from(sealed.ephemeral.0));
        if !shared.was_contributory() {
            return Err(CryptoError::WeakKey);
        }
        let keys = SessionKeys::derive(
            shared.as_bytes(),
            &sealed.ephemeral.0,
            &self.public(),
            purpose,
        );
        let plaintext = keys.open_request(0, &sealed.ciphertext)?;
        Ok((plaintext, keys))
    }
}

/// Seals `plaintext` to `recipient` for `purpose` with a fresh ephemeral key. Returns the
/// envelope and the session keys (to read the reply, or to send more messages).
pub fn seal(
    recipient: &[u8; 32],
    purpose: Purpose,
    plaintext: &[u8],
) -> Result<(Sealed, SessionKeys), CryptoError> {
    seal_with_ephemeral(&EnvelopeSecret::generate(), recipient, purpose, plaintext)
}

/// [`seal`] with a given ephemeral key: only for reproducible test vectors (an ephemeral key
/// used twice would reuse the envelope's keys and nonces).
pub fn seal_with_ephemeral(
    ephemeral: &EnvelopeSecret,
    recipient: &[u8; 32],
    purpose: Purpose,
    plaintext: &[u8],
) -> Result<(Sealed, SessionKeys), CryptoError> {
    let epk = ephemeral.public();
    let shared = ephemeral.0.diffie_hellman(&PublicKey::from(*recipient));
    if !shared.was_contributory() {
        return Err(CryptoError::WeakKey);
    }
    let keys = SessionKeys::derive(shared.as_bytes(), &epk, recipient, purpose);
    let ciphertext = keys.seal_request(0, plaintext);
    Ok((
        Sealed {
            version: ENVELOPE_VERSION,
            ephemeral: Hash(epk),
            ciphertext: Bytes(ciphertext),
        },
        keys,
    ))
}

/// The two keys of one envelope exchange: sender → recipient and the replies.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    request: Secret32,
    reply: Secret32,
    aad: [u8; 2],
}

impl SessionKeys {
    fn derive(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32], p: Purpose) -> Self {
        let mut okm = [0u8; 64];
        expand(
            shared,
            "phat/v1/envelope",
            &[p.label(), ephemeral, recipient],
            &mut okm,
        );
        let mut request = [0u8; 32];
        let mut reply = [0u8; 32];
        request.copy_from_slice(&okm[..32]);
        reply.copy_from_slice(&okm[32..]);
        okm.zeroize();
        let tag = match p {
            Purpose::Command => 1,
            Purpose::Query => 2,
            Purpose::Handover => 3,
        };
        Self {
            request: Secret32::from_bytes(request),
            reply: Secret32::from_bytes(reply),
            aad: [ENVELOPE_VERSION, tag],
        }
    }

    /// These keys with the reply key bound to `salt`: fresh randomness the recipient adds
    /// when it opens a session and sends back with its first reply. A session's opening
    /// replayed to a restarted worker (which no longer remembers it) is then answered under
    /// another key, never under the same key and counter as before (a reused ChaCha20 nonce
    /// would give away the XOR of the two answers).
    pub fn with_reply_salt(&self, salt: &[u8; 32]) -> Self {
        let mut reply = [0u8; 32];
        expand(
            self.reply.expose(),
            "phat/v1/envelope/reply-salt",
            &[salt],
            &mut reply,
        );
        Self {
            request: self.request.clone(),
            reply: Secret32::from_bytes(reply),
            aad: self.aad,
        }
    }

    /// Encrypts message number `counter` to the recipient.
    pub fn seal_request(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        aead_seal(&self.request, counter, &self.aad, plaintext)
    }

    /// Decrypts message number `counter` from the sender.
    pub fn open_request(&self, counter: u64, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        aead_open(&self.request, counter, &self.aad, ciphertext)
    }

    /// Encrypts the reply to message number `counter`.
    pub fn seal_reply(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        aead_seal(&self.reply, counter, &self.aad, plaintext)
    }

    /// Decrypts the reply to message number `counter`.
    pub fn open_reply(&self, counter: u64, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        aead_open(&self.reply, counter, &self.aad, ciphertext)
    }

    /// The reply key of command `counter` sent in this session: its own key, derived from the
    /// session's reply key and the counter, so that the receipt every worker seals (nonce 0)
    /// never shares a key and nonce with the session's query answers or another command's.
    pub fn command_reply_key(&self, counter: u64) -> ReplyKey {
        let mut reply = [0u8; 32];
        expand(
            self.reply.expose(),
            "phat/v1/envelope/session-command",
            &[&counter.to_le_bytes()],
            &mut reply,
        );
        ReplyKey {
            reply: Secret32::from_bytes(reply),
            aad: self.aad,
        }
    }

    /// The half of these keys that seals replies, without the one that opens requests.
    pub fn reply_key(&self) -> ReplyKey {
        ReplyKey {
            reply: self.reply.clone(),
            aad: self.aad,
        }
    }
}

/// The reply half of [`SessionKeys`]: seals the answers to one envelope, opens nothing. A
/// worker that opened a command passes it to the others with the command (sealed under the
/// cluster's entry key), so they seal the receipt to the caller without the key exchange.
#[derive(Clone, Debug)]
pub struct ReplyKey {
    reply: Secret32,
    aad: [u8; 2],
}

impl ReplyKey {
    /// Length of [`ReplyKey::to_bytes`].
    pub const LEN: usize = 34;

    /// Encrypts the reply to message number `counter` (as [`SessionKeys::seal_reply`]).
    pub fn seal_reply(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        aead_seal(&self.reply, counter, &self.aad, plaintext)
    }

    /// Decrypts the reply to message number `counter` (the caller's side).
    pub fn open_reply(&self, counter: u64, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        aead_open(&self.reply, counter, &self.aad, ciphertext)
    }

    /// The key's bytes, to be sealed again (never stored or sent in the clear).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; Self::LEN]> {
        let mut out = zeroize::Zeroizing::new([0u8; Self::LEN]);
        out[..32].copy_from_slice(self.reply.expose());
        out[32..].copy_from_slice(&self.aad);
        out
    }

    /// The key [`ReplyKey::to_bytes`] gave.
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        let mut reply = [0u8; 32];
        reply.copy_from_slice(&bytes[..32]);
        Self {
            reply: Secret32::from_bytes(reply),
            aad: [bytes[32], bytes[33]],
        }
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

#[allow(
    clippy::expect_used,
    reason = "ChaCha20-Poly1305 encryption fails only for messages over 256 GiB"
)]
fn aead_seal(key: &Secret32, counter: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(&Key::from(*key.expose()))
        .encrypt(
            &nonce(counter),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 encryption cannot fail for messages below 256 GiB")
}

fn aead_open(
    key: &Secret32,
    counter: u64,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    ChaCha20Poly1305::new(&Key::from(*key.expose()))
        .decrypt(
            &nonce(counter),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_on_reply_key_seals_what_the_caller_opens_and_nothing_else() {
        let worker = EnvelopeSecret::generate();
        let (sealed, client) = seal(&worker.public(), Purpose::Command, b"cmd").unwrap();
        let (_, server) = worker.open(Purpose::Command, &sealed).unwrap();
        let passed = ReplyKey::from_bytes(&server.reply_key().to_bytes());
        let reply = passed.seal_reply(0, b"receipt");
        assert_eq!(client.open_reply(0, &reply).unwrap(), b"receipt");
        // The same bytes as the worker that opened the envelope would seal: every worker
        // gives the same receipt.
        assert_eq!(reply, server.seal_reply(0, b"receipt"));
        // It is the reply key only: what it seals is no request the caller would accept.
        assert!(server.open_request(0, &reply).is_err());
        let other = ReplyKey::from_bytes(&[9; ReplyKey::LEN]);
        assert!(client
            .open_reply(0, &other.seal_reply(0, b"receipt"))
            .is_err());
    }

    #[test]
    fn each_session_command_has_its_own_reply_key() {
        let worker = EnvelopeSecret::generate();
        let (sealed, client) = seal(&worker.public(), Purpose::Query, b"open").unwrap();
        let (_, server) = worker.open(Purpose::Query, &sealed).unwrap();
        let client = client.with_reply_salt(&[1; 32]);
        let server = server.with_reply_salt(&[1; 32]);
        let receipt = server.command_reply_key(5).seal_reply(0, b"receipt");
        assert_eq!(
            client.command_reply_key(5).open_reply(0, &receipt).unwrap(),
            b"receipt"
        );
        // Not another command's key, nor the session's answers' key at any counter.
        assert!(client.command_reply_key(6).open_reply(0, &receipt).is_err());
        assert!(client.open_reply(0, &receipt).is_err());
        assert!(client.open_reply(5, &receipt).is_err());
    }

    #[test]
    fn round_trip_with_replies_and_session_messages() {
        let worker = EnvelopeSecret::generate();
        let (sealed, client) = seal(&worker.public(), Purpose::Query, b"hello").unwrap();
        let (plain, server) = worker.open(Purpose::Query, &sealed).unwrap();
        assert_eq!(plain, b"hello");
        let reply = server.seal_reply(0, b"world");
        assert_eq!(client.open_reply(0, &reply).unwrap(), b"world");
        // A salted reply key: both sides agree on it, and it is not the unsalted one.
        let salted = server.with_reply_salt(&[5; 32]);
        let reply = salted.seal_reply(0, b"world");
        assert_eq!(
            client
                .with_reply_salt(&[5; 32])
                .open_reply(0, &reply)
                .unwrap(),
            b"world"
        );
        assert!(client.open_reply(0, &reply).is_err());
        assert!(client
            .with_reply_salt(&[6; 32])
            .open_reply(0, &reply)
            .is_err());
        assert_eq!(
            salted.seal_request(3, b"same request key"),
            server.seal_request(3, b"same request key")
        );
        let next = client.seal_request(1, b"again");
        assert_eq!(server.open_request(1, &next).unwrap(), b"again");
        // Wrong counter, wrong direction.
        assert_eq!(server.open_request(2, &next), Err(CryptoError::Decrypt));
        assert_eq!(client.open_reply(1, &next), Err(CryptoError::Decrypt));
    }

    #[test]
    fn tampering_wrong_key_wrong_purpose_and_versions_fail() {
        let worker = EnvelopeSecret::generate();
        let (sealed, _) = seal(&worker.public(), Purpose::Command, b"secret").unwrap();
        let mut tampered = sealed.clone();
        tampered.ciphertext.0[0] ^= 1;
        assert_eq!(
            worker.open(Purpose::Command, &tampered).err(),
            Some(CryptoError::Decrypt)
        );
        let other = EnvelopeSecret::generate();
        assert_eq!(
            other.open(Purpose::Command, &sealed).err(),
            Some(CryptoError::Decrypt)
        );
        assert_eq!(
            worker.open(Purpose::Query, &sealed).err(),
            Some(CryptoError::Decrypt)
        );
        let mut v2 = sealed.clone();
        v2.version = 2;
        assert_eq!(
            worker.open(Purpose::Command, &v2).err(),
            Some(CryptoError::UnsupportedVersion(2))
        );
        let mut swapped = sealed;
        swapped.ephemeral = Hash(EnvelopeSecret::generate().public());
        assert_eq!(
            worker.open(Purpose::Command, &swapped).err(),
            Some(CryptoError::Decrypt)
        );
        // A low-order point as the ephemeral key is refused before any decryption.
        let weak = Sealed {
            version: 1,
            ephemeral: Hash([0; 32]),
            ciphertext: Bytes(vec![0; 20]),
        };
        assert_eq!(
            worker.open(Purpose::Command, &weak).err(),
            Some(CryptoError::WeakKey)
        );
        assert_eq!(
            seal(&[0; 32], Purpose::Query, b"x").err(),
            Some(CryptoError::WeakKey)
        );
    }

    #[test]
    fn json_form_is_hex() {
        let worker = EnvelopeSecret::generate();
        let (sealed, _) = seal(&worker.public(), Purpose::Command, b"x").unwrap();
        let json = serde_json::to_value(&sealed).unwrap();
        assert!(json["ephemeral"].as_str().unwrap().starts_with("0x"));
        assert_eq!(serde_json::from_value::<Sealed>(json).unwrap(), sealed);
    }
}
