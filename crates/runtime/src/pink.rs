//! Phala's pink chain extension: the dispatcher that gives contracts their off-chain powers.
//!
//! Contracts written against `pink-extension` call `call_chain_extension` with extension id 0
//! and one of pink's function ids; [`PinkExtension`] decodes the SCALE arguments exactly as
//! pink's runtime does, runs the function and encodes the answer in pink's format. Everything
//! that reaches outside the runtime (HTTP, the worker's cache, logs, randomness, the clock, the
//! worker's key, the cluster's key seed) goes through the embedder's [`PinkHost`].
//!
//! Reply format (pink's `handle_status` flag): functions whose pink type is
//! `Result<T, E: CodableError>` (6 `cache_set`, 22 `batch_http_request`) answer status 0 with
//! `T` encoded, or the error's status code (`HttpRequestError` discriminant + 1,
//! `CacheQuotaExceeded` 1) with empty output; all others answer status 0 and their SCALE value.
//! Malformed arguments, bad keys and failures pink's types cannot express make the contract trap
//! with [`ExtensionError::Failed`].
//!
//! Queries and commands (as in Phala, with every command answer identical on every worker):
//!
//! | function | query | command |
//! | --- | --- | --- |
//! | `http_request`, `batch_http_request`, `getrandom`, `untrusted_millis_since_unix_epoch` | host | trap |
//! | `cache_set`, `cache_set_expiration` | host | host; `cache_set` always answers `Ok(())` |
//! | `cache_get` | host | `None`, host not asked |
//! | `cache_remove` | host | host removes; answers `None` |
//! | `worker_pubkey` | host | 32 zero bytes (as Phala) |
//! | `sign` sr25519 | hedged nonce (host randomness) | deterministic nonce (Phala answers `[]`) |
//! | everything else | same | same |
//!
//! Keys: a contract's secrets derive from the cluster-wide [`PinkHost::key_seed`] and the
//! contract id, domain-separated (HKDF-SHA256 under `phat/v1/contract-key` with the kind,
//! contract and salt), so every worker derives the same keys and no two contracts share one.
//! A contract's Ethereum key is the first 32 bytes of `derive_sr25519_key("ethereum")`.
//! Only `derive_sr25519_key` hands a derived secret to the contract, as pink does: a 64-byte
//! schnorrkel secret key (32-byte scalar ‖ 32-byte nonce). Key formats follow sp-core, which
//! pink uses: sr25519 secrets are 32-byte mini secrets (expanded in ed25519 mode) or 64-byte
//! secret keys, signatures 64 bytes in the `substrate` signing context; ed25519 secrets are
//! 32-byte seeds; ecdsa (secp256k1) secrets are 32 bytes, public keys 33 bytes compressed,
//! signatures 65 bytes `r ‖ s ‖ v` over `blake2_256(message)` (or the given prehash).
//!
//! Functions phat does not provide answer "not supported" in the reply type where it allows:
//! 20 `import_latest_system_code` → `None`, 24 `js_eval` → `JsValue::Exception`,
//! 25 `worker_sgx_quote` → `None`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, Verifier as _};
use parity_scale_codec::{Decode, DecodeLimit, Encode};
use phat_primitives::{blake2_256, AccountId, CodeHash, Gas, Mode};

use crate::extension::{
    ChainExtension, ExtensionEnv, ExtensionError, ExtensionId, ExtensionOutput, ExtensionState,
};

/// pink's extension id (the high 16 bits of the chain-extension id).
pub const PINK_EXTENSION_ID: u16 = 0;

/// Nesting limit when decoding arguments (as pallet-contracts' `MAX_DECODE_NESTING`).
const MAX_DECODE_NESTING: u32 = 256;

/// sp-core's sr25519 signing context.
const SR25519_CONTEXT: &[u8] = b"substrate";

/// An HTTP request from a contract (pink's `HttpRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HttpRequest {
    /// Absolute URL.
    pub url: String,
    /// Method, e.g. `GET`.
    pub method: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

/// An HTTP response to a contract (pink's `HttpResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status_code: u16,
    /// Reason phrase, e.g. `OK`.
    pub reason_phrase: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

/// Why an HTTP request failed (pink's `HttpRequestError`, same variants in the same order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, thiserror::Error)]
pub enum HttpRequestError {
    /// The URL does not parse.
    #[error("invalid URL")]
    InvalidUrl,
    /// The method is not a valid HTTP method.
    #[error("invalid method")]
    InvalidMethod,
    /// A header name is invalid.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A header value is invalid.
    #[error("invalid header value")]
    InvalidHeaderValue,
    /// The HTTP client could not be created.
    #[error("failed to create client")]
    FailedToCreateClient,
    /// The request did not complete in time.
    #[error("timeout")]
    Timeout,
    /// The request is not allowed (by policy, or outside a query).
    #[error("not allowed")]
    NotAllowed,
    /// Too many requests (in a batch, or at once).
    #[error("too many requests")]
    TooManyRequests,
    /// The network failed.
    #[error("network error")]
    NetworkError,
    /// The response exceeds the size limit.
    #[error("response too large")]
    ResponseTooLarge,
}

impl HttpRequestError {
    /// The chain-extension status code pink reports this error with (discriminant + 1).
    pub fn status_code(self) -> u32 {
        self as u32 + 1
    }
}

/// A signature scheme (pink's `SigType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum SigType {
    /// Ed25519 (32-byte seeds, 32-byte public keys, 64-byte signatures).
    Ed25519,
    /// Schnorrkel sr25519 in the `substrate` context.
    Sr25519,
    /// ECDSA over secp256k1 (33-byte compressed public keys, 65-byte recoverable signatures).
    Ecdsa,
}

/// The contract's cache quota is used up (pink's `StorageQuotaExceeded`; status code 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, thiserror::Error)]
#[error("cache quota exceeded")]
pub struct CacheQuotaExceeded;

impl CacheQuotaExceeded {
    /// The chain-extension status code pink reports this error with.
    pub const STATUS_CODE: u32 = 1;
}

/// The answer to `batch_http_request` (pink's `BatchHttpResult`).
pub type BatchHttpResult = Result<Vec<Result<HttpResponse, HttpRequestError>>, HttpRequestError>;

/// Script source or bytecode passed to `js_eval` (pink-types' `JsCode`; decoded, never run).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
enum JsCode {
    Source(String),
    Bytecode(Vec<u8>),
}

/// The result of `js_eval` (pink-types' `JsValue`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
enum JsValue {
    Undefined,
    Null,
    String(String),
    Bytes(Vec<u8>),
    Other(String),
    Exception(String),
}

