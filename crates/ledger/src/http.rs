//! The ledger over HTTP: [`router`] serves any [`Ledger`] under `/ledger/v1`, and
//! [`RemoteLedger`] is a [`Ledger`] that talks to such a server.
//!
//! Routes (binary bodies are `application/octet-stream`):
//!
//! - `POST /ledger/v1/append` (body = payload) → JSON [`Appended`];
//! - `GET /ledger/v1/entries?from=&max=&wait_ms=` → SCALE `Vec<LedgerEntry>` (`max` is capped at
//!   [`MAX_ENTRIES`], `wait_ms` at [`MAX_WAIT`]);
//! - `GET /ledger/v1/head` → JSON `{"seq": n}`;
//! - `PUT /ledger/v1/code` (body = wasm) → JSON `{"code_hash": "0x.."}`;
//! - `GET /ledger/v1/code/{hash}` → the blob, or 404;
//! - `PUT /ledger/v1/meta/{key}` (body = value) → 204; `GET /ledger/v1/meta/{key}` → the value,
//!   or 404; `POST /ledger/v1/meta/{key}` (body = value) writes only if absent → JSON
//!   `{"created": bool}`;
//! - `GET /ledger/v1/meta-keys?prefix=` → JSON `{"keys": [..]}`.
//!
//! Every route, reads included (the log holds sealed commands, code and cluster metadata),
//! requires `Authorization: Bearer <token>`, the cluster's ledger token: a [`LedgerToken`] of
//! 32 random bytes in hex, which `phat ledger` and `phat dev` keep in `<data>/ledger.token`
//! (created with mode 0600 by [`LedgerToken::load_or_create`]) and workers read with
//! [`LedgerToken::read`] (`phat worker --ledger-token-file`). The server compares it in constant
//! time; a missing or wrong token gets 401 with kind `unauthorized`, which [`RemoteLedger`]
//! reports as [`LedgerError::Unauthorized`]. There is no unauthenticated router.
//!
//! Errors carry JSON `{"error": {"kind": "...", "message": "..."}}` (plus `size` and `max` for
//! `too_large`) with status 413 (too large), 400 (bad request), 401 (missing or wrong token),
//! 404 (not found) or 503 (storage failure, closed, unavailable).

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parity_scale_codec::{Decode, Encode};
use phat_primitives::CodeHash;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{check_meta_key, Appended, Ledger, LedgerConfig, LedgerEntry, LedgerError, Seq};

/// The most entries one `entries` request returns.
pub const MAX_ENTRIES: usize = 4096;
/// The longest an `entries` request waits for a new entry.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Extra body bytes accepted over a ledger limit, so the ledger itself reports the exact size.
const BODY_SLACK: usize = 64 << 10;
/// How long [`RemoteLedger`] waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`RemoteLedger`] waits for any request but `read`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time [`RemoteLedger::read`] allows over the wait it asks the server for.
const READ_TIMEOUT_SLACK: Duration = Duration::from_secs(10);
/// The MIME type of binary bodies.
const OCTET_STREAM: &str = "application/octet-stream";

/// The file, in a ledger's data directory, holding its [`LedgerToken`].
pub const TOKEN_FILE: &str = "ledger.token";
/// Bytes of randomness in a new [`LedgerToken`].
const TOKEN_BYTES: usize = 32;

/// The per-cluster bearer token of the HTTP ledger (hex). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerToken(String);

impl std::fmt::Debug for LedgerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerToken(..)")
    }
}

