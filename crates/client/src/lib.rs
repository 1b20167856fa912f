//! phat-client: talk to a phat cluster from Rust.
//!
//! [`Client`] signs requests with a [`Signer`] (sr25519, `//Alice`-style dev seeds), sends
//! them to a worker or the `phat dev` endpoint and decodes the answers. Before sending
//! anything it checks the worker's attestation report (refusing the insecure `dev` provider
//! except on loopback endpoints or when told to accept it); then commands are sealed to the
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

use parity_scale_codec::{Decode, Encode};
use phat_crypto::{AttestationPolicy, Purpose, SessionKeys};
use phat_primitives::protocol::{
    CallResult, LedgerCommand, QueryOpen, SealedAnswer, SealedQuery, SealedReply, SessionQuery,
};
use phat_primitives::Hash;

use futures::{Stream, StreamExt};
use phat_primitives::protocol::{
    ApiError, Bytes, Call, CodeUploaded, ContractView, LogRecord, QueryRequest, QueryResponse,
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
    policy: AttestationPolicy,
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
        let policy = AttestationPolicy {
            accept_dev: is_loopback(&base),
            ..Default::default()
        };
        Ok(Self {
            base,
            http,
            policy,
            peer: Default::default(),
        })
    }

    /// Accepts (or refuses) workers attested by the insecure `dev` provider. By default they
    /// are accepted only on loopback endpoints, where `phat dev` runs.
    pub fn accept_dev_attestation(mut self, accept: bool) -> Self {
        self.policy.accept_dev = accept;
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
            .answer(self.http.get(self.url("/v1/info")).send().await)
            .await?;
        self.policy
            .verify(&info.attestation)
            .map_err(|e| ClientError::Untrusted(e.to_string()))?;
        let report = &info.attestation;
        if report.worker_key != info.worker_key
            || report.cluster_key != Some(info.cluster_key)
            || report.encryption != info.encryption
        {
            return Err(ClientError::Untrusted(
                "the keys the worker announces are not the ones its report attests".into(),
            ));
        }
        Ok(Arc::new(Peer {
            info,
            session: parking_lot::Mutex::new(None),
        }))
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
        self.answer(self.http.post(self.url(path)).json(body).send().await)
            .await
    }

    /// The worker's info (through `phat dev`, of whichever worker answered).
    pub async fn info(&self) -> Result<WorkerInfo, ClientError> {
        self.answer(self.http.get(self.url("/v1/info")).send().await)
            .await
    }

    /// Uploads a contract's wasm to the cluster; returns its code hash.
    pub async fn upload_code(&self, wasm: Vec<u8>) -> Result<CodeHash, ClientError> {
        let r: CodeUploaded = self
            .answer(
                self.http
                    .post(self.url("/v1/code"))
                    .header("content-type", "application/octet-stream")
                    .body(wasm)
                    .send()
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
                .answer(self.http.post(url).json(req).send().await)
                .await;
        }
        let (sealed, keys) =
            phat_crypto::seal(&peer.info.cluster_key.0, Purpose::Command, &req.encode())?;
        let url = self.url(&format!("/v1/commands/sealed?wait={wait}"));
        let mut submitted: Submitted = self
            .answer(self.http.post(url).json(&sealed).send().await)
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
        let expires_at = RequestBody::decode(&mut &req.body[..])
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
                .send()
                .await,
        )
        .await
    }

    /// A contract's code hash and deployer.
    pub async fn contract(&self, id: &AccountId) -> Result<ContractView, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/contracts/{id}")))
                .send()
                .await,
        )
        .await
    }

    /// Stored log records of a contract (events and debug output of commands).
    pub async fn logs(&self, id: &AccountId) -> Result<Vec<LogRecord>, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/contracts/{id}/logs")))
                .send()
                .await,
        )
        .await
    }

    /// Stored log records, then live ones as they happen (server-sent events).
    pub async fn follow_logs(
        &self,
        id: &AccountId,
    ) -> Result<impl Stream<Item = Result<LogRecord, ClientError>>, ClientError> {
        let resp = self
            .http
            .get(self.url(&format!("/v1/contracts/{id}/logs/stream")))
            .send()
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
            let mut out: Vec<Result<LogRecord, ClientError>> = Vec::new();
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
    pub async fn put_metadata(
        &self,
        code_hash: &CodeHash,
        metadata: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(self.url(&format!("/v1/code/{code_hash}/metadata")))
            .json(metadata)
            .send()
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

    /// The ink! metadata stored for code.
    pub async fn metadata(&self, code_hash: &CodeHash) -> Result<serde_json::Value, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/code/{code_hash}/metadata")))
                .send()
                .await,
        )
        .await
    }
}

/// Replaces a result sealed to the caller by its plaintext.
fn open_result(keys: &SessionKeys, result: &mut CallResult) -> Result<(), ClientError> {
    if let CallResult::Sealed(ct) = result {
        let plain = keys.open_reply(0, ct)?;
        *result = CallResult::decode(&mut &plain[..])
            .map_err(|e| ClientError::Decode(format!("sealed result: {e}")))?;
    }
    Ok(())
}
