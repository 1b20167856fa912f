//! Intel collateral for a quote, fetched from a PCCS (the Intel Provisioning Certification
//! Caching Service API, version 4) and cached on disk.
//!
//! For a quote the PCCS is asked for: the PCK CRL of the quote's PCK CA, the TCB info of its
//! FMSPC, the QE identity (each signed by Intel, with its issuer chain URL-encoded in a
//! header) and the root CA CRL. The answer is the same [`Collateral`] a `--tee-collateral`
//! file holds; nothing here is trusted: [`crate::verify_quote`] checks every signature up to
//! Intel's root.
//!
//! Bounds: every answer is read up to [`MAX_ANSWER`] bytes and within [`TIMEOUT`]; a PCCS
//! cannot make the worker hold more or wait longer.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Collateral, TeeKind};

/// Most bytes read of one PCCS answer (real ones are a few KiB).
pub const MAX_ANSWER: usize = 1 << 20;
/// How long one PCCS request may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Why collateral could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PccsError {
    /// The PCCS URL is not an http(s) URL.
    #[error("bad PCCS URL {url:?}: {message}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        message: String,
    },
    /// The quote does not name a platform (FMSPC, PCK CA).
    #[error("the quote: {0}")]
    Quote(String),
    /// A request failed (connection, timeout, status, size).
    #[error("{url}: {message}")]
    Request {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// An answer lacked something the API promises.
    #[error("{url}: {message}")]
    Answer {
        /// The URL asked.
        url: String,
        /// What is missing or malformed.
        message: String,
    },
}

/// Where collateral came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// From the PCCS now.
    Pccs,
    /// From the cache, fetched `age` ago.
    Cache {
        /// Since it was fetched.
        age: Duration,
    },
    /// From the cache because the PCCS failed (`error`); it may be out of date.
    StaleCache {
        /// Since it was fetched.
        age: Duration,
        /// The PCCS's failure.
        error: String,
    },
}

/// A PCCS client with an optional on-disk cache.
#[derive(Clone, Debug)]
pub struct Pccs {
    base: String,
    http: reqwest::Client,
    cache: Option<PathBuf>,
    max_age: Duration,
}

/// A cache file: when it was fetched and what.
#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_at: u64,
    collateral: Collateral,
}

/// `{"tcbInfo": …, "signature": …}` with the signed part kept byte for byte.
#[derive(Deserialize)]
struct SignedTcbInfo<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

/// `{"enclaveIdentity": …, "signature": …}` likewise.
#[derive(Deserialize)]
struct SignedIdentity<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    identity: &'a RawValue,
    signature: String,
}

