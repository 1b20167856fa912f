//! Phala's own prebuilt pink contracts (ink! 3 and 4), loaded unmodified.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use parity_scale_codec::{Decode, Encode};
use phat_pink::{
    BatchHttpResult, CacheQuotaExceeded, HttpRequest, HttpRequestError, HttpResponse,
    PinkExtension, PinkHost,
};
use phat_primitives::AccountId;
use phat_primitives::CodeHash;
use phat_primitives::Mode;
use phat_runtime::{
    ChainExtension, ExecContext, ExecError, ExtensionEnv, ExtensionError, ExtensionId,
    ExtensionOutput, ExtensionState,
};
use phat_testkit::runtime::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records pink `log` calls (function 10: SCALE `(level: u8, message: String)` in, `()` out);
/// every other function is unsupported. The full pink extension is another crate's job.
#[derive(Default)]
struct LogOnly(Mutex<Vec<(u8, String)>>);

impl ChainExtension for LogOnly {
    fn call(
        &self,
        _env: &ExtensionEnv,
        _state: &dyn ExtensionState,
        id: ExtensionId,
        input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError> {
        if (id.extension, id.function) != (0, 10) {
            return Err(ExtensionError::Unsupported);
        }
        let line = <(u8, String)>::decode(&mut &input[..])
            .map_err(|e| ExtensionError::Failed(e.to_string()))?;
        self.0.lock().unwrap().push(line);
        Ok(ExtensionOutput::default())
    }
}

const NEW: [u8; 4] = [0x9b, 0xae, 0x9d, 0x5e];
const DEFAULT: [u8; 4] = [0xed, 0x4b, 0x9d, 0x1b];
const GET: [u8; 4] = [0x2f, 0x86, 0x5b, 0xd9];
const FLIP: [u8; 4] = [0x63, 0x3a, 0xa5, 0x51];
const ECHO: [u8; 4] = [0xf7, 0xdf, 0xf0, 0x4c];
const CALL_OTHER: [u8; 4] = [0xc3, 0x22, 0x00, 0x14];
const TEST: [u8; 4] = [0x92, 0x8b, 0x20, 0x36];
const TEST_TX: [u8; 4] = [0x7e, 0xc6, 0xdb, 0x42];

fn with_args(selector: [u8; 4], args: impl Encode) -> Vec<u8> {
    let mut v = selector.to_vec();
    args.encode_to(&mut v);
    v
}

#[test]
fn flip_new_get_flip_get_echo() {
    let mut h = Harness::new();
    let flip = h.deploy(&phala("flip/flip.wasm"), with_args(NEW, true));

    // ink! 3 returns the bare value (no LangError wrapper).
    let got = h.read(flip, GET.to_vec()).unwrap();
    assert_eq!(got.data, true.encode());
    assert!(!got.reverted);

    h.call(flip, FLIP.to_vec()).unwrap();
    assert_eq!(h.read(flip, GET.to_vec()).unwrap().data, false.encode());

    let echo = h.read(flip, with_args(ECHO, (42u32, 24u128))).unwrap();
    assert_eq!(
        <(u32, u128)>::decode(&mut &echo.data[..]).unwrap(),
        (42, 24)
    );
}

#[test]
fn flip_in_query_mode_changes_nothing() {
    let mut h = Harness::new();
    let flip = h.deploy(&phala("flip/flip.wasm"), with_args(NEW, true));
    let changes = h.query(|s| {
        s.call(ALICE, flip, 0, FLIP.to_vec(), GAS).unwrap();
        // Within the query session the write is visible ...
        assert_eq!(
            s.call(ALICE, flip, 0, GET.to_vec(), GAS).unwrap().data,
            false.encode()
        );
        s.changes().len()
    });
    assert!(changes > 0);
    // ... but it is never committed.
    assert_eq!(h.read(flip, GET.to_vec()).unwrap().data, true.encode());
}

#[test]
fn cross_instantiates_flip_and_calls_it() {
    let mut h = Harness::new();
    let flip_hash = h.upload(&phala("flip/flip.wasm"));
    assert_eq!(flip_hash, CodeHash::of(&phala("flip/flip.wasm")));
    let cross_hash = h.upload(&phala("cross/cross.wasm"));
    h.command(|s| s.set_balance(&ALICE, 1_000_000_000_000_000_000_000));

    let logs = Arc::new(LogOnly::default());
    let ctx = |mode| ExecContext {
        extension: logs.clone(),
        ..ExecContext::new(mode)
    };
    let mut session = h.rt.session(h.state.clone(), ctx(Mode::Command));
    let out = session
        .instantiate(
            ALICE,
            cross_hash,
            10_000_000_000_000_000,
            NEW.to_vec(),
            b"",
            GAS,
        )
        .unwrap_or_else(|e| {
            panic!(
                "cross constructor: {e:?}; logs: {:?}",
                logs.0.lock().unwrap()
            )
        });
    assert!(!out.reverted, "{out:?}");
    let cross = out.address.unwrap();
    // The value moved from Alice into cross (and on into the flip it created).
    assert!(
        session.balance(&ALICE).unwrap() <= 1_000_000_000_000_000_000_000 - 10_000_000_000_000_000
    );
    let result = session
        .call(ALICE, cross, 0, CALL_OTHER.to_vec(), GAS)
        .expect("call_other_contract");
    assert_eq!(
        result.data,
        true.encode(),
        "debug: {}",
        result.debug_message
    );
    // cross logs through pink's `log` only when something fails.
    assert!(
        logs.0.lock().unwrap().is_empty(),
        "{:?}",
        logs.0.lock().unwrap()
    );
}

#[test]
fn extension_contracts_load_and_fail_cleanly_without_the_extension() {
    for (file, constructor, message) in [
        ("signing/signing.wasm", DEFAULT, TEST),
        ("logging.wasm", DEFAULT, TEST),
        ("use_cache/use_cache.wasm", DEFAULT, TEST),
        ("use_cache/use_cache.wasm", DEFAULT, TEST_TX),
    ] {
        let mut h = Harness::new();
        let hash = h.upload(&phala(file));
        let err = match h.command(|s| s.instantiate(ALICE, hash, 0, constructor.to_vec(), b"", GAS))
        {
            Err(e) => e,
            Ok(out) => h.call(out.address.unwrap(), message.to_vec()).unwrap_err(),
        };
        assert!(
            matches!(err, ExecError::UnsupportedExtension { extension: 0, .. }),
            "{file}: {err:?}"
        );
        assert!(err.to_string().contains("unsupported extension function"));
    }
}

/// Cache entries by (contract, key).
type Cache = HashMap<(AccountId, Vec<u8>), Vec<u8>>;

/// An in-memory [`PinkHost`]: a per-contract cache with a byte quota, recorded log lines, fixed
/// randomness, clock and key seed, and no network.
struct MockHost {
    quota: usize,
    cache: Mutex<Cache>,
    logs: Mutex<Vec<(AccountId, Mode, u8, String)>>,
}

impl MockHost {
    fn new(quota: usize) -> Self {
        Self {
            quota,
            cache: Mutex::default(),
            logs: Mutex::default(),
        }
    }

