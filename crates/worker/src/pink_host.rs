//! The worker's side of the pink extension: the outside effects the runtime's dispatcher asks
//! for (HTTP egress, the cache, logs, randomness, time, keys).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use phat_pink::{CacheQuotaExceeded, HttpRequest, HttpRequestError, HttpResponse, PinkHost};
use phat_primitives::protocol::{LogRecord, Seq};
use phat_primitives::{AccountId, Mode};

use crate::cache::Cache;
use crate::egress::{Egress, Refusal};

/// What every call's host shares: egress, cache, keys.
pub(crate) struct PinkShared {
    pub(crate) egress: Egress,
    pub(crate) cache: Cache,
    pub(crate) worker_pubkey: [u8; 32],
    pub(crate) key_seed: phat_crypto::Secret32,
    /// The quote interface of the SGX enclave this worker runs in (`worker_sgx_quote`), if any.
    pub(crate) sgx_quotes: Option<Box<dyn phat_attest::QuoteSource>>,
}

/// A cache write a command made, kept until the command is known to have succeeded.
enum CacheOp {
    Set(AccountId, Vec<u8>, Vec<u8>),
    Expire(AccountId, Vec<u8>, u64),
    Remove(AccountId, Vec<u8>),
}

/// Most cache writes one command keeps for after it (more are dropped); their keys and values
/// together are also held to the cache's per-contract quota, which no contract's cache can
/// exceed anyway, so a command cannot make the worker buffer more than that.
const MAX_CACHE_OPS: usize = 1000;

/// The host serving one command or query; collects the log lines it produced.
pub(crate) struct WorkerHost {
    shared: Arc<PinkShared>,
    seq: Option<Seq>,
    timestamp: u64,
    logs: Mutex<Vec<LogRecord>>,
    /// A command's cache writes and their bytes: made only if it succeeds
    /// ([`WorkerHost::commit_cache`]), so a reverted or failed command leaves the cache as it
    /// was, as its state.
    deferred: Mutex<(Vec<CacheOp>, usize)>,
    /// A command's changes to schedules, applied with its outcome if it succeeds.
    schedules: Mutex<Vec<phat_pink::ScheduleRequest>>,
    /// An estimate's host: cache writes are held as a command's and never made.
    dry_run: bool,
}

/// Most schedule changes one call makes.
pub(crate) const MAX_SCHEDULE_CHANGES: usize = 8;

/// Most log lines one call keeps; longest line (bytes).
const MAX_LINES: usize = 1000;
const MAX_LINE: usize = 4096;

impl WorkerHost {
    pub(crate) fn new(
        shared: Arc<PinkShared>,
        seq: Option<Seq>,
        timestamp: u64,
        dry_run: bool,
    ) -> Self {
        Self {
            shared,
            seq,
            timestamp,
            dry_run,
            logs: Mutex::new(Vec::new()),
            deferred: Mutex::new((Vec::new(), 0)),
            schedules: Mutex::new(Vec::new()),
        }
    }

    /// The schedule changes the call made, in order.
    pub(crate) fn take_schedules(&self) -> Vec<phat_pink::ScheduleRequest> {
        std::mem::take(&mut self.schedules.lock())
    }

    /// True for a command's host (its cache writes wait for its outcome) and an estimate's
    /// (they wait, as a command's would, and are dropped).
    fn command(&self) -> bool {
        self.seq.is_some() || self.dry_run
    }

    fn defer(&self, op: CacheOp) {
        let size = match &op {
            CacheOp::Set(_, key, value) => key.len() + value.len(),
            CacheOp::Expire(_, key, _) | CacheOp::Remove(_, key) => key.len(),
        };
        let mut deferred = self.deferred.lock();
        let (ops, bytes) = &mut *deferred;
        if ops.len() < MAX_CACHE_OPS && *bytes + size <= self.shared.cache.quota() {
            ops.push(op);
            *bytes += size;
        }
    }

