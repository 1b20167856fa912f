//! The worker's HTTP API (`/v1`, JSON bodies) and its error mapping.
//!
//! Every error answers `{"error": {"kind": "...", "message": "..."}}` with a 4xx status for bad
//! input (malformed body 400, bad signature 401, unknown contract or code 404, replay 409,
//! oversized body 413) and a 5xx status for the worker's own failures.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes as BodyBytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use parity_scale_codec::{Decode, DecodeAll, Encode};
use phat_primitives::protocol::{
    ApiError, Call, CallError, CodeUploaded, ContractKeys, ContractView, EventRecord,
    LedgerCommand, LogEntry, LogRecord, QueryOpen, QueryRequest, QueryResponse, Receipt,
    RequestBody, Sealed, SealedAnswer, SealedQuery, SealedReply, Seq, SessionQuery, SignedRequest,
    Submitted, WorkerInfo,
};
use phat_primitives::Hash;
use phat_primitives::{AccountId, ContractInfo, Mode, StateKey};
use phat_runtime::ExecContext;
use serde::Deserialize;

use crate::apply::{check_body, outcome_parts};
use crate::metrics::Metrics;
use crate::state::SnapshotState;
use crate::{now_ms, Worker};

/// `Retry-After` in milliseconds (the standard header has whole seconds).
const RETRY_AFTER_MS: &str = "x-phat-retry-after-ms";

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn router(worker: Worker) -> Router {
    let max_body = worker.inner.config.max_body;
    let max_code = worker.inner.config.max_code;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/info", get(info))
        .route(
            "/v1/code",
            post(upload_code).layer(DefaultBodyLimit::max(max_code)),
        )
        .route(
            "/v1/code/{hash}/metadata",
            get(get_metadata).post(put_metadata),
        )
        .route("/v1/commands", post(submit))
        .route("/v1/commands/sealed", post(submit_sealed))
        .route("/v1/receipts/{seq}", get(receipt))
        .route("/v1/query", post(query))
        .route("/v1/query/sealed", post(query_sealed))
        .route("/v1/contracts/{id}", get(contract))
        .route("/v1/contracts/{id}/logs", get(logs))
        .route("/v1/contracts/{id}/logs/stream", get(log_stream))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            admit_address,
        ))
        .with_state(worker)
}

/// Refuses clients that send faster than their address's rate (when the server knows the
/// address: `Worker::serve` records it).
async fn admit_address(
    State(w): State<Worker>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = addr {
        if let Err(refused) = w.inner.admission.address(ip) {
            return ApiErr::from(refused).into_response();
        }
    }
    next.run(req).await
}

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiErr(StatusCode, CallError, Option<std::time::Duration>);

impl ApiErr {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self(
            status,
            CallError {
                kind: kind.into(),
                message: message.into(),
            },
            None,
        )
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let mut resp = (self.0, Json(ApiError { error: self.1 })).into_response();
        if let Some(wait) = self.2 {
            // Whole seconds, rounded up (`Retry-After` has no fractions).
            let secs = wait.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            // The same to the millisecond, for clients that can use it.
            if let Ok(v) = header::HeaderValue::from_str(&wait.as_millis().to_string()) {
                resp.headers_mut().insert(RETRY_AFTER_MS, v);
            }
        }
        resp
    }
}

impl From<crate::admission::Refused> for ApiErr {
    fn from(r: crate::admission::Refused) -> Self {
        let kind = match r {
            crate::admission::Refused::Busy(_) => "busy",
            crate::admission::Refused::Rate { .. } => "rate_limited",
        };
        let wait = r.retry_after();
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            kind,
            format!("{r}; retry after {} ms", wait.as_millis()),
        );
        e.2 = Some(wait);
        e
    }
}

impl From<JsonRejection> for ApiErr {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed"
        };
        let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self::new(status, kind, r.body_text())
    }
}

impl From<phat_store::StoreError> for ApiErr {
    fn from(e: phat_store::StoreError) -> Self {
        Self::internal(e)
    }
}

