//! Hostile contracts (`contracts/hostile/*.wat`): each ends in a typed error, and the runtime
//! keeps serving other calls afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::Duration;

use parity_scale_codec::Decode;
use parity_scale_codec::Encode;
use phat_primitives::{AccountId, CodeHash};
use phat_runtime::{Bound, CodeError, Config, ExecError, Limits, Outcome};
use phat_testkit::runtime::*;

/// A harness whose queries time out after 300 ms.
fn harness() -> Harness {
    Harness::with_config(Config {
        limits: Limits {
            query_time_limit: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Config::default()
    })
}

/// Checks a healthy contract still works on the same runtime.
fn still_serving(h: &mut Harness, flip: AccountId) {
    let get = [0x2f, 0x86, 0x5b, 0xd9].to_vec();
    let before = h.read(flip, get.clone()).unwrap().data;
    h.call(flip, [0x63, 0x3a, 0xa5, 0x51].to_vec()).unwrap();
    let after = h.read(flip, get).unwrap().data;
    assert_ne!(before, after, "flip still flips");
}

fn setup(name: &str) -> (Harness, AccountId, AccountId) {
    let mut h = harness();
    let mut input = [0x9b, 0xae, 0x9d, 0x5e].to_vec();
    input.push(1);
    let flip = h.deploy(&phala("flip/flip.wasm"), input);
    let evil = h.deploy(&hostile(name), Vec::new());
    (h, flip, evil)
}

#[test]
fn infinite_loop_runs_out_of_gas_in_commands_and_time_in_queries() {
    let (mut h, flip, evil) = setup("infinite_loop");
    let err = h
        .command(|s| s.call(ALICE, evil, 0, vec![], 50_000_000))
        .unwrap_err();
    assert_eq!(err, ExecError::OutOfGas);
    assert!(err.is_deterministic());
    // Queries get more gas than they could burn in 300 ms: the wall-clock bound stops them.
    let err = h
        .query(|s| s.call(ALICE, evil, 0, vec![], u64::MAX))
        .unwrap_err();
    assert!(matches!(err, ExecError::Timeout(300)), "{err:?}");
    assert!(!err.is_deterministic());
    still_serving(&mut h, flip);
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let (mut h, flip, evil) = setup("memory_grow");
    let out = h.read(evil, vec![]).unwrap();
    // 1 initial page, capped at 64: exactly 63 single-page grows succeed.
    assert_eq!(out.data, 63u32.to_le_bytes().to_vec());
    still_serving(&mut h, flip);
}

#[test]
fn a_declared_memory_above_the_cap_is_refused_at_upload() {
    let mut h = harness();
    let wasm = wat::parse_str(
        r#"(module (import "env" "memory" (memory 65 128)) (func (export "deploy")) (func (export "call")))"#,
    )
    .unwrap();
    let err = h.command(|s| s.upload_code(&wasm)).unwrap_err();
    assert!(
        matches!(err, ExecError::Code(CodeError::Memory(_))),
        "{err:?}"
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let (mut h, flip, evil) = setup("recursion");
    assert_eq!(h.call(evil, vec![]).unwrap_err(), ExecError::StackOverflow);
    still_serving(&mut h, flip);
}

#[test]
fn huge_return_value_event_and_storage_value_are_refused() {
    for (name, what) in [
        ("huge_return", "return value"),
        ("huge_event", "event"),
        ("huge_storage", "storage value"),
    ] {
        let (mut h, flip, evil) = setup(name);
        let before = h.state.len();
        let err = h.call(evil, vec![]).unwrap_err();
        assert!(
            matches!(err, ExecError::TooLarge { what: w, .. } if w == what),
            "{name}: {err:?}"
        );
        assert_eq!(h.state.len(), before, "{name} wrote nothing");
        still_serving(&mut h, flip);
    }
}

#[test]
fn out_of_bounds_host_arguments_are_typed_errors() {
    let (mut h, flip, evil) = setup("oob");
    for (mode, expect) in [
        (0u8, ExecError::OutOfBounds("set_storage")),
        (1, ExecError::OutOfBounds("input")),
        (2, ExecError::OutOfBounds("seal_return")),
        (3, ExecError::Decode("event topics")),
    ] {
        let err = h.call(evil, vec![mode]).unwrap_err();
        assert_eq!(err, expect, "mode {mode}");
    }
    still_serving(&mut h, flip);
}

#[test]
fn unreachable_is_a_panic_without_a_message() {
    let (mut h, flip, evil) = setup("unreachable");
    let err = h.call(evil, vec![]).unwrap_err();
    assert!(
        matches!(&err, ExecError::Panicked(p) if p.message.is_none() && p.selector.is_none()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("built without debug output"),
        "{err}"
    );
    still_serving(&mut h, flip);
}

#[test]
fn self_calls_stop_at_the_depth_limit() {
    let (mut h, flip, evil) = setup("self_call");
    let before = h.state.len();
    let err = h.call(evil, vec![]).unwrap_err();
    let ExecError::Panicked(p) = &err else {
        panic!("{err:?}")
    };
    let cause = p.after_callee.as_deref().unwrap_or_default();
    assert!(cause.contains("call depth limit of 6 reached"), "{err}");
    assert_eq!(h.state.len(), before);
    still_serving(&mut h, flip);
}

#[test]
fn garbage_and_non_contract_modules_are_refused_at_upload() {
    let mut h = harness();
    for (wasm, what) in [
        (b"not wasm at all".to_vec(), "garbage"),
        (wat::parse_str("(module)").unwrap(), "no memory, no exports"),
        (
            wat::parse_str(r#"(module (import "env" "memory" (memory 1 16)) (func (export "call")))"#).unwrap(),
            "no deploy",
        ),
        (
            wat::parse_str(r#"(module (import "env" "memory" (memory 1 16)) (import "evil" "f" (func)) (func (export "deploy")) (func (export "call")))"#).unwrap(),
            "foreign import",
        ),
        (
            wat::parse_str(r#"(module (import "seal0" "no_such_function" (func)) (import "env" "memory" (memory 1 16)) (func (export "deploy")) (func (export "call")))"#).unwrap(),
            "unknown host function",
        ),
        (vec![0u8; 300 * 1024], "too large"),
    ] {
        let err = h.command(|s| s.upload_code(&wasm)).unwrap_err();
        assert!(matches!(err, ExecError::Code(_)), "{what}: {err:?}");
    }
    assert!(h.state.is_empty());
}

#[test]
fn calling_a_missing_contract_or_code_is_a_typed_error() {
    let mut h = harness();
    let nobody = AccountId([9; 32]);
    assert_eq!(
        h.call(nobody, vec![]).unwrap_err(),
        ExecError::ContractNotFound(nobody)
    );
    let hash = phat_primitives::CodeHash([9; 32]);
    let err = h
        .command(|s| s.instantiate(ALICE, hash, 0, vec![], b"", GAS))
        .unwrap_err();
    assert_eq!(err, ExecError::CodeNotFound(hash));
    // Value the caller does not have.
    let flip = h.deploy(
        &phala("flip/flip.wasm"),
        [[0x9b, 0xae, 0x9d, 0x5e].as_slice(), &true.encode()].concat(),
    );
    let err = h
        .command(|s| s.call(ALICE, flip, 5, vec![], GAS))
        .unwrap_err();
    assert_eq!(err, ExecError::TransferFailed { value: 5 });
}

/// Runs attack `mode` of `amplify.wat` as a command with all the gas a call may get.
fn amplify(h: &mut Harness, evil: AccountId, mode: u8, arg: u32) -> Result<Outcome, ExecError> {
    let mut input = vec![mode];
    input.extend_from_slice(&arg.to_le_bytes());
    h.command(|s| s.call(ALICE, evil, 0, input, u64::MAX))
}

fn limit_of(err: &ExecError) -> Option<Bound> {
    match err {
        ExecError::LimitExceeded { bound, .. } => Some(*bound),
        _ => None,
    }
}

#[test]
fn host_amplification_stops_at_per_call_bounds_and_rolls_back() {
    let (mut h, flip, evil) = setup("amplify");
    let before = h.state.len();
    // Overwriting one key with 16 KiB forever: the host would hold every version (to roll
    // back); 2 MiB written ends the call.
    let err = amplify(&mut h, evil, 0, 0).unwrap_err();
    assert_eq!(
        limit_of(&err),
        Some(Bound::StorageWrittenPerCall),
        "{err:?}"
    );
    let ExecError::LimitExceeded { used, limit, .. } = err else {
        unreachable!()
    };
    assert_eq!(limit, Limits::default().max_storage_written_per_call);
    assert!(used > limit && used <= limit + 17 * 1024, "{used}");
    // 16 KiB events forever, and empty events forever.
    let err = amplify(&mut h, evil, 1, 0).unwrap_err();
    assert_eq!(limit_of(&err), Some(Bound::EventBytesPerCall), "{err:?}");
    let err = amplify(&mut h, evil, 2, 0).unwrap_err();
    assert_eq!(limit_of(&err), Some(Bound::EventsPerCall), "{err:?}");
    assert!(err.is_deterministic());
    assert_eq!(err.kind(), "limit_exceeded");
    assert!(
        err.to_string()
            .contains("events_per_call limit exceeded: 257 > 256"),
        "{err}"
    );
    assert_eq!(h.state.len(), before, "nothing was written");
    // A normal call of the same contract still works.
    let out = amplify(&mut h, evil, 6, 0).unwrap();
    assert_eq!(out.events.len(), 1);
    still_serving(&mut h, flip);
}

#[test]
fn a_bound_hit_in_a_nested_call_fails_the_whole_call() {
    let (mut h, flip, evil) = setup("amplify");
    // The outer frame ignores its callee's failure; the bound still ends the whole call
    // rather than becoming a "callee trapped" code the contract could act on.
    let err = amplify(&mut h, evil, 4, 0).unwrap_err();
    assert_eq!(limit_of(&err), Some(Bound::EventBytesPerCall), "{err:?}");
    still_serving(&mut h, flip);
}

#[test]
fn contract_storage_is_capped_across_calls() {
    let mut h = Harness::with_config(Config {
        limits: Limits {
            max_contract_storage: 4 << 20,
            ..Limits::default()
        },
        ..Config::default()
    });
    let evil = h.deploy(&hostile("amplify"), Vec::new());
    let usage = |h: &Harness| {
        let info = h.query(|s| s.contract_info(&evil)).unwrap().unwrap();
        let key = phat_primitives::StateKey::StorageUsage(info.storage_id);
        h.state
            .iter()
            .find(|(k, _)| **k == key)
            .map(|(_, v)| u64::decode(&mut &v[..]).unwrap())
            .unwrap_or(0)
    };
    // Each call adds 48 cells of 32 + 16384 bytes.
    let per_call = 48 * (32 + 16384);
    let mut calls = 0;
    let err = loop {
        match amplify(&mut h, evil, 3, calls) {
            Ok(_) => calls += 1,
            Err(e) => break e,
        }
        assert_eq!(usage(&h), u64::from(calls) * per_call);
        assert!(calls < 100, "never capped");
    };
    assert_eq!(calls, 5, "4 MiB hold 5 calls of 768 KiB");
    assert_eq!(limit_of(&err), Some(Bound::ContractStorage), "{err:?}");
    assert_eq!(usage(&h), 5 * per_call, "the failed call added nothing");
    // Overwriting existing cells does not grow the contract.
    amplify(&mut h, evil, 3, 0).unwrap();
    assert_eq!(usage(&h), 5 * per_call);
}

#[test]
fn a_panic_reads_as_a_panic_with_its_message() {
    let (mut h, _flip, evil) = setup("amplify");
    let err = amplify(&mut h, evil, 5, 0).unwrap_err();
    let ExecError::Panicked(p) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(err.kind(), "panicked");
    assert_eq!(p.contract, evil);
    assert_eq!(p.caller, ALICE);
    assert_eq!(p.selector, Some([5, 0, 0, 0]));
    assert_eq!(
        p.message.as_deref(),
        Some("panicked at lib.rs:7:9: balance too low")
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "the contract {evil} panicked in message 0x05000000"
        )),
        "{text}"
    );
    assert!(text.ends_with("balance too low"), "{text}");
}

#[test]
fn a_memory_fault_is_a_trap_not_a_panic() {
    let mut h = harness();
    let wasm = wat::parse_str(
        r#"(module (import "env" "memory" (memory 1 16)) (func (export "deploy"))
             (func (export "call") (drop (i32.load (i32.const 0x7fffffff)))))"#,
    )
    .unwrap();
    let addr = h.deploy(&wasm, vec![]);
    let err = h.call(addr, vec![]).unwrap_err();
    assert_eq!(err.kind(), "trapped", "{err:?}");
    assert!(err.to_string().contains("out of bounds"), "{err}");
}

#[test]
fn a_worker_dependent_failure_in_a_nested_call_aborts_the_whole_call() {
    // One instance slot: the nested self-call cannot get an instance. That is this worker's
    // situation, not the contract's: the call fails as `Busy` (the worker retries the
    // command), rather than handing the contract a "callee trapped" code it could store.
    let mut h = Harness::with_config(Config {
        max_instances: 1,
        ..Config::default()
    });
    let evil = h.deploy(&hostile("self_call"), Vec::new());
    let err = h.call(evil, vec![]).unwrap_err();
    assert!(matches!(err, ExecError::Busy(_)), "{err:?}");
    assert!(!err.is_deterministic() && err.aborts_call());
}

#[test]
fn the_compiled_code_cache_stays_within_its_byte_budget() {
    let mut h = Harness::with_config(Config {
        code_cache_bytes: 1,
        ..Config::default()
    });
    let a = h.deploy(&hostile("amplify"), Vec::new());
    let b = h.deploy(&hostile("memory_grow"), Vec::new());
    // Only the module added last stays (the budget is smaller than any module).
    assert_eq!(h.rt.cached_modules(), 1);
    // Evicted code is compiled again when called.
    assert_eq!(amplify(&mut h, a, 6, 0).unwrap().events.len(), 1);
    assert_eq!(h.rt.cached_modules(), 1);
    h.read(b, vec![]).unwrap();
    // With room for all, all stay.
    let mut h = Harness::new();
    h.deploy(&hostile("amplify"), Vec::new());
    h.deploy(&hostile("memory_grow"), Vec::new());
    assert_eq!(h.rt.cached_modules(), 2);
    assert!(h.rt.cached_code_bytes() > 0);
}

#[test]
fn state_growth_is_paid_for_by_the_signer_and_freeing_pays_back() {
    let price = 1_000u64;
    let mut h = Harness::with_config(Config {
        limits: Limits {
            storage_deposit_per_byte: price,
            ..Limits::default()
        },
        ..Config::default()
    });
    let rich = AccountId([7; 32]);
    let broke = AccountId([8; 32]);
    h.command(|s| s.set_balance(&rich, 1 << 60));
    let wasm = hostile("amplify");
    let code = h.command(|s| s.upload_code(&wasm)).unwrap();
    let evil = h
        .command(|s| s.instantiate(rich, code, 0, vec![], b"", GAS))
        .unwrap()
        .address
        .unwrap();
    let balance = |h: &Harness, who| h.query(|s| s.balance(&who)).unwrap();
    // 48 new cells of 32 + 16384 bytes: the signer pays for exactly those bytes.
    let before = balance(&h, rich);
    let mut input = vec![3];
    input.extend_from_slice(&0u32.to_le_bytes());
    h.command(|s| s.call(rich, evil, 0, input.clone(), u64::MAX))
        .unwrap();
    let paid = before - balance(&h, rich);
    assert_eq!(paid, u128::from(price) * 48 * (32 + 16384));
    // Overwriting the same cells adds nothing and costs nothing.
    let before = balance(&h, rich);
    h.command(|s| s.call(rich, evil, 0, input, u64::MAX))
        .unwrap();
    assert_eq!(balance(&h, rich), before);
    // An account without balance cannot grow the state; its call leaves nothing behind.
    let state = h.state.len();
    let mut input = vec![3];
    input.extend_from_slice(&1u32.to_le_bytes());
    let err = h
        .command(|s| s.call(broke, evil, 0, input, u64::MAX))
        .unwrap_err();
    assert_eq!(limit_of(&err), Some(Bound::StorageDeposit), "{err:?}");
    assert_eq!(h.state.len(), state);
    // It may still call what does not grow the state: attack 6 overwrites the 16 KiB cell
    // at the zero key with 8 bytes, and the freed bytes are paid back to it.
    h.command(|s| s.call(broke, evil, 0, vec![6], u64::MAX))
        .unwrap();
    assert_eq!(balance(&h, broke), u128::from(price) * (16384 - 8));
}

/// Code that comes with its instantiation (what the worker does with a command's uploaded
/// code) is a write like any other: the deployer pays its deposit, it counts toward the
/// call's write bound, and a constructor that reverts leaves no code behind. Otherwise one
/// funded key could put megabytes of code into replicated state for free.
#[test]
fn code_uploaded_with_its_instantiation_pays_its_deposit() {
    let price = 10u64;
    let config = |written: u64| Config {
        limits: Limits {
            storage_deposit_per_byte: price,
            max_storage_written_per_call: written,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut h = Harness::with_config(config(Limits::default().max_storage_written_per_call));
    let rich = AccountId([7; 32]);
    h.command(|s| s.set_balance(&rich, 1 << 60));
    let balance = |h: &Harness, who| h.query(|s| s.balance(&who)).unwrap();
    let code_of = |h: &Harness, hash| h.query(|s| s.code_exists(&hash)).unwrap();
    // A constructor that reverts: nothing stays, nothing is paid.
    let reverting = wat::parse_str(
        r#"(module
             (import "seal0" "seal_return" (func $seal_return (param i32 i32 i32)))
             (import "env" "memory" (memory 1 16))
             (func (export "deploy") (call $seal_return (i32.const 1) (i32.const 0) (i32.const 0)))
             (func (export "call")))"#,
    )
    .unwrap();
    let hash = CodeHash::of(&reverting);
    let before = balance(&h, rich);
    let out = h
        .command(|s| s.instantiate_with_code(rich, &reverting, hash, 0, vec![], b"", GAS))
        .unwrap();
    assert!(out.reverted);
    assert!(!code_of(&h, hash), "a reverted instantiation left its code");
    assert_eq!(balance(&h, rich), before);
    // Some contract first, so that the cluster-wide instantiation counter exists and the
    // two instantiations below write the same rows but the code.
    let other = h
        .command(|s| s.upload_code(&hostile("huge_return")))
        .unwrap();
    h.command(|s| s.instantiate(rich, other, 0, vec![], b"", GAS))
        .unwrap();
    // One that succeeds pays for the code's bytes (and its key) on top of the contract's.
    let before = balance(&h, rich);
    let wasm = hostile("amplify");
    let hash = CodeHash::of(&wasm);
    let with_code = h
        .command(|s| s.instantiate_with_code(rich, &wasm, hash, 0, vec![], b"a", GAS))
        .unwrap();
    assert!(!with_code.reverted);
    let paid_with_code = before - balance(&h, rich);
    assert!(code_of(&h, hash));
    // The same instantiation once the code is there pays for the contract alone.
    let before = balance(&h, rich);
    h.command(|s| s.instantiate_with_code(rich, &wasm, hash, 0, vec![], b"b", GAS))
        .unwrap();
    let paid_without = before - balance(&h, rich);
    assert_eq!(
        paid_with_code - paid_without,
        u128::from(price) * (wasm.len() as u128 + 32)
    );
    // The code counts toward the call's write bound: over it with the code, within it once
    // the code is there.
    let mut tight = Harness::with_config(config(wasm.len() as u64));
    tight.command(|s| s.set_balance(&rich, 1 << 60));
    let err = tight
        .command(|s| s.instantiate_with_code(rich, &wasm, hash, 0, vec![], b"", GAS))
        .unwrap_err();
    assert_eq!(
        limit_of(&err),
        Some(Bound::StorageWrittenPerCall),
        "{err:?}"
    );
    tight.command(|s| s.upload_code(&wasm)).unwrap();
    tight
        .command(|s| s.instantiate_with_code(rich, &wasm, hash, 0, vec![], b"", GAS))
        .unwrap();
    // Code that is not the hash named is refused before anything runs.
    let err = h
        .command(|s| s.instantiate_with_code(rich, &wasm, CodeHash([0; 32]), 0, vec![], b"c", GAS))
        .unwrap_err();
    assert!(matches!(err, ExecError::Decode(_)), "{err:?}");
}
