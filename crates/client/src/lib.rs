//! phat-client: talk to a phat cluster from Rust.
//!
//! [`Client`] signs requests with a [`Signer`] (sr25519, `//Alice`-style dev seeds), sends
//! them to a worker or the `phat dev` endpoint and decodes the answers. Before sending
//! anything it checks the worker's attestation report against what the client pins (a dev
//! attestation root, a measurement), never against the signer the report names for itself
//! except on loopback endpoints, where `phat dev` runs; and it refuses a cluster that does not
//! encrypt unless told to [`Client::allow_unencrypted`]. Then commands are sealed to the
//! cluster key and queries run in an encrypted session with the worker (one key exchange and
//! one signature per session, AEAD-only afterwards), transparently. [`Contract`] reads a
//! contract's ink! metadata (a `.contract` bundle or a metadata JSON) and encodes arguments
//! given as text (`true`, `42`, `5GrwvaEF…` or `0x…` account ids) and decodes results and events.
//!
//! ```no_run
//! # async fn f() -> Result<(), phat_client::ClientError> {
//! use phat_client::{Client, Contract, Signer};
//! let client = Client::new("http://127.0.0.1:8700")?;
//! let alice = Signer::from_suri("//Alice")?;
//! let erc20 = Contract::load("target/ink/erc20.contract")?;
//! let data = erc20.encode_message("total_supply", &[] as &[&str])?;
//! # let id = Default::default();
//! let answer = client.query(&alice, phat_client::call(id, data), None).await?;
//! # Ok(()) }
//! ```

mod contract;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parity_scale_codec::{DecodeAll, Encode};
use phat_crypto::attest::is_insecure;
use phat_crypto::{AttestationPolicy, Purpose, SessionKeys};
use phat_primitives::protocol::{
    CallResult, LedgerCommand, QueryOpen, SealedAnswer, SealedQuery, SealedReply, SessionQuery,
};
use phat_primitives::Hash;

use futures::{Stream, StreamExt};
use phat_primitives::protocol::{
    ApiError, Bytes, Call, CodeUploaded, ContractView, LogEntry, QueryRequest, QueryResponse,
    Receipt, RequestBody, Seq, SignedRequest, Submitted, WorkerInfo,
};
use phat_primitives::{AccountId, CodeHash, Gas, Mode};

pub use contract::{Contract, MessageKind};
pub use phat_crypto as crypto;
pub use phat_crypto::Signer;
pub use phat_primitives as primitives;

/// Gas limit used when the caller does not give one.
pub const DEFAULT_GAS_LIMIT: Gas = 5_000_000_000;

/// How long a request the client signs stays valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint could not be reached or the connection failed.
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        message: String,
    },
    /// The worker answered with an error.
    #[error("{kind} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error name (`bad_signature`, `unknown_contract`, ...).
        kind: String,
        /// Detail.
        message: String,
    },
    /// The worker's answer could not be decoded.
    #[error("unexpected answer from the worker: {0}")]
    Decode(String),
    /// A secret URI or key was invalid.
    #[error(transparent)]
    Key(#[from] phat_crypto::CryptoError),
    /// Metadata could not be read or an argument could not be encoded/decoded.
    #[error("{0}")]
    Metadata(String),
    /// A bad argument to a client call.
    #[error("{0}")]
    Invalid(String),
    /// The worker's attestation report was refused, or its keys do not match it.
    #[error("the worker is not trusted: {0}")]
    Untrusted(String),
    /// A non-loopback worker presents a `dev` report and no dev root is pinned to check it by.
    #[error(
        "the worker is not trusted: {endpoint} presents a `dev` attestation report signed by a \
         key it names itself, and no dev root is pinned for this non-loopback endpoint (a \
         measurement pin cannot vouch for a dev report); pin the cluster's dev root with \
         --dev-root or PHAT_DEV_ROOT (Client::pin_dev_root)"
    )]
    Unpinned {
        /// The endpoint.
        endpoint: String,
    },
    /// The cluster does not encrypt and the client was not told to accept that.
    #[error(
        "refusing to talk to {endpoint} in the clear: its attested report says `encryption: \
         false` and this client expects encryption; pass --allow-unencrypted \
         (Client::allow_unencrypted) only to talk to a cluster made with \
         --insecure-no-encryption"
    )]
    Unencrypted {
        /// The endpoint.
        endpoint: String,
    },
}