type ApiResult<T> = Result<Json<T>, ApiErr>;

async fn healthz(State(w): State<Worker>) -> Response {
    if let Some(s) = w.inner.stuck.lock().clone() {
        if s.attempts >= crate::apply::STUCK_AFTER {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "apply stuck at seq {} for {} s ({} attempts): {}\n",
                    s.seq,
                    s.since.elapsed().as_secs(),
                    s.attempts,
                    s.error
                ),
            )
                .into_response();
        }
    }
    match w.inner.store.head() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

async fn metrics(State(w): State<Worker>) -> Response {
    w.inner
        .metrics
        .queries_running
        .set(w.inner.admission.queries_running() as i64);
    w.inner
        .metrics
        .cache_bytes
        .set(w.inner.pink.cache.footprint() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        w.inner.metrics.encode(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn info(State(w): State<Worker>) -> ApiResult<WorkerInfo> {
    let head = w.inner.store.head()?;
    let keys = w.inner.enclave.keys();
    Ok(Json(WorkerInfo {
        worker_key: Hash(w.worker_key()),
        cluster_key: Hash(keys.envelope.public()),
        encryption: w.inner.genesis.encryption,
        attestation: keys.report.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        name: w.inner.config.name.clone(),
        seq: head.seq,
        state_root: head.state_root,
        ledger_head: w
            .inner
            .ledger_head
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(head.seq),
        pid: std::process::id(),
    }))
}

async fn upload_code(
    State(w): State<Worker>,
    headers: header::HeaderMap,
    body: BodyBytes,
) -> ApiResult<CodeUploaded> {
    if body.is_empty() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body must be the contract's wasm bytes",
        ));
    }
    let hash = phat_primitives::CodeHash::of(&body);
    let cluster = cluster_id(&w);
    let signer = signed_by(&w, &headers, |exp| {
        phat_primitives::protocol::upload_payload(&cluster, &hash, exp)
    })?;
    w.inner.admission.upload(&signer)?;
    let rt = w.inner.runtime.clone();
    let wasm = body.to_vec();
    let wasm = tokio::task::spawn_blocking(move || rt.prepare_code(&wasm).map(|_| wasm))
        .await
        .map_err(ApiErr::internal)?
        .map_err(|e| ApiErr::new(StatusCode::BAD_REQUEST, "invalid_code", e.to_string()))?;
    let code_hash = w.inner.ledger.put_code(wasm).await.map_err(ledger_err)?;
    Ok(Json(CodeUploaded { code_hash }))
}

/// The cluster's identity in signed uploads and metadata writes: its envelope key.
fn cluster_id(w: &Worker) -> Hash {
    Hash(w.inner.enclave.keys().envelope.public())
}