/// The outside effects of pink's functions, provided by the embedder (the worker).
///
/// Implementations must be quick to fail rather than block: HTTP calls get a timeout already
/// bounded by the query's time left. In commands the dispatcher only calls the cache writes and
/// `log`, whose effects every worker applies identically.
pub trait PinkHost: Send + Sync {
    /// One HTTP request; called in queries only; `timeout` is already bounded by the query's time left.
    fn http_request(
        &self,
        contract: &AccountId,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpRequestError>;
    /// Several requests at once (queries only); at most [`PinkConfig::max_batch`] of them.
    fn batch_http_request(
        &self,
        contract: &AccountId,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> BatchHttpResult;
    /// Stores `value` under `key` in `contract`'s cache, within the contract's quota.
    fn cache_set(
        &self,
        contract: &AccountId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), CacheQuotaExceeded>;
    /// Makes `key` of `contract`'s cache expire `expire_secs` seconds from now.
    fn cache_set_expiration(&self, contract: &AccountId, key: &[u8], expire_secs: u64);
    /// The value under `key` in `contract`'s cache (queries only).
    fn cache_get(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>>;
    /// Removes `key` from `contract`'s cache, returning the old value.
    fn cache_remove(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>>;
    /// A log line (level 1 error .. 5 trace) of `contract`.
    fn log(&self, contract: &AccountId, mode: Mode, level: u8, message: &str);
    /// Random bytes (queries only).
    fn getrandom(&self, len: usize) -> Vec<u8>;
    /// Wall-clock ms (queries only).
    fn now_millis(&self) -> u64;
    /// The worker's public key (32 bytes).
    fn worker_pubkey(&self) -> [u8; 32];
    /// The cluster-wide secret seed contract keys derive from (identical on every worker).
    fn key_seed(&self) -> [u8; 32];
}

impl<T: PinkHost + ?Sized> PinkHost for Arc<T> {
    fn http_request(
        &self,
        contract: &AccountId,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpRequestError> {
        (**self).http_request(contract, req, timeout)
    }
    fn batch_http_request(
        &self,
        contract: &AccountId,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> BatchHttpResult {
        (**self).batch_http_request(contract, reqs, timeout)
    }
    fn cache_set(
        &self,
        contract: &AccountId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), CacheQuotaExceeded> {
        (**self).cache_set(contract, key, value)
    }
    fn cache_set_expiration(&self, contract: &AccountId, key: &[u8], expire_secs: u64) {
        (**self).cache_set_expiration(contract, key, expire_secs)
    }
    fn cache_get(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
        (**self).cache_get(contract, key)
    }
    fn cache_remove(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
        (**self).cache_remove(contract, key)
    }
    fn log(&self, contract: &AccountId, mode: Mode, level: u8, message: &str) {
        (**self).log(contract, mode, level, message)
    }
    fn getrandom(&self, len: usize) -> Vec<u8> {
        (**self).getrandom(len)
    }
    fn now_millis(&self) -> u64 {
        (**self).now_millis()
    }
    fn worker_pubkey(&self) -> [u8; 32] {
        (**self).worker_pubkey()
    }
    fn key_seed(&self) -> [u8; 32] {
        (**self).key_seed()
    }
}

/// Gas the dispatcher charges on top of the runtime's base cost of an extension call.
///
/// Commands must cost the same on every worker, so every charge depends only on the call's
/// input and its (deterministic) output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinkGas {
    /// Every pink function call.
    pub call: Gas,
    /// Each byte of input and of output.
    pub per_byte: Gas,
    /// Each key derivation, signature or verification.
    pub crypto: Gas,
    /// Each HTTP request (a batch pays for each of its requests).
    pub http: Gas,
}

impl Default for PinkGas {
    fn default() -> Self {
        Self {
            call: 1_000,
            per_byte: 1,
            crypto: 50_000,
            http: 100_000,
        }
    }
}

/// Settings of the pink dispatcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinkConfig {
    /// Most requests in one `batch_http_request`; more answer `TooManyRequests`.
    pub max_batch: usize,
    /// Longest HTTP timeout granted (further bounded by the query's time left).
    pub max_http_timeout: Duration,
    /// What `runtime_version` answers (major, minor).
    pub runtime_version: (u32, u32),
    /// What `system_contract_id` answers; by default [`default_system_contract_id`].
    pub system_contract: AccountId,
    /// Gas charges.
    pub gas: PinkGas,
}

impl Default for PinkConfig {
    fn default() -> Self {
        Self {
            max_batch: 5,
            max_http_timeout: Duration::from_secs(10),
            runtime_version: (1, 0),
            system_contract: default_system_contract_id(),
            gas: PinkGas::default(),
        }
    }
}

/// The well-known id `system_contract_id` answers by default:
/// `blake2_256(b"phat/system-contract")`. phat has no system contract; the id is fixed so that
/// contracts comparing against it behave the same on every worker.
pub fn default_system_contract_id() -> AccountId {
    AccountId(blake2_256(b"phat/system-contract"))
}

/// What `current_event_chain_head` answers at `block`: `(block, blake2_256(SCALE(
/// ("phat/event-chain-head", block))))`. phat has no pink event chain; the pair is a
/// deterministic stand-in that changes with every block.
pub fn event_chain_head(block: u64) -> (u64, [u8; 32]) {
    (
        block,
        blake2_256(&(b"phat/event-chain-head".as_slice(), block).encode()),
    )
}

/// The kinds of contract key, each derived under its own label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// sr25519: the root of the contract's own key and of `derive_sr25519_key`.
    Sr25519,
    /// ed25519.
    Ed25519,
    /// ECDSA over secp256k1 (gives the contract its Ethereum address).
    Secp256k1,
}

/// 32 bytes of key material for `contract` from the cluster's contract-key `seed`
/// (HKDF-SHA256 under `phat/v1/contract-key`, see [`phat_crypto::contract_key_material`]).
/// The same on every worker holding `seed`, different per contract, kind and salt.
pub fn derive_key_material(
    seed: &[u8; 32],
    contract: &AccountId,
    kind: KeyKind,
    salt: &[u8],
) -> [u8; 32] {
    let kind = match kind {
        KeyKind::Sr25519 => phat_crypto::ContractKeyKind::Sr25519,
        KeyKind::Ed25519 => phat_crypto::ContractKeyKind::Ed25519,
        KeyKind::Secp256k1 => phat_crypto::ContractKeyKind::Secp256k1,
    };
    *phat_crypto::contract_key_material(seed, contract.as_bytes(), kind, salt).expose()
}

/// The salt of a contract's Ethereum key: its secp256k1 secret is the first 32 bytes of
/// `derive_sr25519_key(ETHEREUM_KEY_SALT)` (the convention of Phala's `pink-web3`, with a
/// dedicated salt), so contracts can sign with it through `ecdsa_sign_prehashed`.
pub const ETHEREUM_KEY_SALT: &[u8] = b"ethereum";

/// The 64-byte sr25519 secret key `derive_sr25519_key(salt)` gives `contract` (pink's format:
/// schnorrkel scalar ‖ nonce; `sign` and `get_public_key` take it back).
pub fn derive_sr25519_secret(seed: &[u8; 32], contract: &AccountId, salt: &[u8]) -> [u8; 64] {
    sr25519_expand(&derive_key_material(seed, contract, KeyKind::Sr25519, salt)).to_bytes()
}

/// The secp256k1 key `contract` signs Ethereum transactions with (see [`ETHEREUM_KEY_SALT`]).
pub fn contract_ethereum_key(seed: &[u8; 32], contract: &AccountId) -> k256::ecdsa::SigningKey {
    let secret = derive_sr25519_secret(seed, contract, ETHEREUM_KEY_SALT);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&secret[..32]);
    // An sr25519 scalar is below the ed25519 group order (< 2^253), so it is a valid non-zero
    // secp256k1 scalar except with negligible probability (zero).
    k256::ecdsa::SigningKey::from_bytes(&bytes.into())
        .expect("an sr25519 scalar is a valid secp256k1 secret")
}

/// The public keys of a contract's own keys (no salt), for showing its identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContractPublicKeys {
    /// sr25519 public key (that of `derive_sr25519_key` with an empty salt).
    pub sr25519: [u8; 32],
    /// ed25519 public key.
    pub ed25519: [u8; 32],
    /// Compressed secp256k1 public key of the contract's Ethereum key.
    pub ecdsa: [u8; 33],
    /// The Ethereum address of that key.
    pub ethereum_address: [u8; 20],
}

/// The public keys of `contract`'s own keys derived from `seed`.
pub fn contract_public_keys(seed: &[u8; 32], contract: &AccountId) -> ContractPublicKeys {
    let sr25519 =
        sr25519_expand(&derive_key_material(seed, contract, KeyKind::Sr25519, b"")).to_public();
    let ed25519 = ed25519_dalek::SigningKey::from_bytes(&derive_key_material(
        seed,
        contract,
        KeyKind::Ed25519,
        b"",
    ));
    let ecdsa = compressed(contract_ethereum_key(seed, contract).verifying_key());
    let ethereum_address = crate::crypto::ecdsa_to_eth_address(&ecdsa)
        .expect("a key's own compressed point decompresses");
    ContractPublicKeys {
        sr25519: sr25519.to_bytes(),
        ed25519: ed25519.verifying_key().to_bytes(),
        ecdsa,
        ethereum_address,
    }
}

/// pink's functions, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PinkFunction {
    /// 1: one HTTP request (queries only).
    HttpRequest = 1,
    /// 2: sign a message.
    Sign = 2,
    /// 3: verify a signature.
    Verify = 3,
    /// 4: derive an sr25519 secret key from the contract key and a salt.
    DeriveSr25519Key = 4,
    /// 5: the public key of a secret key.
    GetPublicKey = 5,
    /// 6: set a cache entry.
    CacheSet = 6,
    /// 7: set a cache entry's expiration.
    CacheSetExpiration = 7,
    /// 8: read a cache entry (queries only; `None` in commands).
    CacheGet = 8,
    /// 9: remove a cache entry.
    CacheRemove = 9,
    /// 10: log a line.
    Log = 10,
    /// 11: random bytes (queries only).
    Getrandom = 11,
    /// 12: whether the call is a command.
    IsInTransaction = 12,
    /// 13: ECDSA-sign a 32-byte hash.
    EcdsaSignPrehashed = 13,
    /// 14: verify an ECDSA signature of a 32-byte hash.
    EcdsaVerifyPrehashed = 14,
    /// 15: the system contract's id.
    SystemContractId = 15,
    /// 16: an account's (total, free) balance.
    BalanceOf = 16,
    /// 17: the worker's public key.
    WorkerPubkey = 17,
    /// 18: wall-clock milliseconds (queries only).
    UntrustedMillisSinceUnixEpoch = 18,
    /// 19: whether a code hash is uploaded.
    CodeExists = 19,
    /// 20: import the system contract's code (not supported: answers `None`).
    ImportLatestSystemCode = 20,
    /// 21: the runtime version.
    RuntimeVersion = 21,
    /// 22: several HTTP requests (queries only).
    BatchHttpRequest = 22,
    /// 23: the event chain head.
    CurrentEventChainHead = 23,
    /// 24: evaluate JavaScript (not supported: answers an exception).
    JsEval = 24,
    /// 25: the worker's SGX quote (not supported: answers `None`).
    WorkerSgxQuote = 25,
}

