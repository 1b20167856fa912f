//! The enclave boundary: the worker's identity key, the cluster secret and what derives from
//! it, attestation, the cluster-secret handover, and query sessions.
//!
//! Without a TEE the worker process is the enclave. Its identity key and the cluster secret
//! are kept on disk sealed (`identity.sealed`, `cluster.sealed`) under a key derived from the
//! machine id (`/etc/machine-id`) and the product identity: copied elsewhere or read on their
//! own the files are useless, but root on the same machine can derive the key, as it can read
//! the process's memory. Attestation uses the insecure `dev` provider (a local ed25519 root).
//!
//! Handover, through the ledger's metadata (a JetStream KV bucket in production):
//! - `cluster`: written once (`create_meta`) by the first worker: the cluster key and that
//!   worker's report. Whoever wins the race is the creator; the others join.
//! - `cluster-join/<worker key>`: a joining worker's attestation report.
//! - `cluster-key/<worker key>`: the cluster secret sealed to that worker's key by an existing
//!   worker that verified the report (same measurement, the cluster's dev root).
//! - `cluster-refused/<worker key>`: why a report was refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parity_scale_codec::{Decode, Encode};
use parking_lot::Mutex;
use phat_crypto::{
    Attestation, AttestationPolicy, AttestationReport, Claims, ClusterSecret, DevAttestation,
    EnvelopeSecret, Purpose, SealingKey, Secret32, SessionKeys,
};
use phat_ledger::Ledger;
use phat_primitives::protocol::Sealed;
use phat_primitives::{AccountId, Hash};

use crate::{data_dir_err, Genesis, WorkerError};

/// The product identity sealed files are bound to (not the exact build, so upgrades unseal).
const SEAL_IDENTITY: &str = "phat-worker/v1";
/// Metadata key of the cluster record.
pub const CLUSTER_KEY: &str = "cluster";
/// How often a joining worker looks for its handover, and workers for joiners.
const POLL: Duration = Duration::from_millis(250);

/// What the ledger's `cluster` record holds.
#[derive(Clone, Debug, Encode, Decode)]
pub struct ClusterRecord {
    /// The cluster's X25519 envelope key.
    pub cluster_key: Hash,
    /// The creating worker's report.
    pub creator: AttestationReport,
}

/// The sealed handover of the cluster secret to one worker.
#[derive(Clone, Debug, Encode, Decode)]
struct Handover {
    /// The cluster secret sealed to the joiner's key.
    sealed: Sealed,
    /// The report of the worker that handed it over.
    from: AttestationReport,
}

/// Keys and state that exist in plaintext only inside this process.
pub(crate) struct Enclave {
    /// The worker's X25519 identity key.
    pub(crate) identity: EnvelopeSecret,
    /// The attestation provider of a worker outside a TEE.
    provider: DevAttestation,
    /// The hardware provider, inside a TEE (then it makes every report).
    hardware: Option<phat_crypto::attest::DcapAttestation>,
    /// SHA-256 of the worker executable, or the TEE's measurement inside one.
    pub(crate) measurement: [u8; 32],
    /// The cluster secret and derived keys (set once the worker holds them).
    pub(crate) cluster: OnceLock<ClusterKeys>,
    /// Open query sessions.
    pub(crate) sessions: Mutex<Sessions>,
}

/// The hardware provider `tee` describes: its quote interface and the collateral file.
fn hardware_provider(
    tee: &crate::TeeConfig,
) -> Result<phat_crypto::attest::DcapAttestation, WorkerError> {
    let fail = |e: String| WorkerError::Enclave(e);
    let source: Box<dyn phat_attest::QuoteSource> = match &tee.source {
        crate::TeeSource::Gramine(dir) => {
            Box::new(phat_attest::GramineAttestation::open(dir).map_err(|e| fail(e.to_string()))?)
        }
        crate::TeeSource::ConfigfsTsm(dir) => {
            Box::new(phat_attest::ConfigfsTsm::open(dir, "phat").map_err(|e| fail(e.to_string()))?)
        }
    };
    let collateral = std::fs::read(&tee.collateral)
        .map_err(|e| fail(format!("TEE collateral {}: {e}", tee.collateral.display())))?;
    phat_attest::collateral_from_json(&collateral).map_err(|e| fail(e.to_string()))?;
    phat_crypto::attest::DcapAttestation::new(source, collateral).map_err(|e| fail(e.to_string()))
}