/// The account that signed an upload or a metadata write: its headers name the signer, the
/// expiry and an sr25519 signature of `payload(expiry)`. The signer must hold a balance
/// (uploads grow every worker's ledger: strangers without funds cannot).
fn signed_by(
    w: &Worker,
    headers: &header::HeaderMap,
    payload: impl FnOnce(u64) -> Vec<u8>,
) -> Result<AccountId, ApiErr> {
    use phat_primitives::protocol::{EXPIRES_HEADER, SIGNATURE_HEADER, SIGNER_HEADER};
    let unsigned = || {
        ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "unsigned",
            format!(
                "uploads and metadata must be signed: headers {SIGNER_HEADER}, \
                 {SIGNATURE_HEADER} and {EXPIRES_HEADER} (phat-client does this)"
            ),
        )
    };
    let text = |name: &str| -> Result<&str, ApiErr> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unsigned)
    };
    let malformed = |what: &str| ApiErr::new(StatusCode::BAD_REQUEST, "malformed", what);
    let signer: AccountId = text(SIGNER_HEADER)?
        .parse()
        .map_err(|_| malformed("x-phat-signer must be a 0x-prefixed 32-byte account"))?;
    let signature = hex::decode(text(SIGNATURE_HEADER)?.trim_start_matches("0x"))
        .map_err(|_| malformed("x-phat-signature must be hex"))?;
    let expires_at: u64 = text(EXPIRES_HEADER)?
        .parse()
        .map_err(|_| malformed("x-phat-expires must be Unix milliseconds"))?;
    let now = now_ms();
    if expires_at < now || expires_at > now + phat_primitives::protocol::MAX_REQUEST_TTL_MS {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "expired",
            format!("the signature expires at {expires_at}, now is {now}"),
        ));
    }
    if !phat_crypto::sr25519_verify(&signer, &payload(expires_at), &signature) {
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!("the signature of {signer} does not match"),
        ));
    }
    let snap = w.inner.store.snapshot()?;
    // Before command 1 the genesis balances are not in the state yet.
    let funded = snap.get(&StateKey::Balance(signer))?.is_some()
        || (snap.head().seq == 0
            && w.inner
                .genesis
                .balances
                .iter()
                .any(|(who, b)| *who == signer && *b > 0));
    if !funded {
        return Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            "unfunded",
            format!("{signer} holds no balance on this cluster: only funded accounts upload"),
        ));
    }
    Ok(signer)
}

fn parse_code_hash(hash: &str) -> Result<phat_primitives::CodeHash, ApiErr> {
    hash.parse().map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("code hash `{hash}`: {e}"),
        )
    })
}

/// Where the metadata `publisher` published for code `hash` is kept in the ledger.
fn metadata_key(hash: &phat_primitives::CodeHash, publisher: &AccountId) -> String {
    format!("metadata/{hash}/{publisher}")
}

/// Where metadata was kept before it was signed (one per code, readable only).
fn legacy_metadata_key(hash: &phat_primitives::CodeHash) -> String {
    format!("metadata/{hash}")
}

/// Stores the ink! metadata (JSON ABI) of uploaded code as published by its signer. Readers
/// ask for the metadata a contract's deployer published, so nobody can swap the ABI that
/// other people's calls are encoded with.
async fn put_metadata(
    State(w): State<Worker>,
    Path(hash): Path<String>,
    headers: header::HeaderMap,
    body: BodyBytes,
) -> Result<StatusCode, ApiErr> {
    let hash = parse_code_hash(&hash)?;
    let metadata: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("metadata: {e}"),
        )
    })?;
    if !metadata.is_object() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "metadata must be a JSON object",
        ));
    }
    let cluster = cluster_id(&w);
    let digest = phat_primitives::blake2_256(&body);
    let signer = signed_by(&w, &headers, |exp| {
        phat_primitives::protocol::metadata_payload(&cluster, &hash, &digest, exp)
    })?;
    w.inner.admission.upload(&signer)?;
    if w.inner
        .ledger
        .get_code(&hash)
        .await
        .map_err(ledger_err)?
        .is_none()
    {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_code",
            format!("code {hash} was never uploaded"),
        ));
    }
    w.inner
        .ledger
        .put_meta(&metadata_key(&hash, &signer), body.to_vec())
        .await
        .map_err(ledger_err)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MetadataParams {
    /// Whose published metadata (a contract's deployer).
    publisher: Option<String>,
}

/// The ink! metadata `?publisher=0x…` published for code (without it: metadata stored before
/// uploads were signed, if any).
async fn get_metadata(
    State(w): State<Worker>,
    Path(hash): Path<String>,
    Query(params): Query<MetadataParams>,
) -> Result<Response, ApiErr> {
    let hash = parse_code_hash(&hash)?;
    let key = match &params.publisher {
        Some(p) => {
            let who: AccountId = p.parse().map_err(|_| {
                ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "publisher must be a 0x-prefixed 32-byte account",
                )
            })?;
            metadata_key(&hash, &who)
        }
        None => legacy_metadata_key(&hash),
    };
    match w.inner.ledger.get_meta(&key).await.map_err(ledger_err)? {
        Some(bytes) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        None => Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_metadata",
            match &params.publisher {
                Some(p) => format!("{p} published no metadata for code {hash}"),
                None => format!("no metadata stored for code {hash}"),
            },
        )),
    }
}

