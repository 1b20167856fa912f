//! Decoding a ledger entry: a client's command (plain, sealed to an epoch's key, or forwarded
//! by the worker that took it) or a worker's proposal, and the memo of what this worker
//! checked at submission, which lets it skip the key exchange and the signature check.

use super::*;

/// A command this worker checked at submission: what applying its ledger payload would
/// compute again (the same bytes decode, open and verify to the same values on any worker).
pub(crate) struct Submitted {
    /// The signed request.
    pub request: SignedRequest,
    /// Its body, decoded, signature and certificate checked (`phat_crypto::verify_request`).
    pub body: phat_primitives::protocol::RequestBody,
    /// The key that seals its result to the caller, when it came sealed.
    pub keys: Option<phat_crypto::ReplyKey>,
}

/// Most submissions remembered before the memo is cleared.
const SUBMITTED_MEMO: usize = 16_384;

/// Remembers what the ledger `payload` of a command checked at submission opens and verifies
/// to, so that applying it skips the key exchange and the signature check.
pub(crate) fn remember_submitted(worker: &Worker, payload: &[u8], submitted: Submitted) {
    let mut memo = worker.inner.submitted.lock();
    if memo.len() >= SUBMITTED_MEMO {
        memo.clear();
    }
    memo.insert(blake2_256(payload), submitted);
    debug_assert!(memo.len() <= SUBMITTED_MEMO);
}

/// A ledger entry decoded and, if sealed, decrypted.
pub(crate) struct Decoded {
    /// The signed request, or why there is none (the receipt's error).
    pub(super) request: Result<SignedRequest, CallError>,
    /// Its body, when this worker verified the request at submission.
    pub(super) verified: Option<phat_primitives::protocol::RequestBody>,
    /// The envelope's reply key, to seal the result to the caller.
    pub(super) reply: Option<phat_crypto::ReplyKey>,
    /// Sealed to the key of an epoch this worker does not hold (yet).
    pub(super) needs_epoch: Option<u32>,
    /// A worker's proposal (then `request` is unused).
    pub(super) proposal: Option<Proposal>,
    /// The key epoch a sealed command names (0 for [`LedgerCommand::Sealed`]).
    pub(super) sealed_epoch: Option<u32>,
}

/// What a worker proposes on its own, rather than a client's signed request.
pub(super) enum Proposal {
    /// A schedule's due tick.
    Tick(phat_primitives::protocol::TriggerEntry),
    /// A report of an Ethereum log.
    Log(phat_primitives::protocol::EthLogEntry),
    /// A job's output for a tick.
    Result(phat_primitives::protocol::JobResultEntry),
    /// A worker asking to join.
    Join(phat_primitives::protocol::JoinEntry),
    /// A member dealing a new key epoch.
    Deal(phat_primitives::protocol::EpochDeal),
    /// The records of queries a worker ran.
    QueryLogs(phat_primitives::protocol::QueryLogsEntry),
}

