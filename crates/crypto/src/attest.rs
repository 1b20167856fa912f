//! Attestation: reports binding a worker's software measurement to its public keys.
//!
//! A report says "software with this measurement holds the secret of this worker key (and,
//! once keyed, serves this cluster key)", signed by a provider. Real TEE providers (SGX, TDX)
//! sign with hardware-rooted keys; the [`DevAttestation`] provider signs with a local ed25519
//! root anybody can create, so it proves nothing about the machine and is labelled insecure
//! everywhere it appears. Verifiers refuse it unless their [`AttestationPolicy`] says otherwise.

use ed25519_dalek::{Signer as _, Verifier as _};
use parity_scale_codec::Encode;
pub use phat_primitives::protocol::AttestationReport;
use phat_primitives::protocol::Bytes;
use phat_primitives::Hash;

use crate::keys::Secret32;
use crate::CryptoError;

/// The provider name of development reports.
pub const DEV_PROVIDER: &str = "dev";

/// The bytes a provider signs: every field of the report but the signature, under a domain
/// tag.
pub fn signed_payload(r: &AttestationReport) -> Vec<u8> {
    (
        b"phat/attestation/v2",
        &r.provider,
        &r.measurement,
        &r.worker_key,
        &r.cluster_key,
        r.encryption,
        &r.signing_key,
        r.issued_at,
        &r.signer,
    )
        .encode()
}

/// Whether a report comes from a provider that proves nothing (`dev`).
pub fn is_insecure(r: &AttestationReport) -> bool {
    r.provider == DEV_PROVIDER
}

/// What a worker asks its provider to attest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The software measurement.
    pub measurement: [u8; 32],
    /// The worker's X25519 public key.
    pub worker_key: [u8; 32],
    /// The cluster key, if the worker holds the cluster secret.
    pub cluster_key: Option<[u8; 32]>,
    /// Whether the worker requires encryption.
    pub encryption: bool,
    /// The worker's ed25519 signing key (its votes are signed with it).
    pub signing_key: Option<[u8; 32]>,
}

/// A source of attestation reports (one per TEE technology).
pub trait Attestation: Send + Sync {
    /// The provider's name, as it appears in reports.
    fn provider(&self) -> &'static str;
    /// Produces a signed report of `claims`.
    fn report(&self, claims: &Claims, now_ms: u64) -> Result<AttestationReport, CryptoError>;
}

/// The insecure development provider: signs with a local ed25519 root.
pub struct DevAttestation {
    root: ed25519_dalek::SigningKey,
}

impl DevAttestation {
    /// A provider signing with the root key `secret`.
    pub fn new(secret: &Secret32) -> Self {
        Self {
            root: ed25519_dalek::SigningKey::from_bytes(secret.expose()),
        }
    }

    /// The root's public key (what verifiers pin).
    pub fn root_public(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }
}

impl Attestation for DevAttestation {
    fn provider(&self) -> &'static str {
        DEV_PROVIDER
    }

    fn report(&self, claims: &Claims, now_ms: u64) -> Result<AttestationReport, CryptoError> {
        let mut report = AttestationReport {
            provider: DEV_PROVIDER.into(),
            measurement: Hash(claims.measurement),
            worker_key: Hash(claims.worker_key),
            cluster_key: claims.cluster_key.map(Hash),
            encryption: claims.encryption,
            signing_key: claims.signing_key.map(Hash),
            issued_at: now_ms,
            signer: Hash(self.root_public()),
            signature: Bytes(Vec::new()),
        };
        report.signature = Bytes(self.root.sign(&signed_payload(&report)).to_bytes().to_vec());
        Ok(report)
    }
}

/// The hardware provider: reports whose evidence is a DCAP quote from the TEE the worker runs
/// in ([`phat_attest::QuoteSource`]) plus the Intel collateral it verifies with. The quote's
/// report data binds the report ([`phat_attest::report_data_for`]); the measurement is the
/// hardware's (MRENCLAVE, or the TD's MRTD and RTMRs), whatever the claims say.
pub struct DcapAttestation {
    source: Box<dyn phat_attest::QuoteSource>,
    collateral_json: Vec<u8>,
    kind: phat_attest::TeeKind,
    measurement: [u8; 32],
}

