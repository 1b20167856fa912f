//! Contract lifecycle and code caching: terminate, re-instantiation, the on-disk module cache.

use phat_runtime::{Config, ExecError};
use phat_testkit::runtime::*;

#[test]
fn terminate_pays_the_beneficiary_and_a_new_instance_starts_with_fresh_storage() {
    let mut h = Harness::new();
    let wasm = hostile("terminator");
    let hash = h.upload(&wasm);
    h.command(|s| s.set_balance(&ALICE, 1_000));
    let out = h
        .command(|s| s.instantiate(ALICE, hash, 300, vec![], b"salt", GAS))
        .unwrap();
    let addr = out.address.unwrap();
    assert_eq!(h.read(addr, vec![0]).unwrap().data, vec![0x2a]);
    assert_eq!(h.command(|s| s.balance(&addr)).unwrap(), 300);

    // Bob terminates it: the contract's 300 go to Bob, and it is gone.
    h.call_as(BOB, addr, vec![1]).unwrap();
    assert_eq!(h.command(|s| s.balance(&BOB)).unwrap(), 300);
    assert!(h.command(|s| s.contract_info(&addr)).unwrap().is_none());
    assert_eq!(
        h.call(addr, vec![0]).unwrap_err(),
        ExecError::ContractNotFound(addr)
    );

    // Same deployer, code, input and salt: same address, but a fresh storage namespace.
    let again = h
        .command(|s| s.instantiate(ALICE, hash, 0, vec![], b"salt", GAS))
        .unwrap();
    assert_eq!(again.address, Some(addr));
    let info = h.command(|s| s.contract_info(&addr)).unwrap().unwrap();
    assert_eq!(h.read(addr, vec![0]).unwrap().data, vec![0x2a]);
    let first_storage = phat_primitives::Hash(phat_primitives::blake2_256(
        &parity_scale_codec::Encode::encode(&(b"phat-storage", addr, 0u64)),
    ));
    assert_ne!(info.storage_id, first_storage);
    // A second instantiation at a live address is refused.
    let err = h
        .command(|s| s.instantiate(ALICE, hash, 0, vec![], b"salt", GAS))
        .unwrap_err();
    assert_eq!(err, ExecError::DuplicateContract(addr));
}

#[test]
fn compiled_modules_are_cached_on_disk_and_tampered_files_are_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = phala("flip/flip.wasm");
    let config = |key: u8| Config {
        cache_dir: Some(dir.path().to_path_buf()),
        cache_key: [key; 32],
        ..Config::default()
    };
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };

    let mut h = Harness::with_config(config(1));
    h.upload(&wasm);
    let cached = files();
    assert_eq!(cached.len(), 1, "one artifact per code hash");
    let original = std::fs::read(&cached[0]).unwrap();

    // A new runtime with the same key uses the file as it is.
    let mut h2 = Harness::with_config(config(1));
    h2.upload(&wasm);
    assert_eq!(std::fs::read(&cached[0]).unwrap(), original);

    // Tampering with the compiled code: the MAC fails, the module is recompiled and rewritten.
    let mut tampered = original.clone();
    let n = tampered.len();
    tampered[n / 2] ^= 0xff;
    std::fs::write(&cached[0], &tampered).unwrap();
    let mut h3 = Harness::with_config(config(1));
    let flip = h3.deploy(&wasm, [[0x9b, 0xae, 0x9d, 0x5e].as_slice(), &[1]].concat());
    assert_eq!(
        h3.read(flip, vec![0x2f, 0x86, 0x5b, 0xd9]).unwrap().data,
        vec![1]
    );
    assert_eq!(std::fs::read(&cached[0]).unwrap(), original);

    // A different key does not accept the file either: it is rewritten under the new key.
    let mut h4 = Harness::with_config(config(2));
    h4.upload(&wasm);
    assert_ne!(std::fs::read(&cached[0]).unwrap(), original);
    assert_eq!(files().len(), 1);
}

#[test]
fn delegate_call_runs_other_code_in_the_callers_storage() {
    let mut h = Harness::new();
    // The terminator's code reads the zero-key cell: 0x2a in its own instances ...
    let lib = h.upload(&hostile("terminator"));
    let delegator = h.deploy(&hostile("delegator"), vec![]);
    // ... but run by delegation it reads the delegator's cell, 0x07.
    let out = h.call(delegator, lib.0.to_vec()).unwrap();
    assert_eq!(out.data, vec![0x07]);
    // Delegating to code that does not exist is a return code; the delegator then traps.
    let err = h.call(delegator, vec![9; 32]).unwrap_err();
    assert!(matches!(err, ExecError::Panicked(_)), "{err:?}");
}

#[test]
fn self_delegation_stops_at_the_depth_limit() {
    // Delegates to the code hash given as input, cloning the input, so a module given its own
    // code hash recurses; only the depth limit stops it.
    let wasm = wat::parse_str(
        r#"(module
          (import "seal0" "seal_input" (func $input (param i32 i32)))
          (import "seal0" "seal_delegate_call" (func $delegate (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "env" "memory" (memory 1 16))
          (func (export "deploy"))
          (func (export "call")
            (i32.store (i32.const 0) (i32.const 32))
            (call $input (i32.const 8) (i32.const 0))
            (if (call $delegate (i32.const 2) (i32.const 8) (i32.const 0) (i32.const 0)
                                (i32.const 0xFFFFFFFF) (i32.const 0))
              (then unreachable))))"#,
    )
    .unwrap();
    let mut h = Harness::new();
    let addr = h.deploy(&wasm, vec![]);
    let own_code = phat_primitives::CodeHash::of(&wasm);
    let err = h.call(addr, own_code.0.to_vec()).unwrap_err();
    let ExecError::Panicked(p) = &err else {
        panic!("{err:?}")
    };
    assert!(
        p.after_callee
            .as_deref()
            .is_some_and(|m| m.contains("call depth limit of 6 reached")),
        "{err}"
    );
}
