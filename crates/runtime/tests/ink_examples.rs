//! The ink! 5 example contracts in `contracts/`, built from source with phat-builder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use parity_scale_codec::Decode;
use phat_primitives::{AccountId, Hash};
use phat_runtime::ExecError;
use phat_testkit::runtime::*;

/// Decodes an ink! 4/5 message result `Result<T, LangError>`, expecting `Ok`.
fn ok<T: Decode>(data: &[u8]) -> T {
    let r = <Result<T, u8>>::decode(&mut &data[..]).expect("decodes as MessageResult");
    r.unwrap_or_else(|e| panic!("LangError {e}"))
}

#[test]
fn flipper_flips() {
    let f = contract("flipper");
    let mut h = Harness::new();
    let addr = h.deploy(&f.wasm, f.input("new", false));
    assert!(!ok::<bool>(&h.read(addr, f.input("get", ())).unwrap().data));
    let out = h.call(addr, f.input("flip", ())).unwrap();
    assert!(out.gas_used > 0);
    assert!(ok::<bool>(&h.read(addr, f.input("get", ())).unwrap().data));
    // An unknown selector is ink!'s LangError::CouldNotReadInput, reverted.
    let out = h.call(addr, vec![0xde, 0xad, 0xbe, 0xef]).unwrap();
    assert!(out.reverted);
    assert_eq!(out.data, vec![1, 1]);
}

#[test]
fn erc20_transfers_emit_events_and_failures_revert() {
    let t = contract("erc20");
    let mut h = Harness::new();
    let hash = h.upload(&t.wasm);
    let out = h
        .command(|s| s.instantiate(ALICE, hash, 0, t.input("new", 1_000u128), b"", GAS))
        .unwrap();
    let token = out.address.unwrap();
    assert_eq!(out.events.len(), 1, "mint emits Transfer");
    assert_eq!(out.events[0].contract, token);

    let balance = |h: &Harness, who: AccountId| -> u128 {
        ok(&h.read(token, t.input("balance_of", who)).unwrap().data)
    };
    assert_eq!(balance(&h, ALICE), 1_000);

    let out = h.call(token, t.input("transfer", (BOB, 100u128))).unwrap();
    assert!(!out.reverted);
    assert_eq!(ok::<Result<(), u8>>(&out.data), Ok(()));
    assert_eq!((balance(&h, ALICE), balance(&h, BOB)), (900, 100));
    let ev = &out.events[0];
    // ink! 5 topics: the event signature, then the indexed `from` and `to`.
    assert_eq!(ev.topics.len(), 3);
    // ink! 5 writes an indexed `Some(account)` as the account's 32 bytes.
    assert_eq!(&ev.topics[1..], &[Hash(ALICE.0), Hash(BOB.0)]);
    let (from, to, value) =
        <(Option<AccountId>, Option<AccountId>, u128)>::decode(&mut &ev.data[..]).unwrap();
    assert_eq!((from, to, value), (Some(ALICE), Some(BOB), 100));

    // Too much: the message returns Err(InsufficientBalance) and ink! reverts.
    let out = h
        .call_as(BOB, token, t.input("transfer", (ALICE, 101u128)))
        .unwrap();
    assert!(out.reverted);
    assert!(out.events.is_empty());
    assert_eq!(ok::<Result<(), u8>>(&out.data), Err(0));
    assert_eq!((balance(&h, ALICE), balance(&h, BOB)), (900, 100));

    // Allowances.
    h.call(token, t.input("approve", (BOB, 50u128))).unwrap();
    let out = h
        .call_as(BOB, token, t.input("transfer_from", (ALICE, BOB, 60u128)))
        .unwrap();
    assert_eq!(
        ok::<Result<(), u8>>(&out.data),
        Err(1),
        "InsufficientAllowance"
    );
    let out = h
        .call_as(BOB, token, t.input("transfer_from", (ALICE, BOB, 50u128)))
        .unwrap();
    assert_eq!(ok::<Result<(), u8>>(&out.data), Ok(()));
    assert_eq!((balance(&h, ALICE), balance(&h, BOB)), (850, 150));
}

