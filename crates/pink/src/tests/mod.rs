//! The dispatcher's tests: an in-memory host and chain state, and a fixture calling pink's
//! functions by id as a contract does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parity_scale_codec::{Decode, Encode};
use phat_primitives::{blake2_256, AccountId, CodeHash, Gas, Mode};
use phat_runtime::{
    ChainExtension, ExtensionEnv, ExtensionError, ExtensionId, ExtensionOutput, ExtensionState,
};

use crate::sign::public_key;
use crate::types::{JsCode, JsValue};
use crate::*;

mod dispatch;
mod signing;

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
    schedules: Mutex<Vec<(Mode, crate::ScheduleRequest)>>,
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
            schedules: Default::default(),
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
    fn worker_sgx_quote(&self, report_data: &[u8; 64]) -> Option<Vec<u8>> {
        // A stand-in quote: what it was asked to carry.
        Some([b"quote:".as_slice(), report_data].concat())
    }
    fn schedule(
        &self,
        mode: Mode,
        request: crate::ScheduleRequest,
    ) -> Result<(), crate::ScheduleError> {
        self.schedules.lock().unwrap().push((mode, request));
        Ok(())
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
