//! phat-ink: the off-chain powers of a phat contract for ink! 5, over the pink chain extension
//! wire format (extension 0, pink's function ids and SCALE types), so the same calls work on
//! phat and on Phala.
//!
//! ```text
//! let resp = phat_ink::http_get("https://api.example/price", vec![]);
//! phat_ink::cache::set(b"price", &resp.body).ok();
//! phat_ink::info!("fetched {} bytes", resp.body.len());
//! ```
//!
//! Availability follows Phala: HTTP, [`random`], [`now_millis`] and [`js_eval`] work in queries
//! only (in a command they answer Phala's fixed values, identically on every worker: a 523
//! response, no bytes, 0, an exception); the cache is worker-local, its reads return `None` in
//! commands; logs, keys and signatures work everywhere.
//! Unit tests register [`mock::MockPink`] (feature `std`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use ink::env::chain_extension::ChainExtensionMethod;

/// An HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub struct HttpRequest {
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub struct HttpResponse {
    /// Status code (200, 404, ...).
    pub status_code: u16,
    /// Reason phrase.
    pub reason_phrase: String,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

/// Why a request in a batch failed (pink's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum HttpRequestError {
    /// The URL does not parse or is not http(s).
    InvalidUrl,
    /// The method is not an HTTP method.
    InvalidMethod,
    /// A header name is invalid.
    InvalidHeaderName,
    /// A header value is invalid.
    InvalidHeaderValue,
    /// The worker could not make a client.
    FailedToCreateClient,
    /// No answer in time.
    Timeout,
    /// The worker's policy refuses the host (allow-list, private address, header count).
    NotAllowed,
    /// More requests in a batch than the worker allows.
    TooManyRequests,
    /// Connection or protocol failure.
    NetworkError,
    /// The response is over the worker's size limits.
    ResponseTooLarge,
}

impl HttpRequestError {
    fn from_status(status: u32) -> Self {
        use HttpRequestError::*;
        match status {
            1 => InvalidUrl,
            2 => InvalidMethod,
            3 => InvalidHeaderName,
            4 => InvalidHeaderValue,
            5 => FailedToCreateClient,
            6 => Timeout,
            7 => NotAllowed,
            8 => TooManyRequests,
            10 => ResponseTooLarge,
            _ => NetworkError,
        }
    }
}

/// A batch's outcome: each request's response or error, or an error for the whole batch.
pub type BatchResult = Result<Vec<Result<HttpResponse, HttpRequestError>>, HttpRequestError>;

/// Signature schemes of the key functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum SigType {
    /// Ed25519 (32-byte keys, 64-byte signatures).
    Ed25519,
    /// Sr25519 (Substrate's schnorrkel).
    Sr25519,
    /// ECDSA over secp256k1 (33-byte compressed public keys, 65-byte signatures).
    Ecdsa,
}

/// The contract's cache quota is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub struct QuotaExceeded;

/// Errors a status code cannot carry (used for `handle_status` functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub struct StatusCode(pub u32);

impl ink::env::chain_extension::FromStatusCode for StatusCode {
    fn from_status_code(status: u32) -> Result<(), Self> {
        if status == 0 {
            Ok(())
        } else {
            Err(StatusCode(status))
        }
    }
}

/// pink's function ids (extension 0).
mod id {
    pub const HTTP_REQUEST: u32 = 1;
    pub const SIGN: u32 = 2;
    pub const VERIFY: u32 = 3;
    pub const DERIVE_SR25519_KEY: u32 = 4;
    pub const GET_PUBLIC_KEY: u32 = 5;
    pub const CACHE_SET: u32 = 6;
    pub const CACHE_SET_EXPIRATION: u32 = 7;
    pub const CACHE_GET: u32 = 8;
    pub const CACHE_REMOVE: u32 = 9;
    pub const LOG: u32 = 10;
    pub const GETRANDOM: u32 = 11;
    pub const IS_IN_TRANSACTION: u32 = 12;
    pub const ECDSA_SIGN_PREHASHED: u32 = 13;
    pub const ECDSA_VERIFY_PREHASHED: u32 = 14;
    pub const UNTRUSTED_MILLIS: u32 = 18;
    pub const BATCH_HTTP_REQUEST: u32 = 22;
    pub const JS_EVAL: u32 = 24;
    pub const SCHEDULE_SET: u32 = 0x8001;
    pub const SCHEDULE_CLEAR: u32 = 0x8002;
}

/// Calls extension function `f` with `input`, decoding an `O` (status ignored).
fn call<I: scale::Encode, O: scale::Decode>(f: u32, input: &I) -> O {
    ChainExtensionMethod::build(f)
        .input::<I>()
        .output::<O, false>()
        .ignore_error_code()
        .call(input)
}