/// What derives from the cluster secret.
pub(crate) struct ClusterKeys {
    pub(crate) secret: ClusterSecret,
    pub(crate) envelope: EnvelopeSecret,
    pub(crate) contract_seed: Secret32,
    /// This worker's report covering its key and the cluster key.
    pub(crate) report: AttestationReport,
}

impl Enclave {
    /// Loads (or creates at first start) the identity in `dir`.
    pub(crate) fn open(
        dir: &Path,
        dev_root: Option<&Path>,
        tee: Option<&crate::TeeConfig>,
    ) -> Result<Self, WorkerError> {
        let sealing = sealing_key();
        let identity = match read_sealed(dir, "identity", &sealing)? {
            Some(bytes) => EnvelopeSecret::from_secret(&to_secret(&bytes)?),
            None => {
                let key = EnvelopeSecret::generate();
                write_sealed(dir, "identity", &sealing, key.to_secret().expose())?;
                key
            }
        };
        let root = match dev_root {
            Some(path) => read_root(path)?,
            None => read_or_create_root(&dir.join("dev-attestation-root.key"))?,
        };
        let hardware = tee.map(hardware_provider).transpose()?;
        let measurement = hardware
            .as_ref()
            .map_or_else(measurement, |h| h.measurement());
        Ok(Self {
            identity,
            provider: DevAttestation::new(&root),
            hardware,
            measurement,
            cluster: OnceLock::new(),
            sessions: Mutex::new(Sessions::default()),
        })
    }

    /// The dev root's public key.
    pub(crate) fn dev_root(&self) -> [u8; 32] {
        self.provider.root_public()
    }

    fn report(
        &self,
        cluster_key: Option<[u8; 32]>,
        encryption: bool,
    ) -> Result<AttestationReport, WorkerError> {
        let claims = Claims {
            measurement: self.measurement,
            worker_key: self.identity.public(),
            cluster_key,
            encryption,
        };
        match &self.hardware {
            Some(h) => h.report(&claims, crate::now_ms()),
            None => self.provider.report(&claims, crate::now_ms()),
        }
        .map_err(|e| WorkerError::Enclave(e.to_string()))
    }

    /// The policy joiners are checked against: the cluster's dev root, our own software.
    fn policy(&self, genesis: &Genesis) -> AttestationPolicy {
        // A cluster with a TEE policy accepts hardware workers only; a policy that does not
        // parse accepts nobody (never a silent fall back to `dev`).
        let tee = genesis.tee_policy.as_deref().map(|json| {
            phat_attest::TeePolicy::from_json(json).unwrap_or_else(|e| {
                tracing::error!(
                    "the genesis TEE policy does not parse ({e}): refusing every joiner"
                );
                phat_attest::TeePolicy::default()
            })
        });
        AttestationPolicy {
            accept_dev: tee.is_none(),
            dev_root: Some(genesis.dev_root.unwrap_or(self.dev_root())),
            measurement: Some(self.measurement),
            tee,
            tee_time: None,
        }
    }