fn ledger_err(e: phat_ledger::LedgerError) -> ApiErr {
    match e {
        phat_ledger::LedgerError::TooLarge { .. } => {
            ApiErr::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
        }
        _ => ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_unavailable",
            e.to_string(),
        ),
    }
}

/// Verifies a request for `mode` at wall-clock time: signature, mode, expiry, replay.
fn verify(w: &Worker, req: &SignedRequest, mode: Mode) -> Result<RequestBody, ApiErr> {
    let body = phat_crypto::verify_request(req).map_err(|e| match e {
        phat_crypto::CryptoError::BadSignature(_) => {
            ApiErr::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string())
        }
        _ => ApiErr::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    })?;
    let now = now_ms();
    check_body(&body, mode, now).map_err(|e| ApiErr(StatusCode::BAD_REQUEST, e, None))?;
    w.inner.admission.signer(&req.signer)?;
    let key = (req.signer, body.nonce);
    let seen_in_state = mode == Mode::Command
        && w.inner
            .store
            .snapshot()?
            .nonce_expiry(&req.signer, body.nonce)?
            .is_some();
    let mut recent = w.inner.recent_nonces.lock();
    if seen_in_state || !recent.insert(key, body.expires_at, now) {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            "replayed",
            format!("nonce {} of {} was already used", body.nonce, req.signer),
        ));
    }
    Ok(body)
}

fn contract_info(snap: &phat_store::Snapshot, id: &AccountId) -> Result<ContractInfo, ApiErr> {
    let raw = snap.get(&StateKey::Contract(*id))?.ok_or_else(|| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_contract",
            format!("no contract {id} on this cluster"),
        )
    })?;
    ContractInfo::decode(&mut &raw[..]).map_err(ApiErr::internal)
}

#[derive(Deserialize)]
struct SubmitParams {
    #[serde(default)]
    wait: bool,
}

async fn submit(
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

async fn submit_sealed(
    State(w): State<Worker>,
    Query(params): Query<SubmitParams>,
    sealed: Result<Json<Sealed>, JsonRejection>,
) -> ApiResult<Submitted> {
    let result = async {
        let Json(sealed) = sealed?;
        let (plain, keys) = w
            .inner
            .enclave
            .keys()
            .envelope
            .open(phat_crypto::Purpose::Command, &sealed)
            .map_err(envelope_err)?;
        let req = SignedRequest::decode_all(&mut &plain[..]).map_err(|e| {
            ApiErr::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the sealed command is not a signed request: {e}"),
            )
        })?;
        let payload = LedgerCommand::Sealed(sealed).encode();
        submit_inner(&w, params, req, payload, Some(keys)).await
    }
    .await;
    count_submission(&w, result)
}

/// Counts a submission's outcome in the metrics.
fn count_submission(w: &Worker, result: ApiResult<Submitted>) -> ApiResult<Submitted> {
    Metrics::count(
        &w.inner.metrics.submissions,
        outcome_label(&result, |_| "ok"),
    );
    result
}

fn envelope_err(e: phat_crypto::CryptoError) -> ApiErr {
    ApiErr::new(StatusCode::BAD_REQUEST, "bad_envelope", e.to_string())
}

fn encryption_required(what: &str) -> ApiErr {
    ApiErr::new(
        StatusCode::BAD_REQUEST,
        "encryption_required",
        format!("this cluster accepts only encrypted {what} (POST /v1/{what}/sealed)"),
    )
}