    fn used(&self, contract: &AccountId) -> usize {
        let cache = self.cache.lock().unwrap();
        cache
            .iter()
            .filter(|((c, _), _)| c == contract)
            .map(|((_, k), v)| k.len() + v.len())
            .sum()
    }
}

impl PinkHost for MockHost {
    fn http_request(
        &self,
        _contract: &AccountId,
        _req: HttpRequest,
        _timeout: Duration,
    ) -> Result<HttpResponse, HttpRequestError> {
        Err(HttpRequestError::NotAllowed)
    }
    fn batch_http_request(
        &self,
        _contract: &AccountId,
        _reqs: Vec<HttpRequest>,
        _timeout: Duration,
    ) -> BatchHttpResult {
        Err(HttpRequestError::NotAllowed)
    }
    fn cache_set(
        &self,
        contract: &AccountId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), CacheQuotaExceeded> {
        let old = self
            .cache
            .lock()
            .unwrap()
            .get(&(*contract, key.to_vec()))
            .map_or(0, |v| key.len() + v.len());
        if self.used(contract) - old + key.len() + value.len() > self.quota {
            return Err(CacheQuotaExceeded);
        }
        self.cache
            .lock()
            .unwrap()
            .insert((*contract, key.to_vec()), value.to_vec());
        Ok(())
    }
    fn cache_set_expiration(&self, _contract: &AccountId, _key: &[u8], _expire_secs: u64) {}
    fn cache_get(&self, contract: &AccountId, key: &[u8]) -> Option<Vec<u8>> {
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
        vec![0x42; len]
    }
    fn now_millis(&self) -> u64 {
        1_700_000_000_000
    }
    fn worker_pubkey(&self) -> [u8; 32] {
        [0x55; 32]
    }
    fn key_seed(&self) -> [u8; 32] {
        [0x5e; 32]
    }
}

/// A harness whose sessions get pink's extension over `host`.
fn pink_context(host: &Arc<MockHost>, mode: Mode) -> ExecContext {
    ExecContext {
        extension: Arc::new(PinkExtension::new(host.clone())),
        ..ExecContext::new(mode)
    }
}

/// Uploads `file` and runs its `default` constructor in a command with pink's extension.
fn deploy_with_pink(h: &mut Harness, host: &Arc<MockHost>, file: &str) -> AccountId {
    let hash = h.upload(&phala(file));
    let out = h
        .command_in(pink_context(host, Mode::Command), |s| {
            s.instantiate(ALICE, hash, 0, DEFAULT.to_vec(), b"", GAS)
        })
        .unwrap_or_else(|e| panic!("{file}: constructor: {e}"));
    assert!(!out.reverted, "{file}: {out:?}");
    out.address.unwrap()
}

#[test]
fn signing_derives_signs_and_verifies_in_a_query() {
    let host = Arc::new(MockHost::new(1024));
    let mut h = Harness::new();
    let contract = deploy_with_pink(&mut h, &host, "signing/signing.wasm");
    let out = h
        .query_in(pink_context(&host, Mode::Query), |s| {
            s.call(ALICE, contract, 0, TEST.to_vec(), GAS)
        })
        .unwrap_or_else(|e| panic!("signing test: {e}"));
    // ink! 3.3 has no LangError wrapper: `()` is empty output.
    assert!(!out.reverted, "{out:?}");
    assert_eq!(out.data, Vec::<u8>::new());
    // phat signs sr25519 deterministically in commands (Phala answers `[]` there, which this
    // contract's `verify` would reject), so the same message also passes as a command.
    let out = h
        .command_in(pink_context(&host, Mode::Command), |s| {
            s.call(ALICE, contract, 0, TEST.to_vec(), GAS)
        })
        .unwrap_or_else(|e| panic!("signing test as a command: {e}"));
    assert_eq!(out.data, Vec::<u8>::new());
}

#[test]
fn logging_lines_reach_the_host() {
    let host = Arc::new(MockHost::new(1024));
    let mut h = Harness::new();
    let contract = deploy_with_pink(&mut h, &host, "logging.wasm");
    let out = h
        .command_in(pink_context(&host, Mode::Command), |s| {
            s.call(ALICE, contract, 0, TEST.to_vec(), GAS)
        })
        .unwrap_or_else(|e| panic!("logging test: {e}"));
    assert!(!out.reverted, "{out:?}");
    assert_eq!(out.data, Vec::<u8>::new());
    // This build logs both lines at info (3); its strings hold no others.
    let logs = host.logs.lock().unwrap().clone();
    let expected = [
        (contract, Mode::Command, 3, "instantiated".to_string()),
        (contract, Mode::Command, 3, "a test message received".into()),
    ];
    assert_eq!(logs, expected);
}

#[test]
fn use_cache_in_a_query_and_in_a_command() {
    let host = Arc::new(MockHost::new(1024));
    let mut h = Harness::new();
    let contract = deploy_with_pink(&mut h, &host, "use_cache/use_cache.wasm");
    // ink! 4: `Ok(())` of `MessageResult<()>` is `[0]`.
    let out = h
        .query_in(pink_context(&host, Mode::Query), |s| {
            s.call(ALICE, contract, 0, TEST.to_vec(), GAS)
        })
        .unwrap_or_else(|e| panic!("use_cache test: {e}"));
    assert!(!out.reverted, "{out:?}");
    assert_eq!(out.data, [0]);
    let out = h
        .command_in(pink_context(&host, Mode::Command), |s| {
            s.call(ALICE, contract, 0, TEST_TX.to_vec(), GAS)
        })
        .unwrap_or_else(|e| panic!("use_cache test_tx: {e}"));
    assert!(!out.reverted, "{out:?}");
    assert_eq!(out.data, [0]);
}

#[test]
fn use_cache_traps_in_a_query_when_the_quota_is_too_small() {
    // `test` asserts `cache_set(..).is_ok()`: a quota of 4 bytes makes it panic.
    let host = Arc::new(MockHost::new(4));
    let mut h = Harness::new();
    let contract = deploy_with_pink(&mut h, &host, "use_cache/use_cache.wasm");
    let err = h
        .query_in(pink_context(&host, Mode::Query), |s| {
            s.call(ALICE, contract, 0, TEST.to_vec(), GAS)
        })
        .unwrap_err();
    assert!(matches!(err, ExecError::Panicked(_)), "{err:?}");
}