use ink::scale;

/// Sends an HTTP request (queries only; a command gets a 523 answer). A server that cannot be
/// reached answers 523, a failed exchange 524; bad input and timeouts trap the contract with
/// the worker's reason in its log.
pub fn http_request(request: &HttpRequest) -> HttpResponse {
    call(id::HTTP_REQUEST, request)
}

/// `GET url` with `headers` (queries only).
pub fn http_get(url: &str, headers: Vec<(String, String)>) -> HttpResponse {
    http_request(&HttpRequest {
        url: url.into(),
        method: "GET".into(),
        headers,
        body: Vec::new(),
    })
}

/// `POST url` with `body` and `headers` (queries only).
pub fn http_post(url: &str, body: Vec<u8>, headers: Vec<(String, String)>) -> HttpResponse {
    http_request(&HttpRequest {
        url: url.into(),
        method: "POST".into(),
        headers,
        body,
    })
}

/// Sends several requests at once, each answered or failed on its own (queries only).
pub fn batch_http_request(requests: Vec<HttpRequest>, timeout_ms: u64) -> BatchResult {
    let r: Result<Vec<Result<HttpResponse, HttpRequestError>>, StatusCode> =
        ChainExtensionMethod::build(id::BATCH_HTTP_REQUEST)
            .input::<(Vec<HttpRequest>, u64)>()
            .output::<Vec<Result<HttpResponse, HttpRequestError>>, false>()
            .handle_error_code::<StatusCode>()
            .call(&(requests, timeout_ms));
    r.map_err(|s| HttpRequestError::from_status(s.0))
}

/// The account the cluster calls a trigger's handler as (a schedule's `schedule`, a
/// subscription's `eth-log`, a job's `job`): blake2-256 of `phat/v1/trigger/<kind>`, an
/// account nobody holds a key for.
pub fn trigger_caller(kind: &[u8]) -> ink::primitives::AccountId {
    let mut input = b"phat/v1/trigger/".to_vec();
    input.extend_from_slice(kind);
    let mut out = [0u8; 32];
    ink::env::hash_bytes::<ink::env::hash::Blake2x256>(&input, &mut out);
    ink::primitives::AccountId::from(out)
}

/// A script for [`js_eval`] (pink's `JsCode`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum JsCode {
    /// JavaScript source.
    Source(String),
    /// Compiled bytecode (refused by phat).
    Bytecode(Vec<u8>),
}

/// What [`js_eval`] returns (pink's `JsValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum JsValue {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A string.
    String(String),
    /// A `Uint8Array`'s bytes.
    Bytes(Vec<u8>),
    /// Any other value, printed.
    Other(String),
    /// The script threw, or could not run.
    Exception(String),
}

/// Runs `codes` in the worker's JavaScript engine with `scriptArgs` = `args` (queries only;
/// a command gets an `Exception`, as on Phala).
pub fn js_eval(codes: Vec<JsCode>, args: Vec<String>) -> JsValue {
    call(id::JS_EVAL, &(codes, args))
}

/// This contract's own schedules: messages the cluster calls on a period or a cron
/// expression, once per tick, as the contract itself (`self.env().caller() ==
/// self.env().account_id()` in the message), the deposit paid from the contract's balance.
/// One schedule per message selector: setting it again replaces it. Changes take effect when
/// the command succeeds (a query's and a reverted command's are dropped); one the cluster
/// refuses then (its caps, the deposit) fails the command with `schedule_refused`.
pub mod schedule {
    use super::*;

    /// When a schedule's ticks fall (phat's `ScheduleSpec`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Spec {
        /// Every `ms` milliseconds (at least 1,000) from when it is set.
        Every {
            /// The period.
            ms: u64,
        },
        /// A cron expression with seconds, in UTC: `"*/10 * * * * *"`.
        Cron {
            /// The expression.
            expr: String,
        },
    }

    /// What a run does with ticks missed while the cluster was down (phat's `MissedTicks`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Missed {
        /// Missed ticks are dropped.
        Skip,
        /// The run gets one more argument, `ticks: u64`.
        RunOnce,
    }

    /// Why a change was refused at once (phat's `ScheduleError`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Period under 1 s, a cron expression that does not parse, no selector, too much
        /// data or gas.
        BadSchedule,
        /// More changes in one call than the cluster takes (8).
        TooMany,
        /// Not permitted here.
        NotPermitted,
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode)]
    struct Def {
        spec: Spec,
        data: Vec<u8>,
        gas_limit: u64,
        missed: Missed,
    }

    /// Calls this contract's message `message` (its selector, then its SCALE arguments) on
    /// `spec` with `gas_limit`, replacing the schedule set for that selector before.
    pub fn set(spec: Spec, message: Vec<u8>, gas_limit: u64, missed: Missed) -> Result<(), Error> {
        let def = Def {
            spec,
            data: message,
            gas_limit,
            missed,
        };
        call(id::SCHEDULE_SET, &def)
    }

    /// Removes this contract's schedule for `selector` (nothing if there is none).
    pub fn clear(selector: [u8; 4]) -> Result<(), Error> {
        call(id::SCHEDULE_CLEAR, &selector)
    }
}