impl LedgerToken {
    /// A new random token (32 bytes from the OS, hex).
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Self(hex::encode(bytes))
    }

    /// A token from its text (surrounding whitespace ignored); it must be non-empty, visible
    /// ASCII without spaces.
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let token = text.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(LedgerError::Protocol(
                "a ledger token must be non-empty visible ASCII".into(),
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// Reads the token in `path`.
    pub fn read(path: &FsPath) -> Result<Self, LedgerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            LedgerError::Io(format!("reading the ledger token {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| LedgerError::Protocol(format!("{}: {e}", path.display())))
    }

    /// Reads the token in `path`, or creates it there (mode 0600) when it does not exist.
    /// The file appears whole (written aside, then linked into place), and a file another
    /// process created meanwhile is never overwritten. Returns the token and whether it was
    /// created.
    pub fn load_or_create(path: &FsPath) -> Result<(Self, bool), LedgerError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => return Ok((Self::read(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(LedgerError::Io(format!(
                    "reading the ledger token {}: {e}",
                    path.display()
                )))
            }
        }
        let token = Self::generate();
        let text = format!("{}\n", token.0);
        match phat_secret_file::create_new(path, text.as_bytes()) {
            Ok(phat_secret_file::Created::New) => Ok((token, true)),
            Ok(phat_secret_file::Created::Existing) => Ok((Self::read(path)?, false)),
            Err(e) => Err(LedgerError::Io(format!(
                "creating the ledger token {}: {e}",
                path.display()
            ))),
        }
    }

    /// The token's text, as sent after `Bearer `.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Serves any ledger over HTTP under /ledger/v1 to clients presenting `token`.
///
/// Bodies are limited to the default [`LedgerConfig`] sizes; use [`router_with_config`] when the
/// ledger was opened with larger limits.
pub fn router(ledger: Arc<dyn Ledger>, token: LedgerToken) -> Router {
    router_with_config(ledger, &LedgerConfig::default(), token)
}

/// Serves any ledger over HTTP under /ledger/v1 to clients presenting `token`, sizing body
/// limits from `config`.
pub fn router_with_config(
    ledger: Arc<dyn Ledger>,
    config: &LedgerConfig,
    token: LedgerToken,
) -> Router {
    let state = ServerState {
        ledger,
        max_payload: config.max_payload,
        max_code: config.max_code,
    };
    let payload_limit = DefaultBodyLimit::max(config.max_payload.saturating_add(BODY_SLACK));
    let code_limit = DefaultBodyLimit::max(config.max_code.saturating_add(BODY_SLACK));
    Router::new()
        .route("/ledger/v1/append", post(append).layer(payload_limit))
        .route("/ledger/v1/entries", get(entries))
        .route("/ledger/v1/head", get(head))
        .route("/ledger/v1/code", put(put_code).layer(code_limit))
        .route("/ledger/v1/code/{hash}", get(get_code))
        .route(
            "/ledger/v1/meta/{key}",
            get(get_meta)
                .put(put_meta)
                .post(create_meta)
                .layer(payload_limit),
        )
        .route("/ledger/v1/meta-keys", get(meta_keys))
        .with_state(state)
        // On every route and the fallback: nothing is served to a caller without the token.
        .layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
}

/// Lets a request through only with `Authorization: Bearer <token>` (compared in constant
/// time); anything else gets 401.
async fn require_token(
    State(token): State<Arc<LedgerToken>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match presented {
        Some(t) if bool::from(t.as_bytes().ct_eq(token.as_str().as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::Unauthenticated("wrong ledger token".into()).into_response(),
        None => {
            ApiError::Unauthenticated("missing ledger token (Authorization: Bearer <token>)".into())
                .into_response()
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
struct ServerState {
    ledger: Arc<dyn Ledger>,
    max_payload: usize,
    max_code: usize,
}

/// The JSON error body.
#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

/// The inside of the JSON error body.
#[derive(Serialize, Deserialize)]
struct ErrorDetail {
    kind: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<usize>,
    /// The log's first seq, with kind `trimmed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<Seq>,
}

/// The `head` response.
#[derive(Serialize, Deserialize)]
struct HeadBody {
    seq: Seq,
}

/// The `put_code` response.
#[derive(Serialize, Deserialize)]
struct CodeBody {
    code_hash: CodeHash,
}

/// The `entries` query string.
#[derive(Deserialize)]
struct EntriesQuery {
    from: Seq,
    max: Option<usize>,
    wait_ms: Option<u64>,
}

/// A failed request, as the server reports it.
enum ApiError {
    /// The ledger failed.
    Ledger(LedgerError),
    /// The thing asked for does not exist.
    NotFound(String),
    /// The request carries no ledger token, or a wrong one.
    Unauthenticated(String),
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        ApiError::Ledger(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Ledger(e) => e.to_string(),
            ApiError::NotFound(m) | ApiError::Unauthenticated(m) => m.clone(),
        };
        let first = match &self {
            ApiError::Ledger(LedgerError::Trimmed { first }) => Some(*first),
            _ => None,
        };
        let (status, kind, size, max) = match self {
            ApiError::Ledger(LedgerError::Io(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "io", None, None)
            }
            ApiError::Ledger(LedgerError::Closed) => {
                (StatusCode::SERVICE_UNAVAILABLE, "closed", None, None)
            }
            ApiError::Ledger(LedgerError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None, None)
            }
            ApiError::Ledger(LedgerError::Unauthorized(_)) => {
                (StatusCode::FORBIDDEN, "unauthorized", None, None)
            }
            ApiError::Ledger(LedgerError::Protocol(_)) => {
                (StatusCode::BAD_REQUEST, "protocol", None, None)
            }
            ApiError::Ledger(LedgerError::TooLarge { size, max }) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                Some(size),
                Some(max),
            ),
            ApiError::Ledger(LedgerError::Trimmed { .. }) => {
                (StatusCode::GONE, "trimmed", None, None)
            }
            ApiError::Ledger(LedgerError::Unsupported(_)) => {
                (StatusCode::NOT_IMPLEMENTED, "unsupported", None, None)
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None, None),
        };
        let challenge = status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                kind: kind.to_owned(),
                message,
                size,
                max,
                first,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"phat-ledger\""),
            );
        }
        response
    }
}

/// Unwraps a request body, turning a body over the limit into [`LedgerError::TooLarge`].
fn take_body(
    body: Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    match body {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let size = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(max.saturating_add(BODY_SLACK).saturating_add(1));
            Err(LedgerError::TooLarge { size, max }.into())
        }
        Err(rejection) => Err(LedgerError::Protocol(rejection.body_text()).into()),
    }
}

/// A binary 200 response.
fn octets(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, OCTET_STREAM)], bytes).into_response()
}

