//! Getting a quote from the TEE a worker runs in, through the file interfaces the platform
//! offers: Gramine's `/dev/attestation` inside an SGX enclave, and the Linux configfs-tsm
//! report interface inside a TDX trust domain. Both take 64 bytes of report data and give back
//! a DCAP quote. Neither exists on an ordinary machine; the tests drive them on a fake directory.

use std::path::{Path, PathBuf};

/// Why a quote could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The interface is missing or unusable.
    #[error("{path}: {message}")]
    Interface {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Another process kept writing report data while this one read its quote.
    #[error("the quote interface kept changing under concurrent use ({0} attempts)")]
    Raced(u32),
}

fn io(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::Interface {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A TEE interface that turns report data into a quote.
pub trait QuoteSource: Send + Sync {
    /// The TEE kind its quotes are.
    fn kind(&self) -> crate::TeeKind;
    /// A quote carrying `report_data`.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, SourceError>;
}

/// Gramine's `/dev/attestation` inside an SGX enclave (DCAP mode): write the report data to
/// `user_report_data`, read the quote from `quote`.
pub struct GramineAttestation {
    dir: PathBuf,
}

impl GramineAttestation {
    /// The interface at `dir` (`/dev/attestation` in an enclave); checks that it does DCAP.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SourceError> {
        let dir = dir.into();
        let kind_path = dir.join("attestation_type");
        let kind = std::fs::read_to_string(&kind_path).map_err(|e| io(&kind_path, e))?;
        if kind.trim() != "dcap" {
            return Err(SourceError::Interface {
                path: kind_path,
                message: format!(
                    "attestation type is {:?}; set sgx.remote_attestation = \"dcap\" in the Gramine manifest",
                    kind.trim()
                ),
            });
        }
        Ok(Self { dir })
    }
}

impl QuoteSource for GramineAttestation {
    fn kind(&self) -> crate::TeeKind {
        crate::TeeKind::SgxDcap
    }

    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, SourceError> {
        let data = self.dir.join("user_report_data");
        std::fs::write(&data, report_data).map_err(|e| io(&data, e))?;
        let quote = self.dir.join("quote");
        std::fs::read(&quote).map_err(|e| io(&quote, e))
    }
}

/// The Linux configfs-tsm report interface inside a TDX trust domain: an entry directory under
/// `/sys/kernel/config/tsm/report`; write the report data to `inblob`, read the quote from
/// `outblob`. The kernel counts writes in `generation`: a change between writing and reading
/// means another process wrote meanwhile, and the read is retried.
pub struct ConfigfsTsm {
    entry: PathBuf,
}

/// Attempts before [`SourceError::Raced`].
const TSM_ATTEMPTS: u32 = 5;

impl ConfigfsTsm {
    /// Creates (or reuses) the entry `name` under `reports` (`/sys/kernel/config/tsm/report`)
    /// and checks that its provider is TDX.
    pub fn open(reports: impl AsRef<Path>, name: &str) -> Result<Self, SourceError> {
        let entry = reports.as_ref().join(name);
        std::fs::create_dir_all(&entry).map_err(|e| io(&entry, e))?;
        let provider_path = entry.join("provider");
        let provider =
            std::fs::read_to_string(&provider_path).map_err(|e| io(&provider_path, e))?;
        if !provider.trim().starts_with("tdx") {
            return Err(SourceError::Interface {
                path: provider_path,
                message: format!("provider is {:?}, not TDX", provider.trim()),
            });
        }
        Ok(Self { entry })
    }

    fn generation(&self) -> Result<u64, SourceError> {
        let path = self.entry.join("generation");
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        text.trim().parse().map_err(|_| SourceError::Interface {
            path,
            message: format!("not a number: {:?}", text.trim()),
        })
    }
}

impl QuoteSource for ConfigfsTsm {
    fn kind(&self) -> crate::TeeKind {
        crate::TeeKind::TdxDcap
    }

    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, SourceError> {
        let inblob = self.entry.join("inblob");
        let outblob = self.entry.join("outblob");
        for _ in 0..TSM_ATTEMPTS {
            std::fs::write(&inblob, report_data).map_err(|e| io(&inblob, e))?;
            let before = self.generation()?;
            let quote = std::fs::read(&outblob).map_err(|e| io(&outblob, e))?;
            if self.generation()? == before {
                return Ok(quote);
            }
        }
        Err(SourceError::Raced(TSM_ATTEMPTS))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed unwrap is a failed test"
    )]
    use super::*;

    #[test]
    fn gramine_writes_the_report_data_and_reads_the_quote() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("attestation_type"), "dcap\n").unwrap();
        std::fs::write(dir.path().join("quote"), b"QUOTE").unwrap();
        let source = GramineAttestation::open(dir.path()).unwrap();
        assert_eq!(source.kind(), crate::TeeKind::SgxDcap);
        assert_eq!(source.quote(&[7; 64]).unwrap(), b"QUOTE");
        assert_eq!(
            std::fs::read(dir.path().join("user_report_data")).unwrap(),
            [7; 64]
        );
        // EPID mode, or no enclave at all, is refused with what to change.
        std::fs::write(dir.path().join("attestation_type"), "epid").unwrap();
        let e = GramineAttestation::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("remote_attestation"), "{e}");
        assert!(GramineAttestation::open("/nonexistent/dev/attestation").is_err());
    }

    #[test]
    fn configfs_tsm_writes_inblob_reads_outblob_and_checks_the_provider() {
        let reports = tempfile::tempdir().unwrap();
        let entry = reports.path().join("phat");
        std::fs::create_dir(&entry).unwrap();
        std::fs::write(entry.join("provider"), "tdx_guest\n").unwrap();
        std::fs::write(entry.join("generation"), "3\n").unwrap();
        std::fs::write(entry.join("outblob"), b"TDQUOTE").unwrap();
        let source = ConfigfsTsm::open(reports.path(), "phat").unwrap();
        assert_eq!(source.kind(), crate::TeeKind::TdxDcap);
        assert_eq!(source.quote(&[9; 64]).unwrap(), b"TDQUOTE");
        assert_eq!(std::fs::read(entry.join("inblob")).unwrap(), [9; 64]);
        std::fs::write(entry.join("provider"), "sev_guest\n").unwrap();
        let e = ConfigfsTsm::open(reports.path(), "phat").err().unwrap();
        assert!(e.to_string().contains("not TDX"), "{e}");
    }
}