impl DcapAttestation {
    /// Asks `source` for a first quote to learn this TEE's measurement; `collateral_json` is
    /// the Intel collateral for this platform (from a PCCS).
    pub fn new(
        source: Box<dyn phat_attest::QuoteSource>,
        collateral_json: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        let probe = source
            .quote(&[0; 64])
            .map_err(|e| CryptoError::Attestation(e.to_string()))?;
        let (kind, measurement) = phat_attest::claimed_measurement(&probe)
            .map_err(|e| CryptoError::Attestation(e.to_string()))?;
        if kind != source.kind() {
            return Err(CryptoError::Attestation(format!(
                "the {} interface returned a {kind} quote",
                source.kind()
            )));
        }
        Ok(Self {
            source,
            collateral_json,
            kind,
            measurement,
        })
    }

    /// The hardware measurement this provider reports.
    pub fn measurement(&self) -> [u8; 32] {
        self.measurement
    }
}

impl Attestation for DcapAttestation {
    fn provider(&self) -> &'static str {
        self.kind.provider()
    }

    fn report(&self, claims: &Claims, now_ms: u64) -> Result<AttestationReport, CryptoError> {
        let mut report = AttestationReport {
            provider: self.kind.provider().into(),
            measurement: Hash(self.measurement),
            worker_key: Hash(claims.worker_key),
            cluster_key: claims.cluster_key.map(Hash),
            encryption: claims.encryption,
            signing_key: claims.signing_key.map(Hash),
            issued_at: now_ms,
            signer: Hash::default(),
            signature: Bytes(Vec::new()),
        };
        let quote = self
            .source
            .quote(&phat_attest::report_data_for(&signed_payload(&report)))
            .map_err(|e| CryptoError::Attestation(e.to_string()))?;
        report.signature = Bytes(
            DcapEvidence {
                quote,
                collateral_json: self.collateral_json.clone(),
            }
            .encode(),
        );
        Ok(report)
    }
}

/// What a verifier accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// Accept reports of the insecure `dev` provider.
    pub accept_dev: bool,
    /// The root `dev` reports must be signed by. [`AttestationPolicy::verify`] refuses every
    /// `dev` report while it is unset: the signer a report names is the report's own claim.
    pub dev_root: Option<[u8; 32]>,
    /// If set, the measurement must equal this.
    pub measurement: Option<[u8; 32]>,
    /// What hardware reports (`sgx-dcap`, `tdx-dcap`) must satisfy; `None` refuses them.
    pub tee: Option<phat_attest::TeePolicy>,
    /// The time (Unix s) hardware evidence is verified at; `None`: now. For re-checking old
    /// evidence and for tests.
    pub tee_time: Option<u64>,
}

/// The evidence a hardware report carries in its `signature` field: the DCAP quote and the
/// Intel collateral (JSON) it verifies with. The quote's report data is
/// [`phat_attest::report_data_for`] of the report's [`signed_payload`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, parity_scale_codec::Decode)]
pub struct DcapEvidence {
    /// The raw quote.
    pub quote: Vec<u8>,
    /// The collateral, JSON.
    pub collateral_json: Vec<u8>,
}

impl DcapEvidence {
    /// What `report`'s quote proves at `now_secs` (quote and collateral verified, debug
    /// enclaves shown), before any policy or binding check: for `phat info`.
    pub fn inspect(
        report: &AttestationReport,
        now_secs: u64,
    ) -> Result<phat_attest::Verified, CryptoError> {
        use parity_scale_codec::DecodeAll;
        let fail = |m: String| CryptoError::Attestation(m);
        let evidence = DcapEvidence::decode_all(&mut &report.signature[..])
            .map_err(|e| fail(format!("malformed DCAP evidence: {e}")))?;
        let collateral = phat_attest::collateral_from_json(&evidence.collateral_json)
            .map_err(|e| fail(e.to_string()))?;
        phat_attest::verify_quote(&evidence.quote, &collateral, now_secs, true)
            .map_err(|e| fail(e.to_string()))
    }