/// `POST /ledger/v1/append`.
async fn append(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Appended>, ApiError> {
    let payload = take_body(body, &headers, s.max_payload)?;
    Ok(Json(s.ledger.append(payload).await?))
}

/// `GET /ledger/v1/entries`.
async fn entries(
    State(s): State<ServerState>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    let max = q.max.unwrap_or(MAX_ENTRIES).min(MAX_ENTRIES);
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let entries = s.ledger.read(q.from, max, wait).await?;
    Ok(octets(entries.encode()))
}

/// `GET /ledger/v1/head`.
async fn head(State(s): State<ServerState>) -> Result<Json<HeadBody>, ApiError> {
    Ok(Json(HeadBody {
        seq: s.ledger.head().await?,
    }))
}

/// `PUT /ledger/v1/code`.
async fn put_code(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CodeBody>, ApiError> {
    let wasm = take_body(body, &headers, s.max_code)?;
    Ok(Json(CodeBody {
        code_hash: s.ledger.put_code(wasm).await?,
    }))
}

/// `GET /ledger/v1/code/{hash}`.
async fn get_code(
    State(s): State<ServerState>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(hash) = hash.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    let hash: CodeHash = hash
        .parse()
        .map_err(|e| LedgerError::Protocol(format!("bad code hash: {e}")))?;
    match s.ledger.get_code(&hash).await? {
        Some(wasm) => Ok(octets(wasm)),
        None => Err(ApiError::NotFound(format!("no code {hash}"))),
    }
}

/// `PUT /ledger/v1/meta/{key}`.
async fn put_meta(
    State(s): State<ServerState>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(key) = key.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    let value = take_body(body, &headers, s.max_payload)?;
    s.ledger.put_meta(&key, value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of `POST /ledger/v1/meta/{key}`.
#[derive(Serialize, Deserialize)]
struct Created {
    created: bool,
}

/// Answer of `GET /ledger/v1/meta-keys`.
#[derive(Serialize, Deserialize)]
struct Keys {
    keys: Vec<String>,
}

/// Query of `GET /ledger/v1/meta-keys`.
#[derive(Deserialize)]
struct Prefix {
    #[serde(default)]
    prefix: String,
}

/// `POST /ledger/v1/meta/{key}`.
async fn create_meta(
    State(s): State<ServerState>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Created>, ApiError> {
    let Path(key) = key.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    let value = take_body(body, &headers, s.max_payload)?;
    let created = s.ledger.create_meta(&key, value).await?;
    Ok(Json(Created { created }))
}

/// `GET /ledger/v1/meta-keys?prefix=`.
async fn meta_keys(
    State(s): State<ServerState>,
    q: Result<Query<Prefix>, QueryRejection>,
) -> Result<Json<Keys>, ApiError> {
    let Query(q) = q.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    Ok(Json(Keys {
        keys: s.ledger.meta_keys(&q.prefix).await?,
    }))
}

/// `GET /ledger/v1/meta/{key}`.
async fn get_meta(
    State(s): State<ServerState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|r| LedgerError::Protocol(r.body_text()))?;
    match s.ledger.get_meta(&key).await? {
        Some(value) => Ok(octets(value)),
        None => Err(ApiError::NotFound(format!("no metadata key {key:?}"))),
    }
}

/// A ledger in another process, reached over HTTP.
#[derive(Clone, Debug)]
pub struct RemoteLedger {
    client: reqwest::Client,
    base: reqwest::Url,
}

/// Maps a transport failure: anything but a malformed request or response means the ledger
/// could not be reached in time.
fn transport_error(e: reqwest::Error) -> LedgerError {
    if e.is_builder() || e.is_decode() {
        LedgerError::Protocol(e.to_string())
    } else {
        LedgerError::Unavailable(e.to_string())
    }
}

/// What a response turned out to be.
enum Reply {
    /// A 2xx body.
    Ok(Bytes),
    /// A 404 for something that does not exist.
    NotFound,
}

impl RemoteLedger {
    /// A client for the ledger served at `base_url` (e.g. `http://127.0.0.1:7000`) that sends
    /// `token` with every request.
    pub fn with_token(base_url: &str, token: &LedgerToken) -> Result<Self, LedgerError> {
        Self::build(base_url, Some(token))
    }

    /// A client that sends no token: every request to a [`router`] gets
    /// [`LedgerError::Unauthorized`]. Use [`RemoteLedger::with_token`].
    pub fn new(base_url: &str) -> Result<Self, LedgerError> {
        Self::build(base_url, None)
    }

    fn build(base_url: &str, token: Option<&LedgerToken>) -> Result<Self, LedgerError> {
        let base = reqwest::Url::parse(base_url)
            .map_err(|e| LedgerError::Protocol(format!("bad ledger url {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(LedgerError::Protocol(format!(
                "bad ledger url {base_url:?}: expected http(s)://host:port"
            )));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
                .map_err(|e| LedgerError::Protocol(format!("bad ledger token: {e}")))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .default_headers(headers)
            .no_proxy()
            .build()
            .map_err(|e| LedgerError::Io(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { client, base })
    }

    /// The URL of `/ledger/v1/<segments>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, LedgerError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| LedgerError::Protocol("ledger url cannot be a base".into()))?
            .pop_if_empty()
            .extend(["ledger", "v1"])
            .extend(segments);
        Ok(url)
    }

    /// Sends a request and sorts its response into a body, a 404 or an error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, LedgerError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return Ok(Reply::Ok(body));
        }
        let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&body) else {
            let text = String::from_utf8_lossy(&body);
            let message = format!("HTTP {status}: {text}");
            return Err(if status.is_server_error() {
                LedgerError::Unavailable(message)
            } else {
                LedgerError::Protocol(message)
            });
        };
        Err(match error.kind.as_str() {
            "not_found" if status == StatusCode::NOT_FOUND => return Ok(Reply::NotFound),
            "too_large" => LedgerError::TooLarge {
                size: error.size.unwrap_or(0),
                max: error.max.unwrap_or(0),
            },
            "io" => LedgerError::Io(error.message),
            "closed" => LedgerError::Closed,
            "trimmed" => LedgerError::Trimmed {
                first: error.first.unwrap_or(0),
            },
            "unavailable" => LedgerError::Unavailable(error.message),
            "unauthorized" => LedgerError::Unauthorized(error.message),
            _ => LedgerError::Protocol(error.message),
        })
    }

    /// Sends a request that must succeed with a body.
    async fn send_ok(&self, request: reqwest::RequestBuilder) -> Result<Bytes, LedgerError> {
        match self.send(request).await? {
            Reply::Ok(body) => Ok(body),
            Reply::NotFound => Err(LedgerError::Protocol("unexpected 404".into())),
        }
    }

    /// Sends a request whose 404 means "none".
    async fn send_optional(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        match self.send(request).await? {
            Reply::Ok(body) => Ok(Some(body.to_vec())),
            Reply::NotFound => Ok(None),
        }
    }
}

/// Parses a JSON response body.
fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, LedgerError> {
    serde_json::from_slice(body).map_err(|e| LedgerError::Protocol(format!("bad response: {e}")))
}

#[async_trait::async_trait]
impl Ledger for RemoteLedger {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        let request = self
            .client
            .post(self.url(&["append"])?)
            .timeout(REQUEST_TIMEOUT)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(payload);
        json(&self.send_ok(request).await?)
    }

    async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(MAX_ENTRIES);
        let wait = wait.min(MAX_WAIT);
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let request = self
            .client
            .get(self.url(&["entries"])?)
            .query(&[("from", from), ("max", max as u64), ("wait_ms", wait_ms)])
            .timeout(wait + READ_TIMEOUT_SLACK);
        let body = self.send_ok(request).await?;
        let entries = Vec::<LedgerEntry>::decode(&mut &body[..])
            .map_err(|e| LedgerError::Protocol(format!("bad entries: {e}")))?;
        let in_order = entries.windows(2).all(|w| w[0].seq < w[1].seq);
        if entries.len() > max || !in_order || entries.first().is_some_and(|e| e.seq < from) {
            return Err(LedgerError::Protocol(
                "entries out of the requested range".into(),
            ));
        }
        Ok(entries)
    }

    async fn head(&self) -> Result<Seq, LedgerError> {
        let request = self
            .client
            .get(self.url(&["head"])?)
            .timeout(REQUEST_TIMEOUT);
        let body: HeadBody = json(&self.send_ok(request).await?)?;
        Ok(body.seq)
    }

    async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        let expected = CodeHash::of(&wasm);
        let request = self
            .client
            .put(self.url(&["code"])?)
            .timeout(REQUEST_TIMEOUT)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(wasm);
        let body: CodeBody = json(&self.send_ok(request).await?)?;
        if body.code_hash != expected {
            return Err(LedgerError::Protocol(format!(
                "server stored code as {}, expected {expected}",
                body.code_hash
            )));
        }
        Ok(body.code_hash)
    }

    async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        let request = self
            .client
            .get(self.url(&["code", &hash.to_hex()])?)
            .timeout(REQUEST_TIMEOUT);
        let code = self.send_optional(request).await?;
        if code.as_deref().is_some_and(|c| CodeHash::of(c) != *hash) {
            return Err(LedgerError::Protocol(format!(
                "server returned code not matching {hash}"
            )));
        }
        Ok(code)
    }

    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        check_meta_key(key)?;
        let request = self
            .client
            .put(self.url(&["meta", key])?)
            .timeout(REQUEST_TIMEOUT)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(value);
        self.send_ok(request).await.map(|_| ())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        check_meta_key(key)?;
        let request = self
            .client
            .get(self.url(&["meta", key])?)
            .timeout(REQUEST_TIMEOUT);
        self.send_optional(request).await
    }

    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        check_meta_key(key)?;
        let request = self
            .client
            .post(self.url(&["meta", key])?)
            .timeout(REQUEST_TIMEOUT)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(value);
        let body: Created = json(&self.send_ok(request).await?)?;
        Ok(body.created)
    }

    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let mut url = self.url(&["meta-keys"])?;
        url.query_pairs_mut().append_pair("prefix", prefix);
        let request = self.client.get(url).timeout(REQUEST_TIMEOUT);
        let body: Keys = json(&self.send_ok(request).await?)?;
        Ok(body.keys)
    }
}
