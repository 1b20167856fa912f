//! DCAP verification of the real SGX and TDX sample quotes `dcap-qvl` ships (tests/data), at a
//! fixed time inside their collateral's validity, tampered copies of them, and the policy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use phat_attest::{
    collateral_from_json, report_data_for, verify_quote, verify_quote_with_root, AttestError,
    Collateral, TeeKind, TeePolicy, Verified,
};

/// 2025-07-01T00:00:00Z: inside both samples' collateral validity (2025-06-19 .. 2025-07-19).
const NOW: u64 = 1_751_328_000;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn sgx() -> (Vec<u8>, Collateral) {
    (
        data("sgx_quote"),
        collateral_from_json(&data("sgx_quote_collateral.json")).unwrap(),
    )
}

fn tdx() -> (Vec<u8>, Collateral) {
    (
        data("tdx_quote"),
        collateral_from_json(&data("tdx_quote_collateral.json")).unwrap(),
    )
}

/// SGX quote v3: a 48-byte header, then the 384-byte report body (MRENCLAVE at 64..96,
/// report data at 320..384), then the signature data.
const SGX_BODY: usize = 48;

#[test]
fn the_sgx_sample_verifies_with_its_tcb_status_and_advisories() {
    let (quote, collateral) = sgx();
    let v = verify_quote(&quote, &collateral, NOW, false).unwrap();
    assert_eq!(v.kind, TeeKind::SgxDcap);
    assert_eq!(v.tcb_status, "ConfigurationAndSWHardeningNeeded");
    assert_eq!(v.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(!v.debug);
    let s = v.sgx.as_ref().unwrap();
    assert_eq!(&quote[SGX_BODY + 64..SGX_BODY + 96], &s.mr_enclave[..]);
    assert_eq!(&quote[SGX_BODY + 320..SGX_BODY + 384], &v.report_data[..]);
    assert_eq!(v.measurement_hex(), hex::encode(s.mr_enclave));
    assert!(v.tdx.is_none());
}

#[test]
fn the_tdx_sample_verifies_up_to_date() {
    let (quote, collateral) = tdx();
    let v = verify_quote(&quote, &collateral, NOW, false).unwrap();
    assert_eq!(v.kind, TeeKind::TdxDcap);
    assert_eq!(v.tcb_status, "UpToDate");
    assert!(v.advisories.is_empty());
    assert!(!v.debug);
    assert!(v.tdx.is_some() && v.sgx.is_none());
}

#[test]
fn tampered_quotes_are_refused() {
    let (quote, collateral) = sgx();
    for (what, at) in [
        ("MRENCLAVE", SGX_BODY + 70),
        ("report data", SGX_BODY + 330),
        ("signature", SGX_BODY + 384 + 4 + 10),
    ] {
        let mut bad = quote.clone();
        bad[at] ^= 0x01;
        let e = verify_quote(&bad, &collateral, NOW, false).unwrap_err();
        assert!(matches!(e, AttestError::Quote(_)), "{what}: {e}");
    }
    assert!(verify_quote(&quote[..100], &collateral, NOW, false).is_err());
}

#[test]
fn collateral_outside_its_validity_is_refused() {
    let (quote, collateral) = tdx();
    // 2025-08-01, after nextUpdate; 2025-06-01, before issueDate.
    for now in [1_754_006_400, 1_748_736_000] {
        let e = verify_quote(&quote, &collateral, now, false).unwrap_err();
        assert!(matches!(e, AttestError::Quote(_)), "at {now}: {e}");
    }
    // The SGX quote with the TDX collateral does not verify either.
    let (sgx_quote, _) = sgx();
    assert!(verify_quote(&sgx_quote, &collateral, NOW, false).is_err());
}

#[test]
fn a_chain_to_another_root_is_refused() {
    let (quote, collateral) = sgx();
    // Intel's root is the last certificate of the collateral's issuer chains.
    let chain = pem::parse_many(collateral.tcb_info_issuer_chain.as_bytes()).unwrap();
    let mut root = chain.last().unwrap().contents().to_vec();
    assert!(verify_quote_with_root(&root, &quote, &collateral, NOW, false).is_ok());
    // A byte inside the root's public key.
    let at = root.len() / 2;
    root[at] ^= 0x01;
    let e = verify_quote_with_root(&root, &quote, &collateral, NOW, false).unwrap_err();
    assert!(matches!(e, AttestError::Quote(_)), "{e}");
    assert!(verify_quote_with_root(b"not a certificate", &quote, &collateral, NOW, false).is_err());
}

#[test]
fn report_data_binds_the_phat_report() {
    let (quote, collateral) = sgx();
    let v = verify_quote(&quote, &collateral, NOW, false).unwrap();
    // The sample was made for another program: it binds no phat report.
    assert_eq!(
        v.check_binding(b"phat report payload"),
        Err(AttestError::Binding)
    );
    let bound = Verified {
        report_data: report_data_for(b"phat report payload"),
        ..v
    };
    assert_eq!(bound.check_binding(b"phat report payload"), Ok(()));
    assert_eq!(
        bound.check_binding(b"another worker key"),
        Err(AttestError::Binding)
    );
}

fn sgx_verified() -> Verified {
    let (quote, collateral) = sgx();
    verify_quote(&quote, &collateral, NOW, false).unwrap()
}

/// A policy accepting the SGX sample as it is.
fn sgx_accepting() -> TeePolicy {
    TeePolicy {
        kinds: vec![TeeKind::SgxDcap],
        tcb_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()],
        advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
        ..TeePolicy::default()
    }
}

