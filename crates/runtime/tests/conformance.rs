//! Phala's own prebuilt pink contracts (ink! 3 and 4), loaded unmodified.

mod common;

use common::*;
use parity_scale_codec::{Decode, Encode};
use phat_primitives::CodeHash;
use phat_primitives::Mode;
use phat_runtime::{
    ChainExtension, ExecContext, ExecError, ExtensionEnv, ExtensionError, ExtensionId,
    ExtensionOutput,
};
use std::sync::{Arc, Mutex};

/// Records pink `log` calls (function 10: SCALE `(level: u8, message: String)` in, `()` out);
/// every other function is unsupported. The full pink extension is another crate's job.
#[derive(Default)]
struct LogOnly(Mutex<Vec<(u8, String)>>);

impl ChainExtension for LogOnly {
    fn call(
        &self,
        _env: &ExtensionEnv,
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
