//! The worker's HTTP API (`/v1`, JSON bodies) and its error mapping.
//!
//! Every error answers `{"error": {"kind": "...", "message": "..."}}` with a 4xx status for bad
//! input (malformed body 400, bad signature 401, unknown contract or code 404, replay 409,
//! oversized body 413, too many requests 429) and a 5xx status for the worker's own failures.
//! One file per resource: `node`, `code`, `commands`, `queries`, `contracts`; this file has the
//! router, the error type and the helpers they share.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes as BodyBytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parity_scale_codec::{Decode, DecodeAll, Encode};
use phat_primitives::protocol::{
    ApiError, Call, CallError, CodeUploaded, ContractKeys, ContractView, LedgerCommand, QueryOpen,
    QueryRequest, QueryResponse, Receipt, RequestBody, Sealed, SealedAnswer, SealedQuery,
    SealedReply, Seq, SessionQuery, SignedRequest, Submitted, WorkerInfo,
};
use phat_primitives::{AccountId, ContractInfo, Mode, StateKey};
use phat_primitives::{Hash, MetaKey, MetaPrefix, Refusal};
use serde::Deserialize;

use crate::apply::check_body;
use crate::execute::outcome_parts;
use crate::metrics::Metrics;
use crate::state::SnapshotState;
use crate::{now_ms, Worker};

mod code;
mod commands;
mod contracts;
mod node;
mod queries;

use code::*;
use commands::*;
use contracts::*;
use node::*;
use queries::*;

/// `Retry-After` in milliseconds (the standard header has whole seconds).
const RETRY_AFTER_MS: &str = "x-phat-retry-after-ms";

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) fn router(worker: Worker) -> Router {
    let max_body = worker.inner.config.max_body;
    let max_code = worker.inner.config.max_code;
    let cors_origins = worker.inner.config.cors_origins.clone();
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
        .route("/v1/commands/session", post(submit_in_session))
        .route("/v1/receipts/{seq}", get(receipt))
        .route("/v1/query", post(query))
        .route("/v1/query/sealed", post(query_sealed))
        .route("/v1/contracts/{id}", get(contract))
        .route("/v1/contracts/{id}/schedules", get(schedules))
        .route("/v1/contracts/{id}/subscriptions", get(subscriptions))
        .route("/v1/contracts/{id}/jobs", get(jobs))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            refuse_if_diverged,
        ))
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            admit_address,
        ))
        .layer(cors(&cors_origins))
        .merge(phat_console::router())
        .with_state(worker)
}

/// Cross-origin access for dApps on other origins: pages on loopback origins (a dApp served
/// by Vite on this machine) and the `allowed` origins (`*`: any) may call the API. Every
/// request that acts is signed and there are no cookies, but a page in a browser acts from
/// inside the user's network, and anybody can sign as a dev account: so a site the user
/// merely visits may not drive a local cluster unless it is allowed. The headers clients read
/// (`Retry-After`, the diverged mark) are exposed; preflights are cached for an hour.
pub fn cors(allowed: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let any = allowed.iter().any(|o| o == "*");
    let allowed: Vec<String> = allowed
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    let origins = AllowOrigin::predicate(move |origin: &header::HeaderValue, _| {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        any || is_loopback_origin(origin) || allowed.iter().any(|o| o == origin)
    });
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(Any)
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static(RETRY_AFTER_MS),
            HeaderName::from_static(phat_primitives::protocol::DIVERGED_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// Whether `origin` (`http://127.0.0.1:5173`) is a page served from this machine: host
/// `localhost`, an IPv4 loopback address or `[::1]`, over http or https.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => return h == "::1",
            _ => return false,
        },
        None => rest.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A diverged worker's state is not the cluster's: it answers nothing that reads or changes
/// it (only `/healthz`, `/metrics`, `/v1/info` and the API document) until it is resynced.
async fn refuse_if_diverged(
    State(w): State<Worker>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let open = !path.starts_with("/v1/") || path == "/v1/info" || path == "/v1/openapi.json";
    if !open {
        let refusal = match (w.inner.replica.diverged(), w.revoked_at()) {
            (Some(d), _) => Some((
                Refusal::Diverged,
                format!("this worker's state diverged from the cluster's: {d}"),
            )),
            (None, Some(seq)) => Some((
                Refusal::Revoked,
                format!(
                    "this worker was revoked from the cluster at seq {seq}: it holds no \
                     current key and applies nothing after it"
                ),
            )),
            (None, None) => None,
        };
        if let Some((kind, message)) = refusal {
            let mut resp =
                ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, kind, message).into_response();
            // The request was not looked at: an endpoint may send it to another worker.
            resp.headers_mut().insert(
                phat_primitives::protocol::DIVERGED_HEADER,
                header::HeaderValue::from_static("1"),
            );
            return resp;
        }
    }
    next.run(req).await
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
    fn new(status: StatusCode, kind: Refusal, message: impl Into<String>) -> Self {
        Self(status, kind.because(message), None)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::Internal,
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        // A sealed command a worker cannot open yet because it is still taking a new key epoch
        // goes with the route-elsewhere header: it was not looked at.
        let elsewhere = self.1.is(Refusal::KeyEpochPending);
        let mut resp = (self.0, Json(ApiError { error: self.1 })).into_response();
        if elsewhere {
            resp.headers_mut().insert(
                phat_primitives::protocol::DIVERGED_HEADER,
                header::HeaderValue::from_static("1"),
            );
        }
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
            crate::admission::Refused::Busy(_) => Refusal::Busy,
            crate::admission::Refused::Rate { .. } => Refusal::RateLimited,
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
            Refusal::TooLarge
        } else {
            Refusal::Malformed
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

fn ledger_err(e: phat_ledger::LedgerError) -> ApiErr {
    match e {
        phat_ledger::LedgerError::TooLarge { .. } => ApiErr::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::TooLarge,
            e.to_string(),
        ),
        _ => ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Refusal::LedgerUnavailable,
            e.to_string(),
        ),
    }
}

