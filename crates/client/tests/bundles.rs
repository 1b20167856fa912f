//! `.contract` bundles made by `phat build` (phat-builder) load in the client: the example
//! erc20 is built first, so the test never depends on an earlier build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use phat_client::Contract;

#[test]
fn phat_bundles_load_when_built() {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/erc20/Cargo.toml"
    );
    let built = phat_builder::build(&phat_builder::BuildOptions::new(manifest), |_| {})
        .unwrap_or_else(|e| panic!("building {manifest}: {e}"));
    let path = built.bundle.expect("phat build makes a .contract bundle");
    let erc20 = Contract::load(&path).unwrap();
    assert!(erc20.wasm().unwrap().starts_with(b"\0asm"));
    assert!(erc20.messages().contains(&"transfer".to_string()));
}
