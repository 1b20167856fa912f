//! The `phat dev` endpoint: one address in front of the cluster (it lives next to `phat dev`,
//! its only user). It spreads requests over the
//! workers round-robin (skipping ones that do not answer) and streams answers back unchanged;
//! commands reach the ledger through whichever worker takes them, after that worker has
//! checked them.
//!
//! Encrypted queries are sealed to one worker's identity key, so they must reach that worker
//! on the first try. The gateway keeps every worker's key (learnt from `/v1/info`):
//! - [`Gateway::learn_keys`] asks every worker at once; `phat dev` calls it once the workers are
//!   up, before it prints the endpoint;
//! - a query sealed to a key the gateway does not know refreshes all keys (one refresh at a
//!   time: concurrent misses wait for the refresh under way instead of starting their own);
//! - a worker that answers `wrong_worker` (it restarted with a new key) makes the gateway
//!   refresh and send the query where the key now lives;
//! - a query for a key no worker has is refused with `unknown_worker`, never sent to a worker
//!   chosen at random;
//! - while the worker a query belongs to is restarting (connection refused), the gateway
//!   retries it for up to [`WORKER_RESTART_WAIT`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;
use phat_client::primitives::protocol::DIVERGED_HEADER;
use phat_primitives::Refusal;

/// How long a sealed query waits for its worker to come back when the connection is refused.
pub const WORKER_RESTART_WAIT: Duration = Duration::from_secs(10);

/// How long `/v1/cluster` reuses the workers' status it took.
const STATUS_MAX_AGE: Duration = Duration::from_millis(500);

/// Shortest interval between two key refreshes caused by unknown keys (a stranger sending
/// queries sealed to made-up keys costs the workers at most this many `/v1/info` calls).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// Proxy state: the workers' base URLs and identity keys.
#[derive(Clone)]
pub struct Gateway {
    workers: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    client: reqwest::Client,
    max_body: usize,
    keys: Arc<parking_lot::RwLock<Keys>>,
    /// Held while a refresh runs, so that concurrent misses share one refresh.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// The workers' status as `/v1/cluster` last showed it, and when it was taken; held while
    /// a new one is taken, so that concurrent callers share it.
    status: Arc<tokio::sync::Mutex<Option<Status>>>,
    /// Web origins allowed besides loopback ones (`phat dev --cors-origin`).
    cors_origins: Arc<Vec<String>>,
}

/// What the gateway knows of the workers' keys.
struct Keys {
    /// Each worker's identity key (lowercase `0x` hex), when known.
    by_worker: Vec<Option<String>>,
    /// When the last refresh started.
    refreshed: Option<Instant>,
}

/// The workers' status (one JSON object per worker) and when it was taken.
type Status = (Instant, Vec<serde_json::Value>);

/// Where a sealed query must go.
enum Route {
    /// The worker with this index holds the key.
    Worker(usize),
    /// No worker holds the key (after a refresh).
    Unknown,
}

