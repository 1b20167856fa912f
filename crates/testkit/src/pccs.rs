//! A fake PCCS (Intel's Provisioning Certification Caching Service, v4 API) for tests: it
//! serves given collateral the way a PCCS does (issuer chains URL-encoded in headers, TCB
//! info and QE identity wrapped with their signatures, the root CA CRL in hex), honestly or
//! in one of a few broken ways. Used by the attestation tests and the CLI's hardware-worker
//! test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use phat_attest::pccs::MAX_ANSWER;
use phat_attest::Collateral;

/// What the fake PCCS does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every answer as a PCCS gives it.
    Honest,
    /// The TCB info answer is bigger than any real one.
    Huge,
    /// The TCB info answer lacks its issuer chain.
    NoChain,
    /// Everything fails with 503.
    Down,
}

/// The fake PCCS's state.
#[derive(Clone)]
struct Fake {
    /// Collateral by TEE (`sgx`, `tdx`).
    by_tee: Arc<HashMap<&'static str, Collateral>>,
    mode: Mode,
    requests: Arc<AtomicUsize>,
}

/// A header value as a PCCS sends an issuer chain: the PEM, URL-encoded.
fn encoded(pem: &str) -> HeaderValue {
    // Every byte but letters and digits as %XX, as a PCCS does for the PEM's newlines,
    // spaces, `+`, `/` and `=`.
    let text: String = pem
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    HeaderValue::from_str(&text).unwrap()
}

/// Answers one PCCS request.
async fn serve_pccs(
    State(f): State<Fake>,
    Path((tee, rest)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    f.requests.fetch_add(1, Ordering::Relaxed);
    if f.mode == Mode::Down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // Collateral is served under the TEE that asks; the PCK CRL and root CRL under `sgx`.
    let pick = |t: &str| f.by_tee.get(t).cloned();
    let mut headers = HeaderMap::new();
    let body: Vec<u8> = match rest.as_str() {
        "pckcrl" => {
            let Some(c) = pick(&tee).or_else(|| pick("tdx")) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            assert_eq!(q.get("encoding").map(String::as_str), Some("der"));
            headers.insert(
                HeaderName::from_static("sgx-pck-crl-issuer-chain"),
                encoded(&c.pck_crl_issuer_chain),
            );
            c.pck_crl.clone()
        }
        "tcb" => {
            let Some(c) = pick(&tee) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            if f.mode == Mode::Huge {
                return vec![b' '; MAX_ANSWER + 10].into_response();
            }
            assert!(q.contains_key("fmspc"));
            if f.mode != Mode::NoChain {
                headers.insert(
                    HeaderName::from_static("tcb-info-issuer-chain"),
                    encoded(&c.tcb_info_issuer_chain),
                );
            }
            signed("tcbInfo", &c.tcb_info, &c.tcb_info_signature)
        }
        "qe/identity" => {
            let Some(c) = pick(&tee) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            headers.insert(
                HeaderName::from_static("sgx-enclave-identity-issuer-chain"),
                encoded(&c.qe_identity_issuer_chain),
            );
            signed("enclaveIdentity", &c.qe_identity, &c.qe_identity_signature)
        }
        "rootcacrl" => {
            let c = pick("sgx").or_else(|| pick("tdx")).unwrap();
            hex::encode(&c.root_ca_crl).into_bytes()
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (headers, body).into_response()
}

/// A PCCS answer wrapping Intel's signed JSON: `{"<field>": <json>, "signature": "<hex>"}`.
fn signed(field: &str, json: &str, signature: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"{field}":{json},"signature":"{}"}}"#,
        hex::encode(signature)
    )
    .into_bytes()
}

/// Starts the fake PCCS for `collateral` (by TEE); its base URL and request counter.
pub async fn start(
    by_tee: HashMap<&'static str, Collateral>,
    mode: Mode,
) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let fake = Fake {
        by_tee: Arc::new(by_tee),
        mode,
        requests: requests.clone(),
    };
    let app = Router::new()
        .route("/{tee}/certification/v4/{*rest}", get(serve_pccs))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), requests)
}