impl PinkFunction {
    /// The function with pink id `id`, if any.
    pub fn from_id(id: u16) -> Option<Self> {
        use PinkFunction::*;
        Some(match id {
            1 => HttpRequest,
            2 => Sign,
            3 => Verify,
            4 => DeriveSr25519Key,
            5 => GetPublicKey,
            6 => CacheSet,
            7 => CacheSetExpiration,
            8 => CacheGet,
            9 => CacheRemove,
            10 => Log,
            11 => Getrandom,
            12 => IsInTransaction,
            13 => EcdsaSignPrehashed,
            14 => EcdsaVerifyPrehashed,
            15 => SystemContractId,
            16 => BalanceOf,
            17 => WorkerPubkey,
            18 => UntrustedMillisSinceUnixEpoch,
            19 => CodeExists,
            20 => ImportLatestSystemCode,
            21 => RuntimeVersion,
            22 => BatchHttpRequest,
            23 => CurrentEventChainHead,
            24 => JsEval,
            25 => WorkerSgxQuote,
            _ => return None,
        })
    }

    /// pink's name of the function.
    pub fn name(self) -> &'static str {
        use PinkFunction::*;
        match self {
            HttpRequest => "http_request",
            Sign => "sign",
            Verify => "verify",
            DeriveSr25519Key => "derive_sr25519_key",
            GetPublicKey => "get_public_key",
            CacheSet => "cache_set",
            CacheSetExpiration => "cache_set_expiration",
            CacheGet => "cache_get",
            CacheRemove => "cache_remove",
            Log => "log",
            Getrandom => "getrandom",
            IsInTransaction => "is_in_transaction",
            EcdsaSignPrehashed => "ecdsa_sign_prehashed",
            EcdsaVerifyPrehashed => "ecdsa_verify_prehashed",
            SystemContractId => "system_contract_id",
            BalanceOf => "balance_of",
            WorkerPubkey => "worker_pubkey",
            UntrustedMillisSinceUnixEpoch => "untrusted_millis_since_unix_epoch",
            CodeExists => "code_exists",
            ImportLatestSystemCode => "import_latest_system_code",
            RuntimeVersion => "runtime_version",
            BatchHttpRequest => "batch_http_request",
            CurrentEventChainHead => "current_event_chain_head",
            JsEval => "js_eval",
            WorkerSgxQuote => "worker_sgx_quote",
        }
    }

    /// Whether the function only works in queries (it traps in commands).
    pub fn query_only(self) -> bool {
        matches!(
            self,
            PinkFunction::HttpRequest
                | PinkFunction::BatchHttpRequest
                | PinkFunction::Getrandom
                | PinkFunction::UntrustedMillisSinceUnixEpoch
        )
    }
}

/// pink's chain extension over a [`PinkHost`].
pub struct PinkExtension<H: PinkHost> {
    host: H,
    config: PinkConfig,
}

impl<H: PinkHost> PinkExtension<H> {
    /// The dispatcher over `host` with the default [`PinkConfig`].
    pub fn new(host: H) -> Self {
        Self::with_config(host, PinkConfig::default())
    }

    /// The dispatcher over `host` with `config`.
    pub fn with_config(host: H, config: PinkConfig) -> Self {
        Self { host, config }
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The configuration.
    pub fn config(&self) -> &PinkConfig {
        &self.config
    }
}

/// Why dispatching stopped without a reply.
enum Stop {
    /// The gas the call needs exceeds what the contract has left.
    OutOfGas,
    /// The contract traps with this error.
    Error(ExtensionError),
}

impl From<ExtensionError> for Stop {
    fn from(err: ExtensionError) -> Self {
        Stop::Error(err)
    }
}

/// Gas accounting of one call: charges accumulate and stop the call before costly work once
/// they exceed what the contract has left.
struct Meter {
    used: Gas,
    left: Gas,
}

impl Meter {
    fn charge(&mut self, gas: Gas) -> Result<(), Stop> {
        self.used = self.used.saturating_add(gas);
        if self.used > self.left {
            return Err(Stop::OutOfGas);
        }
        Ok(())
    }
}

/// A reply: status code and SCALE-encoded output.
struct Reply {
    status: u32,
    output: Vec<u8>,
}

impl Reply {
    /// Status 0 with `value` encoded.
    fn value(value: impl Encode) -> Self {
        Reply {
            status: 0,
            output: value.encode(),
        }
    }

