//! Commands: submission (plain and sealed), the checks before appending to the ledger, and
//! receipts.

use super::*;

#[derive(Deserialize)]
pub(super) struct SubmitParams {
    #[serde(default)]
    wait: bool,
}

pub(super) async fn submit(
    State(w): State<Worker>,
    Query(params): Query<SubmitParams>,
    req: Result<Json<SignedRequest>, JsonRejection>,
) -> ApiResult<Submitted> {
    let result = async {
        let Json(req) = req?;
        if w.inner.genesis.encryption {
            return Err(encryption_required("commands"));
        }
        let payload = LedgerCommand::Plain(req.clone()).encode();
        submit_inner(&w, params, req, payload, None).await
    }
    .await;
    count_submission(&w, result)
}

pub(super) async fn submit_sealed(
    State(w): State<Worker>,
    Query(params): Query<SubmitParams>,
    sealed: Result<Json<Sealed>, JsonRejection>,
) -> ApiResult<Submitted> {
    let result = async {
        let Json(sealed) = sealed?;
        not_dealing(&w)?;
        let cluster = w.inner.enclave.keys();
        let (epoch, newest) = cluster.newest();
        let (plain, keys) = match newest.envelope.open(phat_crypto::Purpose::Command, &sealed) {
            Ok(opened) => opened,
            Err(e) => {
                // Sealed to a retired epoch's key: refused, so that what a client sends after
                // a rotation never reaches the ledger readable with an old key.
                if let Some(old) = (0..epoch).rev().find(|o| {
                    cluster.epoch(*o).is_some_and(|k| {
                        k.envelope
                            .open(phat_crypto::Purpose::Command, &sealed)
                            .is_ok()
                    })
                }) {
                    return Err(ApiErr::new(
                        StatusCode::CONFLICT,
                        Refusal::StaleClusterKey,
                        format!(
                            "the command is sealed to the cluster key of epoch {old}; the \
                             cluster is at epoch {epoch}: fetch /v1/info and seal it to \
                             `envelope_key`"
                        ),
                    ));
                }
                if w.inner
                    .epoch_pending
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    // Maybe sealed to the new epoch's key, which this worker is still taking:
                    // not looked at, so an endpoint may send it to another worker.
                    let mut err = ApiErr::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Refusal::KeyEpochPending,
                        "this worker is taking the cluster's new key; try another worker or \
                         again shortly",
                    );
                    err.2 = Some(std::time::Duration::from_secs(1));
                    return Err(err);
                }
                return Err(envelope_err(e));
            }
        };
        let req = SignedRequest::decode_all(&mut &plain[..]).map_err(|e| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::Malformed,
                format!("the sealed command is not a signed request: {e}"),
            )
        })?;
        // Passed on sealed under the epoch's entry key: the other workers open it without
        // the key exchange this worker just paid (`apply::forward`).
        let reply = keys.reply_key();
        let payload = crate::apply::forward::seal(&newest.secret, epoch, &req, &reply);
        submit_inner(&w, params, req, payload, Some(reply)).await
    }
    .await;
    count_submission(&w, result)
}

/// Refuses to order anything sealed while the cluster deals a new key epoch.
fn not_dealing(w: &Worker) -> Result<(), ApiErr> {
    if w.inner
        .epoch_dealing
        .load(std::sync::atomic::Ordering::Acquire)
    {
        // The cluster started a key epoch (maybe revoking a worker) and no deal keyed it
        // yet: nothing is ordered sealed to the old key meanwhile.
        let mut err = ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Refusal::KeyEpochPending,
            "the cluster is dealing a new key; seal to it once /v1/info shows it (moments)",
        );
        err.2 = Some(std::time::Duration::from_secs(1));
        return Err(err);
    }
    Ok(())
}

/// A command sealed in an open query session (`SealedQuery`, the plaintext a SCALE
/// `SignedRequest` of the session's caller): no key exchange on either side, where a command
/// sealed to the cluster key costs one on each (the largest stage of an encrypted command,
/// docs/PERFORMANCE.md). It is forwarded like any sealed command; its result is sealed under
/// the session's reply key for this message (`SessionKeys::command_reply_key`).
pub(super) async fn submit_in_session(
    State(w): State<Worker>,
    Query(params): Query<SubmitParams>,
    msg: Result<Json<SealedQuery>, JsonRejection>,
) -> ApiResult<Submitted> {
    let result = async {
        let Json(q) = msg?;
        if q.worker.0 != w.worker_key() {
            return Err(ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::WrongWorker,
                format!(
                    "the session is with worker {}, this is {}",
                    q.worker,
                    Hash(w.worker_key())
                ),
            ));
        }
        if q.counter == 0 {
            return Err(ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::Malformed,
                "a session opens with a query (message 0); commands follow it",
            ));
        }
        not_dealing(&w)?;
        let now = now_ms();
        let (keys, caller) = w
            .inner
            .enclave
            .sessions
            .lock()
            .get(&q.session.0, now)
            .map_err(|e| super::queries::session_error(e, q.counter))?;
        let plain = keys
            .open_request(q.counter, &q.ciphertext)
            .map_err(envelope_err)?;
        let req = SignedRequest::decode_all(&mut &plain[..]).map_err(|e| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::Malformed,
                format!("the session message is not a signed request: {e}"),
            )
        })?;
        // A session speaks for the account that opened it, and for no other.
        let signer_caller = RequestBody::decode_all(&mut &req.body[..])
            .map(|b| b.caller(&req.signer))
            .unwrap_or(req.signer);
        if signer_caller != caller {
            return Err(ApiErr::new(
                StatusCode::FORBIDDEN,
                Refusal::NotSessionCaller,
                format!("this session is {caller}'s; the command is {signer_caller}'s"),
            ));
        }
        w.inner
            .enclave
            .sessions
            .lock()
            .accept(&q.session.0, q.counter)
            .map_err(|e| super::queries::session_error(e, q.counter))?;
        let (epoch, newest) = w.inner.enclave.keys().newest();
        let reply = keys.command_reply_key(q.counter);
        let payload = crate::apply::forward::seal(&newest.secret, epoch, &req, &reply);
        submit_inner(&w, params, req, payload, Some(reply)).await
    }
    .await;
    count_submission(&w, result)
}