    /// Makes a succeeded command's cache writes, in order. The cache is this worker's own
    /// (never in the state), so a write it refuses (its quota) changes nothing replicated.
    pub(crate) fn commit_cache(&self) {
        let now = self.now_secs();
        let (ops, _) = std::mem::take(&mut *self.deferred.lock());
        for op in ops {
            match op {
                CacheOp::Set(contract, key, value) => {
                    let _ = self.shared.cache.set(&contract, &key, &value, now);
                }
                CacheOp::Expire(contract, key, secs) => {
                    self.shared.cache.set_expiration(&contract, &key, secs, now)
                }
                CacheOp::Remove(contract, key) => {
                    self.shared.cache.remove(&contract, &key, now);
                }
            }
        }
    }

    /// The log lines produced so far.
    pub(crate) fn take_logs(&self) -> Vec<LogRecord> {
        std::mem::take(&mut self.logs.lock())
    }

    fn push_log(&self, contract: &AccountId, mode: Mode, level: &str, mut message: String) {
        crate::logs::truncate(&mut message, MAX_LINE);
        let mut logs = self.logs.lock();
        if logs.len() < MAX_LINES {
            logs.push(LogRecord {
                contract: *contract,
                level: level.into(),
                origin: mode,
                seq: if mode == Mode::Command {
                    self.seq
                } else {
                    None
                },
                timestamp: self.timestamp,
                message,
            });
        }
    }

    fn now_secs(&self) -> u64 {
        crate::now_ms() / 1000
    }

    /// Runs an egress future from the runtime's thread (queries run on the blocking pool,
    /// where waiting on the async runtime is allowed).
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(handle.block_on(f))
    }

    fn refused(&self, contract: &AccountId, r: Refusal) -> HttpRequestError {
        self.push_log(
            contract,
            Mode::Query,
            "warn",
            format!("http request failed ({:?}): {}", r.0, r.1),
        );
        r.0
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        5 => "trace",
        _ => "log",
    }
}

impl PinkHost for WorkerHost {
    fn http_request(
        &self,
        contract: &AccountId,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpRequestError> {
        let egress = self.shared.egress.clone();
        match self.block_on(async move { egress.send(req, timeout).await }) {
            Some(Ok(r)) => Ok(r),
            Some(Err(r)) => Err(self.refused(contract, r)),
            None => Err(HttpRequestError::FailedToCreateClient),
        }
    }

    fn batch_http_request(
        &self,
        contract: &AccountId,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> Result<Vec<Result<HttpResponse, HttpRequestError>>, HttpRequestError> {
        let max = self.shared.egress.config.max_batch;
        if reqs.len() > max {
            self.push_log(
                contract,
                Mode::Query,
                "warn",
                format!(
                    "batch of {} http requests refused: at most {max}",
                    reqs.len()
                ),
            );
            return Err(HttpRequestError::TooManyRequests);
        }
        let egress = self.shared.egress.clone();
        let results = self
            .block_on(async move {
                futures::future::join_all(reqs.into_iter().map(|r| egress.send(r, timeout))).await
            })
            .ok_or(HttpRequestError::FailedToCreateClient)?;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(|e| self.refused(contract, e)))
            .collect())
    }

    fn cache_set(
        &self,
        contract: &AccountId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), CacheQuotaExceeded> {
        if self.command() {
            // A command's answer never depends on this worker's cache (pink answers `Ok`).
            self.defer(CacheOp::Set(*contract, key.to_vec(), value.to_vec()));
            return Ok(());
        }
        self.shared
            .cache
            .set(contract, key, value, self.now_secs())
            .map_err(|e| {
                self.push_log(
                    contract,
                    Mode::Query,
                    "warn",
                    format!("cache_set refused: {e}"),
                );
                CacheQuotaExceeded
            })
    }

    fn cache_set_expiration(&self, contract: &AccountId, key: &[u8], expire_secs: u64) {
        if self.command() {
            return self.defer(CacheOp::Expire(*contract, key.to_vec(), expire_secs));
        }
        self.shared
            .cache
            .set_expiration(contract, key, expire_secs, self.now_secs())
    }

    fn cache_get(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
        self.shared.cache.get(contract, key, self.now_secs())
    }

    fn cache_remove(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
        if self.command() {
            // A command is answered `None` whatever the cache holds.
            self.defer(CacheOp::Remove(*contract, key.to_vec()));
            return None;
        }
        self.shared.cache.remove(contract, key, self.now_secs())
    }