/// A 32-byte pin (a dev root public key, a measurement) given as hex (`0x` optional) or as
/// the path of a file holding that hex.
pub fn parse_pin(value: &str) -> Result<[u8; 32], ClientError> {
    let hex32 = |text: &str| {
        let text = text.trim();
        hex::decode(text.strip_prefix("0x").unwrap_or(text))
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
    };
    if let Some(pin) = hex32(value) {
        return Ok(pin);
    }
    let raw = std::fs::read(value).map_err(|e| {
        ClientError::Invalid(format!(
            "`{value}` is neither 32 bytes of hex nor a readable file: {e}"
        ))
    })?;
    // Text only: a raw 32-byte file is more likely a secret key than a public pin.
    std::str::from_utf8(&raw)
        .ok()
        .and_then(hex32)
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "{value} does not hold 32 bytes of hex (a dev root pin is the root's public \
                 key, not the root key file)"
            ))
        })
}

/// A message call with the default gas limit and no value.
pub fn call(dest: AccountId, data: Vec<u8>) -> Call {
    Call::Call {
        dest,
        value: 0,
        data: Bytes(data),
        gas_limit: DEFAULT_GAS_LIMIT,
    }
}

/// An instantiation with the default gas limit and no value.
pub fn instantiate(code_hash: CodeHash, data: Vec<u8>, salt: Vec<u8>) -> Call {
    Call::Instantiate {
        code_hash,
        value: 0,
        data: Bytes(data),
        salt: Bytes(salt),
        gas_limit: DEFAULT_GAS_LIMIT,
    }
}

/// Signs `call` for `mode` with a fresh random nonce, valid for [`DEFAULT_TTL`].
pub fn sign(signer: &Signer, mode: Mode, call: Call) -> SignedRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    signer.sign_request(&RequestBody {
        mode,
        call,
        nonce: rand::random(),
        expires_at: now + DEFAULT_TTL.as_millis() as u64,
    })
}

/// A connection to a worker or to the `phat dev` endpoint.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Whether the endpoint's host is a loopback address.
    loopback: bool,
    /// An explicit choice about `dev` reports (`None`: the default for the endpoint).
    accept_dev: Option<bool>,
    /// The dev root `dev` reports must be signed by.
    dev_root: Option<[u8; 32]>,
    /// The measurement reports must attest.
    measurement: Option<[u8; 32]>,
    /// Talk to a cluster that does not encrypt.
    allow_unencrypted: bool,
    peer: Arc<tokio::sync::OnceCell<Arc<Peer>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.base)
            .finish()
    }
}

/// A worker whose report was verified, and the open query session with it.
struct Peer {
    info: WorkerInfo,
    session: parking_lot::Mutex<Option<Arc<ClientSession>>>,
}