impl Gateway {
    /// A gateway over workers at `workers` (base URLs such as `http://127.0.0.1:8702`).
    pub fn new(workers: Vec<String>, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            keys: Arc::new(parking_lot::RwLock::new(Keys {
                by_worker: vec![None; workers.len()],
                refreshed: None,
            })),
            refreshing: Arc::default(),
            status: Arc::default(),
            cors_origins: Arc::default(),
            workers: Arc::new(workers),
            next: Arc::new(AtomicUsize::new(0)),
            client,
            max_body,
        }
    }

    /// Lets pages of `origins` (`https://app.example`, `*` for any) call the endpoint from a
    /// browser, besides pages on loopback origins.
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = Arc::new(origins);
        self
    }

    /// The HTTP router: `/v1/cluster` lists the workers and their status, `/console` is the
    /// web console; everything else is forwarded. The endpoint answers cross-origin requests
    /// itself (workers never see the `Origin` header, so their answers carry no CORS headers).
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/cluster", get(cluster))
            .fallback(forward)
            .layer(phat_worker::cors(&self.cors_origins))
            .merge(phat_console::router())
            .layer(axum::middleware::from_fn(loopback_host_only))
            .with_state(self)
    }

    /// Every worker's status from its `/v1/info` (asked all at once): whether it answers (an
    /// error status counts as not answering), its name, key, applied seq, ledger head, state
    /// root and divergence (`revoked` for a revoked worker). Taken at most once per
    /// [`STATUS_MAX_AGE`], however many callers ask, so that `/v1/cluster` cannot be used to
    /// flood the workers.
    async fn status(&self) -> Vec<serde_json::Value> {
        let mut cached = self.status.lock().await;
        if let Some((at, members)) = &*cached {
            if at.elapsed() < STATUS_MAX_AGE {
                return members.clone();
            }
        }
        let asks = self.workers.iter().map(|base| async move {
            let answer = async {
                let resp = self
                    .client
                    .get(format!("{base}/v1/info"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .map_err(|e| short_error(&e))?;
                if !resp.status().is_success() {
                    return Err(format!("answered {}", resp.status()));
                }
                // A revoked worker still answers its info, marked (its keys are not the
                // cluster's any more).
                let revoked = resp.headers().contains_key(DIVERGED_HEADER);
                let info = resp
                    .json::<serde_json::Value>()
                    .await
                    .map_err(|e| short_error(&e))?;
                Ok((info, revoked))
            };
            match answer.await {
                Ok((info, revoked)) => serde_json::json!({
                    "url": base,
                    "up": true,
                    "name": info["name"],
                    "worker_key": info["worker_key"],
                    "seq": info["seq"],
                    "ledger_head": info["ledger_head"],
                    "state_root": info["state_root"],
                    "diverged": match (&info["diverged"], revoked) {
                        (serde_json::Value::Null, true) => "revoked".into(),
                        (d, _) => d.clone(),
                    },
                }),
                Err(error) => serde_json::json!({ "url": base, "up": false, "error": error }),
            }
        });
        let members = futures::future::join_all(asks).await;
        *cached = Some((Instant::now(), members.clone()));
        members
    }

    /// Asks every worker for its identity key (all at once) and returns how many answered.
    /// Workers that do not answer keep the key last learnt from them.
    pub async fn learn_keys(&self) -> usize {
        let _one_at_a_time = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    /// The refresh itself; the caller holds `refreshing`.
    async fn refresh_locked(&self) -> usize {
        self.keys.write().refreshed = Some(Instant::now());
        let asks = self.workers.iter().map(|base| async move {
            let resp = self
                .client
                .get(format!("{base}/v1/info"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?;
            let info = resp.json::<serde_json::Value>().await.ok()?;
            info["worker_key"].as_str().map(str::to_lowercase)
        });
        let found = futures::future::join_all(asks).await;
        let mut keys = self.keys.write();
        let mut answered = 0;
        for (slot, key) in keys.by_worker.iter_mut().zip(found) {
            if let Some(k) = key {
                answered += 1;
                *slot = Some(k);
            }
        }
        answered
    }

    fn lookup(&self, key: &str) -> Option<usize> {
        self.keys
            .read()
            .by_worker
            .iter()
            .position(|k| k.as_deref() == Some(key))
    }

    /// The worker holding `key`, refreshing the keys when it is not known. With `force`, a
    /// refresh runs even if the key is known (its worker said it no longer has it).
    async fn route(&self, key: &str, force: bool) -> Route {
        if !force {
            if let Some(i) = self.lookup(key) {
                return Route::Worker(i);
            }
        }
        let missed = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        let last = self.keys.read().refreshed;
        // A refresh that started after the miss has already seen the workers' current keys.
        let fresh = last.is_some_and(|t| t >= missed);
        let too_soon = last.is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL);
        if !fresh && (force || !too_soon) {
            self.refresh_locked().await;
        }
        match self.lookup(key) {
            Some(i) => Route::Worker(i),
            None => Route::Unknown,
        }
    }

    /// Sends the request to `base` and returns the worker's response.
    async fn send(
        &self,
        base: &str,
        parts: &axum::http::request::Parts,
        path: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut rb = self
            .client
            .request(parts.method.clone(), format!("{base}{path}"))
            .body(body);
        for (name, value) in &parts.headers {
            // The body's type and phat's own headers (signed uploads); nothing hop-by-hop.
            if name == axum::http::header::CONTENT_TYPE || name.as_str().starts_with("x-phat-") {
                rb = rb.header(name.clone(), value.clone());
            }
        }
        rb.send().await
    }

    /// A sealed query: to the worker holding its key, and only there.
    async fn forward_sealed(
        &self,
        key: &str,
        parts: &axum::http::request::Parts,
        path: &str,
        body: Bytes,
    ) -> Response {
        let mut force = false;
        let deadline = Instant::now() + WORKER_RESTART_WAIT;
        let mut backoff = Duration::from_millis(50);
        loop {
            let i = match self.route(key, force).await {
                Route::Worker(i) => i,
                Route::Unknown => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "unknown_worker",
                        format!(
                            "no worker of this cluster has the key {key}; ask /v1/info for a \
                             worker's key and open a new session"
                        ),
                    )
                }
            };
            let base = &self.workers[i];
            match self.send(base, parts, path, body.clone()).await {
                Ok(resp) if resp.status() == StatusCode::BAD_REQUEST && !force => {
                    // Small JSON error bodies only: read it to see whether the worker's key
                    // changed under us.
                    let status = resp.status();
                    let kept = kept_headers(resp.headers());
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let wrong = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .is_some_and(|v| v["error"]["kind"] == Refusal::WrongWorker.kind());
                    if wrong {
                        force = true;
                        continue;
                    }
                    return buffered(status, kept, bytes, base);
                }
                Ok(resp) => return streamed(resp, base),
                // Refused, or a pooled connection to a process that died: the query did not
                // run (a restarted worker has no session; the client opens a new one).
                Err(e) if (e.is_connect() || e.is_request()) && Instant::now() < deadline => {
                    // The worker is (re)starting: its key survives restarts (sealed on disk).
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        "worker_failed",
                        format!("{base}: {e}"),
                    )
                }
            }
        }
    }
}

