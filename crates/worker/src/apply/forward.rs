//! Forwarded commands ([`LedgerCommand::Forwarded`]): a sealed command as the worker that
//! opened it at submission appends it. The client's envelope costs an X25519 exchange to open
//! (about 50 µs, the largest stage of an encrypted command); the worker that paid it seals the
//! signed request and the reply key under the epoch's worker-entry key instead, so every other
//! worker opens it with one AEAD pass.
//!
//! What stays as it was: the ledger reads nothing (the entry key is derived from the epoch's
//! cluster secret, which only members hold); the caller's signature is still checked by every
//! worker at apply (a member that forwards proves only that a member sealed it); the result is
//! sealed to the caller with the envelope's own reply key, the same bytes on every worker.

use parity_scale_codec::{Decode, DecodeAll, Encode};
use phat_crypto::{ClusterSecret, CryptoError, ReplyKey};
use phat_primitives::protocol::{Bytes, LedgerCommand, SignedRequest};

/// What a forwarded entry seals.
#[derive(Encode, Decode)]
struct ForwardedCommand {
    request: SignedRequest,
    reply_key: [u8; ReplyKey::LEN],
}

/// Binds the sealed data to its place: a forwarded command of this epoch, nothing else
/// sealed under the same entry key (a job's output, query records).
fn name(epoch: u32) -> Vec<u8> {
    let mut name = b"phat/v1/forwarded-command/".to_vec();
    name.extend_from_slice(&epoch.to_le_bytes());
    name
}

/// The ledger payload that passes `request` and its `reply` key on, sealed under `secret`,
/// the secret of key epoch `epoch`.
pub(crate) fn seal(
    secret: &ClusterSecret,
    epoch: u32,
    request: &SignedRequest,
    reply: &ReplyKey,
) -> Vec<u8> {
    let mut plain = zeroize::Zeroizing::new(
        ForwardedCommand {
            request: request.clone(),
            reply_key: *reply.to_bytes(),
        }
        .encode(),
    );
    let data = phat_crypto::entry::seal_entry_data(secret, &name(epoch), &plain);
    zeroize::Zeroize::zeroize(&mut *plain);
    LedgerCommand::Forwarded {
        epoch,
        data: Bytes(data),
    }
    .encode()
}

/// Why a forwarded entry does not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// Not sealed under this epoch's entry key (or altered).
    #[error("the forwarded command does not open: {0}")]
    Envelope(CryptoError),
    /// Opened, but not a forwarded command.
    #[error("the forwarded command does not decode: {0}")]
    Malformed(parity_scale_codec::Error),
}

/// Opens the `data` of a forwarded entry of key epoch `epoch` with that epoch's `secret`.
pub(crate) fn open(
    secret: &ClusterSecret,
    epoch: u32,
    data: &[u8],
) -> Result<(SignedRequest, ReplyKey), ForwardError> {
    let plain = zeroize::Zeroizing::new(
        phat_crypto::entry::open_entry_data(secret, &name(epoch), data)
            .map_err(ForwardError::Envelope)?,
    );
    let f = ForwardedCommand::decode_all(&mut &plain[..]).map_err(ForwardError::Malformed)?;
    let reply = ReplyKey::from_bytes(&f.reply_key);
    Ok((f.request, reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_crypto::{EnvelopeSecret, Purpose, Signer};
    use phat_primitives::protocol::{Call, RequestBody};
    use phat_primitives::{Hash, Mode};

    fn request() -> SignedRequest {
        let body = RequestBody {
            mode: Mode::Command,
            call: Call::Transfer {
                dest: phat_primitives::AccountId([2; 32]),
                value: 1,
            },
            nonce: 1,
            expires_at: u64::MAX,
            certificate: None,
        };
        Signer::from_suri("//Alice")
            .unwrap()
            .sign_request(&Hash([3; 32]), &body)
    }

    #[test]
    fn a_forwarded_command_opens_to_the_request_and_reply_key_only_with_its_epoch_secret() {
        let secret = ClusterSecret::from_bytes([7; 32]);
        let worker = EnvelopeSecret::generate();
        let req = request();
        let (sealed, client) =
            phat_crypto::seal(&worker.public(), Purpose::Command, &req.encode()).unwrap();
        let (_, keys) = worker.open(Purpose::Command, &sealed).unwrap();
        let payload = seal(&secret, 3, &req, &keys.reply_key());
        let LedgerCommand::Forwarded { epoch, data } =
            LedgerCommand::decode_all(&mut &payload[..]).unwrap()
        else {
            panic!("not a forwarded entry")
        };
        assert_eq!(epoch, 3);
        // The ledger sees neither the request nor the key.
        assert!(!data.0.windows(64).any(|w| w == &req.signature.0[..]));
        let (opened, reply) = open(&secret, 3, &data.0).unwrap();
        assert_eq!(opened, req);
        assert_eq!(
            client
                .open_reply(0, &reply.seal_reply(0, b"result"))
                .unwrap(),
            b"result"
        );
        // Another epoch's secret, another epoch's name, altered bytes: refused.
        let other = ClusterSecret::from_bytes([8; 32]);
        assert!(matches!(
            open(&other, 3, &data.0),
            Err(ForwardError::Envelope(_))
        ));
        assert!(matches!(
            open(&secret, 4, &data.0),
            Err(ForwardError::Envelope(_))
        ));
        let mut altered = data.0.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            open(&secret, 3, &altered),
            Err(ForwardError::Envelope(_))
        ));
        // Sealed under the key but not a forwarded command: malformed, not a panic.
        let junk = phat_crypto::entry::seal_entry_data(&secret, &name(3), b"junk");
        assert!(matches!(
            open(&secret, 3, &junk),
            Err(ForwardError::Malformed(_))
        ));
    }
}