/// The client's half of a query session.
struct ClientSession {
    id: Hash,
    /// The account the worker runs this session's queries as.
    caller: AccountId,
    keys: SessionKeys,
    next: AtomicU64,
    /// Reopen after this (Unix ms), a little before the worker forgets the session.
    renew_at: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether `endpoint`'s host is a loopback address (where `phat dev` runs).
fn is_loopback(endpoint: &str) -> bool {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

impl Client {
    /// A client of the API at `endpoint` (for example `http://127.0.0.1:8700`).
    pub fn new(endpoint: &str) -> Result<Self, ClientError> {
        let base = endpoint.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Invalid(format!(
                "endpoint `{endpoint}` must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(Self {
            loopback: is_loopback(&base),
            base,
            http,
            accept_dev: None,
            dev_root: None,
            measurement: None,
            allow_unencrypted: false,
            peer: Default::default(),
        })
    }

    /// Accepts (or refuses) workers attested by the insecure `dev` provider. By default they
    /// are accepted on loopback endpoints, where `phat dev` runs, and elsewhere only when
    /// signed by a pinned root ([`Client::pin_dev_root`]): accepting does not lift that.
    pub fn accept_dev_attestation(mut self, accept: bool) -> Self {
        self.accept_dev = Some(accept);
        self.peer = Default::default();
        self
    }

    /// Pins the dev attestation root: `dev` reports must be signed by this public key, on
    /// every endpoint (and are accepted on non-loopback ones only with a pin).
    pub fn pin_dev_root(mut self, root: [u8; 32]) -> Self {
        self.dev_root = Some(root);
        self.peer = Default::default();
        self
    }

    /// Pins the software measurement the worker's report must attest.
    pub fn pin_measurement(mut self, measurement: [u8; 32]) -> Self {
        self.measurement = Some(measurement);
        self.peer = Default::default();
        self
    }

    /// Talks (or refuses to talk) to a cluster whose attested report says `encryption: false`
    /// (`--insecure-no-encryption`). Refused by default: commands and queries would travel in
    /// the clear.
    pub fn allow_unencrypted(mut self, allow: bool) -> Self {
        self.allow_unencrypted = allow;
        self.peer = Default::default();
        self
    }

    /// The verified worker behind the endpoint (fetched and checked once).
    async fn peer(&self) -> Result<Arc<Peer>, ClientError> {
        self.peer
            .get_or_try_init(|| self.verified_peer())
            .await
            .cloned()
    }

    /// Fetches the worker's info and checks its attestation report.
    async fn verified_peer(&self) -> Result<Arc<Peer>, ClientError> {
        let info: WorkerInfo = self
            .answer(self.http.get(self.url("/v1/info")).send_retrying().await)
            .await?;
        self.check_peer(&info)?;
        Ok(Arc::new(Peer {
            info,
            session: parking_lot::Mutex::new(None),
        }))
    }

    /// Whether `info` may be trusted: its report verifies against what this client pins
    /// (against the signer it names itself only on loopback, without a pin), it attests the
    /// keys and the encryption flag `info` announces, and the cluster encrypts unless
    /// [`Client::allow_unencrypted`].
    fn check_peer(&self, info: &WorkerInfo) -> Result<(), ClientError> {
        let report = &info.attestation;
        let policy = AttestationPolicy {
            accept_dev: self
                .accept_dev
                .unwrap_or(self.loopback || self.dev_root.is_some()),
            dev_root: self.dev_root,
            measurement: self.measurement,
        };
        let verified =
            if is_insecure(report) && self.dev_root.is_none() && self.accept_dev != Some(false) {
                if !self.loopback {
                    return Err(ClientError::Unpinned {
                        endpoint: self.base.clone(),
                    });
                }
                policy.verify_self_signed_dev(report)
            } else {
                policy.verify(report)
            };
        verified.map_err(|e| ClientError::Untrusted(e.to_string()))?;
        if report.worker_key != info.worker_key
            || report.cluster_key != Some(info.cluster_key)
            || report.encryption != info.encryption
        {
            return Err(ClientError::Untrusted(
                "the keys the worker announces are not the ones its report attests".into(),
            ));
        }
        if !info.encryption && !self.allow_unencrypted {
            return Err(ClientError::Unencrypted {
                endpoint: self.base.clone(),
            });
        }
        Ok(())
    }

    /// The verified info of the worker this client talks to (its keys and attestation).
    pub async fn trusted_info(&self) -> Result<WorkerInfo, ClientError> {
        Ok(self.peer().await?.info.clone())
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            endpoint: self.base.clone(),
            message: e.to_string(),
        }
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(ApiError { error }) => Err(ClientError::Api {
                status: status.as_u16(),
                kind: error.kind,
                message: error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                kind: "http".into(),
                message: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    /// POSTs `body` as JSON to `path` and reads the JSON answer.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.answer(
            self.http
                .post(self.url(path))
                .json(body)
                .send_retrying()
                .await,
        )
        .await
    }

    /// The worker's info (through `phat dev`, of whichever worker answered).
    pub async fn info(&self) -> Result<WorkerInfo, ClientError> {
        self.answer(self.http.get(self.url("/v1/info")).send_retrying().await)
            .await
    }

    /// Uploads a contract's wasm to the cluster; returns its code hash.
    ///
    /// Uploads are signed by a funded account of the cluster (the signature binds the
    /// cluster, the code and an expiry).
    pub async fn upload_code(
        &self,
        signer: &Signer,
        wasm: Vec<u8>,
    ) -> Result<CodeHash, ClientError> {
        let cluster = self.peer().await?.info.cluster_key;
        let hash = CodeHash::of(&wasm);
        let expires_at = now_ms() + DEFAULT_TTL.as_millis() as u64;
        let signature = signer.sign(&phat_primitives::protocol::upload_payload(
            &cluster, &hash, expires_at,
        ));
        let r: CodeUploaded = self
            .answer(
                signed_headers(
                    self.http.post(self.url("/v1/code")),
                    signer,
                    &signature,
                    expires_at,
                )
                .header("content-type", "application/octet-stream")
                .body(wasm)
                .send_retrying()
                .await,
            )
            .await?;
        Ok(r.code_hash)
    }

    /// Sends a signed command; with `wait`, answers once the receipt exists.
    pub async fn submit_signed(
        &self,
        req: &SignedRequest,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        let peer = self.peer().await?;
        if !peer.info.encryption {
            let url = self.url(&format!("/v1/commands?wait={wait}"));
            return self
                .answer(self.http.post(url).json(req).send_retrying().await)
                .await;
        }
        let (sealed, keys) =
            phat_crypto::seal(&peer.info.cluster_key.0, Purpose::Command, &req.encode())?;
        let url = self.url(&format!("/v1/commands/sealed?wait={wait}"));
        let mut submitted: Submitted = self
            .answer(self.http.post(url).json(&sealed).send_retrying().await)
            .await?;
        if let Some(receipt) = &mut submitted.receipt {
            open_result(&keys, &mut receipt.result)?;
        }
        Ok(submitted)
    }

    /// The ledger payload `req` becomes when submitted to this cluster (sealed when the
    /// cluster encrypts), for tools that append to a ledger directly.
    pub async fn ledger_payload(&self, req: &SignedRequest) -> Result<Vec<u8>, ClientError> {
        let peer = self.peer().await?;
        Ok(if peer.info.encryption {
            let (sealed, _) =
                phat_crypto::seal(&peer.info.cluster_key.0, Purpose::Command, &req.encode())?;
            LedgerCommand::Sealed(sealed).encode()
        } else {
            LedgerCommand::Plain(req.clone()).encode()
        })
    }

    /// Signs and sends a command; with `wait`, answers once the receipt exists.
    pub async fn submit(
        &self,
        signer: &Signer,
        call: Call,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        self.submit_signed(&sign(signer, Mode::Command, call), wait)
            .await
    }

    /// Sends a signed query, answered after the worker applied `min_seq` when given.
    pub async fn query_signed(
        &self,
        req: &SignedRequest,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let peer = self.peer().await?;
        if !peer.info.encryption {
            let body = QueryRequest {
                request: req.clone(),
                min_seq,
            };
            return self.post_json("/v1/query", &body).await;
        }
        self.open_session(&peer, req, min_seq).await
    }

    /// Opens a query session with `req` as its first message; keeps it for later queries.
    async fn open_session(
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
        let session = Arc::new(ClientSession {
            id: sealed.ephemeral,
            caller: req.signer,
            keys,
            next: AtomicU64::new(1),
            renew_at: expires_at.saturating_sub(10_000),
        });
        let response = self
            .sealed_query(&peer.info, &session, 0, sealed.ciphertext)
            .await?;
        *peer.session.lock() = Some(session);
        Ok(response)
    }

    async fn sealed_query(
        &self,
        info: &WorkerInfo,
        session: &ClientSession,
        counter: u64,
        ciphertext: Bytes,
    ) -> Result<QueryResponse, ClientError> {
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
        let plain = session.keys.open_reply(counter, &reply.ciphertext)?;
        match serde_json::from_slice(&plain).map_err(|e| ClientError::Decode(e.to_string()))? {
            SealedAnswer::Ok(response) => Ok(response),
            SealedAnswer::Err { status, error } => Err(ClientError::Api {
                status,
                kind: error.kind,
                message: error.message,
            }),
        }
    }

    /// Signs and sends a query.
    pub async fn query(
        &self,
        signer: &Signer,
        call: Call,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let peer = self.peer().await?;
        if peer.info.encryption {
            let session = peer.session.lock().clone();
            // A session speaks for the signer that opened it: reuse it only for that signer.
            let usable =
                |s: &Arc<ClientSession>| s.renew_at > now_ms() && s.caller == signer.account();
            if let Some(session) = session.filter(usable) {
                let counter = session.next.fetch_add(1, Ordering::Relaxed);
                let plain = SessionQuery {
                    call: call.clone(),
                    min_seq,
                }
                .encode();
                let ct = Bytes(session.keys.seal_request(counter, &plain));
                match self.sealed_query(&peer.info, &session, counter, ct).await {
                    Err(ClientError::Api { kind, .. })
                        if kind == "unknown_session" || kind == "session_expired" => {}
                    r => return r,
                }
            }
        }
        self.query_signed(&sign(signer, Mode::Query, call), min_seq)
            .await
    }

    /// The receipt of command `seq`.
    pub async fn receipt(&self, seq: Seq) -> Result<Receipt, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/receipts/{seq}")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// A contract's code hash and deployer.
    pub async fn contract(&self, id: &AccountId) -> Result<ContractView, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/contracts/{id}")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Stored log records of a contract (events and debug output of commands).
    pub async fn logs(&self, id: &AccountId) -> Result<Vec<LogEntry>, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/contracts/{id}/logs")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Stored log records, then live ones as they happen (server-sent events).
    pub async fn follow_logs(
        &self,
        id: &AccountId,
    ) -> Result<impl Stream<Item = Result<LogEntry, ClientError>>, ClientError> {
        let resp = self
            .http
            .get(self.url(&format!("/v1/contracts/{id}/logs/stream")))
            .send_retrying()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.answer::<()>(Ok(resp)).await.err().unwrap_or_else(|| {
                ClientError::Decode("error status without an error body".into())
            }));
        }
        let endpoint = self.base.clone();
        let mut buf = String::new();
        let stream = resp.bytes_stream().flat_map(move |chunk| {
            let mut out: Vec<Result<LogEntry, ClientError>> = Vec::new();
            match chunk {
                Ok(bytes) => {
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buf.find("\n\n") {
                        let event: String = buf.drain(..end + 2).collect();
                        for line in event.lines() {
                            if let Some(data) = line.strip_prefix("data:") {
                                out.push(
                                    serde_json::from_str(data.trim())
                                        .map_err(|e| ClientError::Decode(e.to_string())),
                                );
                            }
                        }
                    }
                }
                Err(e) => out.push(Err(ClientError::Unreachable {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                })),
            }
            futures::stream::iter(out)
        });
        Ok(stream)
    }
}

