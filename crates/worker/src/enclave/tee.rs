//! Hardware attestation: the TEE quote interfaces (Gramine, configfs-tsm), their
//! collateral, and the `dev` provider's software measurement.

use super::*;

/// The quote interface `source` names.
pub(super) fn quote_source(
    source: &crate::TeeSource,
) -> Result<Box<dyn phat_attest::QuoteSource>, WorkerError> {
    let fail = |e: phat_attest::SourceError| WorkerError::Enclave(e.to_string());
    Ok(match source {
        crate::TeeSource::Gramine(dir) => {
            Box::new(phat_attest::GramineAttestation::open(dir).map_err(fail)?)
        }
        crate::TeeSource::ConfigfsTsm(dir) => {
            Box::new(phat_attest::ConfigfsTsm::open(dir, "phat").map_err(fail)?)
        }
    })
}

/// The quote interface contracts' `worker_sgx_quote` asks, when `tee` is an SGX enclave (a
/// TDX quote is not an SGX quote: `None` there, as on Phala off SGX).
pub(crate) fn sgx_quote_source(
    tee: &crate::TeeConfig,
) -> Result<Option<Box<dyn phat_attest::QuoteSource>>, WorkerError> {
    let source = quote_source(&tee.source)?;
    Ok((source.kind() == phat_attest::TeeKind::SgxDcap).then_some(source))
}

/// The Intel collateral (JSON) for the platform `tee` runs on: read from its file, or fetched
/// from its PCCS for a first quote (cached in `dir/pccs-cache`).
pub(crate) async fn tee_collateral(
    tee: &crate::TeeConfig,
    dir: &Path,
) -> Result<Vec<u8>, WorkerError> {
    let fail = |e: String| WorkerError::Enclave(e);
    match &tee.collateral {
        crate::CollateralSource::File(path) => {
            let json = std::fs::read(path)
                .map_err(|e| fail(format!("TEE collateral {}: {e}", path.display())))?;
            phat_attest::collateral_from_json(&json).map_err(|e| fail(e.to_string()))?;
            Ok(json)
        }
        crate::CollateralSource::Pccs(url) => {
            let probe = quote_source(&tee.source)?
                .quote(&[0; 64])
                .map_err(|e| fail(e.to_string()))?;
            let pccs = phat_attest::pccs::Pccs::new(url)
                .map_err(|e| fail(e.to_string()))?
                .with_cache(dir.join("pccs-cache"), Duration::from_secs(3600));
            let (collateral, how) = pccs
                .collateral(&probe)
                .await
                .map_err(|e| fail(format!("TEE collateral from the PCCS: {e}")))?;
            match how {
                phat_attest::pccs::Fetched::StaleCache { age, error } => tracing::warn!(
                    "the PCCS failed ({error}); using collateral cached {} s ago",
                    age.as_secs()
                ),
                how => tracing::info!(%url, "TEE collateral: {how:?}"),
            }
            serde_json::to_vec(&collateral).map_err(|e| fail(e.to_string()))
        }
    }
}

/// The hardware provider `tee` describes: its quote interface and its collateral.
pub(super) fn hardware_provider(
    tee: &crate::TeeConfig,
    collateral: Vec<u8>,
) -> Result<phat_crypto::attest::DcapAttestation, WorkerError> {
    phat_crypto::attest::DcapAttestation::new(quote_source(&tee.source)?, collateral)
        .map_err(|e| WorkerError::Enclave(e.to_string()))
}

/// SHA-256 of the running executable: the `dev` provider's software measurement.
pub(crate) fn measurement() -> [u8; 32] {
    static M: OnceLock<[u8; 32]> = OnceLock::new();
    *M.get_or_init(|| {
        use sha2::Digest;
        // Streamed: a debug build's executable is hundreds of MiB.
        let mut hasher = sha2::Sha256::new();
        let read = std::env::current_exe()
            .and_then(std::fs::File::open)
            .and_then(|mut f| std::io::copy(&mut f, &mut hasher));
        if read.is_err() {
            return sha2::Sha256::digest(b"phat-worker: executable unreadable").into();
        }
        hasher.finalize().into()
    })
}