/// Verifies a request for `mode` at wall-clock time: signature, mode, expiry, replay.
fn verify(w: &Worker, req: &SignedRequest, mode: Mode) -> Result<RequestBody, ApiErr> {
    let body = phat_crypto::verify_request(req, &w.cluster_id()).map_err(|e| match e {
        phat_crypto::CryptoError::BadSignature(_) => ApiErr::new(
            StatusCode::UNAUTHORIZED,
            Refusal::BadSignature,
            e.to_string(),
        ),
        phat_crypto::CryptoError::BadCertificate(_) => ApiErr::new(
            StatusCode::UNAUTHORIZED,
            Refusal::BadCertificate,
            e.to_string(),
        ),
        _ => ApiErr::new(StatusCode::BAD_REQUEST, Refusal::Malformed, e.to_string()),
    })?;
    let now = now_ms();
    check_body(&body, mode, now).map_err(|e| ApiErr(StatusCode::BAD_REQUEST, e, None))?;
    // Nonces and rates are the caller's: a wallet's, when a certificate speaks for it.
    let caller = body.caller(&req.signer);
    w.inner.admission.signer(&caller)?;
    let key = (caller, body.nonce);
    let seen_in_state = mode == Mode::Command
        && w.inner
            .store
            .snapshot()?
            .nonce_expiry(&caller, body.nonce)?
            .is_some_and(|expiry| !crate::apply::nonce_expired(expiry, now));
    let mut recent = w.inner.recent_nonces.lock();
    if seen_in_state || !recent.insert(key, body.expires_at, now) {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            Refusal::Replayed,
            format!("nonce {} of {caller} was already used", body.nonce),
        ));
    }
    Ok(body)
}

fn contract_info(snap: &phat_store::Snapshot, id: &AccountId) -> Result<ContractInfo, ApiErr> {
    let raw = snap.get(&StateKey::Contract(*id))?.ok_or_else(|| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            Refusal::UnknownContract,
            format!("no contract {id} on this cluster"),
        )
    })?;
    ContractInfo::decode(&mut &raw[..]).map_err(ApiErr::internal)
}

fn envelope_err(e: phat_crypto::CryptoError) -> ApiErr {
    ApiErr::new(StatusCode::BAD_REQUEST, Refusal::BadEnvelope, e.to_string())
}

fn encryption_required(what: &str) -> ApiErr {
    ApiErr::new(
        StatusCode::BAD_REQUEST,
        Refusal::EncryptionRequired,
        format!("this cluster accepts only encrypted {what} (POST /v1/{what}/sealed)"),
    )
}

/// Waits until this worker has applied everything the ledger holds now.
async fn catch_up(w: &Worker) -> Result<(), ApiErr> {
    let head = w.inner.ledger.head().await.map_err(ledger_err)?;
    if w.applied_seq() < head {
        wait_applied(w, head).await?;
    }
    Ok(())
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
            Refusal::NotAppliedYet,
            format!(
                "seq {seq} not applied within {:?} (applied: {})",
                w.inner.config.wait_timeout,
                w.applied_seq()
            ),
        )),
    }
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

fn parse_id(id: &str) -> Result<AccountId, ApiErr> {
    id.parse().map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
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

#[cfg(test)]
mod cors_tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins_are_pages_of_this_machine_only() {
        for yes in [
            "http://localhost:5173",
            "http://127.0.0.1",
            "https://127.0.0.2:443",
            "http://[::1]:8080",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(yes), "{yes}");
        }
        for no in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:80",
            "http://[::1].evil.example",
            "http://[::2]:80",
            "http://10.0.0.1",
            "null",
            "file://",
            "localhost:80",
        ] {
            assert!(!is_loopback_origin(no), "{no}");
        }
    }
}