#[test]
fn the_default_policy_refuses_everything_and_names_the_field() {
    let v = sgx_verified();
    let e = TeePolicy::default().check(&v).unwrap_err();
    assert_eq!((e.field, e.want.as_str()), ("kind", "none"));
    let only_kind = TeePolicy {
        kinds: vec![TeeKind::SgxDcap],
        ..TeePolicy::default()
    };
    let e = only_kind.check(&v).unwrap_err();
    assert_eq!(e.field, "tcb_status");
    assert_eq!(e.want, "UpToDate");
    assert_eq!(e.got, "ConfigurationAndSWHardeningNeeded");
    let status_too = TeePolicy {
        tcb_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()],
        ..only_kind
    };
    let e = status_too.check(&v).unwrap_err();
    assert_eq!((e.field, e.got.as_str()), ("advisory", "INTEL-SA-00289"));
    assert!(e.to_string().contains("advisory is INTEL-SA-00289"), "{e}");
    assert_eq!(sgx_accepting().check(&v), Ok(()));
}

/// A change to a policy.
type Change = fn(&mut TeePolicy);

#[test]
fn every_sgx_field_is_checked() {
    let v = sgx_verified();
    let s = v.sgx.clone().unwrap();
    let mut p = sgx_accepting();
    p.sgx.mr_enclave = vec!["00".repeat(32), format!("0x{}", hex::encode(s.mr_enclave))];
    p.sgx.mr_signer = Some(hex::encode(s.mr_signer).to_uppercase());
    p.sgx.isv_prod_id = Some(s.isv_prod_id);
    p.sgx.min_isv_svn = Some(s.isv_svn);
    assert_eq!(
        p.check(&v),
        Ok(()),
        "every field pinned to the quote's values"
    );
    let cases: [(&str, Change); 4] = [
        ("sgx.mr_enclave", |p| {
            p.sgx.mr_enclave = vec!["11".repeat(32)]
        }),
        ("sgx.mr_signer", |p| p.sgx.mr_signer = Some("22".repeat(32))),
        ("sgx.isv_prod_id", |p| {
            p.sgx.isv_prod_id = p.sgx.isv_prod_id.map(|id| id.wrapping_add(1))
        }),
        ("sgx.isv_svn", |p| {
            p.sgx.min_isv_svn = p.sgx.min_isv_svn.map(|svn| svn.saturating_add(1))
        }),
    ];
    for (field, change) in cases {
        let mut bad = p.clone();
        change(&mut bad);
        assert_eq!(bad.check(&v).unwrap_err().field, field);
    }
    // A debug enclave is refused unless allowed.
    let debug = Verified { debug: true, ..v };
    assert_eq!(p.check(&debug).unwrap_err().field, "debug");
    p.allow_debug = true;
    assert_eq!(p.check(&debug), Ok(()));
}

#[test]
fn every_tdx_field_is_checked() {
    let (quote, collateral) = tdx();
    let v = verify_quote(&quote, &collateral, NOW, false).unwrap();
    let t = v.tdx.clone().unwrap();
    let mut p = TeePolicy {
        kinds: vec![TeeKind::TdxDcap],
        ..TeePolicy::default()
    };
    p.tdx.mr_td = vec![hex::encode(t.mr_td)];
    p.tdx.rtmr = t.rtmr.map(|r| Some(hex::encode(r)));
    assert_eq!(p.check(&v), Ok(()));
    let mut bad = p.clone();
    bad.tdx.mr_td = vec!["33".repeat(48)];
    assert_eq!(bad.check(&v).unwrap_err().field, "tdx.mr_td");
    let mut bad = p.clone();
    bad.tdx.rtmr[2] = Some("44".repeat(48));
    assert_eq!(bad.check(&v).unwrap_err().field, "tdx.rtmr2");
    // An SGX-only policy refuses a TD.
    assert_eq!(sgx_accepting().check(&v).unwrap_err().field, "kind");
}

#[test]
fn policies_are_json_files_and_unknown_fields_are_refused() {
    let p = TeePolicy::from_json(
        r#"{"kinds": ["sgx-dcap", "tdx-dcap"], "sgx": {"min_isv_svn": 3},
            "advisories": ["INTEL-SA-00615"]}"#,
    )
    .unwrap();
    assert_eq!(p.kinds, [TeeKind::SgxDcap, TeeKind::TdxDcap]);
    assert_eq!(p.tcb_statuses, ["UpToDate"], "the default status list");
    assert_eq!(p.sgx.min_isv_svn, Some(3));
    assert!(!p.allow_debug);
    assert!(TeePolicy::from_json(r#"{"kinds": [], "allow_debg": true}"#).is_err());
    assert!(TeePolicy::from_json(r#"{"kinds": ["sev-snp"]}"#).is_err());
    let again = TeePolicy::from_json(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(again, p);
}
