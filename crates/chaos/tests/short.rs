//! The short chaos run of the test command: every fault kind once, seed 1, on three NATS
//! hosts and three worker hosts in network namespaces; the checker must find nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::process::Command;

#[test]
fn every_fault_once_finds_no_anomaly() {
    let bin = Path::new(env!("CARGO_BIN_EXE_phat-chaos"));
    let phat = bin.with_file_name("phat");
    assert!(
        phat.is_file(),
        "{} is missing: build it first (cargo build -p phat-cli; `cargo test --workspace` does)",
        phat.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let out = Command::new(bin)
        .args(["--seed", "1", "--window", "10", "--recovery", "6"])
        .arg("--phat")
        .arg(&phat)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}\n{stdout}");
    let report = std::fs::read(dir.path().join("report.json")).unwrap_or_else(|e| {
        panic!("no report ({e}); exit {:?}", out.status);
    });
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["anomalies"], serde_json::json!([]), "{stdout}");
    assert!(out.status.success(), "exit {:?}", out.status);
    // Every fault kind ran, and clients were busy through each.
    let windows = report["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 12, "{stdout}");
    for w in windows {
        let during = w["ok"].as_u64().unwrap()
            + w["failed"].as_u64().unwrap()
            + w["unknown"].as_u64().unwrap();
        assert!(during > 0, "no command during {w}");
        assert!(!w["recovery"].is_null(), "never recovered from {w}");
    }
    let ops = report["history"]["ops"].as_array().unwrap();
    assert!(ops.len() > 200, "{} commands", ops.len());
    // The faults were felt: some commands needed more than one attempt.
    assert!(
        ops.iter().any(|o| o["attempts"].as_u64().unwrap() > 1),
        "no command was retried: were faults injected?"
    );
    let reads = report["history"]["reads"].as_array().unwrap();
    assert!(reads.iter().any(|r| !r["answer"].is_null()), "no read");
    assert!(
        !report["observed"]["ticks"].as_array().unwrap().is_empty(),
        "the schedule never ran"
    );
    // Nothing is left behind: the run's namespaces are gone.
    let left: Vec<String> = std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("phx"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