impl Pccs {
    /// A client of the PCCS at `url` (`https://pccs.example:8081`, with or without the
    /// `/sgx/certification/v4` suffix), without a cache.
    pub fn new(url: &str) -> Result<Self, PccsError> {
        let bad = |message: &str| PccsError::Url {
            url: url.into(),
            message: message.into(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(bad("expected http(s)://host[:port][/path]"));
        }
        let base = url
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            base,
            http,
            cache: None,
            max_age: Duration::from_secs(3600),
        })
    }

    /// Keeps fetched collateral in `dir`, reused for `max_age` (and while the PCCS fails).
    pub fn with_cache(mut self, dir: impl Into<PathBuf>, max_age: Duration) -> Self {
        self.cache = Some(dir.into());
        self.max_age = max_age;
        self
    }

    /// The collateral for `quote`: from the cache while it is younger than the cache's
    /// `max_age`, else from the PCCS (then cached); from an older cache entry when the PCCS
    /// fails.
    pub async fn collateral(&self, quote: &[u8]) -> Result<(Collateral, Fetched), PccsError> {
        let platform = Platform::of(quote)?;
        let now = unix_now();
        let cached = self.read_cache(&platform);
        if let Some(c) = &cached {
            let age = Duration::from_secs(now.saturating_sub(c.fetched_at));
            if age < self.max_age {
                return Ok((c.collateral.clone(), Fetched::Cache { age }));
            }
        }
        match self.fetch_for(&platform).await {
            Ok(collateral) => {
                self.write_cache(&platform, now, &collateral);
                Ok((collateral, Fetched::Pccs))
            }
            Err(e) => match cached {
                Some(c) => Ok((
                    c.collateral,
                    Fetched::StaleCache {
                        age: Duration::from_secs(now.saturating_sub(c.fetched_at)),
                        error: e.to_string(),
                    },
                )),
                None => Err(e),
            },
        }
    }

    /// The collateral for `quote`, from the PCCS (no cache).
    pub async fn fetch(&self, quote: &[u8]) -> Result<Collateral, PccsError> {
        self.fetch_for(&Platform::of(quote)?).await
    }

    async fn fetch_for(&self, p: &Platform) -> Result<Collateral, PccsError> {
        let tee = p.tee();
        let crl_url = self.url("sgx", &format!("pckcrl?ca={}&encoding=der", p.ca));
        let (pck_crl, headers) = self.get(&crl_url).await?;
        let pck_crl_issuer_chain = chain(&crl_url, &headers, &["SGX-PCK-CRL-Issuer-Chain"])?;

        let tcb_url = self.url(tee, &format!("tcb?fmspc={}", p.fmspc));
        let (body, headers) = self.get(&tcb_url).await?;
        let tcb_info_issuer_chain = chain(
            &tcb_url,
            &headers,
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        )?;
        let signed: SignedTcbInfo<'_> =
            serde_json::from_slice(&body).map_err(|e| answer(&tcb_url, &e.to_string()))?;
        let tcb_info = signed.tcb_info.get().to_owned();
        let tcb_info_signature =
            hex::decode(&signed.signature).map_err(|e| answer(&tcb_url, &e.to_string()))?;

        let qe_url = self.url(tee, "qe/identity");
        let (body, headers) = self.get(&qe_url).await?;
        let qe_identity_issuer_chain =
            chain(&qe_url, &headers, &["SGX-Enclave-Identity-Issuer-Chain"])?;
        let signed: SignedIdentity<'_> =
            serde_json::from_slice(&body).map_err(|e| answer(&qe_url, &e.to_string()))?;
        let qe_identity = signed.identity.get().to_owned();
        let qe_identity_signature =
            hex::decode(&signed.signature).map_err(|e| answer(&qe_url, &e.to_string()))?;

        // A PCCS serves the root CA CRL hex-encoded.
        let root_url = self.url("sgx", "rootcacrl");
        let (body, _) = self.get(&root_url).await?;
        let text = String::from_utf8_lossy(&body);
        let root_ca_crl = hex::decode(text.trim())
            .map_err(|e| answer(&root_url, &format!("the root CA CRL is not hex: {e}")))?;

        Ok(Collateral {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        })
    }

    fn url(&self, tee: &str, path: &str) -> String {
        format!("{}/{tee}/certification/v4/{path}", self.base)
    }

    /// GETs `url`: body (at most [`MAX_ANSWER`] bytes) and headers, on a 2xx status.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, reqwest::header::HeaderMap), PccsError> {
        let fail = |message: String| PccsError::Request {
            url: url.into(),
            message,
        };
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(fail(format!("the answer is over {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, resp.headers().clone()))
    }

    fn cache_file(&self, p: &Platform) -> Option<PathBuf> {
        let name = format!("{}-{}-{}.json", p.tee(), p.fmspc, p.ca);
        self.cache.as_ref().map(|d| d.join(name))
    }

    fn read_cache(&self, p: &Platform) -> Option<Cached> {
        let raw = std::fs::read(self.cache_file(p)?).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    /// Best effort: a cache that cannot be written costs a fetch next time.
    fn write_cache(&self, p: &Platform, now: u64, collateral: &Collateral) {
        let Some(path) = self.cache_file(p) else {
            return;
        };
        let cached = Cached {
            fetched_at: now,
            collateral: collateral.clone(),
        };
        let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec(&cached)) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, &path));
    }
}

/// What names a platform's collateral: the TEE, the FMSPC and the PCK CA.
struct Platform {
    kind: TeeKind,
    /// Upper-case hex.
    fmspc: String,
    /// `processor` or `platform`.
    ca: &'static str,
}

impl Platform {
    fn of(quote: &[u8]) -> Result<Self, PccsError> {
        use parity_scale_codec::Decode;
        let (kind, _) =
            crate::claimed_measurement(quote).map_err(|e| PccsError::Quote(e.to_string()))?;
        let parsed = dcap_qvl::quote::Quote::decode(&mut &quote[..])
            .map_err(|e| PccsError::Quote(format!("unparsable quote: {e}")))?;
        let fmspc = dcap_qvl::intel::quote_fmspc(&parsed)
            .map_err(|e| PccsError::Quote(format!("no FMSPC in the PCK certificate: {e}")))?;
        let ca = dcap_qvl::intel::quote_ca(&parsed)
            .map_err(|e| PccsError::Quote(format!("no PCK CA: {e}")))?;
        Ok(Self {
            kind,
            fmspc: hex::encode_upper(fmspc),
            ca: ca.as_id_str(),
        })
    }

    fn tee(&self) -> &'static str {
        match self.kind {
            TeeKind::SgxDcap => "sgx",
            TeeKind::TdxDcap => "tdx",
        }
    }
}

/// The issuer chain in the first of `names` present, URL-decoded.
fn chain(
    url: &str,
    headers: &reqwest::header::HeaderMap,
    names: &[&str],
) -> Result<String, PccsError> {
    let value = names
        .iter()
        .find_map(|n| headers.get(*n))
        .ok_or_else(|| answer(url, &format!("no {} header", names.join(" or "))))?;
    let text = value
        .to_str()
        .map_err(|e| answer(url, &format!("{}: {e}", names[0])))?;
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| answer(url, &format!("{}: {e}", names[0])))
}

fn answer(url: &str, message: &str) -> PccsError {
    PccsError::Answer {
        url: url.into(),
        message: message.into(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