#[test]
fn out_of_gas_changes_nothing() {
    let t = contract("erc20");
    let mut h = Harness::new();
    let token = h.deploy(&t.wasm, t.input("new", 1_000u128));
    let before = h.state.len();
    let err = h
        .command(|s| s.call(ALICE, token, 0, t.input("transfer", (BOB, 1u128)), 2_000))
        .unwrap_err();
    assert_eq!(err, ExecError::OutOfGas);
    assert_eq!(h.state.len(), before);
    let bob: u128 = ok(&h.read(token, t.input("balance_of", BOB)).unwrap().data);
    assert_eq!(bob, 0);
}

#[test]
fn incrementer_instantiates_and_calls_counter_and_nested_writes_roll_back() {
    let counter = contract("counter");
    let inc = contract("incrementer");
    let mut h = Harness::new();
    let counter_hash = h.upload(&counter.wasm);
    let addr = h.deploy(&inc.wasm, inc.input("new", (counter_hash, 10u64)));

    let counter_addr: AccountId = ok(&h.read(addr, inc.input("counter", ())).unwrap().data);
    assert_eq!(
        h.command(|s| s.contract_info(&counter_addr))
            .unwrap()
            .unwrap()
            .code_hash,
        counter_hash
    );
    assert_eq!(
        ok::<u64>(&h.read(addr, inc.input("get", ())).unwrap().data),
        10
    );

    let out = h.call(addr, inc.input("inc", 5u64)).unwrap();
    assert_eq!(ok::<u64>(&out.data), 15);
    // The nested call's event is reported, emitted by the counter with the incrementer as caller.
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].contract, counter_addr);
    // Reading the counter directly agrees.
    assert_eq!(
        ok::<u64>(&h.read(counter_addr, counter.input("get", ())).unwrap().data),
        15
    );
    let seen: AccountId = ok(&h
        .read(addr, inc.input("counter_sees_caller", ()))
        .unwrap()
        .data);
    assert_eq!(seen, addr);

    // The outer message fails after the nested increment succeeded: both roll back.
    let out = h.call(addr, inc.input("inc_then_fail", 7u64)).unwrap();
    assert!(out.reverted);
    assert!(out.events.is_empty());
    assert_eq!(
        ok::<u64>(&h.read(counter_addr, counter.input("get", ())).unwrap().data),
        15
    );
    assert_eq!(
        ok::<u32>(&h.read(addr, inc.input("calls", ())).unwrap().data),
        1
    );
}

#[test]
fn compute_matches_the_native_kernel() {
    let c = contract("compute");
    let mut h = Harness::new();
    let addr = h.deploy(&c.wasm, c.input("new", ()));
    let got: u64 = ok(&h
        .read(addr, c.input("mix", (10_000u32, 7u64)))
        .unwrap()
        .data);
    assert_eq!(got, phat_compute_kernel::mix(10_000, 7));
    let hashed: [u8; 32] = ok(&h
        .read(addr, c.input("hash_chain", (3u32, [0u8; 32])))
        .unwrap()
        .data);
    let mut expect = [0u8; 32];
    for _ in 0..3 {
        expect = phat_primitives::blake2_256(&expect);
    }
    assert_eq!(hashed, expect);
}

/// A state as (encoded key, value) pairs in key order.
type Dump = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs a fixed command sequence and returns the final state and each command's gas.
fn run_sequence() -> (Dump, Vec<u64>) {
    let t = contract("erc20");
    let counter = contract("counter");
    let inc = contract("incrementer");
    let mut h = Harness::new();
    let token = h.deploy(&t.wasm, t.input("new", 1_000_000u128));
    let counter_hash = h.upload(&counter.wasm);
    let incr = h.deploy(&inc.wasm, inc.input("new", (counter_hash, 0u64)));
    let mut gas = Vec::new();
    for i in 0..50u128 {
        let to = AccountId([(i % 7) as u8 + 10; 32]);
        gas.push(
            h.call(token, t.input("transfer", (to, i)))
                .unwrap()
                .gas_used,
        );
        gas.push(
            h.call(
                incr,
                inc.input(if i % 5 == 0 { "inc_then_fail" } else { "inc" }, i as u64),
            )
            .unwrap()
            .gas_used,
        );
    }
    let state = h
        .state
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.clone()))
        .collect();
    (state, gas)
}

#[test]
fn the_same_commands_give_the_same_state_and_gas_on_independent_runtimes() {
    let (state_a, gas_a) = run_sequence();
    let (state_b, gas_b) = run_sequence();
    assert!(!state_a.is_empty());
    assert_eq!(state_a, state_b);
    assert_eq!(gas_a, gas_b);
}
