//! Encrypted query sessions: the first query of a signer opens one with the worker (a key
//! exchange and a signature), later ones travel in it sealed with its keys only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parity_scale_codec::{DecodeAll, Encode};
use phat_crypto::{Purpose, SessionKeys, Signer};
use phat_primitives::protocol::{
    Bytes, Call, QueryOpen, QueryResponse, RequestBody, SealedAnswer, SealedQuery, SealedReply,
    Seq, SessionQuery, SignedRequest, Submitted, WorkerInfo,
};
use phat_primitives::{AccountId, Hash, Refusal};

use crate::trust::Peer;
use crate::{now_ms, Client, ClientError};

/// The client's half of a query session.
pub(crate) struct ClientSession {
    id: Hash,
    /// The account the worker runs this session's queries as.
    caller: AccountId,
    keys: SessionKeys,
    next: AtomicU64,
    /// Reopen after this (Unix ms), a little before the worker forgets the session.
    renew_at: u64,
}

impl Client {
    /// Opens a query session with `req` as its first message; keeps it for later queries.
    pub(crate) async fn open_session(
        &self,
        peer: &Arc<Peer>,
        req: &SignedRequest,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let plain = QueryOpen {
            request: req.clone(),
            min_seq,
        }
        .encode();
        let (sealed, keys) = phat_crypto::seal(&peer.info.worker_key.0, Purpose::Query, &plain)?;
        let expires_at = RequestBody::decode_all(&mut &req.body[..])
            .map(|b| b.expires_at)
            .unwrap_or(0);
        let mut session = ClientSession {
            id: sealed.ephemeral,
            caller: req.signer,
            keys,
            next: AtomicU64::new(1),
            renew_at: expires_at.saturating_sub(10_000),
        };
        let (response, salted) = self
            .sealed_query(&peer.info, &session, 0, sealed.ciphertext)
            .await?;
        let response = response?;
        // Later replies are sealed under the reply key the worker's salt made.
        session.keys = salted;
        *peer.session.lock() = Some(Arc::new(session));
        Ok(response)
    }

    /// Sends message `counter` of `session`, sealed, and opens the reply; also answers the
    /// session's keys from then on (salted by the worker's answer to the opening).
    async fn sealed_query(
        &self,
        info: &WorkerInfo,
        session: &ClientSession,
        counter: u64,
        ciphertext: Bytes,
    ) -> Result<(Result<QueryResponse, ClientError>, phat_crypto::SessionKeys), ClientError> {
        let body = SealedQuery {
            worker: info.worker_key,
            session: session.id,
            counter,
            ciphertext,
        };
        let reply: SealedReply = self.post_json("/v1/query/sealed", &body).await?;
        if reply.counter != counter {
            return Err(ClientError::Decode(format!(
                "reply to message {} for message {counter}",
                reply.counter
            )));
        }
        let keys = match (counter, reply.salt) {
            (0, Some(salt)) => session.keys.with_reply_salt(&salt.0),
            (0, None) => {
                return Err(ClientError::Decode(
                    "the answer to a session's opening carries no salt".into(),
                ))
            }
            (_, _) => session.keys.clone(),
        };
        let plain = keys.open_reply(counter, &reply.ciphertext)?;
        let answer =
            match serde_json::from_slice(&plain).map_err(|e| ClientError::Decode(e.to_string()))? {
                SealedAnswer::Ok(response) => Ok(response),
                SealedAnswer::Err { status, error } => Err(ClientError::Api {
                    status,
                    kind: error.kind,
                    message: error.message,
                }),
            };
        Ok((answer, keys))
    }

    /// Sends the signed command `req` in the session open with `peer`, if there is one usable
    /// for its signer: AEAD only, no key exchange (`POST /v1/commands/session`). `None` when
    /// there is none or the worker forgot it (then the command goes sealed to the cluster key).
    pub(crate) async fn session_command(
        &self,
        peer: &Peer,
        req: &SignedRequest,
        wait: bool,
    ) -> Option<Result<Submitted, ClientError>> {
        let session = peer.session.lock().clone();
        let usable = |s: &Arc<ClientSession>| s.renew_at > now_ms() && s.caller == req.signer;
        let session = session.filter(usable)?;
        let counter = session.next.fetch_add(1, Ordering::Relaxed);
        let body = SealedQuery {
            worker: peer.info.worker_key,
            session: session.id,
            counter,
            ciphertext: Bytes(session.keys.seal_request(counter, &req.encode())),
        };
        let path = format!("/v1/commands/session?wait={wait}");
        match self.post_json::<Submitted>(&path, &body).await {
            // Forgotten, or a key epoch being dealt: the cluster-key path handles both (it
            // waits out a deal).
            Err(ClientError::Api { kind, .. })
                if [
                    Refusal::UnknownSession,
                    Refusal::SessionExpired,
                    Refusal::KeyEpochPending,
                ]
                .iter()
                .any(|r| kind == r.kind()) =>
            {
                None
            }
            Err(e) => Some(Err(e)),
            Ok(mut submitted) => {
                if let Some(receipt) = &mut submitted.receipt {
                    let key = session.keys.command_reply_key(counter);
                    if let Err(e) = crate::commands::open_result(
                        |c, ct| key.open_reply(c, ct),
                        &mut receipt.result,
                    ) {
                        return Some(Err(e));
                    }
                }
                Some(Ok(submitted))
            }
        }
    }

    /// Sends `call` for `signer` in the session open with `peer`, if there is one usable for
    /// that signer; `None` when there is none or the worker forgot it (then open another).
    pub(crate) async fn session_query(
        &self,
        peer: &Peer,
        signer: &Signer,
        call: &Call,
        min_seq: Option<Seq>,
    ) -> Option<Result<QueryResponse, ClientError>> {
        let session = peer.session.lock().clone();
        // A session speaks for the signer that opened it: reuse it only for that signer.
        let usable = |s: &Arc<ClientSession>| s.renew_at > now_ms() && s.caller == signer.account();
        let session = session.filter(usable)?;
        let counter = session.next.fetch_add(1, Ordering::Relaxed);
        let plain = SessionQuery {
            call: call.clone(),
            min_seq,
        }
        .encode();
        let ct = Bytes(session.keys.seal_request(counter, &plain));
        match self.sealed_query(&peer.info, &session, counter, ct).await {
            Err(ClientError::Api { kind, .. })
                if kind == Refusal::UnknownSession.kind()
                    || kind == Refusal::SessionExpired.kind() =>
            {
                None
            }
            Err(e) => Some(Err(e)),
            Ok((answer, _)) => Some(answer),
        }
    }
}