    /// A non-zero status with empty output.
    fn status(status: u32) -> Self {
        Reply {
            status,
            output: Vec::new(),
        }
    }
}

fn failed(func: PinkFunction, what: impl std::fmt::Display) -> Stop {
    Stop::Error(ExtensionError::Failed(format!("{}: {what}", func.name())))
}

/// Decodes `func`'s argument tuple, the whole input and nothing else.
fn args<T: Decode>(func: PinkFunction, input: &[u8]) -> Result<T, Stop> {
    T::decode_all_with_depth_limit(MAX_DECODE_NESTING, &mut &input[..]).map_err(|e| {
        Stop::Error(ExtensionError::Failed(format!(
            "bad arguments to {}: {e}",
            func.name()
        )))
    })
}

impl<H: PinkHost> ChainExtension for PinkExtension<H> {
    fn call(
        &self,
        env: &ExtensionEnv,
        state: &dyn ExtensionState,
        id: ExtensionId,
        input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError> {
        if id.extension != PINK_EXTENSION_ID {
            return Err(ExtensionError::Unsupported);
        }
        let func = PinkFunction::from_id(id.function).ok_or(ExtensionError::Unsupported)?;
        let gas = &self.config.gas;
        let mut meter = Meter {
            used: 0,
            left: env.gas_left,
        };
        let result = meter
            .charge(
                gas.call
                    .saturating_add(gas.per_byte.saturating_mul(input.len() as Gas)),
            )
            .and_then(|()| self.dispatch(func, env, state, input, &mut meter));
        match result {
            Ok(reply) => {
                let out_gas = gas.per_byte.saturating_mul(reply.output.len() as Gas);
                Ok(ExtensionOutput {
                    status: reply.status,
                    output: reply.output,
                    gas: meter.used.saturating_add(out_gas),
                })
            }
            // Charging more than is left makes the runtime fail the call with out-of-gas.
            Err(Stop::OutOfGas) => Ok(ExtensionOutput {
                status: 0,
                output: Vec::new(),
                gas: meter.used,
            }),
            Err(Stop::Error(err)) => Err(err),
        }
    }
}

impl<H: PinkHost> PinkExtension<H> {
    fn dispatch(
        &self,
        func: PinkFunction,
        env: &ExtensionEnv,
        state: &dyn ExtensionState,
        input: &[u8],
        meter: &mut Meter,
    ) -> Result<Reply, Stop> {
        use PinkFunction as F;
        let query = env.mode == Mode::Query;
        if func.query_only() && !query {
            return Err(failed(
                func,
                "only available in queries (a command must be deterministic)",
            ));
        }
        let contract = &env.address;
        let gas = &self.config.gas;
        Ok(match func {
            F::HttpRequest => {
                let request: HttpRequest = args(func, input)?;
                meter.charge(gas.http)?;
                let timeout = self.http_timeout(env, self.config.max_http_timeout);
                if timeout.is_zero() {
                    return Err(failed(func, "the query has no time left"));
                }
                let response = self
                    .host
                    .http_request(contract, request, timeout)
                    .map_err(|e| failed(func, e))?;
                Reply::value(response)
            }
            F::BatchHttpRequest => {
                let (requests, timeout_ms): (Vec<HttpRequest>, u64) = args(func, input)?;
                if requests.len() > self.config.max_batch {
                    return Ok(Reply::status(
                        HttpRequestError::TooManyRequests.status_code(),
                    ));
                }
                meter.charge(gas.http.saturating_mul(requests.len() as Gas))?;
                if requests.is_empty() {
                    return Ok(Reply::value(
                        Vec::<Result<HttpResponse, HttpRequestError>>::new(),
                    ));
                }
                let wanted = Duration::from_millis(timeout_ms).min(self.config.max_http_timeout);
                let timeout = self.http_timeout(env, wanted);
                if timeout.is_zero() {
                    return Ok(Reply::status(HttpRequestError::Timeout.status_code()));
                }
                match self.host.batch_http_request(contract, requests, timeout) {
                    Ok(responses) => Reply::value(responses),
                    Err(e) => Reply::status(e.status_code()),
                }
            }
            F::Sign => {
                let (sigtype, key, message): (SigType, Vec<u8>, Vec<u8>) = args(func, input)?;
                meter.charge(gas.crypto)?;
                let entropy = match (sigtype, query) {
                    (SigType::Sr25519, true) => self.entropy(),
                    _ => [0; 32],
                };
                Reply::value(sign(sigtype, &key, &message, entropy).map_err(|e| failed(func, e))?)
            }
            F::Verify => {
                let (sigtype, pubkey, message, signature): (SigType, Vec<u8>, Vec<u8>, Vec<u8>) =
                    args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(verify(sigtype, &pubkey, &message, &signature))
            }
            F::DeriveSr25519Key => {
                let salt: Vec<u8> = args(func, input)?;
                meter.charge(gas.crypto)?;
                let secret = derive_sr25519_secret(&self.host.key_seed(), contract, &salt);
                Reply::value(secret.to_vec())
            }
            F::GetPublicKey => {
                let (sigtype, key): (SigType, Vec<u8>) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(public_key(sigtype, &key).map_err(|e| failed(func, e))?)
            }
            F::CacheSet => {
                let (key, value): (Vec<u8>, Vec<u8>) = args(func, input)?;
                let result = self.host.cache_set(contract, &key, &value);
                match result {
                    // In a command the answer may not depend on this worker's cache.
                    Err(CacheQuotaExceeded) if query => {
                        Reply::status(CacheQuotaExceeded::STATUS_CODE)
                    }
                    _ => Reply::value(()),
                }
            }
            F::CacheSetExpiration => {
                let (key, expire): (Vec<u8>, u64) = args(func, input)?;
                self.host.cache_set_expiration(contract, &key, expire);
                Reply::value(())
            }
            F::CacheGet => {
                let key: Vec<u8> = args(func, input)?;
                let value = if query {
                    self.host.cache_get(contract, &key)
                } else {
                    None
                };
                Reply::value(value)
            }
            F::CacheRemove => {
                let key: Vec<u8> = args(func, input)?;
                let old = self.host.cache_remove(contract, &key);
                Reply::value(if query { old } else { None })
            }
            F::Log => {
                let (level, message): (u8, String) = args(func, input)?;
                self.host.log(contract, env.mode, level, &message);
                Reply::value(())
            }
            F::Getrandom => {
                let len: u8 = args(func, input)?;
                let bytes = self.host.getrandom(len.into());
                if bytes.len() != usize::from(len) {
                    return Err(failed(func, "the host returned the wrong number of bytes"));
                }
                Reply::value(bytes)
            }
            F::IsInTransaction => {
                args::<()>(func, input)?;
                Reply::value(!query)
            }
            F::EcdsaSignPrehashed => {
                let (key, hash): (Vec<u8>, [u8; 32]) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(ecdsa_sign_prehashed(&key, &hash).map_err(|e| failed(func, e))?)
            }
            F::EcdsaVerifyPrehashed => {
                let (signature, hash, pubkey): ([u8; 65], [u8; 32], [u8; 33]) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(ecdsa_verify_prehashed(&signature, &hash, &pubkey))
            }
            F::SystemContractId => {
                args::<()>(func, input)?;
                Reply::value(self.config.system_contract)
            }
            F::BalanceOf => {
                let account: AccountId = args(func, input)?;
                // phat has no reserved balances: total and free are the same.
                let balance = state.balance(&account)?;
                Reply::value((balance, balance))
            }
            F::WorkerPubkey => {
                args::<()>(func, input)?;
                Reply::value(if query {
                    self.host.worker_pubkey()
                } else {
                    [0; 32]
                })
            }
            F::UntrustedMillisSinceUnixEpoch => {
                args::<()>(func, input)?;
                Reply::value(self.host.now_millis())
            }
            F::CodeExists => {
                let (hash, sidevm): ([u8; 32], bool) = args(func, input)?;
                // phat runs no SideVM programs.
                Reply::value(!sidevm && state.code_exists(&CodeHash(hash))?)
            }
            F::ImportLatestSystemCode => {
                let _payer: AccountId = args(func, input)?;
                Reply::value(None::<[u8; 32]>)
            }
            F::RuntimeVersion => {
                args::<()>(func, input)?;
                Reply::value(self.config.runtime_version)
            }
            F::CurrentEventChainHead => {
                args::<()>(func, input)?;
                Reply::value(event_chain_head(env.block_number.into()))
            }
            F::JsEval => {
                let (_codes, _args): (Vec<JsCode>, Vec<String>) = args(func, input)?;
                Reply::value(JsValue::Exception(
                    "js_eval is not supported by phat".into(),
                ))
            }
            F::WorkerSgxQuote => {
                args::<()>(func, input)?;
                // `Option<SgxQuote>`: phat workers have no SGX quote.
                Reply::value(None::<()>)
            }
        })
    }

    /// `wanted`, bounded by the query's time left.
    fn http_timeout(&self, env: &ExtensionEnv, wanted: Duration) -> Duration {
        match env.deadline {
            Some(deadline) => wanted.min(deadline.saturating_duration_since(Instant::now())),
            None => wanted,
        }
    }

    /// 32 bytes from the host's randomness (queries only), zero-padded if it gives fewer.
    fn entropy(&self) -> [u8; 32] {
        let mut out = [0; 32];
        for (o, b) in out.iter_mut().zip(self.host.getrandom(32)) {
            *o = b;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures, in sp-core's formats.

/// Why a key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum KeyError {
    #[error("invalid {0:?} secret key: expected {1}, got {2} bytes")]
    Length(SigType, &'static str, usize),
    #[error("invalid {0:?} secret key")]
    Invalid(SigType),
}

fn sr25519_expand(mini: &[u8; 32]) -> schnorrkel::SecretKey {
    // Every 32-byte string is a valid mini secret key.
    schnorrkel::MiniSecretKey::from_bytes(mini)
        .map(|m| m.expand(schnorrkel::ExpansionMode::Ed25519))
        .unwrap_or_else(|_| unreachable!("a mini secret key is any 32 bytes"))
}

/// An sr25519 secret key from a 32-byte mini secret or a 64-byte secret key (as sp-core).
fn sr25519_secret(key: &[u8]) -> Result<schnorrkel::SecretKey, KeyError> {
    match key.len() {
        32 => schnorrkel::MiniSecretKey::from_bytes(key)
            .map(|m| m.expand(schnorrkel::ExpansionMode::Ed25519))
            .map_err(|_| KeyError::Invalid(SigType::Sr25519)),
        64 => {
            schnorrkel::SecretKey::from_bytes(key).map_err(|_| KeyError::Invalid(SigType::Sr25519))
        }
        n => Err(KeyError::Length(SigType::Sr25519, "32 or 64", n)),
    }
}

fn ed25519_secret(key: &[u8]) -> Result<ed25519_dalek::SigningKey, KeyError> {
    let seed: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Length(SigType::Ed25519, "32", key.len()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

fn ecdsa_secret(key: &[u8]) -> Result<k256::ecdsa::SigningKey, KeyError> {
    let bytes: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Length(SigType::Ecdsa, "32", key.len()))?;
    k256::ecdsa::SigningKey::from_bytes(&bytes.into())
        .map_err(|_| KeyError::Invalid(SigType::Ecdsa))
}

fn compressed(key: &k256::ecdsa::VerifyingKey) -> [u8; 33] {
    let mut out = [0; 33];
    out.copy_from_slice(key.to_encoded_point(true).as_bytes());
    out
}

/// Nonce entropy for sr25519 signing: 32 given bytes, repeated. schnorrkel mixes them with the
/// secret nonce and the transcript (message, public key), so zero entropy still gives a secure,
/// deterministic signature (like ed25519's), and host randomness hedges it in queries.
struct NonceEntropy {
    bytes: [u8; 32],
    pos: usize,
}

impl rand_core::RngCore for NonceEntropy {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.bytes[self.pos % 32];
            self.pos = self.pos.wrapping_add(1);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for NonceEntropy {}

/// Signs `message` with `key` (pink's `sign`).
fn sign(
    sigtype: SigType,
    key: &[u8],
    message: &[u8],
    entropy: [u8; 32],
) -> Result<Vec<u8>, KeyError> {
    Ok(match sigtype {
        SigType::Sr25519 => {
            let secret = sr25519_secret(key)?;
            let public = secret.to_public();
            let transcript = schnorrkel::signing_context(SR25519_CONTEXT).bytes(message);
            let rng = NonceEntropy {
                bytes: entropy,
                pos: 0,
            };
            secret
                .sign(schnorrkel::context::attach_rng(transcript, rng), &public)
                .to_bytes()
                .to_vec()
        }
        SigType::Ed25519 => ed25519_secret(key)?.sign(message).to_bytes().to_vec(),
        SigType::Ecdsa => ecdsa_sign_prehashed(key, &blake2_256(message))?.to_vec(),
    })
}

/// Whether `signature` is `pubkey`'s signature of `message` (pink's `verify`); malformed keys
/// and signatures are simply not valid.
fn verify(sigtype: SigType, pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    match sigtype {
        SigType::Sr25519 => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 32]>::try_from(pubkey),
                <[u8; 64]>::try_from(signature),
            ) else {
                return false;
            };
            crate::crypto::sr25519_verify(&signature, message, &public)
        }
        SigType::Ed25519 => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 32]>::try_from(pubkey),
                <[u8; 64]>::try_from(signature),
            ) else {
                return false;
            };
            let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
                return false;
            };
            public
                .verify(message, &ed25519_dalek::Signature::from_bytes(&signature))
                .is_ok()
        }
        SigType::Ecdsa => {
            let (Ok(public), Ok(signature)) = (
                <[u8; 33]>::try_from(pubkey),
                <[u8; 65]>::try_from(signature),
            ) else {
                return false;
            };
            ecdsa_verify_prehashed(&signature, &blake2_256(message), &public)
        }
    }
}

