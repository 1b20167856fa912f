//! Queries: plain and sealed (session) queries, admission, and their execution on a snapshot
//! through the worker's one execution path (`crate::execute`).

use super::*;

pub(super) async fn query(
    State(w): State<Worker>,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> ApiResult<QueryResponse> {
    let started = Instant::now();
    let result = query_inner(&w, req).await;
    let label = outcome_label(&result, |r| match &r.result {
        phat_primitives::protocol::CallResult::Ok(_) => "ok",
        phat_primitives::protocol::CallResult::Err(e) => e.kind.as_str(),
        phat_primitives::protocol::CallResult::Sealed(_) => "sealed",
    });
    record_query(&w, started, label);
    result.map(Json)
}

/// Counts a query by `label` and records its duration.
pub(super) fn record_query(w: &Worker, started: Instant, label: &str) {
    Metrics::count(&w.inner.metrics.queries, label);
    w.inner
        .metrics
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
}

pub(super) async fn query_inner(
    w: &Worker,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<QueryResponse, ApiErr> {
    let Json(QueryRequest { request, min_seq }) = req?;
    if w.inner.genesis.encryption {
        return Err(encryption_required("query"));
    }
    let body = verify(w, &request, Mode::Query)?;
    run_checked(w, body.caller(&request.signer), body.call, min_seq).await
}

/// Runs a verified query: waits for `min_seq`, finds the contract, runs on a snapshot.
pub(super) async fn run_checked(
    w: &Worker,
    caller: AccountId,
    call: Call,
    min_seq: Option<Seq>,
) -> Result<QueryResponse, ApiErr> {
    if let Call::Cluster { .. }
    | Call::Schedule { .. }
    | Call::Subscription { .. }
    | Call::Job { .. }
    | Call::LogReaders { .. }
    | Call::Transfer { .. } = call
    {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::WrongMode,
            "a change to the cluster, a schedule, a subscription, a job or a log's readers, or a \
             transfer, is a command, not a query",
        ));
    }
    if let Some(min) = min_seq {
        if w.applied_seq() < min {
            wait_applied(w, min).await?;
        }
    }
    if let Call::Logs { contract, filter } = call {
        return read_logs(w, caller, contract, filter).await;
    }
    // An estimate runs the call it carries, dry.
    let (call, dry_run) = match call {
        Call::Estimate { call } => match Call::decode_all(&mut &call.0[..]) {
            Ok(inner @ (Call::Call { .. } | Call::Instantiate { .. })) => (inner, true),
            Ok(_) => {
                return Err(ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    Refusal::Malformed,
                    "only a call or an instantiation has a cost to estimate",
                ))
            }
            Err(e) => {
                return Err(ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    Refusal::Malformed,
                    format!("the call to estimate does not decode: {e}"),
                ))
            }
        },
        call => (call, false),
    };
    if let Some(dest) = call.dest() {
        known_contract(w, &dest).await?;
    }
    // A bounded number of queries execute at once; the apply loop needs no slot.
    let slot = w.inner.admission.query_slot().await?;
    let w2 = w.clone();
    let result = tokio::task::spawn_blocking(move || run_query(&w2, caller, call, dry_run))
        .await
        .map_err(ApiErr::internal)?;
    drop(slot);
    result
}

pub(super) async fn query_sealed(
    State(w): State<Worker>,
    req: Result<Json<SealedQuery>, JsonRejection>,
) -> ApiResult<SealedReply> {
    let started = Instant::now();
    let result = query_sealed_inner(&w, req).await;
    record_query(&w, started, outcome_label(&result, |_| "ok"));
    result.map(Json)
}