/// Decodes a ledger payload ([`LedgerCommand`]); a sealed one is opened with the cluster key.
/// Every worker gets the same answer for the same bytes.
pub(crate) fn decode_entry(worker: &Worker, payload: &[u8]) -> Decoded {
    let fail = |kind: Refusal, message: String| Decoded {
        request: Err(kind.because(message)),
        verified: None,
        reply: None,
        needs_epoch: None,
        proposal: None,
        sealed_epoch: None,
    };
    // A proposal carries no client request.
    let proposed = |proposal: Proposal, needs_epoch: Option<u32>| Decoded {
        request: Err(Refusal::Malformed.because("a proposal is not a request")),
        verified: None,
        reply: None,
        needs_epoch,
        proposal: Some(proposal),
        sealed_epoch: None,
    };
    // A worker's own entry made with the key of an epoch this worker does not hold yet waits
    // for it, as a command sealed to it does (the batch commits up to it and takes the key).
    let unheld = |epoch: u32| {
        worker
            .inner
            .enclave
            .keys()
            .epoch(epoch)
            .is_none()
            .then_some(epoch)
    };
    let command = LedgerCommand::decode_all(&mut &payload[..]);
    let sealed_epoch = match &command {
        Ok(LedgerCommand::Sealed(_)) => Some(0),
        Ok(LedgerCommand::SealedAt { epoch, .. } | LedgerCommand::Forwarded { epoch, .. }) => {
            Some(*epoch)
        }
        _ => None,
    };
    let plain = matches!(&command, Ok(LedgerCommand::Plain(_)));
    if sealed_epoch.is_some() || (plain && !worker.inner.genesis.encryption) {
        // Checked at submission by this worker: the same bytes open (with the key of the
        // epoch the entry names: `submit_sealed` reads both together) and verify to the same
        // request and body.
        if let Some(s) = worker.inner.submitted.lock().remove(&blake2_256(payload)) {
            return Decoded {
                request: Ok(s.request),
                verified: Some(s.body),
                reply: s.keys,
                needs_epoch: None,
                proposal: None,
                sealed_epoch,
            };
        }
    }
    let decoded = match command {
        Err(e) => fail(
            Refusal::Malformed,
            format!("the ledger entry is not a command: {e}"),
        ),
        Ok(LedgerCommand::Plain(_)) if worker.inner.genesis.encryption => fail(
            Refusal::EncryptionRequired,
            "this cluster accepts only commands sealed to the cluster key".into(),
        ),
        Ok(LedgerCommand::Plain(req)) => Decoded {
            request: Ok(req),
            verified: None,
            reply: None,
            needs_epoch: None,
            proposal: None,
            sealed_epoch: None,
        },
        Ok(LedgerCommand::Sealed(sealed)) => {
            open_sealed(worker, 0, SealedCommand::Envelope(&sealed))
        }
        Ok(LedgerCommand::SealedAt { epoch: 0, .. }) => fail(
            Refusal::Malformed,
            "a command of key epoch 0 is sealed without an epoch".into(),
        ),
        Ok(LedgerCommand::SealedAt { epoch, sealed }) => {
            open_sealed(worker, epoch, SealedCommand::Envelope(&sealed))
        }
        Ok(LedgerCommand::Forwarded { epoch, data }) => {
            open_sealed(worker, epoch, SealedCommand::Forwarded(&data.0))
        }
        Ok(LedgerCommand::Trigger(t)) => proposed(Proposal::Tick(t), None),
        Ok(LedgerCommand::EthLog(l)) => {
            let needs = unheld(l.epoch);
            proposed(Proposal::Log(l), needs)
        }
        Ok(LedgerCommand::JobResult(r)) => {
            let needs = unheld(r.epoch);
            proposed(Proposal::Result(r), needs)
        }
        Ok(LedgerCommand::Join(j)) => proposed(Proposal::Join(j), None),
        Ok(LedgerCommand::DealEpoch(d)) => proposed(Proposal::Deal(d), None),
        Ok(LedgerCommand::QueryLogs(q)) => {
            let needs = unheld(q.epoch);
            proposed(Proposal::QueryLogs(q), needs)
        }
    };
    Decoded {
        sealed_epoch,
        ..decoded
    }
}

/// How a sealed command entry carries its request.
enum SealedCommand<'a> {
    /// As the client sealed it, to the envelope key of the epoch.
    Envelope(&'a phat_primitives::protocol::Sealed),
    /// As a worker forwarded it, under the epoch's worker-entry key ([`forward`]).
    Forwarded(&'a [u8]),
}

/// Opens a command sealed under a key of `epoch`.
fn open_sealed(worker: &Worker, epoch: u32, sealed: SealedCommand<'_>) -> Decoded {
    let fail = |kind: Refusal, message: String, needs_epoch: Option<u32>| Decoded {
        request: Err(kind.because(message)),
        verified: None,
        reply: None,
        needs_epoch,
        proposal: None,
        sealed_epoch: Some(epoch),
    };
    let Some(keys) = worker.inner.enclave.keys().epoch(epoch) else {
        // Unknown to the state too, it is refused at apply; else the worker waits for it.
        return fail(
            Refusal::UnknownEpoch,
            format!("the command is sealed to the key of epoch {epoch}, which the cluster has not started"),
            Some(epoch),
        );
    };
    let opened = match sealed {
        SealedCommand::Envelope(sealed) => {
            match keys.envelope.open(phat_crypto::Purpose::Command, sealed) {
                Err(e) => Err((Refusal::BadEnvelope, e.to_string())),
                Ok((plain, keys)) => SignedRequest::decode_all(&mut &plain[..])
                    .map(|req| (req, keys.reply_key()))
                    .map_err(|e| {
                        (
                            Refusal::Malformed,
                            format!("the sealed command does not decode: {e}"),
                        )
                    }),
            }
        }
        SealedCommand::Forwarded(data) => {
            forward::open(&keys.secret, epoch, data).map_err(|e| match e {
                forward::ForwardError::Envelope(_) => (Refusal::BadEnvelope, e.to_string()),
                forward::ForwardError::Malformed(_) => (Refusal::Malformed, e.to_string()),
            })
        }
    };
    match opened {
        Err((kind, message)) => fail(kind, message, None),
        Ok((req, reply)) => Decoded {
            request: Ok(req),
            verified: None,
            reply: Some(reply),
            needs_epoch: None,
            proposal: None,
            sealed_epoch: Some(epoch),
        },
    }
}