async fn submit_inner(
    w: &Worker,
    params: SubmitParams,
    req: SignedRequest,
    payload: Vec<u8>,
    opened: Option<phat_crypto::SessionKeys>,
) -> ApiResult<Submitted> {
    let body = verify(w, &req, Mode::Command)?;
    let checked = precheck(w, &body.call).await;
    if let Err(e) = checked {
        w.inner
            .recent_nonces
            .lock()
            .remove(&(req.signer, body.nonce));
        return Err(e);
    }
    let request = req.hash();
    if let Some(keys) = opened {
        // Applying it here will not need the key exchange again.
        crate::apply::remember_opened(w, &payload, (req.clone(), keys));
    }
    let appended = match w.inner.ledger.append(payload).await {
        Ok(a) => a,
        Err(e) => {
            w.inner
                .recent_nonces
                .lock()
                .remove(&(req.signer, body.nonce));
            return Err(ledger_err(e));
        }
    };
    let receipt = if params.wait {
        Some(wait_receipt(w, appended.seq).await?)
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
async fn precheck(w: &Worker, call: &Call) -> Result<(), ApiErr> {
    match precheck_once(w, call).await {
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            catch_up(w).await?;
            precheck_once(w, call).await
        }
        r => r,
    }
}

/// Waits until this worker has applied everything the ledger holds now.
async fn catch_up(w: &Worker) -> Result<(), ApiErr> {
    let head = w.inner.ledger.head().await.map_err(ledger_err)?;
    if w.applied_seq() < head {
        wait_applied(w, head).await?;
    }
    Ok(())
}

async fn precheck_once(w: &Worker, call: &Call) -> Result<(), ApiErr> {
    let snap = w.inner.store.snapshot()?;
    match call {
        Call::Call { dest, .. } => contract_info(&snap, dest).map(|_| ()),
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
                    "unknown_code",
                    format!("code {code_hash} was never uploaded (POST /v1/code first)"),
                )),
            }
        }
    }
}

/// Waits until this worker has applied `seq`.
async fn wait_applied(w: &Worker, seq: Seq) -> Result<(), ApiErr> {
    let mut rx = w.inner.applied.subscribe();
    let waited =
        tokio::time::timeout(w.inner.config.wait_timeout, rx.wait_for(|s| *s >= seq)).await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ApiErr::internal("the apply loop stopped")),
        Err(_) => Err(ApiErr::new(
            StatusCode::GATEWAY_TIMEOUT,
            "not_applied_yet",
            format!(
                "seq {seq} not applied within {:?} (applied: {})",
                w.inner.config.wait_timeout,
                w.applied_seq()
            ),
        )),
    }
}

async fn wait_receipt(w: &Worker, seq: Seq) -> Result<Receipt, ApiErr> {
    wait_applied(w, seq).await?;
    read_receipt(w, seq)
}

fn read_receipt(w: &Worker, seq: Seq) -> Result<Receipt, ApiErr> {
    let raw = w.inner.store.receipt(seq)?.ok_or_else(|| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_receipt",
            format!(
                "no receipt for seq {seq} (applied up to {})",
                w.applied_seq()
            ),
        )
    })?;
    Receipt::decode(&mut &raw[..]).map_err(ApiErr::internal)
}

async fn receipt(State(w): State<Worker>, Path(seq): Path<String>) -> ApiResult<Receipt> {
    let seq: Seq = seq
        .parse()
        .map_err(|_| ApiErr::new(StatusCode::BAD_REQUEST, "malformed", "seq must be a number"))?;
    read_receipt(&w, seq).map(Json)
}

async fn query(
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

/// The metrics label of an API outcome: `ok_label` of a success, the error's kind otherwise.
fn outcome_label<'a, T>(
    result: &'a Result<T, ApiErr>,
    ok_label: impl Fn(&'a T) -> &'a str,
) -> &'a str {
    match result {
        Ok(v) => ok_label(v),
        Err(e) => e.1.kind.as_str(),
    }
}

/// Counts a query by `label` and records its duration.
fn record_query(w: &Worker, started: Instant, label: &str) {
    Metrics::count(&w.inner.metrics.queries, label);
    w.inner
        .metrics
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
}

