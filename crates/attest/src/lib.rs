//! Hardware attestation evidence: Intel DCAP quotes from SGX enclaves and TDX trust domains,
//! verified with Phala's `dcap-qvl` against Intel's collateral, and the measurement policy a
//! client or a worker applies to what a quote proves.
//!
//! - [`verify_quote`] checks a quote's signature chain up to Intel's root, the collateral
//!   (PCK certificate chain and CRLs, TCB info, QE identity) at a given time, and returns what
//!   the quote proves: the TEE kind, its measurements, its debug flag, its report data and the
//!   platform's TCB status with advisories ([`Verified`]).
//! - [`TeePolicy::check`] decides whether a verified quote is acceptable: accepted kinds, SGX
//!   MRENCLAVE / MRSIGNER / product id / minimum SVN, TDX MRTD and RTMRs, accepted TCB statuses
//!   and advisories, debug enclaves. A refusal names the field that failed ([`PolicyError`]).
//! - [`report_data_for`] is what a worker puts in its quote's report data: a hash of the phat
//!   report it vouches for (worker key, cluster key, measurement, flags), so a quote cannot be
//!   replayed for another key; [`Verified::check_binding`] checks it.
//! - [`QuoteSource`] gets a quote from the TEE the worker runs in: [`GramineAttestation`]
//!   (SGX under Gramine) and [`ConfigfsTsm`] (TDX, Linux configfs-tsm).

#![warn(missing_docs)]

pub mod pccs;
mod policy;
mod source;

use blake2::{Blake2b512, Digest};
use dcap_qvl::quote::Report;

pub use dcap_qvl::QuoteCollateralV3 as Collateral;
pub use policy::{PolicyError, SgxPolicy, TdxPolicy, TeePolicy};
pub use source::{ConfigfsTsm, GramineAttestation, QuoteSource, SourceError};

/// Domain tag of the report data hash.
const REPORT_DATA_DOMAIN: &[u8] = b"phat/tee-report-data/v1";

/// The kind of TEE a quote comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeeKind {
    /// An SGX enclave, DCAP quote v3.
    SgxDcap,
    /// A TDX trust domain, DCAP quote v4/v5.
    TdxDcap,
}

impl TeeKind {
    /// The provider name phat reports of this kind carry.
    pub fn provider(self) -> &'static str {
        match self {
            TeeKind::SgxDcap => "sgx-dcap",
            TeeKind::TdxDcap => "tdx-dcap",
        }
    }

    /// The kind whose provider name is `provider`.
    pub fn from_provider(provider: &str) -> Option<Self> {
        match provider {
            "sgx-dcap" => Some(TeeKind::SgxDcap),
            "tdx-dcap" => Some(TeeKind::TdxDcap),
            _ => None,
        }
    }
}

impl std::fmt::Display for TeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.provider())
    }
}

/// What an SGX quote proves about its enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxMeasurements {
    /// Hash of the enclave's code and initial data.
    pub mr_enclave: [u8; 32],
    /// Hash of the key that signed the enclave.
    pub mr_signer: [u8; 32],
    /// The signer's product id.
    pub isv_prod_id: u16,
    /// The enclave's security version.
    pub isv_svn: u16,
}

/// What a TDX quote proves about its trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxMeasurements {
    /// The initial contents of the TD (firmware).
    pub mr_td: [u8; 48],
    /// The runtime measurement registers 0..=3 (firmware config, kernel, command line, app).
    pub rtmr: [[u8; 48]; 4],
}

/// A quote that verified: the TEE, its measurements and the platform's TCB status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The TEE kind.
    pub kind: TeeKind,
    /// Intel's TCB status of the platform (`UpToDate`, `SWHardeningNeeded`, `OutOfDate`, …).
    pub tcb_status: String,
    /// Intel security advisories that apply (`INTEL-SA-00615`, …).
    pub advisories: Vec<String>,
    /// The enclave or TD was started in debug mode (its memory is readable by the host).
    pub debug: bool,
    /// The 64 bytes the TEE put in the quote.
    pub report_data: [u8; 64],
    /// SGX measurements, for an SGX quote.
    pub sgx: Option<SgxMeasurements>,
    /// TDX measurements, for a TDX quote.
    pub tdx: Option<TdxMeasurements>,
}

impl Verified {
    /// Checks that the quote's report data is [`report_data_for`]`(payload)`: the quote vouches
    /// for exactly this report.
    pub fn check_binding(&self, payload: &[u8]) -> Result<(), AttestError> {
        if self.report_data != report_data_for(payload) {
            return Err(AttestError::Binding);
        }
        Ok(())
    }

    /// The 32-byte measurement phat reports carry for this TEE: MRENCLAVE for SGX; for TDX,
    /// BLAKE2b-256 of MRTD and RTMR0..=3 (the whole software stack of the TD).
    pub fn measurement(&self) -> [u8; 32] {
        match (&self.sgx, &self.tdx) {
            (Some(s), _) => s.mr_enclave,
            (_, Some(t)) => {
                let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::new();
                h.update(b"phat/tdx-measurement/v1");
                h.update(t.mr_td);
                for r in &t.rtmr {
                    h.update(r);
                }
                h.finalize().into()
            }
            _ => [0; 32],
        }
    }