/// The worker-local cache of this contract.
pub mod cache {
    use super::*;

    /// Stores `value` under `key`.
    pub fn set(key: &[u8], value: &[u8]) -> Result<(), QuotaExceeded> {
        let r: Result<(), StatusCode> = ChainExtensionMethod::build(id::CACHE_SET)
            .input::<(&[u8], &[u8])>()
            .output::<(), false>()
            .handle_error_code::<StatusCode>()
            .call(&(key, value));
        r.map_err(|_| QuotaExceeded)
    }

    /// Makes `key` expire `secs` seconds from now.
    pub fn set_expiration(key: &[u8], secs: u64) {
        call::<_, ()>(id::CACHE_SET_EXPIRATION, &(key, secs))
    }

    /// The value under `key` (always `None` in commands).
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        call(id::CACHE_GET, &key)
    }

    /// Removes `key`, returning its value.
    pub fn remove(key: &[u8]) -> Option<Vec<u8>> {
        call(id::CACHE_REMOVE, &key)
    }
}

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// 1.
    Error = 1,
    /// 2.
    Warn = 2,
    /// 3.
    Info = 3,
    /// 4.
    Debug = 4,
    /// 5.
    Trace = 5,
}

/// Writes a line to the contract's log stream (`phat logs CONTRACT -f`).
pub fn log(level: Level, message: &str) {
    call::<_, ()>(id::LOG, &(level as u8, message))
}

/// `info!("...", args)`: a formatted [`log`] line at level info.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::ink::prelude::format!($($arg)*)) };
}

/// `warn!("...", args)`: a formatted [`log`] line at level warn.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::ink::prelude::format!($($arg)*)) };
}

/// `error!("...", args)`: a formatted [`log`] line at level error.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::ink::prelude::format!($($arg)*)) };
}

/// `len` random bytes (queries only).
pub fn random(len: u8) -> Vec<u8> {
    call(id::GETRANDOM, &len)
}

/// The worker's wall clock in ms since the Unix epoch (queries only; untrusted).
pub fn now_millis() -> u64 {
    call(id::UNTRUSTED_MILLIS, &())
}

/// True in a command, false in a query.
pub fn is_in_transaction() -> bool {
    call(id::IS_IN_TRANSACTION, &())
}

/// The contract's keys: derived inside the worker from the cluster secret and the contract id.
pub mod keys {
    use super::*;

    /// An sr25519 secret derived from the contract's key and `salt`.
    pub fn derive_sr25519_key(salt: &[u8]) -> Vec<u8> {
        call(id::DERIVE_SR25519_KEY, &salt)
    }

    /// The public key of `key` for `sigtype`.
    pub fn public_key(sigtype: SigType, key: &[u8]) -> Vec<u8> {
        call(id::GET_PUBLIC_KEY, &(sigtype, key))
    }

    /// Signs `message` with `key`.
    pub fn sign(sigtype: SigType, key: &[u8], message: &[u8]) -> Vec<u8> {
        call(id::SIGN, &(sigtype, key, message))
    }

    /// Checks `signature` of `message` by `pubkey`.
    pub fn verify(sigtype: SigType, pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
        call(id::VERIFY, &(sigtype, pubkey, message, signature))
    }

    /// Signs a 32-byte hash with a secp256k1 `key` (65-byte recoverable signature).
    pub fn ecdsa_sign_prehashed(key: &[u8], hash: [u8; 32]) -> [u8; 65] {
        call(id::ECDSA_SIGN_PREHASHED, &(key, hash))
    }

    /// Checks a recoverable secp256k1 signature of `hash` by a compressed `pubkey`.
    pub fn ecdsa_verify_prehashed(signature: [u8; 65], hash: [u8; 32], pubkey: [u8; 33]) -> bool {
        call(id::ECDSA_VERIFY_PREHASHED, &(signature, hash, pubkey))
    }
}

/// An off-chain stand-in for the extension, for `#[ink::test]`s.
#[cfg(feature = "std")]
pub mod mock {
    use super::*;
    use scale::{Decode, Encode};
    use std::collections::BTreeMap;