    fn log(&self, contract: &AccountId, mode: Mode, level: u8, message: &str) {
        self.push_log(contract, mode, level_name(level), message.to_string());
    }

    fn getrandom(&self, len: usize) -> Vec<u8> {
        (0..len).map(|_| rand::random::<u8>()).collect()
    }

    fn now_millis(&self) -> u64 {
        crate::now_ms()
    }

    fn schedule(
        &self,
        mode: Mode,
        request: phat_pink::ScheduleRequest,
    ) -> Result<(), phat_pink::ScheduleError> {
        if let phat_pink::ScheduleRequest::Set { def, .. } = &request {
            // The gas bound is the cluster's, checked again when the change is applied.
            crate::triggers::schedule::check(def, u64::MAX)
                .map_err(|_| phat_pink::ScheduleError::BadSchedule)?;
            if def.data.0.len() < 4 {
                return Err(phat_pink::ScheduleError::BadSchedule);
            }
        }
        // A query's changes go with its writes.
        if mode == Mode::Query {
            return Ok(());
        }
        let mut queued = self.schedules.lock();
        if queued.len() >= MAX_SCHEDULE_CHANGES {
            return Err(phat_pink::ScheduleError::TooMany);
        }
        queued.push(request);
        Ok(())
    }

    fn worker_pubkey(&self) -> [u8; 32] {
        self.shared.worker_pubkey
    }

    fn worker_sgx_quote(&self, report_data: &[u8; 64]) -> Option<Vec<u8>> {
        let source = self.shared.sgx_quotes.as_ref()?;
        match source.quote(report_data) {
            Ok(quote) => Some(quote),
            Err(e) => {
                tracing::warn!("worker_sgx_quote: the enclave made no quote: {e}");
                None
            }
        }
    }

    fn key_seed(&self) -> [u8; 32] {
        *self.shared.key_seed.expose()
    }

    fn js_eval(
        &self,
        contract: &AccountId,
        codes: Vec<phat_pink::JsCode>,
        args: Vec<String>,
        timeout: std::time::Duration,
    ) -> phat_pink::JsValue {
        let codes: Vec<phat_js::JsCode> = codes
            .into_iter()
            .map(|c| match c {
                phat_pink::JsCode::Source(s) => phat_js::JsCode::Source(s),
                phat_pink::JsCode::Bytecode(b) => phat_js::JsCode::Bytecode(b),
            })
            .collect();
        let http = std::rc::Rc::new(ScriptHttp {
            egress: self.shared.egress.clone(),
            handle: tokio::runtime::Handle::try_current().ok(),
            failures: Default::default(),
            key_seed: self.shared.key_seed.clone(),
            contract: *contract,
        });
        let out = phat_js::eval_with_host(
            &codes,
            &args,
            &phat_js::JsLimits::with_time(timeout),
            Some(http.clone()),
        );
        for failure in http.failures.take() {
            self.push_log(contract, Mode::Query, "warn", failure);
        }
        for (level, line) in out.logs {
            let level = match level {
                phat_js::LogLevel::Error => "error",
                phat_js::LogLevel::Warn => "warn",
                phat_js::LogLevel::Info => "info",
            };
            self.push_log(contract, Mode::Query, level, format!("js: {line}"));
        }
        if out.dropped_logs > 0 {
            let dropped = format!("js: {} more console lines dropped", out.dropped_logs);
            self.push_log(contract, Mode::Query, "warn", dropped);
        }
        match out.value {
            phat_js::JsValue::Undefined => phat_pink::JsValue::Undefined,
            phat_js::JsValue::Null => phat_pink::JsValue::Null,
            phat_js::JsValue::String(s) => phat_pink::JsValue::String(s),
            phat_js::JsValue::Bytes(b) => phat_pink::JsValue::Bytes(b),
            phat_js::JsValue::Other(s) => phat_pink::JsValue::Other(s),
            phat_js::JsValue::Exception(s) => phat_pink::JsValue::Exception(s),
        }
    }
}

