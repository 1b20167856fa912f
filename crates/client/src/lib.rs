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

mod commands;
mod contract;
mod deploy;
mod error;
mod http;
mod logs;
mod queries;
mod requests;
mod retry;
mod sessions;
mod triggers;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use phat_primitives::protocol::{Seq, WorkerInfo};
use phat_primitives::Gas;

use trust::{is_loopback, Peer};

pub use contract::{Contract, MessageKind};
pub use error::ClientError;
pub use phat_attest::{TeeKind, TeePolicy};
pub use phat_crypto as crypto;
pub use phat_crypto::Signer;
pub use phat_primitives as primitives;
pub use queries::{Estimate, ESTIMATE_MARGIN};
pub use requests::{call, instantiate, sign, sign_certified};
pub use trust::parse_pin;

/// The largest answer the client reads from an endpoint (a worker's answers are far smaller:
/// the biggest, a hardware report with its collateral, is tens of KB).
pub const MAX_ANSWER: usize = 32 << 20;

/// Gas limit used when the caller does not give one.
pub const DEFAULT_GAS_LIMIT: Gas = 5_000_000_000;

/// How long a request the client signs stays valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

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

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.base
    }
}
