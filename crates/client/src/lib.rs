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
mod retry;
mod sessions;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use parity_scale_codec::{DecodeAll, Encode};
use phat_crypto::Purpose;
use phat_primitives::protocol::{CallResult, LedgerCommand};

use futures::{Stream, StreamExt};
use phat_primitives::protocol::{
    ApiError, Bytes, Call, CodeUploaded, ContractView, LogEntry, LogFilter, LogKind, LogPage,
    QueryRequest, QueryResponse, Receipt, RequestBody, Seq, SignedRequest, Submitted, WorkerInfo,
    MAX_LOG_PAGE,
};
use phat_primitives::{AccountId, CodeHash, Gas, Mode};

use retry::SendRetrying;
use trust::{is_loopback, Peer};

pub use contract::{Contract, MessageKind};
pub use phat_attest::{TeeKind, TeePolicy};
pub use phat_crypto as crypto;
pub use phat_crypto::Signer;
pub use phat_primitives as primitives;
pub use trust::parse_pin;

/// The largest answer the client reads from an endpoint (a worker's answers are far smaller:
/// the biggest, a hardware report with its collateral, is tens of KB).
pub const MAX_ANSWER: usize = 32 << 20;

/// Gas limit used when the caller does not give one.
pub const DEFAULT_GAS_LIMIT: Gas = 5_000_000_000;

/// Gas added to an estimate's suggested limit, besides a quarter of what the query used.
pub const ESTIMATE_MARGIN: Gas = 1_000_000;

/// What a command is estimated to cost ([`Client::estimate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Gas the call used as a query.
    pub gas_used: Gas,
    /// The gas limit to send the command with.
    pub gas_limit: Gas,
    /// The storage deposit it would take from the signer (negative: give back).
    pub storage_deposit: i128,
    /// How the query ended (a command that would fail fails the same way, as a rule).
    pub result: CallResult,
}

/// How long a request the client signs stays valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

/// Most times a sealed command refused with `key_epoch_pending` (the cluster dealing a new
/// key) is sealed and sent again, 250 ms apart.
const MAX_DEALING_WAITS: u32 = 40;

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

/// Signs `call` for `mode` on the cluster whose envelope key is `cluster` (a worker's
/// `cluster_key`), with a fresh random nonce, valid for [`DEFAULT_TTL`].
pub fn sign(
    signer: &Signer,
    cluster: &phat_primitives::Hash,
    mode: Mode,
    call: Call,
) -> SignedRequest {
    sign_certified(signer, None, cluster, mode, call)
}

/// Like [`sign`], by a session key that `certificate` (a wallet's, from
/// [`Signer::certify`]) lets speak for the wallet's account: the request is made as that
/// account (docs/ENVELOPES.md, "Certificates").
pub fn sign_certified(
    session: &Signer,
    certificate: Option<&phat_primitives::protocol::Certificate>,
    cluster: &phat_primitives::Hash,
    mode: Mode,
    call: Call,
) -> SignedRequest {
    session.sign_request(
        cluster,
        &RequestBody {
            mode,
            call,
            nonce: rand::random(),
            expires_at: now_ms() + DEFAULT_TTL.as_millis() as u64,
            certificate: certificate.cloned(),
        },
    )
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
    /// What hardware (SGX, TDX) reports must satisfy.
    tee_policy: Option<phat_attest::TeePolicy>,
    /// Talk to a cluster that does not encrypt.
    allow_unencrypted: bool,
    peer: Arc<parking_lot::Mutex<Option<Arc<Peer>>>>,
    /// The highest seq this client knows to be ordered (its own commands, [`Client::read_after`]):
    /// trigger-table reads wait for it, so they see the client's own writes on any worker.
    floor: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.base)
            .finish()
    }
}