    /// The main measurement, hex: MRENCLAVE for SGX, MRTD for TDX.
    pub fn measurement_hex(&self) -> String {
        match (&self.sgx, &self.tdx) {
            (Some(s), _) => hex::encode(s.mr_enclave),
            (_, Some(t)) => hex::encode(t.mr_td),
            _ => String::new(),
        }
    }
}

/// Why a quote was refused before any policy was applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestError {
    /// The quote or its collateral failed verification (bad signature, chain, CRL, expired
    /// collateral, unknown platform, debug enclave when not allowed, …).
    #[error("quote verification failed: {0}")]
    Quote(String),
    /// The quote verified but is of a kind phat does not handle.
    #[error("unsupported quote: {0}")]
    Unsupported(String),
    /// The quote's report data does not vouch for this report.
    #[error("the quote's report data does not bind this worker's report (keys, measurement)")]
    Binding,
}

/// The report data a worker's quote carries for the phat report whose signed payload is
/// `payload`: BLAKE2b-512 of a domain tag and the payload.
pub fn report_data_for(payload: &[u8]) -> [u8; 64] {
    let mut h = Blake2b512::new();
    h.update(REPORT_DATA_DOMAIN);
    h.update(payload);
    h.finalize().into()
}

/// Verifies `quote` against `collateral` at `now_secs` (Unix seconds) up to Intel's SGX/TDX
/// root CA (built into `dcap-qvl`); debug enclaves are refused unless `allow_debug`.
pub fn verify_quote(
    quote: &[u8],
    collateral: &Collateral,
    now_secs: u64,
    allow_debug: bool,
) -> Result<Verified, AttestError> {
    let verifier = dcap_qvl::verify::QuoteVerifier::new_prod();
    finish(
        verifier
            .allow_debug(allow_debug)
            .verify(quote, collateral, now_secs),
    )
}

/// [`verify_quote`] up to another root CA (DER): a private PKI, or tests.
pub fn verify_quote_with_root(
    root_ca_der: &[u8],
    quote: &[u8],
    collateral: &Collateral,
    now_secs: u64,
    allow_debug: bool,
) -> Result<Verified, AttestError> {
    let verifier = dcap_qvl::verify::QuoteVerifier::new(root_ca_der.to_vec());
    finish(
        verifier
            .allow_debug(allow_debug)
            .verify(quote, collateral, now_secs),
    )
}

/// What a verified quote proves, in phat's terms.
fn finish(
    report: Result<dcap_qvl::verify::VerifiedReport, impl std::fmt::Display>,
) -> Result<Verified, AttestError> {
    let report = report.map_err(|e| AttestError::Quote(format!("{e:#}")))?;
    Ok(Verified {
        tcb_status: report.status,
        advisories: report.advisory_ids,
        ..from_body(&report.report)?
    })
}

/// Kind, debug flag, report data and measurements of a report body (no TCB status yet).
fn from_body(body: &Report) -> Result<Verified, AttestError> {
    let (kind, debug, report_data, sgx, tdx) = match body {
        Report::SgxEnclave(r) => (
            TeeKind::SgxDcap,
            // SGX ATTRIBUTES.DEBUG is bit 1 of the first byte.
            r.attributes[0] & 0x02 != 0,
            r.report_data,
            Some(SgxMeasurements {
                mr_enclave: r.mr_enclave,
                mr_signer: r.mr_signer,
                isv_prod_id: r.isv_prod_id,
                isv_svn: r.isv_svn,
            }),
            None,
        ),
        other => {
            let Some(td) = other.as_td10() else {
                return Err(AttestError::Unsupported("an unknown report body".into()));
            };
            (
                TeeKind::TdxDcap,
                // TDX TD_ATTRIBUTES.DEBUG is bit 0.
                td.td_attributes[0] & 0x01 != 0,
                td.report_data,
                None,
                Some(TdxMeasurements {
                    mr_td: td.mr_td,
                    rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
                }),
            )
        }
    };
    Ok(Verified {
        kind,
        tcb_status: String::new(),
        advisories: Vec::new(),
        debug,
        report_data,
        sgx,
        tdx,
    })
}

/// The kind and phat measurement (see [`Verified::measurement`]) a quote claims, read without
/// verifying it: what a worker learns about itself from its own first quote.
pub fn claimed_measurement(quote: &[u8]) -> Result<(TeeKind, [u8; 32]), AttestError> {
    use parity_scale_codec::Decode;
    let parsed = dcap_qvl::quote::Quote::decode(&mut &quote[..])
        .map_err(|e| AttestError::Quote(format!("unparsable quote: {e}")))?;
    let v = from_body(&parsed.report)?;
    Ok((v.kind, v.measurement()))
}

/// Parses Intel collateral in the JSON form `dcap-qvl` and Phala's PCCS tools use.
pub fn collateral_from_json(json: &[u8]) -> Result<Collateral, AttestError> {
    serde_json::from_slice(json).map_err(|e| AttestError::Quote(format!("bad collateral: {e}")))
}