async fn query_inner(
    w: &Worker,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<QueryResponse, ApiErr> {
    let Json(QueryRequest { request, min_seq }) = req?;
    if w.inner.genesis.encryption {
        return Err(encryption_required("query"));
    }
    let body = verify(w, &request, Mode::Query)?;
    run_checked(w, request.signer, body.call, min_seq).await
}

/// Runs a verified query: waits for `min_seq`, finds the contract, runs on a snapshot.
async fn run_checked(
    w: &Worker,
    caller: AccountId,
    call: Call,
    min_seq: Option<Seq>,
) -> Result<QueryResponse, ApiErr> {
    if let Some(min) = min_seq {
        if w.applied_seq() < min {
            wait_applied(w, min).await?;
        }
    }
    if let Some(dest) = call.dest() {
        known_contract(w, &dest).await?;
    }
    // A bounded number of queries execute at once; the apply loop needs no slot.
    let slot = w.inner.admission.query_slot().await?;
    let w2 = w.clone();
    let result = tokio::task::spawn_blocking(move || run_query(&w2, caller, call))
        .await
        .map_err(ApiErr::internal)?;
    drop(slot);
    result
}

async fn query_sealed(
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
async fn query_sealed_inner(
    w: &Worker,
    req: Result<Json<SealedQuery>, JsonRejection>,
) -> Result<SealedReply, ApiErr> {
    use crate::enclave::SessionError;
    let Json(q) = req?;
    if q.worker.0 != w.worker_key() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "wrong_worker",
            format!(
                "the query is encrypted to worker {}, this is {}",
                q.worker,
                Hash(w.worker_key())
            ),
        ));
    }
    let now = now_ms();
    let session_err = |e: SessionError| match e {
        SessionError::Unknown => ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no such session on this worker (restarted or expired): open a new one",
        ),
        SessionError::Expired => ApiErr::new(
            StatusCode::BAD_REQUEST,
            "session_expired",
            "the session expired: open a new one",
        ),
        SessionError::Replayed => ApiErr::new(
            StatusCode::CONFLICT,
            "replayed",
            format!("message {} of this session was already used", q.counter),
        ),
    };
    let (keys, caller, call, min_seq) = if q.counter == 0 {
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
            ApiErr::new(StatusCode::BAD_REQUEST, "malformed", format!("query: {e}"))
        })?;
        let body = verify(w, &open.request, Mode::Query)?;
        let keys = Arc::new(keys);
        w.inner
            .enclave
            .sessions
            .lock()
            .open(
                q.session.0,
                keys.clone(),
                open.request.signer,
                body.expires_at,
                now,
            )
            .map_err(session_err)?;
        (keys, open.request.signer, body.call, open.min_seq)
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
            ApiErr::new(StatusCode::BAD_REQUEST, "malformed", format!("query: {e}"))
        })?;
        (keys, caller, query.call, query.min_seq)
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
    })
}