impl Client {
    /// Stores the ink! metadata of uploaded code on the cluster.
    ///
    /// The metadata is published under `signer`'s account: readers ask for the metadata a
    /// contract's deployer published, so deploy with the same signer.
    pub async fn put_metadata(
        &self,
        signer: &Signer,
        code_hash: &CodeHash,
        metadata: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let cluster = self.peer().await?.info.cluster_key;
        let body = serde_json::to_vec(metadata).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let expires_at = now_ms() + DEFAULT_TTL.as_millis() as u64;
        let payload = phat_primitives::protocol::metadata_payload(
            &cluster,
            code_hash,
            &phat_primitives::blake2_256(&body),
            expires_at,
        );
        let signature = signer.sign(&payload);
        let resp = signed_headers(
            self.http
                .post(self.url(&format!("/v1/code/{code_hash}/metadata"))),
            signer,
            &signature,
            expires_at,
        )
        .header("content-type", "application/json")
        .body(body)
        .send_retrying()
        .await
        .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self
            .answer::<()>(Ok(resp))
            .await
            .err()
            .unwrap_or_else(|| ClientError::Decode("error status without an error body".into())))
    }

    /// The ink! metadata `publisher` published for code (pass a contract's deployer), or
    /// with `None` metadata stored before publishing was signed.
    pub async fn metadata(
        &self,
        code_hash: &CodeHash,
        publisher: Option<&AccountId>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut url = self.url(&format!("/v1/code/{code_hash}/metadata"));
        if let Some(p) = publisher {
            url.push_str(&format!("?publisher={p}"));
        }
        self.answer(self.http.get(url).send_retrying().await).await
    }

    /// The ink! metadata of a contract: what its deployer published for its code.
    pub async fn contract_metadata(
        &self,
        id: &AccountId,
    ) -> Result<serde_json::Value, ClientError> {
        let view = self.contract(id).await?;
        match self.metadata(&view.code_hash, Some(&view.deployer)).await {
            Err(ClientError::Api { status: 404, .. }) => self.metadata(&view.code_hash, None).await,
            r => r,
        }
    }
}