/// The time as Unix milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
            tee_policy: None,
            allow_unencrypted: false,
            peer: Default::default(),
            floor: Default::default(),
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

    /// Judges hardware reports (`sgx-dcap`, `tdx-dcap`) with `policy`; without one they are
    /// refused.
    pub fn tee_policy(mut self, policy: phat_attest::TeePolicy) -> Self {
        self.tee_policy = Some(policy);
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

    /// The verified info of the worker this client talks to (its keys and attestation).
    pub async fn trusted_info(&self) -> Result<WorkerInfo, ClientError> {
        Ok(self.peer().await?.info.clone())
    }

    /// Makes this client's later reads of trigger tables (schedules, subscriptions, jobs)
    /// wait until the worker answering has applied `seq`, for example a command another
    /// process submitted. The client's own commands raise this floor by themselves.
    pub fn read_after(&self, seq: Seq) {
        self.floor
            .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
    }

    /// Raises the read floor to the ledger head the answering worker has seen, and returns it:
    /// later trigger-table reads see at least what that worker knew to be ordered. A worker
    /// learns of new entries within its poll, so for a command of another process prefer
    /// [`Client::read_after`] with its seq.
    pub async fn read_latest(&self) -> Result<Seq, ClientError> {
        let head = self.info().await?.ledger_head;
        self.read_after(head);
        Ok(head)
    }

    /// `path` with `?min_seq=` of the read floor, when there is one.
    fn read_url(&self, path: &str) -> String {
        match self.floor.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.url(path),
            seq => self.url(&format!("{path}?min_seq={seq}")),
        }
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
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        // An endpoint is untrusted until its report verifies: read at most MAX_ANSWER bytes.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ClientError::Decode(format!(
                    "the answer is over {MAX_ANSWER} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
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

    /// Sends a signed command; with `wait`, answers once the receipt exists. The receipt is
    /// `None` when the worker ordered the command but cannot show its receipt (it restored a
    /// snapshot past it, or did not apply it within its wait): ask another worker for it.
    pub async fn submit_signed(
        &self,
        req: &SignedRequest,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        let peer = self.peer().await?;
        if !peer.info.encryption {
            let url = self.url(&format!("/v1/commands?wait={wait}"));
            let submitted: Submitted = self
                .answer(self.http.post(url).json(req).send_retrying().await)
                .await?;
            self.read_after(submitted.seq);
            return Ok(submitted);
        }
        // In the session a query opened with this worker, if there is one: no key exchange.
        if let Some(submitted) = self.session_command(&peer, req, wait).await {
            let submitted = submitted?;
            self.read_after(submitted.seq);
            return Ok(submitted);
        }
        let url = self.url(&format!("/v1/commands/sealed?wait={wait}"));
        let mut peer = peer;
        let mut refreshed = false;
        let mut dealing_waits = 0;
        let (mut submitted, keys) = loop {
            let (sealed, keys) =
                phat_crypto::seal(&peer.info.sealing_key().0, Purpose::Command, &req.encode())?;
            match self
                .answer::<Submitted>(
                    self.http
                        .post(url.clone())
                        .json(&sealed)
                        .send_retrying()
                        .await,
                )
                .await
            {
                // The cluster rotated its key since this client read it: read it again.
                Err(ClientError::Api { kind, .. }) if kind == "stale_cluster_key" && !refreshed => {
                    refreshed = true;
                    *self.peer.lock() = None;
                    peer = self.peer().await?;
                }
                // The cluster is dealing a new key (moments after a rotation or revocation):
                // wait, then seal to the key it shows.
                Err(ClientError::Api { kind, .. })
                    if kind == "key_epoch_pending" && dealing_waits < MAX_DEALING_WAITS =>
                {
                    dealing_waits += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    *self.peer.lock() = None;
                    peer = self.peer().await?;
                }
                other => break (other?, keys),
            }
        };
        self.read_after(submitted.seq);
        if let Some(receipt) = &mut submitted.receipt {
            open_result(|c, ct| keys.open_reply(c, ct), &mut receipt.result)?;
        }
        Ok(submitted)
    }

    /// The ledger payload `req` becomes when submitted to this cluster (sealed when the
    /// cluster encrypts), for tools that append to a ledger directly.
    pub async fn ledger_payload(&self, req: &SignedRequest) -> Result<Vec<u8>, ClientError> {
        let peer = self.peer().await?;
        Ok(if peer.info.encryption {
            let (sealed, _) =
                phat_crypto::seal(&peer.info.sealing_key().0, Purpose::Command, &req.encode())?;
            match peer.info.epoch {
                0 => LedgerCommand::Sealed(sealed),
                epoch => LedgerCommand::SealedAt { epoch, sealed },
            }
            .encode()
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
        let cluster = self.peer().await?.info.cluster_key;
        self.submit_signed(&sign(signer, &cluster, Mode::Command, call), wait)
            .await
    }

    /// Orders a change to the cluster (`signer` must be its owner): a key rotation or a
    /// worker's revocation. Answers once the receipt exists; its result is the new epoch.
    pub async fn change_cluster(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::ClusterOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Cluster { op }, true).await
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

    /// Signs and sends a query.
    pub async fn query(
        &self,
        signer: &Signer,
        call: Call,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let peer = self.peer().await?;
        if peer.info.encryption {
            if let Some(r) = self.session_query(&peer, signer, &call, min_seq).await {
                return r;
            }
        }
        let cluster = self.peer().await?.info.cluster_key;
        self.query_signed(&sign(signer, &cluster, Mode::Query, call), min_seq)
            .await
    }

    /// Sends `value` of native balance from `signer` to `dest` (an ordered command); answers
    /// once the receipt exists (`insufficient_balance` when the signer holds less).
    pub async fn transfer(
        &self,
        signer: &Signer,
        dest: AccountId,
        value: phat_primitives::Balance,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Transfer { dest, value }, true)
            .await
    }

    /// What a command of `call` by `signer` is estimated to cost: `call` run as a dry query
    /// (`Call::Estimate`: its cache writes and log lines dropped) with the cluster's largest
    /// gas limit. `gas_limit` is the limit to send it with: the gas the
    /// query used and a quarter more (state may change before the command runs). `call`'s
    /// own gas limit is ignored.
    pub async fn estimate(&self, signer: &Signer, call: Call) -> Result<Estimate, ClientError> {
        let mut call = call;
        match &mut call {
            Call::Call { gas_limit, .. } | Call::Instantiate { gas_limit, .. } => {
                *gas_limit = Gas::MAX
            }
            _ => {
                return Err(ClientError::Invalid(
                    "only a call or an instantiation has a cost to estimate".into(),
                ))
            }
        }
        let estimate = Call::Estimate {
            call: Bytes(call.encode()),
        };
        let answer = self.query(signer, estimate, None).await?;
        let gas_used = answer.gas_used;
        Ok(Estimate {
            gas_limit: gas_used
                .saturating_add(gas_used / 4)
                .saturating_add(ESTIMATE_MARGIN),
            gas_used,
            storage_deposit: answer.storage_deposit.0,
            result: answer.result,
        })
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

    /// One page of a contract's log (`signer` must be its deployer or one of the readers it
    /// allowed): the records `filter` asks for with their index, and the index the
    /// contract's next record will get. A signed query, sealed on a cluster that encrypts.
    pub async fn read_logs(
        &self,
        signer: &Signer,
        id: &AccountId,
        filter: LogFilter,
    ) -> Result<(Vec<LogEntry>, u64), ClientError> {
        let call = Call::Logs {
            contract: *id,
            filter,
        };
        let floor = self.floor.load(std::sync::atomic::Ordering::Relaxed);
        let answer = self
            .query(signer, call, (floor > 0).then_some(floor))
            .await?;
        let data = match answer.result {
            CallResult::Ok(out) => out.data.0,
            CallResult::Err(e) => {
                return Err(ClientError::Api {
                    status: 400,
                    kind: e.kind,
                    message: e.message,
                })
            }
            CallResult::Sealed(_) => {
                return Err(ClientError::Decode("a log page still sealed".into()))
            }
        };
        let page = LogPage::decode_all(&mut &data[..])
            .map_err(|e| ClientError::Decode(format!("a log page: {e}")))?;
        if page.records.len() > MAX_LOG_PAGE as usize {
            return Err(ClientError::Decode(format!(
                "a log page of {} records, more than {MAX_LOG_PAGE}",
                page.records.len()
            )));
        }
        let entries = page
            .records
            .into_iter()
            .map(|(index, record)| LogEntry::new(record, Some(index)))
            .collect();
        Ok((entries, page.next))
    }

    /// The first page of a contract's log (up to 1,000 records, oldest first).
    pub async fn logs(
        &self,
        signer: &Signer,
        id: &AccountId,
    ) -> Result<Vec<LogEntry>, ClientError> {
        Ok(self.read_logs(signer, id, LogFilter::default()).await?.0)
    }

    /// Sets who besides the deployer (`signer`) may read a contract's log (at most 16
    /// accounts; none to allow only the deployer); answers once the receipt exists.
    pub async fn set_log_readers(
        &self,
        signer: &Signer,
        id: &AccountId,
        readers: Vec<AccountId>,
    ) -> Result<Submitted, ClientError> {
        self.submit(
            signer,
            Call::LogReaders {
                contract: *id,
                readers,
            },
            true,
        )
        .await
    }

    /// A contract's schedules.
    pub async fn schedules(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Schedule>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/schedules")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes a schedule (`signer` must be the contract's deployer); answers once
    /// the receipt exists (an added schedule's id is its output, SCALE `u32`).
    pub async fn change_schedule(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::ScheduleOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Schedule { op }, true).await
    }

    /// A contract's Ethereum log subscriptions (cursor, deliveries, pending reports).
    pub async fn subscriptions(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Subscription>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/subscriptions")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes an Ethereum log subscription (`signer` must be the contract's
    /// deployer); answers once the receipt exists (an added subscription's id is its output,
    /// SCALE `u32`).
    pub async fn change_subscription(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::SubscriptionOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Subscription { op }, true).await
    }

    /// A contract's off-chain jobs (last tick answered, runs).
    pub async fn jobs(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Job>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/jobs")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes an off-chain job (`signer` must be the contract's deployer); answers
    /// once the receipt exists (an added job's id is its output, SCALE `u32`).
    pub async fn change_job(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::JobOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Job { op }, true).await
    }

    /// The runs triggers started for a contract (`signer` reads its log): its log records
    /// of kind `trigger` (seq, tick, outcome).
    pub async fn triggers(
        &self,
        signer: &Signer,
        id: &AccountId,
    ) -> Result<Vec<LogEntry>, ClientError> {
        let filter = LogFilter {
            kinds: vec![LogKind::Trigger],
            ..LogFilter::default()
        };
        Ok(self.read_logs(signer, id, filter).await?.0)
    }

    /// The records of a contract's log that `filter` selects, then new ones as they are
    /// stored: each read waits up to 20 s for a record past the last one seen. `filter.tail`
    /// starts from the last `limit` records.
    pub fn follow_logs<'a>(
        &'a self,
        signer: &'a Signer,
        id: AccountId,
        filter: LogFilter,
    ) -> impl Stream<Item = Result<LogEntry, ClientError>> + 'a {
        const WAIT_MS: u32 = 20_000;
        let state = (filter, false);
        futures::stream::unfold(Some(state), move |state| async move {
            let (mut filter, mut failed) = state?;
            loop {
                match self.read_logs(signer, &id, filter.clone()).await {
                    Ok((entries, next)) => {
                        failed = false;
                        // Follow from what this page ends at (or, when it is empty, from where
                        // the log is now), oldest first.
                        filter.after = entries
                            .last()
                            .and_then(|e| e.index)
                            .or_else(|| next.checked_sub(1))
                            .or(filter.after);
                        filter.tail = false;
                        filter.wait_ms = WAIT_MS;
                        if !entries.is_empty() {
                            let items: Vec<_> = entries.into_iter().map(Ok).collect();
                            return Some((futures::stream::iter(items), Some((filter, failed))));
                        }
                    }
                    // One failure is said and retried after a pause; a second in a row ends
                    // the stream.
                    Err(e) if !failed => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return Some((futures::stream::iter(vec![Err(e)]), Some((filter, true))));
                    }
                    Err(e) => return Some((futures::stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
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
fn open_result(
    open_reply: impl Fn(u64, &[u8]) -> Result<Vec<u8>, phat_crypto::CryptoError>,
    result: &mut CallResult,
) -> Result<(), ClientError> {
    if let CallResult::Sealed(ct) = result {
        let plain = open_reply(0, ct)?;
        *result = CallResult::decode_all(&mut &plain[..])
            .map_err(|e| ClientError::Decode(format!("sealed result: {e}")))?;
    }
    Ok(())
}