    /// Verifies `report`'s evidence under `policy` at `now_secs`: the quote and collateral, the
    /// kind named by the provider, the TEE policy, the binding of the quote to this report, and
    /// the report's measurement. Returns what the quote proves.
    pub fn verify(
        report: &AttestationReport,
        policy: &phat_attest::TeePolicy,
        now_secs: u64,
    ) -> Result<phat_attest::Verified, CryptoError> {
        use parity_scale_codec::DecodeAll;
        let fail = |m: String| CryptoError::Attestation(m);
        let kind = phat_attest::TeeKind::from_provider(&report.provider)
            .ok_or_else(|| fail(format!("`{}` is not a DCAP provider", report.provider)))?;
        let evidence = DcapEvidence::decode_all(&mut &report.signature[..])
            .map_err(|e| fail(format!("malformed DCAP evidence: {e}")))?;
        let collateral = phat_attest::collateral_from_json(&evidence.collateral_json)
            .map_err(|e| fail(e.to_string()))?;
        let v =
            phat_attest::verify_quote(&evidence.quote, &collateral, now_secs, policy.allow_debug)
                .map_err(|e| fail(e.to_string()))?;
        if v.kind != kind {
            return Err(fail(format!(
                "the report says {kind} but its quote is {}",
                v.kind
            )));
        }
        policy.check(&v).map_err(|e| fail(e.to_string()))?;
        if report.measurement.0 != v.measurement() {
            return Err(fail(format!(
                "the report's measurement {} is not its quote's {}",
                report.measurement,
                Hash(v.measurement())
            )));
        }
        v.check_binding(&signed_payload(report))
            .map_err(|e| fail(e.to_string()))?;
        Ok(v)
    }
}

impl AttestationPolicy {
    /// Checks `report`: a `dev` report must be signed by the pinned `dev_root`, never merely
    /// by the key it names itself.
    pub fn verify(&self, report: &AttestationReport) -> Result<(), CryptoError> {
        self.check(report, false)
    }

    /// Like [`AttestationPolicy::verify`], but with no `dev_root` pinned accepts a `dev`
    /// report signed by the key it names itself: an integrity check only, which proves
    /// nothing about who made the report (for loopback development clusters).
    pub fn verify_self_signed_dev(&self, report: &AttestationReport) -> Result<(), CryptoError> {
        self.check(report, true)
    }

    fn check(&self, report: &AttestationReport, self_signed: bool) -> Result<(), CryptoError> {
        let fail = |m: String| Err(CryptoError::Attestation(m));
        if phat_attest::TeeKind::from_provider(&report.provider).is_some() {
            let Some(tee) = &self.tee else {
                return fail(format!(
                    "the worker presents a `{}` attestation and no TEE policy is configured \
                     to judge it (--tee-policy FILE)",
                    report.provider
                ));
            };
            let now = self.tee_time.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
            DcapEvidence::verify(report, tee, now)?;
            return self.check_measurement(report);
        }
        if report.provider != DEV_PROVIDER {
            return fail(format!(
                "unknown attestation provider `{}` (this build verifies `dev`, `sgx-dcap` and \
                 `tdx-dcap`)",
                report.provider
            ));
        }
        if !self.accept_dev {
            return fail(
                "the worker presents an insecure `dev` attestation; accept it only for \
                 development (--accept-dev-attestation)"
                    .into(),
            );
        }
        match self.dev_root {
            Some(root) if report.signer.0 != root => {
                return fail(format!(
                    "the report is signed by {}, not by the pinned dev root {}",
                    report.signer,
                    Hash(root)
                ));
            }
            Some(_) => {}
            None if self_signed => {}
            None => {
                return fail(format!(
                    "the `dev` report names its own signer {} and no dev root is pinned to \
                     check it against (anybody can make a dev root)",
                    report.signer
                ))
            }
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&report.signer.0)
            .map_err(|_| CryptoError::Attestation("the report's signer is not a key".into()))?;
        let sig = ed25519_dalek::Signature::from_slice(&report.signature)
            .map_err(|_| CryptoError::Attestation("the report's signature is malformed".into()))?;
        if key.verify(&signed_payload(report), &sig).is_err() {
            return fail("the report's signature does not verify (forged or altered)".into());
        }
        self.check_measurement(report)
    }