/// The public key of secret `key` (pink's `get_public_key`).
fn public_key(sigtype: SigType, key: &[u8]) -> Result<Vec<u8>, KeyError> {
    Ok(match sigtype {
        SigType::Sr25519 => sr25519_secret(key)?.to_public().to_bytes().to_vec(),
        SigType::Ed25519 => ed25519_secret(key)?.verifying_key().to_bytes().to_vec(),
        SigType::Ecdsa => compressed(ecdsa_secret(key)?.verifying_key()).to_vec(),
    })
}

/// A 65-byte recoverable ECDSA signature `r ‖ s ‖ v` of `hash` (low `s`, `v` 0 or 1).
fn ecdsa_sign_prehashed(key: &[u8], hash: &[u8; 32]) -> Result<[u8; 65], KeyError> {
    let key = ecdsa_secret(key)?;
    let (signature, recovery_id) = key
        .sign_prehash_recoverable(hash)
        .map_err(|_| KeyError::Invalid(SigType::Ecdsa))?;
    let mut out = [0; 65];
    out[..64].copy_from_slice(&signature.to_bytes());
    out[64] = recovery_id.to_byte();
    Ok(out)
}

/// Whether `signature` of `hash` recovers to `pubkey`.
fn ecdsa_verify_prehashed(signature: &[u8; 65], hash: &[u8; 32], pubkey: &[u8; 33]) -> bool {
    crate::crypto::ecdsa_recover(signature, hash).is_some_and(|found| &found == pubkey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    const CONTRACT: AccountId = AccountId([7; 32]);
    const OTHER: AccountId = AccountId([8; 32]);
    const LOTS: Gas = 10_000_000_000;

    /// Cache entries by (contract, key).
    type Cache = HashMap<(AccountId, Vec<u8>), Vec<u8>>;

    /// An in-memory host recording what it is asked.
    struct MockHost {
        seed: [u8; 32],
        quota: usize,
        cache: Mutex<Cache>,
        expirations: Mutex<Vec<(Vec<u8>, u64)>>,
        logs: Mutex<Vec<(AccountId, Mode, u8, String)>>,
        http: Mutex<Vec<(String, Duration)>>,
        http_result: Result<HttpResponse, HttpRequestError>,
        batch_error: Option<HttpRequestError>,
        cache_gets: Mutex<usize>,
    }

    impl MockHost {
        fn new(seed: [u8; 32]) -> Self {
            MockHost {
                seed,
                quota: 16,
                cache: Default::default(),
                expirations: Default::default(),
                logs: Default::default(),
                http: Default::default(),
                http_result: Ok(response(200, b"hi")),
                batch_error: None,
                cache_gets: Default::default(),
            }
        }
    }

    fn response(status_code: u16, body: &[u8]) -> HttpResponse {
        HttpResponse {
            status_code,
            reason_phrase: "OK".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.to_vec(),
        }
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            url: url.into(),
            method: "GET".into(),
            headers: vec![],
            body: vec![],
        }
    }

    impl PinkHost for MockHost {
        fn http_request(
            &self,
            _contract: &AccountId,
            req: HttpRequest,
            timeout: Duration,
        ) -> Result<HttpResponse, HttpRequestError> {
            self.http.lock().unwrap().push((req.url, timeout));
            self.http_result.clone()
        }
        fn batch_http_request(
            &self,
            _contract: &AccountId,
            reqs: Vec<HttpRequest>,
            timeout: Duration,
        ) -> BatchHttpResult {
            if let Some(e) = self.batch_error {
                return Err(e);
            }
            let mut log = self.http.lock().unwrap();
            Ok(reqs
                .into_iter()
                .map(|r| {
                    log.push((r.url.clone(), timeout));
                    if r.url.contains("bad") {
                        Err(HttpRequestError::InvalidUrl)
                    } else {
                        Ok(response(200, r.url.as_bytes()))
                    }
                })
                .collect())
        }
        fn cache_set(
            &self,
            contract: &AccountId,
            key: &[u8],
            value: &[u8],
        ) -> Result<(), CacheQuotaExceeded> {
            if key.len() + value.len() > self.quota {
                return Err(CacheQuotaExceeded);
            }
            self.cache
                .lock()
                .unwrap()
                .insert((*contract, key.to_vec()), value.to_vec());
            Ok(())
        }
        fn cache_set_expiration(&self, _contract: &AccountId, key: &[u8], expire_secs: u64) {
            self.expirations
                .lock()
                .unwrap()
                .push((key.to_vec(), expire_secs));
        }
        fn cache_get(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
            *self.cache_gets.lock().unwrap() += 1;
            self.cache
                .lock()
                .unwrap()
                .get(&(*contract, key.to_vec()))
                .cloned()
        }
        fn cache_remove(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
            self.cache
                .lock()
                .unwrap()
                .remove(&(*contract, key.to_vec()))
        }
        fn log(&self, contract: &AccountId, mode: Mode, level: u8, message: &str) {
            self.logs
                .lock()
                .unwrap()
                .push((*contract, mode, level, message.into()));
        }
        fn getrandom(&self, len: usize) -> Vec<u8> {
            vec![0xab; len]
        }
        fn now_millis(&self) -> u64 {
            1_700_000_000_000
        }
        fn worker_pubkey(&self) -> [u8; 32] {
            [0x55; 32]
        }
        fn key_seed(&self) -> [u8; 32] {
            self.seed
        }
    }

    /// Chain state: balances and codes; `broken` makes every read fail.
    #[derive(Default)]
    struct MockState {
        balances: HashMap<AccountId, u128>,
        codes: HashSet<CodeHash>,
        broken: bool,
    }

    impl ExtensionState for MockState {
        fn balance(&self, who: &AccountId) -> Result<u128, ExtensionError> {
            if self.broken {
                return Err(ExtensionError::Backend("disk on fire".into()));
            }
            Ok(self.balances.get(who).copied().unwrap_or(0))
        }
        fn code_exists(&self, hash: &CodeHash) -> Result<bool, ExtensionError> {
            if self.broken {
                return Err(ExtensionError::Backend("disk on fire".into()));
            }
            Ok(self.codes.contains(hash))
        }
    }

    fn env(mode: Mode, address: AccountId) -> ExtensionEnv {
        ExtensionEnv {
            mode,
            address,
            caller: AccountId([1; 32]),
            origin: AccountId([1; 32]),
            block_number: 42,
            timestamp: 0,
            gas_left: LOTS,
            deadline: match mode {
                Mode::Query => Some(Instant::now() + Duration::from_secs(5)),
                Mode::Command => None,
            },
        }
    }

    struct Fixture {
        ext: PinkExtension<Arc<MockHost>>,
        host: Arc<MockHost>,
        state: MockState,
    }

    impl Fixture {
        fn new() -> Self {
            Self::with_host(MockHost::new([3; 32]))
        }

        fn with_host(host: MockHost) -> Self {
            let host = Arc::new(host);
            Fixture {
                ext: PinkExtension::new(host.clone()),
                host,
                state: MockState::default(),
            }
        }

        fn raw(
            &self,
            env: &ExtensionEnv,
            function: u16,
            input: &[u8],
        ) -> Result<ExtensionOutput, ExtensionError> {
            let id = ExtensionId {
                extension: 0,
                function,
            };
            self.ext.call(env, &self.state, id, input)
        }

        fn call_as(
            &self,
            mode: Mode,
            contract: AccountId,
            function: u16,
            args: impl Encode,
        ) -> Result<ExtensionOutput, ExtensionError> {
            self.raw(&env(mode, contract), function, &args.encode())
        }

        fn call(
            &self,
            mode: Mode,
            function: u16,
            args: impl Encode,
        ) -> Result<ExtensionOutput, ExtensionError> {
            self.call_as(mode, CONTRACT, function, args)
        }

        /// A successful call's output, checking status 0.
        fn ok(&self, mode: Mode, function: u16, args: impl Encode) -> Vec<u8> {
            let out = self.call(mode, function, args).expect("call succeeds");
            assert_eq!(out.status, 0, "status of function {function}");
            out.output
        }

        fn failed(&self, mode: Mode, function: u16, args: impl Encode) -> String {
            match self.call(mode, function, args) {
                Err(ExtensionError::Failed(message)) => message,
                other => panic!("expected a failure, got {other:?}"),
            }
        }
    }

    use Mode::{Command, Query};

    #[test]
    fn other_extensions_and_unknown_functions_are_unsupported() {
        let f = Fixture::new();
        let e = env(Query, CONTRACT);
        for function in [0, 26, 100, u16::MAX] {
            assert_eq!(f.raw(&e, function, &[]), Err(ExtensionError::Unsupported));
        }
        let id = ExtensionId {
            extension: 1,
            function: 12,
        };
        assert_eq!(
            f.ext.call(&e, &f.state, id, &[]),
            Err(ExtensionError::Unsupported)
        );
        for id in 1..=25 {
            let func = PinkFunction::from_id(id).unwrap();
            assert_eq!(func as u16, id);
        }
    }

    #[test]
    fn http_types_encode_as_pink() {
        let req = HttpRequest {
            url: "a".into(),
            method: "GET".into(),
            headers: vec![("k".into(), "v".into())],
            body: vec![9],
        };
        assert_eq!(
            req.encode(),
            [&[4, b'a', 12][..], b"GET", &[4, 4, b'k', 4, b'v', 4, 9]].concat()
        );
        let resp = HttpResponse {
            status_code: 0x0102,
            reason_phrase: "OK".into(),
            headers: vec![],
            body: vec![1, 2],
        };
        assert_eq!(resp.encode(), [2, 1, 8, b'O', b'K', 0, 8, 1, 2]);
        let all = [
            HttpRequestError::InvalidUrl,
            HttpRequestError::InvalidMethod,
            HttpRequestError::InvalidHeaderName,
            HttpRequestError::InvalidHeaderValue,
            HttpRequestError::FailedToCreateClient,
            HttpRequestError::Timeout,
            HttpRequestError::NotAllowed,
            HttpRequestError::TooManyRequests,
            HttpRequestError::NetworkError,
            HttpRequestError::ResponseTooLarge,
        ];
        for (i, e) in all.into_iter().enumerate() {
            assert_eq!(e.encode(), [i as u8]);
            assert_eq!(e.status_code(), i as u32 + 1);
        }
        assert_eq!(SigType::Ed25519.encode(), [0]);
        assert_eq!(SigType::Sr25519.encode(), [1]);
        assert_eq!(SigType::Ecdsa.encode(), [2]);
        assert!(CacheQuotaExceeded.encode().is_empty());
        assert_eq!(CacheQuotaExceeded::STATUS_CODE, 1);
        let batch: BatchHttpResult = Ok(vec![Err(HttpRequestError::Timeout)]);
        assert_eq!(batch.encode(), [0, 4, 1, 5]);
    }

    #[test]
    fn http_request_goes_to_the_host_in_queries_only() {
        let f = Fixture::new();
        let out = f.ok(Query, 1, get("https://example.com/"));
        assert_eq!(out, response(200, b"hi").encode());
        let calls = f.host.http.lock().unwrap().clone();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "https://example.com/");
        // Bounded by the query's 5 s left, below the 10 s maximum.
        assert!(calls[0].1 <= Duration::from_secs(5) && calls[0].1 > Duration::from_secs(4));

        let message = f.failed(Command, 1, get("https://example.com/"));
        assert!(message.contains("http_request") && message.contains("only available in queries"));
        assert_eq!(
            f.host.http.lock().unwrap().len(),
            1,
            "no request in a command"
        );

        let mut host = MockHost::new([3; 32]);
        host.http_result = Err(HttpRequestError::NetworkError);
        let f = Fixture::with_host(host);
        assert_eq!(
            f.failed(Query, 1, get("https://example.com/")),
            "http_request: network error"
        );
    }

    #[test]
    fn http_request_without_time_left_fails_before_asking_the_host() {
        let f = Fixture::new();
        let mut e = env(Query, CONTRACT);
        e.deadline = Some(Instant::now());
        let err = f.raw(&e, 1, &get("https://x/").encode()).unwrap_err();
        assert!(err.to_string().contains("no time left"), "{err}");
        let out = f
            .raw(&e, 22, &(vec![get("https://x/")], 1000u64).encode())
            .unwrap();
        assert_eq!((out.status, out.output), (6, vec![]), "Timeout status");
        assert!(f.host.http.lock().unwrap().is_empty());
    }

    #[test]
    fn batch_http_request_reports_errors_as_status_codes() {
        let f = Fixture::new();
        let reqs = vec![get("https://a/"), get("https://bad/")];
        let out = f.ok(Query, 22, (reqs, 2_000u64));
        let expected: Vec<Result<HttpResponse, HttpRequestError>> = vec![
            Ok(response(200, b"https://a/")),
            Err(HttpRequestError::InvalidUrl),
        ];
        // Status 0 carries the `Ok` value alone (pink's EncodeOutput), not a `Result`.
        assert_eq!(out, expected.encode());
        let calls = f.host.http.lock().unwrap().clone();
        assert!(calls.iter().all(|(_, t)| *t <= Duration::from_secs(2)));

        // Over the batch limit: TooManyRequests (discriminant 7 + 1), empty output.
        let six = vec![get("https://a/"); 6];
        let out = f.call(Query, 22, (six, 1_000u64)).unwrap();
        assert_eq!((out.status, out.output), (8, vec![]));

        // The contract's timeout is capped by the configured maximum.
        f.host.http.lock().unwrap().clear();
        f.ok(Query, 22, (vec![get("https://a/")], u64::MAX));
        assert!(f.host.http.lock().unwrap()[0].1 <= Duration::from_secs(5));

        // An empty batch needs no host.
        assert_eq!(
            f.ok(Query, 22, (Vec::<HttpRequest>::new(), 1u64)),
            vec![0u8]
        );

        let message = f.failed(Command, 22, (vec![get("https://a/")], 1_000u64));
        assert!(message.contains("only available in queries"), "{message}");

        let mut host = MockHost::new([3; 32]);
        host.batch_error = Some(HttpRequestError::NotAllowed);
        let f = Fixture::with_host(host);
        let out = f.call(Query, 22, (vec![get("https://a/")], 1u64)).unwrap();
        assert_eq!((out.status, out.output), (7, vec![]));
    }

    #[test]
    fn cache_in_queries_uses_the_host() {
        let f = Fixture::new();
        assert!(f
            .ok(Query, 6, (b"key".to_vec(), b"value".to_vec()))
            .is_empty());
        assert_eq!(
            f.ok(Query, 8, b"key".to_vec()),
            Some(b"value".to_vec()).encode()
        );
        assert!(f.ok(Query, 7, (b"key".to_vec(), 60u64)).is_empty());
        assert_eq!(
            f.host.expirations.lock().unwrap().clone(),
            vec![(b"key".to_vec(), 60)]
        );
        assert_eq!(
            f.ok(Query, 9, b"key".to_vec()),
            Some(b"value".to_vec()).encode()
        );
        assert_eq!(f.ok(Query, 8, b"key".to_vec()), [0]);
        // Over the quota: status 1, empty output.
        let out = f.call(Query, 6, (b"k".to_vec(), vec![0u8; 100])).unwrap();
        assert_eq!((out.status, out.output), (1, vec![]));
        // Each contract has its own cache.
        f.ok(Query, 6, (b"key".to_vec(), b"mine".to_vec()));
        let other = f.call_as(Query, OTHER, 8, b"key".to_vec()).unwrap();
        assert_eq!(other.output, [0]);
    }

    #[test]
    fn cache_in_commands_writes_but_never_answers_from_this_workers_cache() {
        let f = Fixture::new();
        assert!(f
            .ok(Command, 6, (b"key".to_vec(), b"value".to_vec()))
            .is_empty());
        assert_eq!(
            f.host
                .cache
                .lock()
                .unwrap()
                .get(&(CONTRACT, b"key".to_vec())),
            Some(&b"value".to_vec())
        );
        // `cache_get` answers None without asking the host.
        assert_eq!(f.ok(Command, 8, b"key".to_vec()), [0]);
        assert_eq!(*f.host.cache_gets.lock().unwrap(), 0);
        // Quota errors depend on the worker's cache: a command always answers Ok.
        let out = f.call(Command, 6, (b"k".to_vec(), vec![0u8; 100])).unwrap();
        assert_eq!((out.status, out.output), (0, vec![]));
        // `cache_remove` removes but answers None.
        assert_eq!(f.ok(Command, 9, b"key".to_vec()), [0]);
        assert!(f.host.cache.lock().unwrap().is_empty());
        assert!(f.ok(Command, 7, (b"key".to_vec(), 0u64)).is_empty());
        assert_eq!(f.host.expirations.lock().unwrap().len(), 1);
    }

    #[test]
    fn log_reaches_the_host_with_mode_and_level() {
        let f = Fixture::new();
        assert!(f.ok(Command, 10, (1u8, "boom")).is_empty());
        assert!(f.ok(Query, 10, (5u8, "fine")).is_empty());
        assert_eq!(
            f.host.logs.lock().unwrap().clone(),
            vec![
                (CONTRACT, Command, 1, "boom".to_string()),
                (CONTRACT, Query, 5, "fine".to_string()),
            ]
        );
        // Not UTF-8: bad arguments.
        let message = f.failed(Query, 10, (1u8, vec![0xffu8, 0xfe]));
        assert!(message.starts_with("bad arguments to log"), "{message}");
    }

    #[test]
    fn nondeterministic_powers_answer_in_queries_and_trap_in_commands() {
        let f = Fixture::new();
        assert_eq!(f.ok(Query, 11, 3u8), vec![0xabu8; 3].encode());
        assert_eq!(f.ok(Query, 11, 0u8), [0]);
        assert!(f
            .failed(Command, 11, 3u8)
            .contains("getrandom: only available in queries"));
        assert_eq!(f.ok(Query, 18, ()), 1_700_000_000_000u64.encode());
        assert!(f
            .failed(Command, 18, ())
            .contains("untrusted_millis_since_unix_epoch: only available in queries"));
        assert_eq!(f.ok(Query, 12, ()), [0]);
        assert_eq!(f.ok(Command, 12, ()), [1]);
        assert_eq!(f.ok(Query, 17, ()), [0x55; 32]);
        assert_eq!(f.ok(Command, 17, ()), [0; 32]);
    }

    #[test]
    fn chain_facts() {
        let mut f = Fixture::new();
        f.state.balances.insert(OTHER, 1_000);
        let code = CodeHash([9; 32]);
        f.state.codes.insert(code);

        assert_eq!(
            f.ok(Command, 15, ()),
            blake2_256(b"phat/system-contract").to_vec()
        );
        assert_eq!(f.ok(Query, 16, OTHER), (1_000u128, 1_000u128).encode());
        assert_eq!(f.ok(Query, 16, CONTRACT), [0u8; 32]);
        assert_eq!(f.ok(Command, 19, (code.0, false)), [1]);
        assert_eq!(f.ok(Command, 19, (code.0, true)), [0], "no SideVM");
        assert_eq!(f.ok(Command, 19, ([0u8; 32], false)), [0]);
        assert_eq!(f.ok(Command, 21, ()), [1, 0, 0, 0, 0, 0, 0, 0]);
        let (block, hash) = event_chain_head(42);
        assert_eq!(block, 42);
        assert_eq!(f.ok(Command, 23, ()), (42u64, hash).encode());
        assert_ne!(event_chain_head(43).1, hash);

        f.state.broken = true;
        assert_eq!(
            f.call(Query, 16, OTHER),
            Err(ExtensionError::Backend("disk on fire".into()))
        );
        assert_eq!(
            f.call(Query, 19, (code.0, false)),
            Err(ExtensionError::Backend("disk on fire".into()))
        );
    }

    #[test]
    fn unsupported_functions_answer_in_their_types() {
        let f = Fixture::new();
        assert_eq!(
            f.ok(Command, 20, CONTRACT),
            [0],
            "import_latest_system_code: None"
        );
        let js = f.ok(
            Query,
            24,
            (vec![JsCode::Source("1+1".into())], vec!["a".to_string()]),
        );
        assert_eq!(
            JsValue::decode(&mut &js[..]).unwrap(),
            JsValue::Exception("js_eval is not supported by phat".into())
        );
        assert_eq!(js[0], 5, "Exception is JsValue's sixth variant");
        assert_eq!(f.ok(Query, 25, ()), [0], "worker_sgx_quote: None");
        let _ = (JsValue::Undefined, JsValue::Null, JsCode::Bytecode(vec![]));
        let _ = (JsValue::String(String::new()), JsValue::Bytes(vec![]));
        let _ = JsValue::Other(String::new());
    }

    #[test]
    fn sr25519_derive_sign_verify_roundtrip() {
        let f = Fixture::new();
        let key = Vec::<u8>::decode(&mut &f.ok(Query, 4, b"a spoon of salt".to_vec())[..]).unwrap();
        assert_eq!(key.len(), 64, "a schnorrkel secret key: scalar ‖ nonce");
        let pubkey =
            Vec::<u8>::decode(&mut &f.ok(Query, 5, (SigType::Sr25519, key.clone()))[..]).unwrap();
        assert_eq!(pubkey.len(), 32);
        let message = b"hello world".to_vec();
        for mode in [Query, Command] {
            let sig = Vec::<u8>::decode(
                &mut &f.ok(mode, 2, (SigType::Sr25519, key.clone(), message.clone()))[..],
            )
            .unwrap();
            assert_eq!(sig.len(), 64);
            let good = (
                SigType::Sr25519,
                pubkey.clone(),
                message.clone(),
                sig.clone(),
            );
            assert_eq!(f.ok(mode, 3, good), [1]);
            let fake = (
                SigType::Sr25519,
                pubkey.clone(),
                b"Fake".to_vec(),
                sig.clone(),
            );
            assert_eq!(f.ok(mode, 3, fake), [0]);
        }
        // Commands sign deterministically.
        let sign = (SigType::Sr25519, key.clone(), message.clone());
        assert_eq!(f.ok(Command, 2, &sign), f.ok(Command, 2, &sign));
        // A 32-byte mini secret works too.
        let pubkey = f.ok(Query, 5, (SigType::Sr25519, vec![1u8; 32]));
        assert_eq!(
            pubkey,
            schnorrkel::MiniSecretKey::from_bytes(&[1; 32])
                .unwrap()
                .expand_to_public(schnorrkel::ExpansionMode::Ed25519)
                .to_bytes()
                .to_vec()
                .encode()
        );
    }

    #[test]
    fn sr25519_matches_sp_core_test_vector() {
        // sp-core's sr25519 `test_vector_should_work`: seed → public key.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let public = public_key(SigType::Sr25519, &seed).unwrap();
        assert_eq!(
            hex::encode(public),
            "44a996beb1eef7bdcab976ab6d2ca26104834164ecf28fb375600576fcc6eb0f"
        );
    }

    #[test]
    fn ed25519_matches_rfc8032() {
        // RFC 8032, section 7.1, test 1 (empty message).
        let f = Fixture::new();
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let pubkey =
            Vec::<u8>::decode(&mut &f.ok(Query, 5, (SigType::Ed25519, seed.clone()))[..]).unwrap();
        assert_eq!(
            hex::encode(&pubkey),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = Vec::<u8>::decode(
            &mut &f.ok(
                Command,
                2,
                (SigType::Ed25519, seed.clone(), Vec::<u8>::new()),
            )[..],
        )
        .unwrap();
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(
            f.ok(
                Command,
                3,
                (
                    SigType::Ed25519,
                    pubkey.clone(),
                    Vec::<u8>::new(),
                    sig.clone()
                )
            ),
            [1]
        );
        assert_eq!(
            f.ok(Command, 3, (SigType::Ed25519, pubkey, b"x".to_vec(), sig)),
            [0]
        );
        let message = f.failed(Query, 2, (SigType::Ed25519, vec![0u8; 64], b"m".to_vec()));
        assert!(message.contains("expected 32, got 64"), "{message}");
    }

    #[test]
    fn ecdsa_sign_verify_and_prehashed() {
        let f = Fixture::new();
        let key = vec![0x11u8; 32];
        let pubkey =
            Vec::<u8>::decode(&mut &f.ok(Command, 5, (SigType::Ecdsa, key.clone()))[..]).unwrap();
        assert_eq!(pubkey.len(), 33, "compressed");
        assert!(pubkey[0] == 2 || pubkey[0] == 3);
        let message = b"hello world".to_vec();
        let sig = Vec::<u8>::decode(
            &mut &f.ok(Command, 2, (SigType::Ecdsa, key.clone(), message.clone()))[..],
        )
        .unwrap();
        assert_eq!(sig.len(), 65);
        assert!(sig[64] <= 1);
        assert_eq!(
            f.ok(
                Query,
                3,
                (SigType::Ecdsa, pubkey.clone(), message.clone(), sig.clone())
            ),
            [1]
        );
        assert_eq!(
            f.ok(
                Query,
                3,
                (
                    SigType::Ecdsa,
                    pubkey.clone(),
                    b"Fake".to_vec(),
                    sig.clone()
                )
            ),
            [0]
        );
        // `sign` is `ecdsa_sign_prehashed` of blake2_256(message); fixed arrays, no prefix.
        let hash = blake2_256(&message);
        let prehashed = f.ok(Query, 13, (key.clone(), hash));
        assert_eq!(prehashed, sig);
        let pubkey: [u8; 33] = pubkey.try_into().unwrap();
        let sig: [u8; 65] = sig.try_into().unwrap();
        assert_eq!(f.ok(Query, 14, (sig, hash, pubkey)), [1]);
        assert_eq!(f.ok(Query, 14, (sig, [0u8; 32], pubkey)), [0]);
        let mut bad = sig;
        bad[64] = 9;
        assert_eq!(f.ok(Query, 14, (bad, hash, pubkey)), [0]);
        // Invalid keys trap; invalid public keys and signatures just do not verify.
        assert!(f
            .failed(Query, 13, (vec![0u8; 32], hash))
            .contains("invalid Ecdsa secret key"));
        assert!(f
            .failed(Query, 5, (SigType::Ecdsa, vec![1u8; 31]))
            .contains("got 31 bytes"));
        assert_eq!(
            f.ok(
                Query,
                3,
                (SigType::Ecdsa, vec![1u8; 3], message, vec![0u8; 65])
            ),
            [0]
        );
    }

    #[test]
    fn malformed_keys_and_signatures_never_trap_verify() {
        let f = Fixture::new();
        for sigtype in [SigType::Ed25519, SigType::Sr25519, SigType::Ecdsa] {
            for (pk, sig) in [(0usize, 0usize), (32, 64), (33, 65), (31, 63), (64, 64)] {
                let args = (sigtype, vec![0xffu8; pk], b"m".to_vec(), vec![0xffu8; sig]);
                assert_eq!(f.ok(Query, 3, args), [0]);
            }
            let message = f.failed(Query, 2, (sigtype, vec![1u8; 7], b"m".to_vec()));
            assert!(message.starts_with("sign: invalid"), "{message}");
            assert!(f
                .failed(Query, 5, (sigtype, Vec::<u8>::new()))
                .starts_with("get_public_key"));
        }
    }

    #[test]
    fn keys_are_deterministic_per_seed_and_contract() {
        let derive = |seed: [u8; 32], contract: AccountId, salt: &[u8]| {
            let f = Fixture::with_host(MockHost::new(seed));
            let key = f
                .call_as(Command, contract, 4, salt.to_vec())
                .unwrap()
                .output;
            let key = Vec::<u8>::decode(&mut &key[..]).unwrap();
            let pubkey = f.call_as(Query, contract, 5, (SigType::Sr25519, key.clone()));
            (key, pubkey.unwrap().output)
        };
        let a = derive([3; 32], CONTRACT, b"salt");
        assert_eq!(
            a,
            derive([3; 32], CONTRACT, b"salt"),
            "same on every worker"
        );
        assert_eq!(
            a.0.as_slice(),
            derive_sr25519_secret(&[3; 32], &CONTRACT, b"salt")
        );
        assert_ne!(a.1, derive([3; 32], OTHER, b"salt").1, "per contract");
        assert_ne!(a.1, derive([4; 32], CONTRACT, b"salt").1, "per seed");
        assert_ne!(a.1, derive([3; 32], CONTRACT, b"pepper").1, "per salt");

        let keys = contract_public_keys(&[3; 32], &CONTRACT);
        assert_eq!(keys, contract_public_keys(&[3; 32], &CONTRACT));
        let other = contract_public_keys(&[3; 32], &OTHER);
        let reseeded = contract_public_keys(&[4; 32], &CONTRACT);
        for k in [other, reseeded] {
            assert_ne!(k.sr25519, keys.sr25519);
            assert_ne!(k.ed25519, keys.ed25519);
            assert_ne!(k.ecdsa, keys.ecdsa);
        }
        // The sr25519 identity is the key `derive_sr25519_key` gives for an empty salt.
        let empty = derive([3; 32], CONTRACT, b"");
        assert_eq!(empty.1, keys.sr25519.to_vec().encode());
        // The Ethereum key is the one a contract gets from `derive_sr25519_key("ethereum")`.
        let eth = derive([3; 32], CONTRACT, ETHEREUM_KEY_SALT);
        assert_eq!(
            public_key(SigType::Ecdsa, &eth.0[..32]).unwrap(),
            keys.ecdsa.to_vec()
        );
        // Kinds are separated.
        assert_ne!(
            derive_key_material(&[3; 32], &CONTRACT, KeyKind::Ed25519, b""),
            derive_key_material(&[3; 32], &CONTRACT, KeyKind::Sr25519, b"")
        );
    }

    #[test]
    fn gas_grows_with_bytes_and_work() {
        let f = Fixture::new();
        let gas = PinkGas::default();
        let small = f.call(Query, 10, (3u8, "a")).unwrap();
        let big = f.call(Query, 10, (3u8, "a".repeat(1000))).unwrap();
        assert!(small.gas >= gas.call);
        assert_eq!(
            big.gas - small.gas,
            999 * gas.per_byte + 1 /* compact prefix */
        );
        let derive = f.call(Query, 4, b"salt".to_vec()).unwrap();
        assert_eq!(
            derive.gas,
            gas.call + gas.crypto + gas.per_byte * (5 + derive.output.len() as Gas)
        );
        let http = f.call(Query, 1, get("https://a/")).unwrap();
        assert!(http.gas >= gas.call + gas.http);
        let batch = f
            .call(Query, 22, (vec![get("https://a/"); 3], 1u64))
            .unwrap();
        assert!(batch.gas >= gas.call + 3 * gas.http);
        // The same command costs the same every time.
        let sign = (SigType::Sr25519, vec![1u8; 32], b"m".to_vec());
        assert_eq!(
            f.call(Command, 2, &sign).unwrap(),
            f.call(Command, 2, &sign).unwrap()
        );
    }

    #[test]
    fn too_little_gas_stops_before_the_work() {
        let f = Fixture::new();
        let mut e = env(Query, CONTRACT);
        e.gas_left = 5_000;
        let out = f.raw(&e, 1, &get("https://a/").encode()).unwrap();
        assert!(
            out.gas > e.gas_left,
            "the runtime fails this with out-of-gas"
        );
        assert!(out.output.is_empty());
        assert!(f.host.http.lock().unwrap().is_empty(), "no request made");
        e.gas_left = 10;
        let out = f.raw(&e, 10, &(1u8, "x").encode()).unwrap();
        assert!(out.gas > e.gas_left);
        assert!(f.host.logs.lock().unwrap().is_empty());
    }

    #[test]
    fn malformed_input_fails_cleanly_and_never_panics() {
        let f = Fixture::new();
        let garbage: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![1],
            vec![0xff; 3],
            vec![0xff; 40],
            vec![2, 0xff, 0xff, 0xff, 0xff, 0xff],
            (0..=255u8).collect(),
            vec![0xfe, 0xff, 0xff, 0xff],
            [vec![0x03], vec![0xff; 4], vec![0; 8]].concat(),
        ];
        for mode in [Query, Command] {
            let e = env(mode, CONTRACT);
            for function in 0..=30 {
                for input in &garbage {
                    if let Err(ExtensionError::Failed(m)) = f.raw(&e, function, input) {
                        assert!(!m.is_empty());
                    }
                }
            }
        }
        // Trailing bytes are bad arguments, as in pallet-contracts' `read_as`.
        let mut input = (1u8, "x").encode();
        input.push(0);
        let err = f.raw(&env(Query, CONTRACT), 10, &input).unwrap_err();
        assert!(err.to_string().starts_with("bad arguments to log"), "{err}");
        let err = f.raw(&env(Query, CONTRACT), 12, &[0]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("bad arguments to is_in_transaction"),
            "{err}"
        );
    }
}
