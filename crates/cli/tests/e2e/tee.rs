//! A hardware-attested cluster with real processes, on a fake Gramine `/dev/attestation` that
//! answers with a real SGX quote (dcap-qvl's sample): the genesis carries a TEE policy, the
//! worker reports `sgx-dcap` with the quote's MRENCLAVE and its evidence, a client judges that
//! evidence (and refuses it: the sample's collateral expired in 2025 and it binds no phat
//! report), and a `dev` worker does not get into the hardware cluster. The worker fetches its
//! Intel collateral from a (fake, local) PCCS and caches it.

use std::path::Path;
use std::time::Duration;

use phat_testkit::*;

fn sample(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attest/tests/data")
        .join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hardware_cluster_reports_dcap_evidence_and_refuses_dev_workers() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let ledger_url = format!("http://127.0.0.1:{base}");
    let ledger_data = dir.path().join("ledger");
    let policy = dir.path().join("tee-policy.json");
    std::fs::write(&policy, r#"{"kinds": ["sgx-dcap"]}"#).unwrap();
    let _ledger = Proc::start(
        "ledger",
        &[
            "ledger",
            "--data",
            ledger_data.to_str().unwrap(),
            "--port",
            &base.to_string(),
            "--fund-dev-accounts",
            "--tee-policy",
            policy.to_str().unwrap(),
        ],
        &dir.path().join("ledger.log"),
    );
    let token = ledger_token_file(&ledger_data);
    wait_http(&format!("{ledger_url}/ledger/v1/head")).await;
    // A policy that does not parse never becomes a genesis, and a genesis is written once.
    let genesis = |policy: &Path| {
        phat()
            .args(["genesis", "--ledger", &ledger_url, "--ledger-token-file"])
            .arg(&token)
            .arg("--tee-policy")
            .arg(policy)
            .output()
            .unwrap()
    };
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"kinds": ["sgx-dcap"], "allow_debg": true}"#).unwrap();
    let out = genesis(&bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allow_debg"),
        "{out:?}"
    );
    let out = genesis(&policy);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds a genesis"),
        "{out:?}"
    );

    // The fake /dev/attestation of an SGX enclave under Gramine.
    let dev_attestation = dir.path().join("dev-attestation");
    std::fs::create_dir(&dev_attestation).unwrap();
    std::fs::write(dev_attestation.join("attestation_type"), "dcap").unwrap();
    std::fs::copy(sample("sgx_quote"), dev_attestation.join("quote")).unwrap();
    let tee = format!("gramine:{}", dev_attestation.display());
    let worker_url = format!("http://127.0.0.1:{}", base + 1);
    // `phat worker` number `i` on this cluster, with `extra` arguments.
    let start_worker = |i: u16, extra: &[&str]| {
        let data = dir.path().join(format!("w{i}"));
        let port = (base + 1 + i).to_string();
        let mut args = vec![
            "worker",
            "--ledger",
            &ledger_url,
            "--ledger-token-file",
            token.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--port",
            &port,
        ];
        args.extend_from_slice(extra);
        Proc::start(
            &format!("w{i}"),
            &args,
            &dir.path().join(format!("w{i}.log")),
        )
    };
    let collateral = phat_attest::collateral_from_json(
        &std::fs::read(sample("sgx_quote_collateral.json")).unwrap(),
    )
    .unwrap();
    let (pccs, asked) = phat_testkit::pccs::start(
        std::collections::HashMap::from([("sgx", collateral.clone())]),
        phat_testkit::pccs::Mode::Honest,
    )
    .await;
    // Without collateral a hardware worker does not start, and says what it needs.
    let nowhere = dir.path().join("nowhere");
    let out = phat()
        .args([
            "worker",
            "--ledger",
            &ledger_url,
            "--tee",
            &tee,
            "--port",
            "1",
        ])
        .arg("--data")
        .arg(&nowhere)
        .arg("--dev-attestation-root")
        .arg(&nowhere)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("--pccs-url"), "{text}");
    let _w0 = start_worker(0, &["--tee", &tee, "--pccs-url", &pccs]);
    wait_http(&format!("{worker_url}/healthz")).await;
    assert!(asked.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    let cached = std::fs::read_dir(dir.path().join("w0/pccs-cache"))
        .unwrap()
        .count();
    assert_eq!(cached, 1, "the collateral is cached in the data directory");
    let info: serde_json::Value = reqwest::get(format!("{worker_url}/v1/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let report = &info["attestation"];
    assert_eq!(report["provider"], "sgx-dcap", "{info}");
    let quote = std::fs::read(sample("sgx_quote")).unwrap();
    assert_eq!(
        report["measurement"],
        format!("0x{}", hex::encode(&quote[112..144])),
        "the report carries the quote's MRENCLAVE"
    );
    // The quote was asked for with this report's binding.
    assert_eq!(
        std::fs::read(dev_attestation.join("user_report_data"))
            .unwrap()
            .len(),
        64
    );

    // A client judges the evidence: without a TEE policy it refuses to judge; with one, the
    // quote is checked (and this 2025 sample's collateral has expired).
    let no_policy = phat()
        .args(["info", "--endpoint", &worker_url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&no_policy.stderr);
    assert!(!no_policy.status.success());
    assert!(text.contains("no TEE policy"), "{text}");
    let judged = phat()
        .args(["info", "--endpoint", &worker_url, "--tee-policy"])
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&judged.stderr);
    assert!(!judged.status.success());
    assert!(text.contains("quote verification failed"), "{text}");

    // A `dev` worker asks to join the hardware cluster and does not get in.
    let mut w1 = start_worker(1, &[]);
    let status = eventually(
        "the dev worker to be refused",
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || w1.child.try_wait().unwrap(),
    )
    .await;
    assert!(!status.success());
    // Here the joiner stops first: it checks the cluster's creator under the genesis TEE
    // policy, and the sample's collateral has expired. (With valid evidence the creator would
    // refuse it instead: a cluster with a TEE policy accepts no `dev` report, see the
    // enclave's unit test.)
    let log = std::fs::read_to_string(dir.path().join("w1.log")).unwrap();
    assert!(
        log.contains(
            "the cluster record's creator: attestation refused: quote verification failed"
        ) || log.contains("the cluster refused this worker"),
        "{log}"
    );
}

/// Waits up to 30 s for `url` to answer at all.
async fn wait_http(url: &str) {
    eventually(
        format!("{url} to come up"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || reqwest::get(url).await.map(drop),
    )
    .await;
}
