//! The committed artifacts are what their source builds to: a stale system contract would
//! give new clusters code nobody can review.

use std::path::Path;

/// Builds `contracts/<dir>` with `phat build`'s defaults; the wasm.
fn build(dir: &str) -> Vec<u8> {
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts")
        .join(dir)
        .join("Cargo.toml");
    let mut opts = phat_builder::BuildOptions::new(&manifest);
    opts.metadata = false;
    let a = phat_builder::build(&opts, |_| {}).unwrap_or_else(|e| panic!("building {name}: {e}"));
    std::fs::read(&a.wasm).unwrap_or_else(|e| panic!("reading {}: {e}", a.wasm.display()))
}

#[test]
fn the_committed_system_contract_js_delegate_and_function_match_their_source() {
    for (dir, committed) in [
        ("phala/system", phat_system::SYSTEM_WASM),
        ("phala/js-delegate", phat_system::JS_DELEGATE_WASM),
        ("phat-function", phat_system::FUNCTION_WASM),
    ] {
        let name = dir.rsplit('/').next().unwrap_or(dir);
        let built = build(dir);
        assert!(
            built == committed,
            "crates/system/artifacts/{name}.wasm ({} bytes, code hash {}) is not what \
             contracts/{dir} builds to ({} bytes, code hash {}): run scripts/system-contract",
            committed.len(),
            phat_primitives::CodeHash::of(committed),
            built.len(),
            phat_primitives::CodeHash::of(&built),
        );
    }
}
