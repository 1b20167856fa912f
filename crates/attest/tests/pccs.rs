//! Collateral from a PCCS: a local server speaking the PCCS v4 API from the samples' real
//! collateral (tests/data) answers; the fetched collateral equals the sample's and verifies
//! the sample quotes; the cache answers when the PCCS is gone; a hostile or broken PCCS gets
//! a clear error and never an unbounded read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use phat_attest::pccs::{Fetched, Pccs, PccsError, MAX_ANSWER};
use phat_attest::{collateral_from_json, verify_quote, Collateral};

use phat_testkit::pccs::{start, Mode};

/// 2025-07-01T00:00:00Z: inside both samples' collateral validity.
const NOW: u64 = 1_751_328_000;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn sample(name: &str) -> (Vec<u8>, Collateral) {
    (
        data(&format!("{name}_quote")),
        collateral_from_json(&data(&format!("{name}_quote_collateral.json"))).unwrap(),
    )
}

fn assert_same(a: &Collateral, b: &Collateral) {
    assert_eq!(
        serde_json::to_value(a).unwrap(),
        serde_json::to_value(b).unwrap()
    );
}

#[tokio::test]
async fn the_samples_collateral_comes_from_a_pccs_and_verifies_their_quotes() {
    for tee in ["sgx", "tdx"] {
        let (quote, expected) = sample(tee);
        let (url, _) = start(HashMap::from([(tee, expected.clone())]), Mode::Honest).await;
        // With the API suffix or without: the same endpoints.
        for base in [url.clone(), format!("{url}/sgx/certification/v4/")] {
            let fetched = Pccs::new(&base).unwrap().fetch(&quote).await.unwrap();
            assert_same(&fetched, &expected);
            let v = verify_quote(&quote, &fetched, NOW, false).unwrap();
            assert!(!v.tcb_status.is_empty(), "{tee}");
        }
    }
}

#[tokio::test]
async fn the_cache_answers_within_its_age_and_when_the_pccs_fails() {
    let (quote, expected) = sample("sgx");
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = start(HashMap::from([("sgx", expected.clone())]), Mode::Honest).await;
    let pccs = Pccs::new(&url)
        .unwrap()
        .with_cache(dir.path(), Duration::from_secs(3600));
    let (first, how) = pccs.collateral(&quote).await.unwrap();
    assert_eq!(how, Fetched::Pccs);
    assert_same(&first, &expected);
    let asked = requests.load(Ordering::Relaxed);
    assert_eq!(asked, 4, "PCK CRL, TCB info, QE identity, root CRL");
    let (second, how) = pccs.collateral(&quote).await.unwrap();
    assert!(matches!(how, Fetched::Cache { .. }), "{how:?}");
    assert_same(&second, &expected);
    assert_eq!(
        requests.load(Ordering::Relaxed),
        asked,
        "served from the cache"
    );

    // Past its age the PCCS is asked again; when it is down, the old entry answers, marked.
    let (down, _) = start(HashMap::new(), Mode::Down).await;
    let stale = Pccs::new(&down)
        .unwrap()
        .with_cache(dir.path(), Duration::ZERO);
    let (third, how) = stale.collateral(&quote).await.unwrap();
    match how {
        Fetched::StaleCache { error, .. } => assert!(error.contains("503"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_same(&third, &expected);
    // Without a cache, the failure is the answer.
    let e = Pccs::new(&down).unwrap().fetch(&quote).await.unwrap_err();
    assert!(matches!(e, PccsError::Request { .. }), "{e}");
    assert!(
        e.to_string().contains("pckcrl") && e.to_string().contains("503"),
        "{e}"
    );
}

#[tokio::test]
async fn a_hostile_or_broken_pccs_gets_a_clear_error() {
    let (quote, expected) = sample("sgx");
    let (huge, _) = start(HashMap::from([("sgx", expected.clone())]), Mode::Huge).await;
    let e = Pccs::new(&huge).unwrap().fetch(&quote).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!("over {MAX_ANSWER} bytes")),
        "{e}"
    );
    let (no_chain, _) = start(HashMap::from([("sgx", expected)]), Mode::NoChain).await;
    let e = Pccs::new(&no_chain)
        .unwrap()
        .fetch(&quote)
        .await
        .unwrap_err();
    assert!(matches!(e, PccsError::Answer { .. }), "{e}");
    assert!(e.to_string().contains("TCB-Info-Issuer-Chain"), "{e}");
    // Not a quote, not a URL.
    assert!(matches!(
        Pccs::new(&huge).unwrap().fetch(b"not a quote").await,
        Err(PccsError::Quote(_))
    ));
    for bad in ["ftp://x", "not a url", "data:text/plain,x"] {
        assert!(
            matches!(Pccs::new(bad), Err(PccsError::Url { .. })),
            "{bad}"
        );
    }
}