/// Adds the signer, signature and expiry headers of a signed upload or metadata write.
fn signed_headers(
    rb: reqwest::RequestBuilder,
    signer: &Signer,
    signature: &[u8; 64],
    expires_at: u64,
) -> reqwest::RequestBuilder {
    use phat_primitives::protocol::{EXPIRES_HEADER, SIGNATURE_HEADER, SIGNER_HEADER};
    rb.header(SIGNER_HEADER, signer.account().to_string())
        .header(SIGNATURE_HEADER, format!("0x{}", hex::encode(signature)))
        .header(EXPIRES_HEADER, expires_at.to_string())
}

/// Replaces a result sealed to the caller by its plaintext.
fn open_result(keys: &SessionKeys, result: &mut CallResult) -> Result<(), ClientError> {
    if let CallResult::Sealed(ct) = result {
        let plain = keys.open_reply(0, ct)?;
        *result = CallResult::decode_all(&mut &plain[..])
            .map_err(|e| ClientError::Decode(format!("sealed result: {e}")))?;
    }
    Ok(())
}

/// Most times a request refused with `429 Too Many Requests` is sent again.
const RETRIES_ON_429: u32 = 5;
/// Longest `Retry-After` the client waits out by itself; longer ones go back to the caller.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Sending that waits out a worker's `429 Too Many Requests` (its `Retry-After`, at most
/// [`MAX_RETRY_WAIT`]) up to [`RETRIES_ON_429`] times. Safe to repeat: a worker refuses for
/// rate or capacity before a request has any effect.
trait SendRetrying {
    /// Sends the request, again after a short `429`.
    fn send_retrying(
        self,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>> + Send;
}

impl SendRetrying for reqwest::RequestBuilder {
    async fn send_retrying(self) -> Result<reqwest::Response, reqwest::Error> {
        {
            let mut attempt = 0;
            let mut rb = self;
            loop {
                let again = rb.try_clone();
                let resp = rb.send().await?;
                if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS
                    || attempt >= RETRIES_ON_429
                {
                    return Ok(resp);
                }
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                let wait = header("x-phat-retry-after-ms")
                    .map(Duration::from_millis)
                    .or(header("retry-after").map(Duration::from_secs))
                    .unwrap_or(Duration::from_millis(200));
                let Some(next) = again.filter(|_| wait <= MAX_RETRY_WAIT) else {
                    return Ok(resp);
                };
                // Spread retries a little so refused clients do not come back in lockstep.
                let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                tokio::time::sleep(wait + jitter).await;
                attempt += 1;
                rb = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_crypto::{Attestation, Claims, DevAttestation, Secret32};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: &str = "http://127.0.0.1:8700";
    const REMOTE: &str = "http://10.1.2.3:8700";

    fn root(n: u8) -> DevAttestation {
        DevAttestation::new(&Secret32::from_bytes([n; 32]))
    }

    /// A worker's info with a report `root` signs, attesting its keys and `encryption`.
    fn info(root: &DevAttestation, encryption: bool) -> WorkerInfo {
        let claims = Claims {
            measurement: [1; 32],
            worker_key: [2; 32],
            cluster_key: Some([3; 32]),
            encryption,
        };
        WorkerInfo {
            worker_key: Hash([2; 32]),
            cluster_key: Hash([3; 32]),
            encryption,
            attestation: root.report(&claims, 1).unwrap(),
            version: "test".into(),
            name: "worker-0".into(),
            seq: 0,
            state_root: Hash::default(),
            ledger_head: 0,
            pid: 1,
        }
    }

    #[test]
    fn a_report_signed_by_another_key_than_the_pinned_root_is_refused() {
        let (pinned, other) = (root(1), root(2));
        for endpoint in [LOOPBACK, REMOTE] {
            let client = Client::new(endpoint)
                .unwrap()
                .pin_dev_root(pinned.root_public());
            client.check_peer(&info(&pinned, true)).unwrap();
            match client.check_peer(&info(&other, true)) {
                Err(ClientError::Untrusted(m)) => {
                    assert!(m.contains("not by the pinned dev root"), "{m}")
                }
                r => panic!("{endpoint}: a foreign root accepted: {r:?}"),
            }
            // Naming the pinned root as its signer does not make another key's signature good.
            let mut claimed = info(&other, true);
            claimed.attestation.signer = Hash(pinned.root_public());
            match client.check_peer(&claimed) {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("signature"), "{m}"),
                r => panic!("{endpoint}: a mislabelled report accepted: {r:?}"),
            }
            // Refusing dev outright wins over the pin.
            match client
                .clone()
                .accept_dev_attestation(false)
                .check_peer(&info(&pinned, true))
            {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("insecure"), "{m}"),
                r => panic!("{endpoint}: dev accepted against the setting: {r:?}"),
            }
        }
        // A pinned measurement is enforced too.
        let client = Client::new(REMOTE)
            .unwrap()
            .pin_dev_root(pinned.root_public())
            .pin_measurement([9; 32]);
        match client.check_peer(&info(&pinned, true)) {
            Err(ClientError::Untrusted(m)) => assert!(m.contains("required"), "{m}"),
            r => panic!("another measurement accepted: {r:?}"),
        }
    }

    #[test]
    fn a_self_signed_report_is_refused_on_a_non_loopback_endpoint_without_a_pin() {
        let signed = info(&root(1), true);
        for endpoint in [
            REMOTE,
            "http://worker.example.com:8700",
            "https://[2001:db8::1]:8700",
        ] {
            let plain = Client::new(endpoint).unwrap();
            let accepting = plain.clone().accept_dev_attestation(true);
            let measured = accepting.clone().pin_measurement([1; 32]);
            for client in [plain, accepting, measured] {
                match client.check_peer(&signed) {
                    Err(e @ ClientError::Unpinned { .. }) => {
                        let m = e.to_string();
                        assert!(m.contains(endpoint) && m.contains("--dev-root"), "{m}");
                    }
                    r => panic!("{endpoint}: a self-signed report accepted: {r:?}"),
                }
            }
        }
        // On loopback (where `phat dev` runs) the self-declared signer is accepted by default,
        // as long as its signature is intact.
        for endpoint in [LOOPBACK, "http://localhost:8700", "http://[::1]:8700"] {
            let client = Client::new(endpoint).unwrap();
            client.check_peer(&signed).unwrap();
            let mut altered = signed.clone();
            altered.attestation.measurement = Hash([7; 32]);
            assert!(matches!(
                client.check_peer(&altered),
                Err(ClientError::Untrusted(_))
            ));
        }
    }

    #[test]
    fn encryption_false_is_refused_unless_opted_in() {
        let r = root(1);
        let plain = info(&r, false);
        let clients = [
            Client::new(LOOPBACK).unwrap(),
            Client::new(REMOTE).unwrap().pin_dev_root(r.root_public()),
        ];
        for client in clients {
            match client.check_peer(&plain) {
                Err(e @ ClientError::Unencrypted { .. }) => {
                    let m = e.to_string();
                    assert!(
                        m.contains("encryption: false") && m.contains("--allow-unencrypted"),
                        "{m}"
                    );
                }
                r => panic!("{}: plaintext accepted: {r:?}", client.endpoint()),
            }
            let opted_in = client.clone().allow_unencrypted(true);
            opted_in.check_peer(&plain).unwrap();
            opted_in.check_peer(&info(&r, true)).unwrap();
            // The flag the worker announces must be the one its report attests.
            let mut flipped = info(&r, true);
            flipped.encryption = false;
            match opted_in.check_peer(&flipped) {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("attests"), "{m}"),
                r => panic!("an unattested flag accepted: {r:?}"),
            }
        }
    }

