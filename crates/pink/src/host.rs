//! The host trait: the outside effects of pink's functions, which the embedder (the worker) provides.

use std::sync::Arc;
use std::time::Duration;

use phat_primitives::{AccountId, Mode};

use crate::types::{
    BatchHttpResult, CacheQuotaExceeded, HttpRequest, HttpRequestError, HttpResponse,
};

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
    /// Several requests at once (queries only); at most [`crate::PinkConfig::max_batch`] of them.
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
    /// Runs JavaScript for `contract` (queries only) within `timeout`, already bounded by the
    /// query's time left; `console` output goes to the contract's log.
    fn js_eval(
        &self,
        contract: &AccountId,
        codes: Vec<crate::JsCode>,
        args: Vec<String>,
        timeout: Duration,
    ) -> crate::JsValue {
        let _ = (contract, codes, args, timeout);
        crate::JsValue::Exception("this host runs no JavaScript".into())
    }
    /// A fresh DCAP quote of this worker's SGX enclave with `report_data` (`None` outside
    /// SGX, or when the enclave does not answer).
    fn worker_sgx_quote(&self, report_data: &[u8; 64]) -> Option<Vec<u8>> {
        let _ = report_data;
        None
    }
    /// Queues a change to a contract's schedules, applied if the command succeeds (in a query
    /// the host drops it with the query's writes and answers `Ok`).
    fn schedule(
        &self,
        mode: Mode,
        request: crate::ScheduleRequest,
    ) -> Result<(), crate::ScheduleError> {
        let _ = (mode, request);
        Err(crate::ScheduleError::NotPermitted)
    }
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
    fn js_eval(
        &self,
        contract: &AccountId,
        codes: Vec<crate::JsCode>,
        args: Vec<String>,
        timeout: Duration,
    ) -> crate::JsValue {
        (**self).js_eval(contract, codes, args, timeout)
    }
    fn schedule(
        &self,
        mode: Mode,
        request: crate::ScheduleRequest,
    ) -> Result<(), crate::ScheduleError> {
        (**self).schedule(mode, request)
    }
    fn worker_sgx_quote(&self, report_data: &[u8; 64]) -> Option<Vec<u8>> {
        (**self).worker_sgx_quote(report_data)
    }
}