async fn cluster(State(g): State<Gateway>) -> Json<serde_json::Value> {
    let members = g.status().await;
    let keys = g.keys.read().by_worker.clone();
    Json(serde_json::json!({ "workers": *g.workers, "worker_keys": keys, "members": members }))
}

/// The endpoint listens on 127.0.0.1: a request naming another host reached it through a
/// name rebound to this machine (DNS rebinding: a site the user visits turning itself into a
/// same-origin page of the cluster), and is refused.
async fn loopback_host_only(req: Request, next: axum::middleware::Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    if !phat_worker::is_loopback_origin(&format!("http://{host}")) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            format!("this endpoint answers for 127.0.0.1 and localhost only, not `{host}`"),
        );
    }
    next.run(req).await
}

/// Why a worker did not answer, in a few words (reqwest's full chain names the URL again).
fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else if e.is_decode() {
        "answered something that is not JSON".into()
    } else {
        e.to_string()
    }
}

async fn forward(State(g): State<Gateway>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, g.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::TooLarge.kind(),
                format!("request body over {} bytes", g.max_body),
            )
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    // Session messages go to the worker that holds the session.
    if matches!(
        parts.uri.path(),
        "/v1/query/sealed" | "/v1/commands/session"
    ) {
        let key = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["worker"].as_str().map(str::to_lowercase));
        if let Some(key) = key {
            return g.forward_sealed(&key, &parts, &path, body).await;
        }
        // Malformed: any worker explains what is wrong with it.
    }
    let n = g.workers.len();
    let start = g.next.fetch_add(1, Ordering::Relaxed);
    let mut last_err = String::from("no workers");
    for i in 0..n {
        let base = &g.workers[(start + i) % n];
        match g.send(base, &parts, &path, body.clone()).await {
            // A diverged worker refused it unread: the next one answers instead.
            Ok(resp) if i + 1 < n && resp.headers().contains_key(DIVERGED_HEADER) => {
                last_err = format!("{base}: diverged");
            }
            Ok(resp) => return streamed(resp, base),
            Err(e) if e.is_connect() => last_err = format!("{base}: {e}"),
            // A pooled connection to a worker that died: reads may go to the next one.
            Err(e) if e.is_request() && parts.method == axum::http::Method::GET => {
                last_err = format!("{base}: {e}")
            }
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

/// The worker's answer, streamed back as it comes (log streams are long-lived).
fn streamed(resp: reqwest::Response, base: &str) -> Response {
    let status = resp.status();
    let kept = kept_headers(resp.headers());
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    with_headers(Response::new(Body::from_stream(stream)), status, kept, base)
}

/// An answer already read in full.
fn buffered(
    status: StatusCode,
    kept: Vec<(String, Vec<u8>)>,
    bytes: Bytes,
    base: &str,
) -> Response {
    with_headers(Response::new(Body::from(bytes)), status, kept, base)
}

/// The headers of a worker's answer the endpoint passes on: the body's type and when to retry
/// (nothing hop-by-hop, and no CORS headers: the endpoint answers those itself).
fn kept_headers(h: &reqwest::header::HeaderMap) -> Vec<(String, Vec<u8>)> {
    ["content-type", "retry-after", "x-phat-retry-after-ms"]
        .iter()
        .filter_map(|name| {
            h.get(*name)
                .map(|v| (name.to_string(), v.as_bytes().to_vec()))
        })
        .collect()
}

fn with_headers(
    mut out: Response,
    status: StatusCode,
    kept: Vec<(String, Vec<u8>)>,
    base: &str,
) -> Response {
    *out.status_mut() = status;
    for (name, value) in kept {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            HeaderValue::from_bytes(&value),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out.headers_mut().insert(
        "x-phat-worker",
        HeaderValue::from_str(base).unwrap_or(HeaderValue::from_static("?")),
    );
    out
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"kind": kind, "message": message}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed unwrap is a failed test"
    )]
    use super::*;

    /// Serves `app` on 127.0.0.1; returns its base URL.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn requests_go_around_a_diverged_worker() {
        let diverged = serve(Router::new().fallback(|| async {
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, "diverged").into_response();
            r.headers_mut()
                .insert(DIVERGED_HEADER, axum::http::HeaderValue::from_static("1"));
            r
        }))
        .await;
        let healthy = serve(Router::new().fallback(|| async { "healthy" })).await;
        let gateway = serve(Gateway::new(vec![diverged.clone(), healthy], 1 << 20).router()).await;
        // Round-robin starts at each worker in turn: every request reaches the healthy one.
        for _ in 0..4 {
            let r = reqwest::get(format!("{gateway}/v1/contracts/0x00"))
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "healthy");
        }
        // With only diverged workers, their 503 comes back.
        let alone = serve(Gateway::new(vec![diverged], 1 << 20).router()).await;
        let r = reqwest::get(format!("{alone}/v1/contracts/0x00"))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }

    #[tokio::test]
    async fn cluster_status_is_per_worker_and_asked_at_most_twice_a_second() {
        let asked = Arc::new(AtomicUsize::new(0));
        let worker = serve(Router::new().route(
            "/v1/info",
            get({
                let asked = asked.clone();
                move || async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    Json(serde_json::json!({
                        "name": "worker-0", "worker_key": "0xaa", "seq": 7,
                        "ledger_head": 8, "state_root": "0xbb", "diverged": null
                    }))
                }
            }),
        ))
        .await;
        // Nothing listens there.
        let down = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        // One that refuses, and one revoked (its info marked, `diverged` null).
        let refusing = serve(Router::new().fallback(|| async {
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(serde_json::json!({"seq": 1})),
            )
        }))
        .await;
        let revoked = serve(Router::new().fallback(|| async {
            let mut r = Json(serde_json::json!({"seq": 3, "diverged": null})).into_response();
            r.headers_mut()
                .insert(DIVERGED_HEADER, HeaderValue::from_static("1"));
            r
        }))
        .await;
        let all = vec![worker.clone(), down.clone(), refusing, revoked];
        let gateway = serve(Gateway::new(all, 1 << 20).router()).await;
        // 40 concurrent callers share one round of asks.
        let calls = (0..40).map(|_| async {
            reqwest::get(format!("{gateway}/v1/cluster"))
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        });
        let answers = futures::future::join_all(calls).await;
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one ask for 40 callers");
        let members = answers[0]["members"].as_array().unwrap();
        assert_eq!(members[0]["url"], worker);
        assert_eq!(members[0]["up"], true);
        assert_eq!(members[0]["seq"], 7);
        assert_eq!(members[0]["ledger_head"], 8);
        assert_eq!(members[0]["state_root"], "0xbb");
        assert_eq!(members[1]["url"], down);
        assert_eq!(members[1]["up"], false);
        assert_eq!(members[1]["error"], "connection refused");
        assert_eq!(members[2]["up"], false);
        assert_eq!(members[2]["error"], "answered 429 Too Many Requests");
        assert_eq!(members[3]["up"], true);
        assert_eq!(members[3]["diverged"], "revoked");
        // After the cache ages out, the next caller asks again.
        tokio::time::sleep(STATUS_MAX_AGE + Duration::from_millis(50)).await;
        reqwest::get(format!("{gateway}/v1/cluster")).await.unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn cross_origin_requests_get_one_set_of_cors_headers_and_retry_hints_pass() {
        // A worker that refuses with retry hints, and (as a real one would for a request with
        // an Origin) its own CORS header, which must not reach the browser twice.
        let worker = serve(Router::new().fallback(|| async {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            let h = r.headers_mut();
            h.insert("retry-after", HeaderValue::from_static("2"));
            h.insert("x-phat-retry-after-ms", HeaderValue::from_static("1500"));
            h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
            r
        }))
        .await;
        let gateway = serve(Gateway::new(vec![worker], 1 << 20).router()).await;
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{gateway}/v1/info"))
            .header("origin", "http://127.0.0.1:5173")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(r.headers()["x-phat-retry-after-ms"], "1500");
        let allow: Vec<_> = r
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .collect();
        assert_eq!(allow, ["http://127.0.0.1:5173"]);
        let expose = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(expose.contains("x-phat-retry-after-ms"), "{expose}");
        // A preflight is answered by the endpoint itself.
        let pre = http
            .request(
                reqwest::Method::OPTIONS,
                format!("{gateway}/v1/commands/sealed"),
            )
            .header("origin", "http://127.0.0.1:5173")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(pre.status().is_success(), "{}", pre.status());
        assert_eq!(
            pre.headers()["access-control-allow-origin"],
            "http://127.0.0.1:5173"
        );
        assert!(pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        // The console is the endpoint's own.
        let page = http
            .get(format!("{gateway}/console/"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("console.js"));
    }

    #[tokio::test]
    async fn other_sites_and_rebound_names_are_refused() {
        let worker = serve(Router::new().fallback(|| async { "answer" })).await;
        let gateway = serve(
            Gateway::new(vec![worker], 1 << 20)
                .cors_origins(vec!["https://app.example".into()])
                .router(),
        )
        .await;
        let http = reqwest::Client::new();
        let allowed = |origin: &'static str| {
            let (http, gateway) = (&http, &gateway);
            async move {
                let r = http
                    .request(reqwest::Method::OPTIONS, format!("{gateway}/v1/query"))
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .send()
                    .await
                    .unwrap();
                r.headers().get("access-control-allow-origin").cloned()
            }
        };
        // A page on this machine and the allowed site may; a site the user visits may not.
        assert!(allowed("http://localhost:5173").await.is_some());
        assert!(allowed("http://[::1]:8080").await.is_some());
        assert!(allowed("https://app.example").await.is_some());
        assert!(allowed("https://evil.example").await.is_none());
        assert!(allowed("http://127.0.0.1.evil.example").await.is_none());
        // A name rebound to 127.0.0.1 is not this endpoint's.
        let r = http
            .get(format!("{gateway}/v1/info"))
            .header("host", "evil.example:8700")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
        let r = http.get(format!("{gateway}/v1/info")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "answer");
    }
}
