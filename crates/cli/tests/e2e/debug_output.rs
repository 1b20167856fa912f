//! `phat build --debug-output` end to end: `contracts/panic-demo` built with debug output
//! reports its assert message when a `phat tx` panics; built by default it reports `panicked`
//! with the "built without debug output" hint. Real `phat` processes, a real `phat dev`.

use std::path::{Path, PathBuf};

use phat_testkit::*;

/// `phat deploy`'s arguments: the `new` constructor, as //Alice.
const AS_ALICE: &[&str] = &["--constructor", "new", "--suri", "//Alice"];

/// Builds `contracts/<name>` (with debug output when `debug_output`) and copies its `.contract`
/// bundle into `dir` (both kinds of build write the same artifact path).
fn bundle_copy(name: &str, debug_output: bool, dir: &Path) -> (PathBuf, usize) {
    let mut opts = phat_builder::BuildOptions::new(contract_manifest(name));
    opts.debug_output = debug_output;
    let a = phat_builder::build(&opts, |_| {})
        .unwrap_or_else(|e| panic!("building {name} (debug output: {debug_output}): {e}"));
    assert_eq!(a.debug_output, debug_output);
    let kind = if debug_output { "debug" } else { "default" };
    let copy = dir.join(format!("{name}-{kind}.contract"));
    std::fs::copy(a.bundle.as_ref().expect("bundle"), &copy).expect("copy bundle");
    (copy, a.wasm_size)
}

/// The `build_info` section of a bundle.
fn build_info(bundle: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).expect("read bundle")).expect("JSON");
    v["source"]["build_info"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_carry_their_message_only_with_debug_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (debug, debug_size, default, default_size) = tokio::task::spawn_blocking(move || {
        let (debug, debug_size) = bundle_copy("panic-demo", true, &dir);
        // The CLI flag, as a real process (the wasm is cached by now): it says what it built.
        let out = phat()
            .args(["build", "--debug-output", "--no-install"])
            .arg(contract_manifest("panic-demo"))
            .output()
            .expect("run phat build");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "phat build --debug-output: {err}");
        assert!(err.contains("built panic-demo with debug output"), "{err}");
        assert!(err.contains("note:"), "{err}");
        let (default, default_size) = bundle_copy("panic-demo", false, &dir);
        (debug, debug_size, default, default_size)
    })
    .await
    .unwrap();
    eprintln!(
        "panic-demo wasm: {debug_size} bytes with debug output, {default_size} bytes by default"
    );
    assert!(
        debug_size > default_size,
        "debug output links panic formatting: {debug_size} vs {default_size}"
    );
    assert_eq!(build_info(&debug)["debug_output"], true);
    assert!(build_info(&default).get("debug_output").is_none());

    let dev = Dev::start(1).await;
    let ep = dev.endpoint.clone();
    let result = tokio::task::spawn_blocking(move || {
        let with = deploy(&ep, &debug, AS_ALICE);
        let ok = run_json(&ep, &["tx", &with, "spend", "40", "--suri", "//Alice"]);
        assert_eq!(ok["decoded"], "Ok(40)", "{ok}");
        let err = run_fail(&ep, &["tx", &with, "spend", "150", "--suri", "//Alice"]);
        assert!(err.contains("panicked"), "{err}");
        assert!(err.contains("amount 150 is over the limit"), "{err}");
        assert!(!err.contains("without debug output"), "{err}");
        // A query (a dry run on one worker) reports the same panic.
        let q = run_fail(&ep, &["query", &with, "spend", "150"]);
        assert!(q.contains("panicked"), "{q}");
        assert!(q.contains("amount 150 is over the limit"), "{q}");
        // Nothing of the failed call was applied.
        let total = run_json(&ep, &["query", &with, "total"]);
        assert_eq!(total["decoded"], "Ok(40)", "{total}");

        let without = deploy(&ep, &default, AS_ALICE);
        let ok = run_json(&ep, &["tx", &without, "spend", "7", "--suri", "//Alice"]);
        assert_eq!(ok["decoded"], "Ok(7)", "{ok}");
        let err2 = run_fail(&ep, &["tx", &without, "spend", "150", "--suri", "//Alice"]);
        assert!(err2.contains("panicked"), "{err2}");
        assert!(err2.contains("built without debug output"), "{err2}");
        assert!(!err2.contains("over the limit"), "{err2}");
        (err, err2)
    })
    .await;
    let (err, err2) = result.unwrap_or_else(|e| panic!("{e}\n--- phat dev ---\n{}", dev.log()));
    eprintln!("with debug output: {}", err.trim());
    eprintln!("without: {}", err2.trim());
}