    /// An HTTP server on 127.0.0.1 answering `GET /v1/info` with `info` and everything else
    /// with 404; it records each request line.
    async fn serve_info(
        info: &WorkerInfo,
    ) -> (std::net::SocketAddr, Arc<parking_lot::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (body, log) = (serde_json::to_string(info).unwrap(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, log) = (body.clone(), log.clone());
                tokio::spawn(async move {
                    let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let (status, body) = if line.starts_with("GET /v1/info ") {
                        ("200 OK", body)
                    } else {
                        (
                            "404 Not Found",
                            r#"{"error":{"kind":"not_found","message":"test server"}}"#.into(),
                        )
                    };
                    log.lock().push(line);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    /// An HTTP server on 127.0.0.1 answering the first `busy` requests with 429 and
    /// `x-phat-retry-after-ms: wait_ms`, the rest with a 404 API error; counts requests.
    async fn serve_busy(
        busy: usize,
        wait_ms: u64,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, extra, body) = if n < busy {
                        (
                            "429 Too Many Requests",
                            format!("retry-after: 1\r\nx-phat-retry-after-ms: {wait_ms}\r\n"),
                            r#"{"error":{"kind":"rate_limited","message":"slow down"}}"#,
                        )
                    } else {
                        (
                            "404 Not Found",
                            String::new(),
                            r#"{"error":{"kind":"unknown_receipt","message":"none"}}"#,
                        )
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), count)
    }

    #[tokio::test]
    async fn a_short_429_is_waited_out_and_a_long_one_returned() {
        let (url, count) = serve_busy(2, 20).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Api { status: 404, kind, .. } if kind == "unknown_receipt"),
            "{err:?}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "two refusals, then the answer"
        );
        // A wait longer than the client waits by itself goes back to the caller at once.
        let (url, count) = serve_busy(100, 60_000).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // A worker that stays busy is asked a bounded number of times.
        let (url, count) = serve_busy(100, 1).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), RETRIES_ON_429 as usize + 1);
    }

    #[tokio::test]
    async fn a_downgrading_endpoint_gets_nothing_but_the_info_request() {
        let r = root(1);
        let (addr, seen) = serve_info(&info(&r, false)).await;
        let client = Client::new(&format!("http://{addr}")).unwrap();
        let alice = Signer::from_suri("//Alice").unwrap();
        let call = call(AccountId([5; 32]), vec![1, 2, 3, 4]);
        assert!(matches!(
            client.submit(&alice, call.clone(), true).await,
            Err(ClientError::Unencrypted { .. })
        ));
        assert!(matches!(
            client.query(&alice, call, None).await,
            Err(ClientError::Unencrypted { .. })
        ));
        assert!(matches!(
            client.trusted_info().await,
            Err(ClientError::Unencrypted { .. })
        ));
        let lines = seen.lock().clone();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.starts_with("GET /v1/info ")),
            "{lines:?}"
        );
        let opted_in = client.allow_unencrypted(true).trusted_info().await.unwrap();
        assert!(!opted_in.encryption);
    }

    #[tokio::test]
    async fn a_non_loopback_name_needs_the_pinned_root_over_http() {
        let r = root(1);
        let (addr, _) = serve_info(&info(&r, true)).await;
        // A non-loopback name, resolved by this test to the local server only.
        let host = "phat-worker.invalid";
        let mut client = Client::new(&format!("http://{host}:{}", addr.port())).unwrap();
        client.http = reqwest::Client::builder()
            .resolve(host, addr)
            .build()
            .unwrap();
        assert!(!client.loopback);
        assert!(matches!(
            client.trusted_info().await,
            Err(ClientError::Unpinned { .. })
        ));
        let wrong = client.clone().pin_dev_root(root(2).root_public());
        assert!(matches!(
            wrong.trusted_info().await,
            Err(ClientError::Untrusted(_))
        ));
        let pinned = client.pin_dev_root(r.root_public());
        assert_eq!(
            pinned.trusted_info().await.unwrap().attestation.signer,
            Hash(r.root_public())
        );
    }

    #[test]
    fn pins_are_hex_or_a_file_of_hex() {
        let key = [0xab; 32];
        let text = hex::encode(key);
        assert_eq!(parse_pin(&text).unwrap(), key);
        assert_eq!(parse_pin(&format!("0x{text}")).unwrap(), key);
        let dir = std::env::temp_dir().join(format!("phat-client-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("root.pub");
        std::fs::write(&file, format!("0x{text}\n")).unwrap();
        assert_eq!(parse_pin(file.to_str().unwrap()).unwrap(), key);
        // Raw bytes (the shape of a root key file) are not taken for a public key.
        std::fs::write(&file, key).unwrap();
        match parse_pin(file.to_str().unwrap()) {
            Err(ClientError::Invalid(m)) => assert!(m.contains("not the root key file"), "{m}"),
            r => panic!("raw bytes accepted: {r:?}"),
        }
        assert!(parse_pin(dir.join("absent").to_str().unwrap()).is_err());
        assert!(parse_pin("0x1234").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