/// An encrypted query: the first message opens a session (one key exchange, one signature
/// check), later ones are AEAD-only under the session's keys.
pub(super) async fn query_sealed_inner(
    w: &Worker,
    req: Result<Json<SealedQuery>, JsonRejection>,
) -> Result<SealedReply, ApiErr> {
    use crate::enclave::SessionError;
    let Json(q) = req?;
    if q.worker.0 != w.worker_key() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::WrongWorker,
            format!(
                "the query is encrypted to worker {}, this is {}",
                q.worker,
                Hash(w.worker_key())
            ),
        ));
    }
    let now = now_ms();
    let session_err = |e: SessionError| session_error(e, q.counter);
    let (keys, caller, call, min_seq, salt) = if q.counter == 0 {
        let sealed = Sealed {
            version: phat_crypto::ENVELOPE_VERSION,
            ephemeral: q.session,
            ciphertext: q.ciphertext.clone(),
        };
        let (plain, keys) = w
            .inner
            .enclave
            .identity
            .open(phat_crypto::Purpose::Query, &sealed)
            .map_err(envelope_err)?;
        let open = QueryOpen::decode_all(&mut &plain[..]).map_err(|e| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::Malformed,
                format!("query: {e}"),
            )
        })?;
        let body = verify(w, &open.request, Mode::Query)?;
        // Replies are sealed under a key bound to fresh randomness of this worker: the same
        // opening replayed after a restart (when its nonce is forgotten) gets another key.
        let salt: [u8; 32] = rand::random();
        let keys = Arc::new(keys.with_reply_salt(&salt));
        // The session speaks for the caller until the request, or its certificate, expires.
        let caller = body.caller(&open.request.signer);
        let until = body
            .certificate
            .as_ref()
            .map_or(body.expires_at, |c| c.expires_at.min(body.expires_at));
        w.inner
            .enclave
            .sessions
            .lock()
            .open(q.session.0, keys.clone(), caller, until, now)
            .map_err(session_err)?;
        (keys, caller, body.call, open.min_seq, Some(Hash(salt)))
    } else {
        let (keys, caller) = w
            .inner
            .enclave
            .sessions
            .lock()
            .get(&q.session.0, now)
            .map_err(session_err)?;
        let plain = keys
            .open_request(q.counter, &q.ciphertext)
            .map_err(envelope_err)?;
        // Before the counter is used up: a refused message may be sent again as it is.
        w.inner.admission.signer(&caller)?;
        w.inner
            .enclave
            .sessions
            .lock()
            .accept(&q.session.0, q.counter)
            .map_err(session_err)?;
        let query = SessionQuery::decode_all(&mut &plain[..]).map_err(|e| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                Refusal::Malformed,
                format!("query: {e}"),
            )
        })?;
        (keys, caller, query.call, query.min_seq, None)
    };
    // From here on the caller holds the session: errors travel sealed like answers.
    let answer = match run_checked(w, caller, call, min_seq).await {
        Ok(response) => SealedAnswer::Ok(response),
        Err(ApiErr(status, error, _)) => SealedAnswer::Err {
            status: status.as_u16(),
            error,
        },
    };
    let json = serde_json::to_vec(&answer).map_err(ApiErr::internal)?;
    Ok(SealedReply {
        counter: q.counter,
        ciphertext: keys.seal_reply(q.counter, &json).into(),
        salt,
    })
}

/// The API error of a session message refused as `e` (message number `counter`).
pub(super) fn session_error(e: crate::enclave::SessionError, counter: u64) -> ApiErr {
    use crate::enclave::SessionError;
    match e {
        SessionError::Unknown => ApiErr::new(
            StatusCode::NOT_FOUND,
            Refusal::UnknownSession,
            "no such session on this worker (restarted or expired): open a new one",
        ),
        SessionError::Expired => ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::SessionExpired,
            "the session expired: open a new one",
        ),
        SessionError::Replayed => ApiErr::new(
            StatusCode::CONFLICT,
            Refusal::Replayed,
            format!("message {counter} of this session was already used"),
        ),
    }
}

pub(super) fn run_query(
    w: &Worker,
    caller: AccountId,
    call: Call,
    dry_run: bool,
) -> Result<QueryResponse, ApiErr> {
    let snap = Arc::new(w.inner.store.snapshot()?);
    let head = snap.head();
    let executed = crate::execute::execute(
        w,
        crate::execute::Run {
            mode: Mode::Query,
            state: Arc::new(SnapshotState(snap)),
            seq: None,
            block_number: u32::try_from(head.seq).unwrap_or(u32::MAX),
            timestamp: now_ms(),
            caller,
            payer: None,
            call,
            code: None,
            dry_run,
        },
    );
    // Every worker stores them once they are ordered (`crate::logs`); an estimate's are not
    // a query's.
    if !executed.logs.is_empty() && !dry_run {
        w.inner.query_logs.lock().push(executed.logs);
    }
    let debug_message = executed
        .result
        .as_ref()
        .map(|o| o.debug_message.clone())
        .unwrap_or_default();
    let storage_deposit = executed.result.as_ref().map_or(0, |o| o.storage_deposit);
    let (result, events, gas_used) = outcome_parts(executed.result);
    Ok(QueryResponse {
        result,
        gas_used,
        events,
        debug_message,
        seq: head.seq,
        state_root: head.state_root,
        storage_deposit: phat_primitives::protocol::DepositDelta(storage_deposit),
    })
}

/// A log read: only the contract's deployer and the readers it allowed get the page; it
/// takes no query slot (it runs no contract) and waits, when asked to, outside one.
async fn read_logs(
    w: &Worker,
    caller: AccountId,
    contract: AccountId,
    filter: phat_primitives::protocol::LogFilter,
) -> Result<QueryResponse, ApiErr> {
    let info = known_contract(w, &contract).await?;
    let snap = w.inner.store.snapshot()?;
    if !crate::logs::may_read(&snap, &info, &contract, &caller)? {
        return Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            Refusal::NotLogReader,
            format!(
                "{caller} may not read the log of {contract}: its deployer {} may, and whom it \
                 allows (phat logs --allow)",
                info.deployer
            ),
        ));
    }
    let head = snap.head();
    drop(snap);
    let page = crate::logs::read(w, contract, filter).await?;
    Ok(QueryResponse {
        result: phat_primitives::protocol::CallResult::Ok(phat_primitives::protocol::CallOutput {
            data: page.encode().into(),
            reverted: false,
            address: None,
        }),
        gas_used: 0,
        events: Vec::new(),
        debug_message: String::new(),
        seq: head.seq,
        state_root: head.state_root,
        storage_deposit: Default::default(),
    })
}
