//! The measurement policy: which verified quotes a client or a worker accepts.
//!
//! Defaults are strict: no kind is accepted until listed, only the `UpToDate` TCB status is
//! accepted, no advisory is tolerated, and debug enclaves are refused. Every other status and
//! every advisory must be opted into by name. A policy file is JSON:
//!
//! ```json
//! {
//!   "kinds": ["sgx-dcap"],
//!   "sgx": { "mr_enclave": ["<hex>"], "mr_signer": "<hex>", "isv_prod_id": 1, "min_isv_svn": 2 },
//!   "tdx": { "mr_td": ["<hex>"], "rtmr": [null, null, "<hex>", null] },
//!   "tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
//!   "advisories": ["INTEL-SA-00615"],
//!   "allow_debug": false
//! }
//! ```

use serde::{Deserialize, Serialize};

use crate::{TeeKind, Verified};

/// What a verifier accepts from a TEE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeePolicy {
    /// Accepted TEE kinds (none by default).
    #[serde(default)]
    pub kinds: Vec<TeeKind>,
    /// Rules for SGX quotes.
    #[serde(default)]
    pub sgx: SgxPolicy,
    /// Rules for TDX quotes.
    #[serde(default)]
    pub tdx: TdxPolicy,
    /// Accepted TCB statuses (default: `UpToDate` only).
    #[serde(default = "up_to_date")]
    pub tcb_statuses: Vec<String>,
    /// Advisories tolerated on an accepted status (default: none).
    #[serde(default)]
    pub advisories: Vec<String>,
    /// Accept debug enclaves and TDs (their memory is readable by the host; default: no).
    #[serde(default)]
    pub allow_debug: bool,
}

fn up_to_date() -> Vec<String> {
    vec!["UpToDate".into()]
}

impl Default for TeePolicy {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            sgx: SgxPolicy::default(),
            tdx: TdxPolicy::default(),
            tcb_statuses: up_to_date(),
            advisories: Vec::new(),
            allow_debug: false,
        }
    }
}

/// SGX rules; an unset field accepts any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgxPolicy {
    /// Accepted MRENCLAVE values (hex).
    #[serde(default)]
    pub mr_enclave: Vec<String>,
    /// The required MRSIGNER (hex).
    #[serde(default)]
    pub mr_signer: Option<String>,
    /// The required product id.
    #[serde(default)]
    pub isv_prod_id: Option<u16>,
    /// The lowest accepted security version.
    #[serde(default)]
    pub min_isv_svn: Option<u16>,
}

/// TDX rules; an unset field accepts any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Accepted MRTD values (hex).
    #[serde(default)]
    pub mr_td: Vec<String>,
    /// Required RTMR0..=3 values (hex; `null` accepts any).
    #[serde(default)]
    pub rtmr: [Option<String>; 4],
}

/// Why a verified quote is not acceptable: the field, what the policy wants, what the quote has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attestation policy: {field} is {got}, the policy accepts {want}")]
pub struct PolicyError {
    /// The field that failed (`kind`, `sgx.mr_enclave`, `tcb_status`, `advisory`, `debug`, …).
    pub field: &'static str,
    /// What the policy accepts.
    pub want: String,
    /// What the quote has.
    pub got: String,
}

fn refuse(field: &'static str, want: impl Into<String>, got: impl Into<String>) -> PolicyError {
    PolicyError {
        field,
        want: want.into(),
        got: got.into(),
    }
}

/// Whether hex `want` names `got` (case-insensitive, optional `0x`).
fn same_hex(want: &str, got: &[u8]) -> bool {
    let want = want.trim_start_matches("0x").to_ascii_lowercase();
    want == hex::encode(got)
}

impl TeePolicy {
    /// Reads a JSON policy (see the module docs); unknown fields are refused.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Accepts `v` or names the first field that fails.
    pub fn check(&self, v: &Verified) -> Result<(), PolicyError> {
        if !self.kinds.contains(&v.kind) {
            let want = if self.kinds.is_empty() {
                "none".to_string()
            } else {
                self.kinds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(refuse("kind", want, v.kind.to_string()));
        }
        if v.debug && !self.allow_debug {
            return Err(refuse(
                "debug",
                "production enclaves only",
                "a debug enclave",
            ));
        }
        if !self.tcb_statuses.contains(&v.tcb_status) {
            return Err(refuse(
                "tcb_status",
                self.tcb_statuses.join(", "),
                v.tcb_status.clone(),
            ));
        }
        if let Some(a) = v.advisories.iter().find(|a| !self.advisories.contains(a)) {
            let want = if self.advisories.is_empty() {
                "no advisory".to_string()
            } else {
                self.advisories.join(", ")
            };
            return Err(refuse("advisory", want, a.clone()));
        }
        if let Some(s) = &v.sgx {
            let p = &self.sgx;
            if !p.mr_enclave.is_empty() && !p.mr_enclave.iter().any(|m| same_hex(m, &s.mr_enclave))
            {
                return Err(refuse(
                    "sgx.mr_enclave",
                    p.mr_enclave.join(", "),
                    hex::encode(s.mr_enclave),
                ));
            }
            if let Some(m) = p
                .mr_signer
                .as_deref()
                .filter(|m| !same_hex(m, &s.mr_signer))
            {
                return Err(refuse("sgx.mr_signer", m, hex::encode(s.mr_signer)));
            }
            if let Some(id) = p.isv_prod_id.filter(|id| *id != s.isv_prod_id) {
                return Err(refuse(
                    "sgx.isv_prod_id",
                    id.to_string(),
                    s.isv_prod_id.to_string(),
                ));
            }
            if let Some(min) = p.min_isv_svn.filter(|min| s.isv_svn < *min) {
                return Err(refuse(
                    "sgx.isv_svn",
                    format!("at least {min}"),
                    s.isv_svn.to_string(),
                ));
            }
        }
        if let Some(t) = &v.tdx {
            let p = &self.tdx;
            if !p.mr_td.is_empty() && !p.mr_td.iter().any(|m| same_hex(m, &t.mr_td)) {
                return Err(refuse(
                    "tdx.mr_td",
                    p.mr_td.join(", "),
                    hex::encode(t.mr_td),
                ));
            }
            const RTMR: [&str; 4] = ["tdx.rtmr0", "tdx.rtmr1", "tdx.rtmr2", "tdx.rtmr3"];
            for (i, want) in p.rtmr.iter().enumerate() {
                if let Some(want) = want.as_deref().filter(|w| !same_hex(w, &t.rtmr[i])) {
                    return Err(refuse(RTMR[i], want, hex::encode(t.rtmr[i])));
                }
            }
        }
        Ok(())
    }
}
