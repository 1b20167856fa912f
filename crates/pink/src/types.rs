//! pink's wire types: what contracts send and receive, SCALE-encoded exactly as pink's.

use parity_scale_codec::{Decode, Encode};

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

/// Script source or bytecode passed to `js_eval` (pink-types' `JsCode`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum JsCode {
    /// JavaScript source text.
    Source(String),
    /// Compiled bytecode.
    Bytecode(Vec<u8>),
}

/// The result of `js_eval` (pink-types' `JsValue`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum JsValue {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A string.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Any other value, printed.
    Other(String),
    /// The script threw (or, in phat, could not run).
    Exception(String),
}

/// A contract's change to its schedules, queued by the host and applied when the command
/// succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ScheduleRequest {
    /// Set `contract`'s schedule for the message `def.data` starts with (its selector):
    /// replaces the one the contract set for that selector before, if any.
    Set {
        /// The contract scheduled (and paying its deposit).
        contract: phat_primitives::AccountId,
        /// What and when.
        def: phat_primitives::protocol::ScheduleDef,
    },
    /// Remove `contract`'s schedule for `selector` (nothing if it has none).
    Clear {
        /// The contract.
        contract: phat_primitives::AccountId,
        /// The message selector.
        selector: [u8; 4],
    },
}

/// Why the extension refused a schedule change at once (what the contract gets back; the
/// deposit and the caps are checked again when the command's outcome is applied, and a
/// change refused then fails the command with `schedule_refused`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, thiserror::Error)]
pub enum ScheduleError {
    /// The definition is not valid (period under 1 s, a cron expression that does not parse,
    /// no selector, too much data, too much gas).
    #[error("the schedule is not valid")]
    BadSchedule,
    /// The call asked for more schedule changes than one call may make.
    #[error("too many schedule changes in one call")]
    TooMany,
    /// Only the system contract sets another contract's schedule, and only on a host that
    /// keeps schedules.
    #[error("not permitted")]
    NotPermitted,
}

/// How an SGX quote attests (pink's `AttestationType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum AttestationType {
    /// EPID (not made by phat).
    Epid,
    /// DCAP.
    Dcap,
}

/// What `worker_sgx_quote` answers (pink's `SgxQuote`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SgxQuote {
    /// How it attests.
    pub attestation_type: AttestationType,
    /// The raw quote.
    pub quote: Vec<u8>,
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
    /// 20: import the system contract's code (the system contract only; answers `None`).
    ImportLatestSystemCode = 20,
    /// 21: the runtime version.
    RuntimeVersion = 21,
    /// 22: several HTTP requests (queries only).
    BatchHttpRequest = 22,
    /// 23: the event chain head.
    CurrentEventChainHead = 23,
    /// 24: evaluate JavaScript (queries only; the host runs it).
    JsEval = 24,
    /// 25: a fresh SGX DCAP quote of the worker's enclave over its public key (queries on an
    /// SGX worker; `None` elsewhere).
    WorkerSgxQuote = 25,
    /// phat's own, 0x8001: set the calling contract's schedule for a message (commands; a
    /// query's is dropped with its writes).
    ScheduleSet = 0x8001,
    /// phat's own, 0x8002: remove the calling contract's schedule for a selector.
    ScheduleClear = 0x8002,
    /// phat's own, 0x8003: set another contract's schedule (the system contract only: how
    /// `System::set_hook` works).
    ScheduleSetFor = 0x8003,
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
            0x8001 => ScheduleSet,
            0x8002 => ScheduleClear,
            0x8003 => ScheduleSetFor,
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
            ScheduleSet => "schedule_set",
            ScheduleClear => "schedule_clear",
            ScheduleSetFor => "schedule_set_for",
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
                | PinkFunction::JsEval
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_round_trip() {
        for id in 1..=25 {
            let func = PinkFunction::from_id(id).unwrap();
            assert_eq!(func as u16, id);
        }
        for id in [0, 26, 100, u16::MAX] {
            assert_eq!(PinkFunction::from_id(id), None);
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
    fn js_types_encode_as_pink_types() {
        let all = [
            JsValue::Undefined,
            JsValue::Null,
            JsValue::String(String::new()),
            JsValue::Bytes(vec![]),
            JsValue::Other(String::new()),
            JsValue::Exception(String::new()),
        ];
        for (i, v) in all.into_iter().enumerate() {
            assert_eq!(v.encode()[0], i as u8);
        }
        assert_eq!(JsCode::Source(String::new()).encode(), [0, 0]);
        assert_eq!(JsCode::Bytecode(vec![]).encode(), [1, 0]);
    }
}