    /// The cluster keys (after [`Enclave::join`]).
    #[allow(
        clippy::expect_used,
        reason = "the worker joins the cluster before it serves anything"
    )]
    pub(crate) fn keys(&self) -> &ClusterKeys {
        self.cluster
            .get()
            .expect("the worker joins the cluster before serving")
    }

    /// Keeps `secret` (with the digest of the genesis it was joined under) sealed on disk and
    /// derives the cluster keys.
    fn install(
        &self,
        dir: &Path,
        secret: ClusterSecret,
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let sealed = [secret.expose().as_slice(), &genesis_digest(genesis)].concat();
        write_sealed(dir, "cluster", &sealing_key(), &sealed)?;
        let envelope = secret.envelope_secret();
        let report = self.report(Some(envelope.public()), genesis.encryption)?;
        let _ = self.cluster.set(ClusterKeys {
            contract_seed: secret.contract_seed(),
            envelope,
            secret,
            report,
        });
        Ok(())
    }

    /// Gets the cluster secret: unsealed from disk, created (first worker) or handed over
    /// through the ledger by an existing worker.
    pub(crate) async fn join(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let record = get_record(ledger).await?;
        let policy = self.policy(genesis);
        if let Some(bytes) = read_sealed(dir, "cluster", &sealing_key())? {
            if bytes.len() != 64 {
                return Err(WorkerError::Enclave(format!(
                    "{}/cluster.sealed has {} bytes (expected the secret and the genesis digest)",
                    dir.display(),
                    bytes.len()
                )));
            }
            // The genesis (funds, encryption, the dev root joiners are checked against) must
            // be the one this worker joined under: the ledger's metadata is not trusted.
            if bytes[32..] != genesis_digest(genesis) {
                return Err(WorkerError::Enclave(
                    "the cluster genesis in the ledger differs from the one this worker joined \
                     under; refusing to start"
                        .into(),
                ));
            }
            let secret = ClusterSecret::from_bytes(*to_secret(&bytes[..32])?.expose());
            let cluster_key = secret.envelope_secret().public();
            if let Some(r) = &record {
                if r.cluster_key.0 != cluster_key {
                    return Err(WorkerError::Enclave(format!(
                        "{} holds the secret of another cluster (key {}, the ledger's is {})",
                        dir.display(),
                        Hash(cluster_key),
                        r.cluster_key
                    )));
                }
            }
            return self.install(dir, secret, genesis);
        }
        if let Some(r) = &record {
            check_record(&policy, r)?;
        }
        if record.is_none() {
            let secret = ClusterSecret::generate();
            let cluster_key = secret.envelope_secret().public();
            let record = ClusterRecord {
                cluster_key: Hash(cluster_key),
                creator: self.report(Some(cluster_key), genesis.encryption)?,
            };
            if ledger
                .create_meta(CLUSTER_KEY, record.encode())
                .await
                .map_err(WorkerError::Ledger)?
            {
                tracing::info!(cluster_key = %record.cluster_key, "created the cluster secret");
                return self.install(dir, secret, genesis);
            }
        }
        // Join: publish the report, wait for an existing worker to hand the secret over.
        let me = Hash(self.identity.public());
        ledger
            .put_meta(
                &format!("cluster-join/{me}"),
                self.report(None, genesis.encryption)?.encode(),
            )
            .await?;
        tracing::info!(worker_key = %me, "joining the cluster: waiting for the cluster secret");
        let mut waited = 0u32;
        loop {
            if let Some(raw) = ledger.get_meta(&format!("cluster-key/{me}")).await? {
                let handover = Handover::decode(&mut &raw[..])
                    .map_err(|e| WorkerError::Enclave(format!("malformed handover: {e}")))?;
                let record = get_record(ledger)
                    .await?
                    .ok_or_else(|| WorkerError::Enclave("the cluster record disappeared".into()))?;
                check_record(&policy, &record)?;
                // The sender must be another attested worker that serves this cluster key.
                policy
                    .verify(&handover.from)
                    .map_err(|e| WorkerError::Enclave(format!("handover from: {e}")))?;
                if handover.from.cluster_key != Some(record.cluster_key)
                    || handover.from.worker_key == me
                {
                    return Err(WorkerError::Enclave(
                        "the handover does not come from a worker of this cluster".into(),
                    ));
                }
                let (bytes, _) = self
                    .identity
                    .open(Purpose::Handover, &handover.sealed)
                    .map_err(|e| WorkerError::Enclave(format!("handover: {e}")))?;
                let secret = ClusterSecret::from_bytes(*to_secret(&bytes)?.expose());
                let record = get_record(ledger)
                    .await?
                    .ok_or_else(|| WorkerError::Enclave("the cluster record disappeared".into()))?;
                if record.cluster_key.0 != secret.envelope_secret().public() {
                    return Err(WorkerError::Enclave(
                        "the handed-over secret is not the cluster's".into(),
                    ));
                }
                tracing::info!(cluster_key = %record.cluster_key, "received the cluster secret");
                return self.install(dir, secret, genesis);
            }
            if let Some(reason) = ledger.get_meta(&format!("cluster-refused/{me}")).await? {
                return Err(WorkerError::Enclave(format!(
                    "the cluster refused this worker: {}",
                    String::from_utf8_lossy(&reason)
                )));
            }
            waited += 1;
            if waited.is_multiple_of(40) {
                tracing::warn!(
                    "still waiting for a running worker to hand over the cluster secret"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Hands the cluster secret to every joiner whose report verifies (runs until dropped).
    pub(crate) async fn serve_joiners(self: Arc<Self>, ledger: Arc<dyn Ledger>, genesis: Genesis) {
        let policy = self.policy(&genesis);
        // Joins answered (by any worker): their answer is written once and never changes.
        let mut settled = std::collections::HashSet::new();
        loop {
            if let Err(e) = self.hand_over_once(&*ledger, &policy, &mut settled).await {
                tracing::warn!("cluster handover: {e}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn hand_over_once(
        &self,
        ledger: &dyn Ledger,
        policy: &AttestationPolicy,
        settled: &mut std::collections::HashSet<String>,
    ) -> Result<(), WorkerError> {
        for key in ledger.meta_keys("cluster-join/").await? {
            let Some(who) = key.strip_prefix("cluster-join/") else {
                continue;
            };
            if settled.contains(who) {
                continue;
            }
            let done = ledger
                .get_meta(&format!("cluster-key/{who}"))
                .await?
                .is_some()
                || ledger
                    .get_meta(&format!("cluster-refused/{who}"))
                    .await?
                    .is_some();
            if done {
                settled.insert(who.to_owned());
                continue;
            }
            let Some(raw) = ledger.get_meta(&key).await? else {
                continue;
            };
            let verdict = AttestationReport::decode(&mut &raw[..])
                .map_err(|e| phat_crypto::CryptoError::Attestation(format!("malformed: {e}")))
                .and_then(|r| {
                    policy.verify(&r)?;
                    if r.worker_key.to_string() != who {
                        return Err(phat_crypto::CryptoError::Attestation(
                            "the report is for another worker key".into(),
                        ));
                    }
                    Ok(r)
                });
            match verdict {
                Ok(report) => {
                    let keys = self.keys();
                    let (sealed, _) = phat_crypto::seal(
                        &report.worker_key.0,
                        Purpose::Handover,
                        keys.secret.expose(),
                    )
                    .map_err(|e| WorkerError::Enclave(e.to_string()))?;
                    let handover = Handover {
                        sealed,
                        from: keys.report.clone(),
                    };
                    if ledger
                        .create_meta(&format!("cluster-key/{who}"), handover.encode())
                        .await?
                    {
                        tracing::info!(worker_key = %who, "handed the cluster secret over");
                    }
                }
                Err(e) => {
                    tracing::warn!(worker_key = %who, "refusing to hand over: {e}");
                    ledger
                        .create_meta(
                            &format!("cluster-refused/{who}"),
                            e.to_string().into_bytes(),
                        )
                        .await?;
                }
            }
            settled.insert(who.to_owned());
        }
        Ok(())
    }
}

/// Checks that the cluster record was made by an attested worker for its own cluster key.
fn check_record(policy: &AttestationPolicy, record: &ClusterRecord) -> Result<(), WorkerError> {
    policy
        .verify(&record.creator)
        .map_err(|e| WorkerError::Enclave(format!("the cluster record's creator: {e}")))?;
    if record.creator.cluster_key != Some(record.cluster_key) {
        return Err(WorkerError::Enclave(
            "the cluster record's key is not the one its creator attests".into(),
        ));
    }
    Ok(())
}

/// blake2-256 of the SCALE genesis.
fn genesis_digest(genesis: &Genesis) -> [u8; 32] {
    phat_primitives::blake2_256(&genesis.encode())
}

async fn get_record(ledger: &dyn Ledger) -> Result<Option<ClusterRecord>, WorkerError> {
    match ledger.get_meta(CLUSTER_KEY).await? {
        Some(raw) => ClusterRecord::decode(&mut &raw[..])
            .map(Some)
            .map_err(|e| WorkerError::Enclave(format!("malformed cluster record: {e}"))),
        None => Ok(None),
    }
}

/// Most sessions a worker keeps open.
const MAX_SESSIONS: usize = 100_000;
/// How far behind the highest counter a session message may arrive (out of order).
const REPLAY_WINDOW: u64 = 1024;

/// Open query sessions by id (the client's ephemeral key), with an index by expiry so that
/// making room costs O(log n) however full the table is.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<[u8; 32], Session>,
    by_expiry: std::collections::BTreeSet<(u64, [u8; 32])>,
}

/// One open session.
pub(crate) struct Session {
    pub(crate) keys: Arc<SessionKeys>,
    pub(crate) caller: AccountId,
    pub(crate) expires_at: u64,
    window: ReplayWindow,
}

/// The counters seen in the last [`REPLAY_WINDOW`] below the highest: a fixed 128-byte
/// bitmap per session, whatever order messages arrive in.
struct ReplayWindow {
    highest: u64,
    /// Bit `d` is set when counter `highest - d` was seen.
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// A window that has seen counter 0 (the session's opening message).
    fn new() -> Self {
        let mut bits = [0; (REPLAY_WINDOW / 64) as usize];
        bits[0] = 1;
        Self { highest: 0, bits }
    }

    fn bit(&self, d: u64) -> bool {
        self.bits[(d / 64) as usize] >> (d % 64) & 1 == 1
    }

    fn set(&mut self, d: u64) {
        self.bits[(d / 64) as usize] |= 1 << (d % 64);
    }

    /// Records `counter`; false if it was seen or is too old to tell.
    fn accept(&mut self, counter: u64) -> bool {
        if counter > self.highest {
            let shift = counter - self.highest;
            if shift >= REPLAY_WINDOW {
                self.bits = [0; (REPLAY_WINDOW / 64) as usize];
            } else {
                for d in (shift..REPLAY_WINDOW).rev() {
                    let seen = self.bit(d - shift);
                    let word = &mut self.bits[(d / 64) as usize];
                    *word = (*word & !(1 << (d % 64))) | (u64::from(seen) << (d % 64));
                }
                for d in 0..shift {
                    self.bits[(d / 64) as usize] &= !(1 << (d % 64));
                }
            }
            self.highest = counter;
            self.set(0);
            return true;
        }
        let d = self.highest - counter;
        if d >= REPLAY_WINDOW || self.bit(d) {
            return false;
        }
        self.set(d);
        true
    }
}

/// Why a session message is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionError {
    Unknown,
    Expired,
    Replayed,
}

impl Sessions {
    /// Opens a session (after its first message verified). Refuses a second opening.
    pub(crate) fn open(
        &mut self,
        id: [u8; 32],
        keys: Arc<SessionKeys>,
        caller: AccountId,
        expires_at: u64,
        now: u64,
    ) -> Result<(), SessionError> {
        if self.map.contains_key(&id) {
            return Err(SessionError::Replayed);
        }
        // Expired sessions go first; when the table is still full, the live session closest
        // to its end makes room (its client reopens on `unknown_session`).
        while let Some(&(expiry, oldest)) = self.by_expiry.first() {
            if expiry >= now && self.map.len() < MAX_SESSIONS {
                break;
            }
            self.by_expiry.pop_first();
            self.map.remove(&oldest);
        }
        self.by_expiry.insert((expires_at, id));
        self.map.insert(
            id,
            Session {
                keys,
                caller,
                expires_at,
                window: ReplayWindow::new(),
            },
        );
        Ok(())
    }

    /// The keys and caller of session `id`, if message `counter` may be accepted.
    pub(crate) fn get(
        &self,
        id: &[u8; 32],
        now: u64,
    ) -> Result<(Arc<SessionKeys>, AccountId), SessionError> {
        let s = self.map.get(id).ok_or(SessionError::Unknown)?;
        if s.expires_at < now {
            return Err(SessionError::Expired);
        }
        Ok((s.keys.clone(), s.caller))
    }

    /// Records message `counter` of session `id` as used (after it decrypted).
    pub(crate) fn accept(&mut self, id: &[u8; 32], counter: u64) -> Result<(), SessionError> {
        let s = self.map.get_mut(id).ok_or(SessionError::Unknown)?;
        if !s.window.accept(counter) {
            return Err(SessionError::Replayed);
        }
        Ok(())
    }
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

/// The sealing key of this machine (see the module docs for what it protects).
fn sealing_key() -> SealingKey {
    let material = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| b"phat: no machine id".to_vec());
    SealingKey::derive(&material, SEAL_IDENTITY)
}

fn read_sealed(dir: &Path, name: &str, key: &SealingKey) -> Result<Option<Vec<u8>>, WorkerError> {
    let path = dir.join(format!("{name}.sealed"));
    match std::fs::read(&path) {
        Ok(raw) => key
            .unseal(name, &raw)
            .map(|b| Some(b.to_vec()))
            .map_err(|e| WorkerError::Enclave(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(data_dir_err(dir, e)),
    }
}

fn write_sealed(
    dir: &Path,
    name: &str,
    key: &SealingKey,
    secret: &[u8],
) -> Result<(), WorkerError> {
    crate::write_private(dir, &format!("{name}.sealed"), &key.seal(name, secret))
}

fn to_secret(bytes: &[u8]) -> Result<Secret32, WorkerError> {
    <[u8; 32]>::try_from(bytes)
        .map(Secret32::from_bytes)
        .map_err(|_| WorkerError::Enclave(format!("a sealed secret has {} bytes", bytes.len())))
}

/// Reads a dev attestation root secret (32 bytes, hex or raw).
fn read_root(path: &Path) -> Result<Secret32, WorkerError> {
    let raw = std::fs::read(path).map_err(|e| WorkerError::DataDir {
        path: PathBuf::from(path),
        message: format!("dev attestation root: {e}"),
    })?;
    let bytes = match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(b) => b,
        Err(_) => {
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim();
            hex::decode(text.strip_prefix("0x").unwrap_or(text))
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| WorkerError::DataDir {
                    path: PathBuf::from(path),
                    message: "a dev attestation root is 32 bytes (raw or hex)".into(),
                })?
        }
    };
    Ok(Secret32::from_bytes(bytes))
}

/// Reads the dev root at `path`, creating a random one first if there is none.
pub fn read_or_create_root(path: &Path) -> Result<Secret32, WorkerError> {
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| data_dir_err(dir, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dev-root.key");
        crate::write_private(dir, name, Secret32::random().expose())?;
    }
    read_root(path)
}

/// The public key of the dev root secret at `path` (creating it if absent).
pub fn dev_root_public(path: &Path) -> Result<[u8; 32], WorkerError> {
    Ok(DevAttestation::new(&read_or_create_root(path)?).root_public())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_with_a_tee_policy_accepts_no_dev_worker() {
        let dir = tempfile::tempdir().unwrap();
        let enclave = Enclave::open(dir.path(), None, None).unwrap();
        let dev = enclave.report(None, true).unwrap();
        let dev_cluster = Genesis {
            dev_root: Some(enclave.dev_root()),
            ..Genesis::default()
        };
        enclave.policy(&dev_cluster).verify(&dev).unwrap();
        for tee_policy in [r#"{"kinds": ["sgx-dcap"]}"#, "not json"] {
            let hardware_cluster = Genesis {
                tee_policy: Some(tee_policy.into()),
                ..dev_cluster.clone()
            };
            let policy = enclave.policy(&hardware_cluster);
            assert!(!policy.accept_dev);
            assert!(policy.tee.is_some(), "a bad policy refuses everything");
            match policy.verify(&dev) {
                Err(phat_crypto::CryptoError::Attestation(m)) => {
                    assert!(m.contains("insecure `dev` attestation"), "{m}")
                }
                other => panic!("a dev worker was accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn the_bitmap_window_matches_a_set_of_seen_counters() {
        // Reference: a counter is accepted iff unseen and within the window of the highest.
        let mut model = std::collections::HashSet::from([0u64]);
        let mut highest = 0u64;
        let mut window = ReplayWindow::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly near the top, sometimes jumps ahead, sometimes far behind.
            let c = match x % 10 {
                0 => highest + 1 + x % 3000,
                1 => highest.saturating_sub(x % 3000),
                _ => (highest + 8).saturating_sub(x % 1100),
            };
            let expected = c + REPLAY_WINDOW > highest && !model.contains(&c);
            assert_eq!(window.accept(c), expected, "counter {c}, highest {highest}");
            if expected {
                model.insert(c);
                highest = highest.max(c);
            }
        }
    }

    #[test]
    fn session_counters_are_used_once_within_a_window() {
        let mut s = Sessions::default();
        let (_, keys) =
            phat_crypto::seal(&EnvelopeSecret::generate().public(), Purpose::Query, b"x").unwrap();
        let keys = Arc::new(keys);
        s.open([1; 32], keys.clone(), AccountId([2; 32]), 100, 0)
            .unwrap();
        assert_eq!(
            s.open([1; 32], keys, AccountId([2; 32]), 100, 0),
            Err(SessionError::Replayed)
        );
        assert_eq!(s.accept(&[1; 32], 0), Err(SessionError::Replayed));
        s.accept(&[1; 32], 2).unwrap();
        s.accept(&[1; 32], 1).unwrap();
        assert_eq!(s.accept(&[1; 32], 2), Err(SessionError::Replayed));
        s.accept(&[1; 32], 5000).unwrap();
        assert_eq!(s.accept(&[1; 32], 3), Err(SessionError::Replayed));
        // Out of order within the window, once each; beyond it, refused.
        s.accept(&[1; 32], 4000).unwrap();
        assert_eq!(s.accept(&[1; 32], 4000), Err(SessionError::Replayed));
        s.accept(&[1; 32], 4999).unwrap();
        assert_eq!(s.accept(&[1; 32], 4999), Err(SessionError::Replayed));
        assert_eq!(s.accept(&[1; 32], 3976), Err(SessionError::Replayed));
        s.accept(&[1; 32], 5002).unwrap();
        assert_eq!(s.accept(&[1; 32], 5000), Err(SessionError::Replayed));
        s.accept(&[1; 32], 5001).unwrap();
        assert!(s.get(&[1; 32], 50).is_ok());
        assert_eq!(s.get(&[1; 32], 101).err(), Some(SessionError::Expired));
        assert_eq!(s.get(&[9; 32], 0).err(), Some(SessionError::Unknown));
    }

    #[test]
    fn a_full_session_table_makes_room_in_expiry_order() {
        let mut s = Sessions::default();
        let (_, keys) =
            phat_crypto::seal(&EnvelopeSecret::generate().public(), Purpose::Query, b"x").unwrap();
        let keys = Arc::new(keys);
        let id = |i: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id
        };
        // Fill the table; session i expires at 1000 + i.
        for i in 0..MAX_SESSIONS as u32 {
            s.open(
                id(i),
                keys.clone(),
                AccountId([2; 32]),
                1000 + u64::from(i),
                0,
            )
            .unwrap();
        }
        assert_eq!(s.map.len(), MAX_SESSIONS);
        // A flood of 100k more openings stays fast (each evicts the soonest-ending session)
        // and the table never grows.
        let started = std::time::Instant::now();
        for i in 0..MAX_SESSIONS as u32 {
            let n = MAX_SESSIONS as u32 + i;
            s.open(id(n), keys.clone(), AccountId([3; 32]), 10_000_000, 0)
                .unwrap();
        }
        assert_eq!(s.map.len(), MAX_SESSIONS);
        assert_eq!(s.by_expiry.len(), MAX_SESSIONS);
        eprintln!("100k openings on a full table: {:?}", started.elapsed());
        // The evicted ones are exactly the soonest-ending.
        assert_eq!(s.get(&id(0), 0).err(), Some(SessionError::Unknown));
        assert!(s.get(&id(2 * MAX_SESSIONS as u32 - 1), 0).is_ok());
        // Expired sessions go before live ones.
        let mut t = Sessions::default();
        t.open(id(1), keys.clone(), AccountId([2; 32]), 10, 0)
            .unwrap();
        t.open(id(2), keys.clone(), AccountId([2; 32]), 500, 0)
            .unwrap();
        t.open(id(3), keys, AccountId([2; 32]), 500, 100).unwrap();
        assert_eq!(t.get(&id(1), 0).err(), Some(SessionError::Unknown));
        assert!(t.get(&id(2), 100).is_ok());
    }
}
