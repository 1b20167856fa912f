//! The `phat dev` endpoint: one address in front of the cluster. It spreads requests over the
//! workers round-robin (skipping ones that do not answer) and streams answers back unchanged;
//! commands reach the ledger through whichever worker takes them, after that worker has
//! checked them. Encrypted queries are for one worker's key: they go to the worker whose
//! `/v1/info` shows that key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;

/// Proxy state: the workers' base URLs.
#[derive(Clone)]
pub struct Gateway {
    workers: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    client: reqwest::Client,
    max_body: usize,
    /// Each worker's identity key (`0x` hex), learnt from its `/v1/info`.
    keys: Arc<parking_lot::Mutex<Vec<Option<String>>>>,
    /// When the keys were last asked for (at most once a second, whatever clients send).
    refreshed: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
}

impl Gateway {
    /// A gateway over workers at `workers` (base URLs such as `http://127.0.0.1:8702`).
    pub fn new(workers: Vec<String>, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            keys: Arc::new(parking_lot::Mutex::new(vec![None; workers.len()])),
            refreshed: Arc::default(),
            workers: Arc::new(workers),
            next: Arc::new(AtomicUsize::new(0)),
            client,
            max_body,
        }
    }

    /// The HTTP router: `/v1/cluster` lists the workers; everything else is forwarded.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/cluster", get(cluster))
            .fallback(forward)
            .with_state(self)
    }
}

async fn cluster(State(g): State<Gateway>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "workers": *g.workers }))
}

impl Gateway {
    /// The index of the worker whose identity key is `key`, asking workers whose key is not
    /// known yet (or changed) for their info.
    async fn worker_with_key(&self, key: &str) -> Option<usize> {
        if let Some(i) = self
            .keys
            .lock()
            .iter()
            .position(|k| k.as_deref() == Some(key))
        {
            return Some(i);
        }
        {
            let mut last = self.refreshed.lock();
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return None;
            }
            *last = Some(std::time::Instant::now());
        }
        for (i, base) in self.workers.iter().enumerate() {
            let info = self
                .client
                .get(format!("{base}/v1/info"))
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await;
            let Ok(info) = info else { continue };
            let Ok(info) = info.json::<serde_json::Value>().await else {
                continue;
            };
            let k = info["worker_key"].as_str().map(str::to_owned);
            let found = k.as_deref() == Some(key);
            self.keys.lock()[i] = k;
            if found {
                return Some(i);
            }
        }
        None
    }
}

async fn forward(State(g): State<Gateway>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, g.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {} bytes", g.max_body),
            )
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut n = g.workers.len();
    let mut start = g.next.fetch_add(1, Ordering::Relaxed);
    if parts.uri.path() == "/v1/query/sealed" {
        let key = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["worker"].as_str().map(str::to_lowercase));
        if let Some(i) = match key {
            Some(k) => g.worker_with_key(&k).await,
            None => None,
        } {
            // Only that worker can open the query.
            start = i;
            n = 1;
        }
    }
    let mut last_err = String::from("no workers");
    for i in 0..n {
        let base = &g.workers[(start + i) % g.workers.len()];
        let mut rb = g
            .client
            .request(parts.method.clone(), format!("{base}{path}"))
            .body(body.clone());
        if let Some(ct) = parts.headers.get(axum::http::header::CONTENT_TYPE) {
            rb = rb.header(axum::http::header::CONTENT_TYPE, ct.clone());
        }
        match rb.send().await {
            Ok(resp) => {
                let status = resp.status();
                let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
                let stream = resp.bytes_stream().map_err(std::io::Error::other);
                let mut out = Response::new(Body::from_stream(stream));
                *out.status_mut() = status;
                if let Some(ct) = ct.and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok()) {
                    out.headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, ct);
                }
                out.headers_mut().insert(
                    "x-phat-worker",
                    HeaderValue::from_str(base).unwrap_or(HeaderValue::from_static("?")),
                );
                return out;
            }
            Err(e) if e.is_connect() => last_err = format!("{base}: {e}"),
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    "worker_failed",
                    format!("{base}: {e}"),
                )
            }
        }
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_worker",
        format!("no worker answered ({last_err})"),
    )
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"kind": kind, "message": message}})),
    )
        .into_response()
}