fn run_query(w: &Worker, caller: AccountId, call: Call) -> Result<QueryResponse, ApiErr> {
    let snap = Arc::new(w.inner.store.snapshot()?);
    let head = snap.head();
    let now = now_ms();
    let host = Arc::new(crate::pink_host::WorkerHost::new(
        w.inner.pink.clone(),
        None,
        now,
    ));
    let extension = Arc::new(phat_runtime::pink::PinkExtension::new(host.clone()));
    let ctx = ExecContext {
        mode: Mode::Query,
        block_number: u32::try_from(head.seq).unwrap_or(u32::MAX),
        timestamp: now,
        extension: extension.clone(),
    };
    let mut session = w
        .inner
        .runtime
        .session(Arc::new(SnapshotState(snap.clone())), ctx);
    let (result, target) = match call {
        Call::Call {
            dest,
            value,
            data,
            gas_limit,
        } => (
            session.call(caller, dest, value, data.0, gas_limit),
            Some(dest),
        ),
        Call::Instantiate {
            code_hash,
            value,
            data,
            salt,
            gas_limit,
        } => (
            session.instantiate(caller, code_hash, value, data.0, &salt, gas_limit),
            None,
        ),
    };
    let debug_message = result
        .as_ref()
        .map(|o| o.debug_message.clone())
        .unwrap_or_default();
    if let Some(contract) = target.or(result.as_ref().ok().and_then(|o| o.address)) {
        for line in debug_message.lines().filter(|l| !l.is_empty()) {
            let _ = w.inner.logs.send(LogRecord {
                contract,
                level: "debug".into(),
                origin: Mode::Query,
                seq: None,
                timestamp: now_ms(),
                message: line.to_string(),
            });
        }
    }
    for record in host.take_logs() {
        let _ = w.inner.logs.send(record);
    }
    let (result, events, gas_used) = outcome_parts(result);
    Ok(QueryResponse {
        result,
        gas_used,
        events,
        debug_message,
        seq: head.seq,
        state_root: head.state_root,
    })
}

fn parse_id(id: &str) -> Result<AccountId, ApiErr> {
    id.parse().map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("contract id `{id}`: {e}"),
        )
    })
}

/// The contract `id`, catching up with the ledger once if this worker does not know it yet.
async fn known_contract(w: &Worker, id: &AccountId) -> Result<ContractInfo, ApiErr> {
    match contract_info(&w.inner.store.snapshot()?, id) {
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            catch_up(w).await?;
            contract_info(&w.inner.store.snapshot()?, id)
        }
        r => r,
    }
}

async fn contract(State(w): State<Worker>, Path(id): Path<String>) -> ApiResult<ContractView> {
    let id = parse_id(&id)?;
    let info = known_contract(&w, &id).await?;
    let seed = *w.inner.enclave.keys().contract_seed.expose();
    let keys = phat_runtime::pink::contract_public_keys(&seed, &id);
    Ok(Json(ContractView {
        id,
        code_hash: info.code_hash,
        deployer: info.deployer,
        keys: ContractKeys {
            sr25519: Hash(keys.sr25519),
            ed25519: Hash(keys.ed25519),
            secp256k1: keys.ecdsa.to_vec().into(),
            ethereum_address: eip55(&keys.ethereum_address),
        },
    }))
}