/// Counts a submission's outcome in the metrics.
pub(super) fn count_submission(w: &Worker, result: ApiResult<Submitted>) -> ApiResult<Submitted> {
    Metrics::count(
        &w.inner.metrics.submissions,
        outcome_label(&result, |_| "ok"),
    );
    result
}

pub(super) async fn submit_inner(
    w: &Worker,
    params: SubmitParams,
    req: SignedRequest,
    payload: Vec<u8>,
    opened: Option<phat_crypto::ReplyKey>,
) -> ApiResult<Submitted> {
    let body = verify(w, &req, Mode::Command)?;
    let checked = precheck(w, &body.call).await;
    if let Err(e) = checked {
        w.inner
            .recent_nonces
            .lock()
            .remove(&(body.caller(&req.signer), body.nonce));
        return Err(e);
    }
    let request = req.hash();
    // Applying it here will need neither the key exchange nor the signature check again.
    crate::apply::remember_submitted(
        w,
        &payload,
        crate::apply::Submitted {
            request: req.clone(),
            body: body.clone(),
            keys: opened,
        },
    );
    let appended = match w.inner.ledger.append(payload).await {
        Ok(a) => a,
        Err(e) => {
            w.inner
                .recent_nonces
                .lock()
                .remove(&(body.caller(&req.signer), body.nonce));
            return Err(ledger_err(e));
        }
    };
    // The command is in the log now: every worker applies it, whatever happens to this
    // request. A wait that cannot show the receipt (not applied in time, or this worker
    // restored a snapshot past it) still answers with the seq, never an error a client would
    // take for a refusal (the chaos run found a 404 `unknown_receipt` for a command that ran).
    let receipt = if params.wait {
        match wait_receipt(w, appended.seq).await {
            Ok(receipt) => Some(receipt),
            Err(e) => {
                tracing::warn!(
                    seq = appended.seq,
                    "ordered, but no receipt to show: {}",
                    e.1.message
                );
                None
            }
        }
    } else {
        None
    };
    Ok(Json(Submitted {
        seq: appended.seq,
        request,
        receipt,
    }))
}

/// Refuses commands that cannot do anything: calls to unknown contracts, unknown code. A
/// contract this worker does not know yet may come from a command it has not applied: it
/// catches up with the ledger head once before refusing.
pub(super) async fn precheck(w: &Worker, call: &Call) -> Result<(), ApiErr> {
    match precheck_once(w, call).await {
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            catch_up(w).await?;
            precheck_once(w, call).await
        }
        r => r,
    }
}

pub(super) async fn precheck_once(w: &Worker, call: &Call) -> Result<(), ApiErr> {
    let snap = w.inner.store.snapshot()?;
    match call {
        Call::Call { dest, .. } => contract_info(&snap, dest).map(|_| ()),
        // The owner check is the apply's (the receipt says `not_owner`).
        Call::Cluster { .. } => Ok(()),
        Call::Schedule {
            op:
                phat_primitives::protocol::ScheduleOp::Add { contract, .. }
                | phat_primitives::protocol::ScheduleOp::Remove { contract, .. },
        } => contract_info(&snap, contract).map(|_| ()),
        Call::Subscription { op } => contract_info(&snap, &op.contract()).map(|_| ()),
        Call::Job { op } => contract_info(&snap, &op.contract()).map(|_| ()),
        Call::LogReaders { contract, .. } => contract_info(&snap, contract).map(|_| ()),
        // The balance is judged at apply (the receipt says `insufficient_balance`).
        Call::Transfer { .. } => Ok(()),
        Call::Logs { .. } => Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::WrongMode,
            "reading a log is a query, not a command",
        )),
        Call::Estimate { .. } => Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::WrongMode,
            "an estimate is a query, not a command",
        )),
        Call::Instantiate { code_hash, .. } => {
            if snap.get(&StateKey::Code(*code_hash))?.is_some() {
                return Ok(());
            }
            match w
                .inner
                .ledger
                .get_code(code_hash)
                .await
                .map_err(ledger_err)?
            {
                Some(_) => Ok(()),
                None => Err(ApiErr::new(
                    StatusCode::NOT_FOUND,
                    Refusal::UnknownCode,
                    format!("code {code_hash} was never uploaded (POST /v1/code first)"),
                )),
            }
        }
    }
}

pub(super) async fn wait_receipt(w: &Worker, seq: Seq) -> Result<Receipt, ApiErr> {
    wait_applied(w, seq).await?;
    read_receipt(w, seq)
}

pub(super) fn read_receipt(w: &Worker, seq: Seq) -> Result<Receipt, ApiErr> {
    let raw = w.inner.store.receipt(seq)?.ok_or_else(|| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            Refusal::UnknownReceipt,
            format!(
                "no receipt for seq {seq} (applied up to {})",
                w.applied_seq()
            ),
        )
    })?;
    Receipt::decode(&mut &raw[..]).map_err(ApiErr::internal)
}

pub(super) async fn receipt(
    State(w): State<Worker>,
    Path(seq): Path<String>,
) -> ApiResult<Receipt> {
    let seq: Seq = seq.parse().map_err(|_| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
            "seq must be a number",
        )
    })?;
    read_receipt(&w, seq).map(Json)
}