    /// The pinned measurement, if any, against the report's.
    fn check_measurement(&self, report: &AttestationReport) -> Result<(), CryptoError> {
        if let Some(m) = self.measurement {
            if report.measurement.0 != m {
                return Err(CryptoError::Attestation(format!(
                    "the worker runs software {} where {} is required",
                    report.measurement,
                    Hash(m)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            measurement: [1; 32],
            worker_key: [2; 32],
            cluster_key: None,
            encryption: true,
            signing_key: Some([4; 32]),
        }
    }

    #[test]
    fn dev_reports_verify_only_when_accepted_and_unaltered() {
        let dev = DevAttestation::new(&Secret32::from_bytes([9; 32]));
        let report = dev.report(&claims(), 5).unwrap();
        assert!(is_insecure(&report));
        let strict = AttestationPolicy::default();
        assert!(
            matches!(strict.verify(&report), Err(CryptoError::Attestation(m)) if m.contains("insecure"))
        );
        let policy = AttestationPolicy {
            accept_dev: true,
            dev_root: Some(dev.root_public()),
            measurement: Some([1; 32]),
            ..Default::default()
        };
        policy.verify(&report).unwrap();
        // A different worker key under the same signature: forged.
        let mut forged = report.clone();
        forged.worker_key = Hash([3; 32]);
        assert!(policy.verify(&forged).is_err());
        // So is a different signing key.
        let mut forged = report.clone();
        forged.signing_key = Some(Hash([5; 32]));
        assert!(policy.verify(&forged).is_err());
        // Signed by another root: refused by a pinned policy.
        let other = DevAttestation::new(&Secret32::from_bytes([8; 32]));
        let foreign = other.report(&claims(), 5).unwrap();
        assert!(policy.verify(&foreign).is_err());
        // Another measurement.
        let m = DevAttestation::new(&Secret32::from_bytes([9; 32]))
            .report(
                &Claims {
                    measurement: [7; 32],
                    ..claims()
                },
                5,
            )
            .unwrap();
        assert!(policy.verify(&m).is_err());
        let mut provider = report;
        provider.provider = "sgx".into();
        assert!(policy.verify(&provider).is_err());
    }

    /// A hardware report carrying `quote` and `collateral` as its evidence.
    fn dcap_report(
        provider: &str,
        quote: &[u8],
        collateral: &[u8],
        measurement: [u8; 32],
    ) -> AttestationReport {
        AttestationReport {
            provider: provider.into(),
            measurement: Hash(measurement),
            worker_key: Hash([2; 32]),
            cluster_key: None,
            encryption: true,
            signing_key: None,
            issued_at: 5,
            signer: Hash::default(),
            signature: Bytes(
                DcapEvidence {
                    quote: quote.to_vec(),
                    collateral_json: collateral.to_vec(),
                }
                .encode(),
            ),
        }
    }

    #[test]
    fn hardware_reports_are_judged_by_the_tee_policy_and_must_bind_the_report() {
        let quote = include_bytes!("../../attest/tests/data/sgx_quote");
        let collateral = include_bytes!("../../attest/tests/data/sgx_quote_collateral.json");
        // Inside the sample collateral's validity (2025-06-19 .. 2025-07-19).
        let at = Some(1_751_328_000);
        let accepting = phat_attest::TeePolicy {
            kinds: vec![phat_attest::TeeKind::SgxDcap],
            tcb_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()],
            advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
            ..Default::default()
        };
        let refused =
            |policy: &AttestationPolicy, report: &AttestationReport| match policy.verify(report) {
                Err(CryptoError::Attestation(m)) => m,
                other => panic!("accepted: {other:?}"),
            };
        let mr_enclave: [u8; 32] = quote[112..144].try_into().unwrap();
        let report = dcap_report("sgx-dcap", quote, collateral, mr_enclave);
        // No TEE policy: refused, whatever else is accepted.
        let no_tee = AttestationPolicy {
            accept_dev: true,
            tee_time: at,
            ..Default::default()
        };
        assert!(refused(&no_tee, &report).contains("no TEE policy"));
        let policy = AttestationPolicy {
            tee: Some(accepting.clone()),
            ..no_tee
        };
        // The sample verifies and satisfies the policy, but was made for another program:
        // its report data does not bind this report.
        assert!(refused(&policy, &report).contains("report data does not bind"));
        // Each earlier step names what failed.
        let strict = AttestationPolicy {
            tee: Some(phat_attest::TeePolicy {
                kinds: vec![phat_attest::TeeKind::SgxDcap],
                ..Default::default()
            }),
            ..policy.clone()
        };
        assert!(refused(&strict, &report).contains("tcb_status"));
        let other_measurement = dcap_report("sgx-dcap", quote, collateral, [9; 32]);
        assert!(refused(&policy, &other_measurement).contains("is not its quote's"));
        let wrong_kind = dcap_report("tdx-dcap", quote, collateral, mr_enclave);
        assert!(refused(&policy, &wrong_kind).contains("says tdx-dcap but its quote is sgx-dcap"));
        let mut malformed = report.clone();
        malformed.signature = Bytes(vec![1, 2, 3]);
        assert!(refused(&policy, &malformed).contains("malformed DCAP evidence"));
        // Verified now, the 2025 collateral has expired.
        let today = AttestationPolicy {
            tee_time: None,
            ..policy
        };
        assert!(refused(&today, &report).contains("quote verification failed"));
        // `phat info` shows what the quote proves, policy or not.
        let seen = DcapEvidence::inspect(&report, 1_751_328_000).unwrap();
        assert_eq!(seen.tcb_status, "ConfigurationAndSWHardeningNeeded");
        assert_eq!(seen.measurement(), mr_enclave);
    }

    /// A TEE interface that answers every request with the same sample quote.
    struct Canned(&'static [u8], phat_attest::TeeKind);

    impl phat_attest::QuoteSource for Canned {
        fn kind(&self) -> phat_attest::TeeKind {
            self.1
        }
        fn quote(&self, _: &[u8; 64]) -> Result<Vec<u8>, phat_attest::SourceError> {
            Ok(self.0.to_vec())
        }
    }

    #[test]
    fn the_dcap_provider_reports_the_hardware_measurement_with_its_evidence() {
        let quote: &'static [u8] = include_bytes!("../../attest/tests/data/sgx_quote");
        let collateral = include_bytes!("../../attest/tests/data/sgx_quote_collateral.json");
        let provider = DcapAttestation::new(
            Box::new(Canned(quote, phat_attest::TeeKind::SgxDcap)),
            collateral.to_vec(),
        )
        .unwrap();
        assert_eq!(provider.provider(), "sgx-dcap");
        let mr_enclave: [u8; 32] = quote[112..144].try_into().unwrap();
        assert_eq!(provider.measurement(), mr_enclave);
        let report = provider.report(&claims(), 5).unwrap();
        assert_eq!(
            report.measurement,
            Hash(mr_enclave),
            "the hardware's, not the claim's"
        );
        assert_eq!(report.worker_key, Hash([2; 32]));
        let evidence =
            <DcapEvidence as parity_scale_codec::Decode>::decode(&mut &report.signature[..])
                .unwrap();
        assert_eq!(evidence.quote, quote);
        assert_eq!(evidence.collateral_json, collateral);
        // A TDX interface that returns an SGX quote is refused at start.
        assert!(DcapAttestation::new(
            Box::new(Canned(quote, phat_attest::TeeKind::TdxDcap)),
            collateral.to_vec()
        )
        .is_err());
    }

    #[test]
    fn a_dev_report_is_never_trusted_on_its_own_signer_unless_asked() {
        let dev = DevAttestation::new(&Secret32::from_bytes([9; 32]));
        let report = dev.report(&claims(), 5).unwrap();
        let unpinned = AttestationPolicy {
            accept_dev: true,
            ..Default::default()
        };
        // `verify` wants a pinned root: the report's own signer proves nothing.
        assert!(
            matches!(unpinned.verify(&report), Err(CryptoError::Attestation(m)) if m.contains("no dev root is pinned"))
        );
        // The loopback check: the self-declared signer, but still an intact signature.
        unpinned.verify_self_signed_dev(&report).unwrap();
        let mut forged = report.clone();
        forged.encryption = false;
        assert!(unpinned.verify_self_signed_dev(&forged).is_err());
        // A pinned root is enforced by both.
        let other = DevAttestation::new(&Secret32::from_bytes([8; 32]));
        let pinned = AttestationPolicy {
            dev_root: Some(other.root_public()),
            ..unpinned.clone()
        };
        for check in [
            AttestationPolicy::verify,
            AttestationPolicy::verify_self_signed_dev,
        ] {
            assert!(
                matches!(check(&pinned, &report), Err(CryptoError::Attestation(m)) if m.contains("not by the pinned dev root"))
            );
        }
        pinned.verify(&other.report(&claims(), 5).unwrap()).unwrap();
        // Not accepting dev at all wins over everything.
        let refused = AttestationPolicy {
            accept_dev: false,
            ..unpinned
        };
        assert!(refused.verify_self_signed_dev(&report).is_err());
    }
}