/// An Ethereum address in EIP-55 mixed-case checksum form.
fn eip55(address: &[u8; 20]) -> String {
    use sha3::Digest;
    let lower = hex::encode(address);
    let hash = sha3::Keccak256::digest(lower.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

#[derive(Deserialize)]
struct LogParams {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `record` as the API serves it: with its index and, for an `event` record, the event.
fn log_entry(record: LogRecord, index: Option<u64>) -> LogEntry {
    let event = if record.level == "event" {
        parse_event_summary(record.contract, &record.message)
    } else {
        None
    };
    LogEntry {
        record,
        index,
        event,
    }
}

/// The event an `event` record's message summarises (`topics=[0x…,0x…] data=0x…`, as
/// `apply::event_summary` writes it); `None` if the message is not such a summary. The summary
/// is lossless, so records stored before the API served events get theirs too.
fn parse_event_summary(contract: AccountId, message: &str) -> Option<EventRecord> {
    let rest = message.strip_prefix("topics=[")?;
    let (topics, data) = rest.split_once("] data=0x")?;
    let topics = topics
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Hash>().ok())
        .collect::<Option<Vec<_>>>()?;
    let data = hex::decode(data).ok()?;
    Some(EventRecord {
        contract,
        topics,
        data: data.into(),
    })
}

fn stored_logs(
    w: &Worker,
    id: &AccountId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<LogEntry>, ApiErr> {
    Ok(w.inner
        .store
        .logs(id, after, limit)?
        .into_iter()
        .filter_map(|(index, raw)| {
            LogRecord::decode(&mut &raw[..])
                .ok()
                .map(|record| log_entry(record, Some(index)))
        })
        .collect())
}

async fn logs(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Json<Vec<LogEntry>>, ApiErr> {
    let id = parse_id(&id)?;
    known_contract(&w, &id).await?;
    let limit = p.limit.unwrap_or(1000).min(10_000);
    stored_logs(&w, &id, p.after, limit).map(Json)
}

async fn log_stream(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiErr> {
    let id = parse_id(&id)?;
    known_contract(&w, &id).await?;
    // Subscribe before reading history so nothing falls between the two.
    let live = tokio_stream::wrappers::BroadcastStream::new(w.inner.logs.subscribe());
    let history = stored_logs(&w, &id, p.after, p.limit.unwrap_or(100).min(10_000))?;
    let last_seq = history
        .iter()
        .filter_map(|l| l.record.seq)
        .max()
        .unwrap_or(0);
    let history = futures::stream::iter(history);
    let live = live.filter_map(move |r| {
        let keep = match r {
            Ok(record) if record.contract == id && record.seq.is_none_or(|s| s > last_seq) => {
                Some(log_entry(record, None))
            }
            _ => None,
        };
        futures::future::ready(keep)
    });
    let events = history.chain(live).map(|l| {
        Ok(SseEvent::default()
            .event("log")
            .json_data(&l)
            .unwrap_or_else(|_| SseEvent::default().data("{}")))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use phat_primitives::protocol::LogRecord;
    use phat_primitives::{AccountId, Hash, Mode};

    fn record(level: &str, message: String) -> LogRecord {
        LogRecord {
            contract: AccountId([7; 32]),
            level: level.into(),
            origin: Mode::Command,
            seq: Some(3),
            timestamp: 1,
            message,
        }
    }

    #[test]
    fn event_records_carry_the_event_their_summary_describes() {
        let topics = [Hash([1; 32]), Hash([0xab; 32])];
        let data = [0u8, 5, 0xff];
        let summary = crate::apply::event_summary(&topics, &data);
        let entry = super::log_entry(record("event", summary), Some(4));
        let event = entry.event.expect("structured event");
        assert_eq!(event.contract, AccountId([7; 32]));
        assert_eq!(event.topics, topics);
        assert_eq!(event.data.0, data);
        assert_eq!(entry.index, Some(4));
        // No topics, no data.
        let empty = super::log_entry(record("event", crate::apply::event_summary(&[], &[])), None)
            .event
            .expect("an event without topics or data");
        assert!(empty.topics.is_empty() && empty.data.0.is_empty());
        // Other levels (even with a look-alike text) and malformed summaries carry none.
        let lookalike = crate::apply::event_summary(&topics, &data);
        assert_eq!(
            super::log_entry(record("info", lookalike), None).event,
            None
        );
        for bad in ["hello", "topics=[0x12] data=0x", "topics=[] data=0xz1"] {
            assert_eq!(
                super::log_entry(record("event", bad.into()), None).event,
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn log_entries_serialize_the_event_only_when_present_and_decode_old_answers() {
        let topics = [Hash([1; 32])];
        let with = super::log_entry(
            record("event", crate::apply::event_summary(&topics, &[9])),
            Some(0),
        );
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["event"]["data"], "0x09");
        assert_eq!(json["event"]["topics"][0], Hash([1; 32]).to_hex());
        assert_eq!(json["level"], "event");
        assert_eq!(json["index"], 0);
        let without = super::log_entry(record("debug", "hi".into()), None);
        let json = serde_json::to_value(&without).unwrap();
        assert!(json.get("event").is_none(), "{json}");
        // An answer of a worker that predates the field still decodes.
        let back: phat_primitives::protocol::LogEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, without);
    }

    #[test]
    fn eip55_checksums_match_the_spec_vectors() {
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        ] {
            let bytes: [u8; 20] = hex::decode(&addr[2..]).unwrap().try_into().unwrap();
            assert_eq!(super::eip55(&bytes), addr);
        }
    }
}