/// HTTP and secrets for scripts: the contract's own egress rules, on this worker's runtime, and
/// the contract's own key.
struct ScriptHttp {
    egress: Egress,
    handle: Option<tokio::runtime::Handle>,
    /// Refused requests, for the contract's log.
    failures: std::cell::RefCell<Vec<String>>,
    /// The cluster's contract-key seed.
    key_seed: phat_crypto::Secret32,
    /// The contract running the script.
    contract: AccountId,
}

impl ScriptHttp {
    fn request(req: phat_js::HttpRequest) -> HttpRequest {
        HttpRequest {
            url: req.url,
            method: req.method,
            headers: req.headers,
            body: req.body,
        }
    }

    fn answer(
        &self,
        result: Result<HttpResponse, Refusal>,
    ) -> Result<phat_js::HttpResponse, phat_js::HttpError> {
        match result {
            Ok(r) => Ok(phat_js::HttpResponse {
                status_code: r.status_code,
                reason_phrase: r.reason_phrase,
                headers: r.headers,
                body: r.body,
            }),
            Err(Refusal(kind, why)) => {
                self.failures
                    .borrow_mut()
                    .push(format!("js: http request failed ({kind:?}: {why})"));
                Err(phat_js::HttpError {
                    kind: format!("{kind:?}"),
                    message: why,
                })
            }
        }
    }
}

impl phat_js::JsHost for ScriptHttp {
    fn http_request(
        &self,
        req: phat_js::HttpRequest,
        timeout: Duration,
    ) -> Result<phat_js::HttpResponse, phat_js::HttpError> {
        let Some(handle) = &self.handle else {
            return Err(phat_js::HttpError {
                kind: "FailedToCreateClient".into(),
                message: "no runtime to send it on".into(),
            });
        };
        let req = Self::request(req);
        let egress = self.egress.clone();
        self.answer(handle.block_on(async move { egress.send(req, timeout).await }))
    }

    fn batch_http_request(
        &self,
        reqs: Vec<phat_js::HttpRequest>,
        timeout: Duration,
    ) -> Vec<Result<phat_js::HttpResponse, phat_js::HttpError>> {
        let Some(handle) = &self.handle else {
            return reqs
                .iter()
                .map(|_| {
                    Err(phat_js::HttpError {
                        kind: "FailedToCreateClient".into(),
                        message: "no runtime to send it on".into(),
                    })
                })
                .collect();
        };
        let egress = self.egress.clone();
        let reqs: Vec<HttpRequest> = reqs.into_iter().map(Self::request).collect();
        // Together, as Phala's batch: the slowest request bounds the call, not their sum.
        let results = handle.block_on(async move {
            futures::future::join_all(reqs.into_iter().map(|r| egress.send(r, timeout))).await
        });
        results.into_iter().map(|r| self.answer(r)).collect()
    }