    /// Canned HTTP answers by URL, a cache, and the log lines written.
    #[derive(Default)]
    pub struct MockPink {
        /// Responses by URL; other URLs get a 404.
        pub responses: BTreeMap<String, HttpResponse>,
        /// The cache.
        pub cache: BTreeMap<Vec<u8>, Vec<u8>>,
        /// Act as a command (`is_in_transaction`, no HTTP).
        pub in_transaction: bool,
        /// Where log lines go.
        pub logs: std::rc::Rc<std::cell::RefCell<Vec<(u8, String)>>>,
        /// What `js_eval` answers (`Undefined` when unset), and the arguments it got.
        pub js: std::rc::Rc<std::cell::RefCell<(Option<JsValue>, Vec<Vec<String>>)>>,
    }

    impl MockPink {
        /// Answers `url` with status 200 and `body`.
        pub fn respond(mut self, url: &str, body: &[u8]) -> Self {
            self.responses.insert(
                url.into(),
                HttpResponse {
                    status_code: 200,
                    reason_phrase: "OK".into(),
                    headers: Vec::new(),
                    body: body.to_vec(),
                },
            );
            self
        }

        /// Registers this mock with ink!'s off-chain environment; returns the log handle.
        pub fn register(self) -> std::rc::Rc<std::cell::RefCell<Vec<(u8, String)>>> {
            let logs = self.logs.clone();
            ink::env::test::register_chain_extension(self);
            logs
        }

        fn answer(&self, req: &HttpRequest) -> HttpResponse {
            self.responses
                .get(&req.url)
                .cloned()
                .unwrap_or(HttpResponse {
                    status_code: 404,
                    reason_phrase: "Not Found".into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                })
        }
    }

    impl ink::env::test::ChainExtension for MockPink {
        fn ext_id(&self) -> u16 {
            0
        }

        fn call(&mut self, func_id: u16, input: &[u8], output: &mut Vec<u8>) -> u32 {
            // ink!'s off-chain engine hands the encoded arguments over as a SCALE `Vec<u8>`.
            let raw = Vec::<u8>::decode(&mut &input[..]).expect("extension input");
            let input = &mut &raw[..];
            match func_id as u32 {
                id::HTTP_REQUEST => {
                    assert!(!self.in_transaction, "http_request in a command");
                    let req = HttpRequest::decode(input).expect("http_request input");
                    self.answer(&req).encode_to(output);
                }
                id::BATCH_HTTP_REQUEST => {
                    let (reqs, _t) = <(Vec<HttpRequest>, u64)>::decode(input).expect("batch input");
                    if reqs.len() > 5 {
                        return 8; // TooManyRequests
                    }
                    let out: Vec<Result<HttpResponse, HttpRequestError>> =
                        reqs.iter().map(|r| Ok(self.answer(r))).collect();
                    out.encode_to(output);
                }
                id::CACHE_SET => {
                    let (k, v) = <(Vec<u8>, Vec<u8>)>::decode(input).expect("cache_set input");
                    self.cache.insert(k, v);
                }
                id::CACHE_SET_EXPIRATION => {}
                id::CACHE_GET => {
                    let k = Vec::<u8>::decode(input).expect("cache_get input");
                    let v = if self.in_transaction {
                        None
                    } else {
                        self.cache.get(&k).cloned()
                    };
                    v.encode_to(output);
                }
                id::CACHE_REMOVE => {
                    let k = Vec::<u8>::decode(input).expect("cache_remove input");
                    self.cache.remove(&k).encode_to(output);
                }
                id::SCHEDULE_SET | id::SCHEDULE_CLEAR => {
                    Ok::<(), super::schedule::Error>(()).encode_to(output);
                }
                id::LOG => {
                    let (level, msg) = <(u8, String)>::decode(input).expect("log input");
                    self.logs.borrow_mut().push((level, msg));
                }
                id::GETRANDOM => {
                    let n = u8::decode(input).expect("getrandom input");
                    vec![4u8; n as usize].encode_to(output);
                }
                id::IS_IN_TRANSACTION => self.in_transaction.encode_to(output),
                id::UNTRUSTED_MILLIS => 1_700_000_000_000u64.encode_to(output),
                id::JS_EVAL => {
                    let (_codes, args) =
                        <(Vec<JsCode>, Vec<String>)>::decode(input).expect("js_eval input");
                    let mut js = self.js.borrow_mut();
                    js.1.push(args);
                    js.0.clone().unwrap_or(JsValue::Undefined).encode_to(output);
                }
                other => panic!("MockPink does not implement pink function {other}"),
            }
            0
        }
    }
}