    fn derive_secret(&self, material: &[u8]) -> Option<[u8; 64]> {
        Some(phat_pink::derive_sr25519_secret(
            self.key_seed.expose(),
            &self.contract,
            material,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(quota: usize) -> Arc<PinkShared> {
        Arc::new(PinkShared {
            egress: Egress::new(crate::egress::EgressConfig::default()),
            cache: Cache::new(quota),
            worker_pubkey: [0; 32],
            key_seed: phat_crypto::Secret32::from_bytes([7; 32]),
            sgx_quotes: None,
        })
    }

    #[test]
    fn a_commands_cache_writes_wait_for_its_outcome_and_stay_bounded() {
        let shared = shared(1024);
        let contract = AccountId([1; 32]);
        let query = WorkerHost::new(shared.clone(), None, 0, false);
        // A command that reverts: its writes are never made.
        let reverted = WorkerHost::new(shared.clone(), Some(1), 0, false);
        assert!(reverted.cache_set(&contract, b"k", b"v").is_ok());
        drop(reverted);
        assert_eq!(query.cache_get(&contract, b"k"), None);
        // A command that succeeds: made in order, after it. 100 sets of 100 bytes each are
        // answered `Ok`, but only what fits the contract's quota is held meanwhile.
        let command = WorkerHost::new(shared.clone(), Some(2), 0, false);
        for i in 0..100u8 {
            assert!(command.cache_set(&contract, &[i], &[i; 99]).is_ok());
        }
        assert_eq!(
            command.cache_remove(&contract, &[0]),
            None,
            "a command reads no cache"
        );
        assert_eq!(
            query.cache_get(&contract, &[1]),
            None,
            "nothing before the outcome"
        );
        {
            let deferred = command.deferred.lock();
            assert!(deferred.1 <= 1024, "{} bytes held", deferred.1);
            assert_eq!(deferred.0.len(), 11, "10 sets of 100 bytes and the removal");
        }
        command.commit_cache();
        assert_eq!(query.cache_get(&contract, &[0]), None, "set, then removed");
        assert_eq!(query.cache_get(&contract, &[9]), Some(vec![9; 99]));
        assert_eq!(query.cache_get(&contract, &[10]), None, "past the quota");
        // A query writes at once, as before.
        assert!(query.cache_set(&contract, b"q", b"1").is_ok());
        assert_eq!(query.cache_get(&contract, b"q"), Some(b"1".to_vec()));
    }

    #[test]
    fn a_calls_schedule_changes_are_checked_bounded_and_kept_for_commands_only() {
        use phat_pink::{ScheduleError, ScheduleRequest};
        use phat_primitives::protocol::{MissedTicks, ScheduleDef, ScheduleSpec};
        let contract = AccountId([1; 32]);
        let set = |ms, data: Vec<u8>| ScheduleRequest::Set {
            contract,
            def: ScheduleDef {
                spec: ScheduleSpec::Every { ms },
                data: data.into(),
                gas_limit: 1,
                missed: MissedTicks::Skip,
            },
        };
        let command = WorkerHost::new(shared(0), Some(1), 0, false);
        // Refused at once: under a second, no selector, a cron expression that does not parse.
        assert_eq!(
            command.schedule(Mode::Command, set(10, vec![1, 2, 3, 4])),
            Err(ScheduleError::BadSchedule)
        );
        assert_eq!(
            command.schedule(Mode::Command, set(1_000, vec![1, 2])),
            Err(ScheduleError::BadSchedule)
        );
        // At most MAX_SCHEDULE_CHANGES a call, however often the contract asks.
        for _ in 0..100 {
            let _ = command.schedule(Mode::Command, set(1_000, vec![1, 2, 3, 4]));
        }
        assert_eq!(
            command.schedule(Mode::Command, set(1_000, vec![1, 2, 3, 4])),
            Err(ScheduleError::TooMany)
        );
        assert_eq!(command.take_schedules().len(), MAX_SCHEDULE_CHANGES);
        // A query's are answered and dropped.
        let query = WorkerHost::new(shared(0), None, 0, false);
        assert_eq!(
            query.schedule(Mode::Query, set(1_000, vec![1, 2, 3, 4])),
            Ok(())
        );
        assert!(query.take_schedules().is_empty());
    }

    #[test]
    fn an_sgx_worker_quotes_what_it_is_asked_and_other_workers_answer_none() {
        struct FakeSgx(Mutex<Vec<[u8; 64]>>);
        impl phat_attest::QuoteSource for FakeSgx {
            fn kind(&self) -> phat_attest::TeeKind {
                phat_attest::TeeKind::SgxDcap
            }
            fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, phat_attest::SourceError> {
                self.0.lock().push(*report_data);
                Ok(b"a quote".to_vec())
            }
        }
        let plain = WorkerHost::new(shared(0), None, 0, false);
        assert_eq!(plain.worker_sgx_quote(&[1; 64]), None);
        let sgx = Arc::new(PinkShared {
            egress: Egress::new(crate::egress::EgressConfig::default()),
            cache: Cache::new(0),
            worker_pubkey: [9; 32],
            key_seed: phat_crypto::Secret32::from_bytes([7; 32]),
            sgx_quotes: Some(Box::new(FakeSgx(Mutex::new(Vec::new())))),
        });
        let host = WorkerHost::new(sgx, None, 0, false);
        assert_eq!(host.worker_sgx_quote(&[1; 64]), Some(b"a quote".to_vec()));
    }
}
