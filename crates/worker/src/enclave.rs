//! The enclave boundary: the worker's identity key, the cluster secret and what derives from
//! it, attestation, the cluster-secret handover, and query sessions.
//!
//! Without a TEE the worker process is the enclave. Its identity key, its vote key and the
//! cluster secret are kept on disk sealed (`identity.sealed`, `vote-key.sealed`,
//! `cluster.sealed`) under a key derived from the
//! machine id (`/etc/machine-id`) and the product identity: copied elsewhere or read on their
//! own the files are useless, but root on the same machine can derive the key, as it can read
//! the process's memory. Attestation uses the insecure `dev` provider (a local ed25519 root).
//!
//! Handover, through the ledger's metadata (a JetStream KV bucket in production):
//! - `cluster`: written once (`create_meta`) by the first worker: the cluster key and that
//!   worker's report. Whoever wins the race is the creator; the others join.
//! - `cluster-join/<worker key>`: a joining worker's attestation report (it also appends a
//!   `Join` entry with it: membership is decided at apply, `apply/members.rs`).
//! - `cluster-key/<worker key>`: the cluster secret sealed to that worker's key by an existing
//!   worker that verified the report (same measurement, the cluster's dev root) and whose
//!   applied state lists the worker as a member.
//! - `cluster-refused/<worker key>`: why a report was refused.
//!
//! Key epochs (`phat cluster rotate-key`, `phat cluster revoke`) never touch the metadata:
//! the owner's command at seq S starts epoch e in replicated state, and every member that
//! holds the epochs before deals it: a `DealEpoch` ledger entry with the new envelope key and
//! the secret sealed to each member not revoked, signed with the dealer's vote key. The first
//! valid deal ordered after S keys the epoch (`apply/members.rs`): the same on every worker,
//! and nobody with ledger credentials can withhold or replace a share, only append deals that
//! are refused. Each worker then opens its share from that entry (a worker admitted later gets
//! the epoch in its handover) and checks it against the key in state.
//!
//! Names and the contract seed stay those of epoch 0 (lookups and contract keys must not
//! change); envelopes, values at rest and snapshots use the newest epoch a worker holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parity_scale_codec::{Decode, Encode};
use parking_lot::Mutex;
use phat_crypto::{
    Attestation, AttestationPolicy, AttestationReport, Claims, ClusterSecret, DevAttestation,
    EnvelopeSecret, Purpose, SealingKey, Secret32, SessionKeys, VoteKey,
};
use phat_ledger::Ledger;
use phat_primitives::protocol::{MemberTable, Sealed};
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
    /// The cluster secrets sealed to the joiner's key: epoch 0's, then each later epoch's
    /// (32 bytes each); an epoch share holds that epoch's only.
    sealed: Sealed,
    /// The report of the worker that handed it over.
    from: AttestationReport,
}

/// Why a worker cannot take a key epoch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EpochError {
    /// This worker was revoked: it gets no later epoch.
    #[error("this worker was revoked from the cluster at seq {seq}")]
    Revoked {
        /// The seq of the revocation.
        seq: u64,
    },
    /// Anything else (retried).
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

impl From<phat_ledger::LedgerError> for EpochError {
    fn from(e: phat_ledger::LedgerError) -> Self {
        Self::Worker(WorkerError::Ledger(e))
    }
}

/// Keys and state that exist in plaintext only inside this process.
pub(crate) struct Enclave {
    /// The worker's X25519 identity key.
    pub(crate) identity: EnvelopeSecret,
    /// The worker's ed25519 vote key (attested in its reports).
    pub(crate) vote_key: VoteKey,
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
    /// Workers revoked in the state applied so far (refused handovers and epoch shares).
    pub(crate) revoked: Mutex<Vec<Hash>>,
    /// Secrets of epochs after 0 from this worker's handover, not yet checked (index e - 1).
    hints: Mutex<Vec<ClusterSecret>>,
    /// The last deal this worker made: the epoch and the members it sealed the secret to.
    pub(crate) dealt: Mutex<Option<(u32, Vec<Hash>)>>,
    /// The verdicts on the workers named in the ledger's metadata.
    members: tokio::sync::Mutex<Members>,
}

/// The quote interface `source` names.
fn quote_source(
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
fn hardware_provider(
    tee: &crate::TeeConfig,
    collateral: Vec<u8>,
) -> Result<phat_crypto::attest::DcapAttestation, WorkerError> {
    phat_crypto::attest::DcapAttestation::new(quote_source(&tee.source)?, collateral)
        .map_err(|e| WorkerError::Enclave(e.to_string()))
}

/// What derives from the cluster secrets of every epoch this worker holds.
pub(crate) struct ClusterKeys {
    /// The cluster's identity: epoch 0's envelope key (requests and records bind it).
    pub(crate) id: [u8; 32],
    /// The seed of contract keys (epoch 0's: contract keys never change).
    pub(crate) contract_seed: Secret32,
    /// Values at rest (shared with the store; a new epoch is pushed into it).
    pub(crate) storage: phat_crypto::StorageCipher,
    /// Snapshots in the ledger (its name key is epoch 0's).
    pub(crate) snapshot: phat_crypto::StorageCipher,
    /// The keys of each epoch held, index = epoch.
    epochs: parking_lot::RwLock<Vec<Arc<EpochKeys>>>,
}

/// One epoch's secret and what derives from it.
pub(crate) struct EpochKeys {
    pub(crate) secret: ClusterSecret,
    pub(crate) envelope: EnvelopeSecret,
    /// This worker's report covering its key and this epoch's envelope key.
    pub(crate) report: AttestationReport,
}

impl ClusterKeys {
    /// The newest epoch held.
    pub(crate) fn current(&self) -> Arc<EpochKeys> {
        let epochs = self.epochs.read();
        match epochs.last() {
            Some(k) => k.clone(),
            None => unreachable!("cluster keys are made with epoch 0"),
        }
    }

    /// The newest epoch held and its keys, read together (a rotation between two reads
    /// would label an entry with one epoch and seal it with another's key).
    pub(crate) fn newest(&self) -> (u32, Arc<EpochKeys>) {
        let epochs = self.epochs.read();
        let Some(keys) = epochs.last() else {
            unreachable!("cluster keys are made with epoch 0")
        };
        let epoch = u32::try_from(epochs.len() - 1).unwrap_or(u32::MAX);
        (epoch, keys.clone())
    }

    /// The keys of `epoch`, if held.
    pub(crate) fn epoch(&self, epoch: u32) -> Option<Arc<EpochKeys>> {
        self.epochs.read().get(epoch as usize).cloned()
    }

    /// The newest epoch held.
    pub(crate) fn held(&self) -> u32 {
        u32::try_from(self.epochs.read().len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The secrets of the epochs up to `last`, oldest first (for a handover).
    fn keyring(&self, last: u32) -> Vec<u8> {
        let epochs = self.epochs.read();
        let mut out = Vec::with_capacity(32 * epochs.len());
        for k in epochs.iter().take(last as usize + 1) {
            out.extend_from_slice(k.secret.expose());
        }
        out
    }
}

impl Enclave {
    /// Loads (or creates at first start) the identity in `dir`.
    pub(crate) fn open(
        dir: &Path,
        dev_root: Option<&Path>,
        tee: Option<(&crate::TeeConfig, Vec<u8>)>,
    ) -> Result<Self, WorkerError> {
        let identity = EnvelopeSecret::from_secret(&sealed_or_new(dir, "identity")?);
        // The vote key (a worker from before vote keys gets one at its next start).
        let vote_key = VoteKey::from_secret(&sealed_or_new(dir, "vote-key")?);
        let root = match dev_root {
            Some(path) => read_root(path)?,
            None => read_or_create_root(&dir.join("dev-attestation-root.key"))?,
        };
        let hardware = tee
            .map(|(tee, collateral)| hardware_provider(tee, collateral))
            .transpose()?;
        let measurement = hardware
            .as_ref()
            .map_or_else(measurement, |h| h.measurement());
        Ok(Self {
            identity,
            vote_key,
            provider: DevAttestation::new(&root),
            hardware,
            measurement,
            cluster: OnceLock::new(),
            sessions: Mutex::new(Sessions::default()),
            revoked: Mutex::new(Vec::new()),
            hints: Mutex::new(Vec::new()),
            dealt: Mutex::new(None),
            members: tokio::sync::Mutex::new(Members::default()),
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
            signing_key: Some(self.vote_key.public()),
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

    /// The policy a `Join` entry is checked against at apply: like [`Enclave::policy`], but
    /// on replicated inputs only, so every worker gets the same verdict: the measurement of
    /// the cluster's first member (none before it), hardware collateral judged at the
    /// entry's ledger time.
    pub(crate) fn apply_policy(
        &self,
        genesis: &Genesis,
        first_member: Option<[u8; 32]>,
        ledger_time_ms: u64,
    ) -> AttestationPolicy {
        AttestationPolicy {
            measurement: first_member,
            tee_time: Some(ledger_time_ms / 1000),
            ..self.policy(genesis)
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
        later: &[u8],
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let sealed = [secret.expose().as_slice(), &genesis.digest()].concat();
        write_sealed(dir, "cluster", &sealing_key(), &sealed)?;
        let envelope = secret.envelope_secret();
        let report = self.report(Some(envelope.public()), genesis.encryption)?;
        let keys = ClusterKeys {
            id: envelope.public(),
            contract_seed: secret.contract_seed(),
            storage: secret.storage_cipher(),
            snapshot: secret.snapshot_cipher(),
            epochs: parking_lot::RwLock::new(vec![Arc::new(EpochKeys {
                secret,
                envelope,
                report,
            })]),
        };
        let _ = self.cluster.set(keys);
        // Later epochs this worker took (each checked against the state's key when it did).
        let mine = read_sealed(dir, "epochs", &sealing_key())?.unwrap_or_default();
        for chunk in mine.chunks(32) {
            let secret = ClusterSecret::from_bytes(*to_secret(chunk)?.expose());
            self.push_epoch(dir, secret, genesis)?;
        }
        // A handover's later epochs are hints only: the box is not authenticated to its
        // sender, so each is used once the state reaches its epoch and it matches the record.
        let mut hints = self.hints.lock();
        for chunk in later.chunks(32) {
            hints.push(ClusterSecret::from_bytes(*to_secret(chunk)?.expose()));
        }
        Ok(())
    }

    /// Adds the next epoch's secret: sealed to disk first, then used.
    fn push_epoch(
        &self,
        dir: &Path,
        secret: ClusterSecret,
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let keys = self.keys();
        let envelope = secret.envelope_secret();
        let report = self.report(Some(envelope.public()), genesis.encryption)?;
        let mut ring = keys.keyring(u32::MAX);
        ring.extend_from_slice(secret.expose());
        write_sealed(dir, "epochs", &sealing_key(), &ring[32..])?;
        keys.storage.push_epoch(&secret.storage_master());
        keys.snapshot.push_epoch(&secret.snapshot_master());
        keys.epochs.write().push(Arc::new(EpochKeys {
            secret,
            envelope,
            report,
        }));
        Ok(())
    }

    /// Waits until this worker holds every epoch `state` has keyed, each from the first of:
    /// its handover, its own deal, its share in the deal that keyed the epoch (read from the
    /// ledger at the deal's seq). Every secret is checked against the key in `state`. Fails
    /// with [`EpochError::Revoked`] for a revoked worker (it never gets a later epoch).
    pub(crate) async fn ensure_epochs(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        genesis: &Genesis,
        state: &phat_primitives::protocol::ClusterEpochs,
    ) -> Result<(), EpochError> {
        let me = Hash(self.identity.public());
        // Revoked, whenever it happened: this worker applies nothing after it.
        if let Some(change) = state.changes.iter().find(|c| c.revoked == Some(me)) {
            return Err(EpochError::Revoked { seq: change.seq });
        }
        while self.keys().held() < state.keyed() {
            let e = self.keys().held() + 1;
            let Some(dealt) = state.dealt(e) else {
                return Err(
                    WorkerError::Enclave(format!("key epoch {e} is keyed without a deal")).into(),
                );
            };
            let secret = match self.epoch_secret(dir, ledger, e, dealt).await? {
                Some(secret) => secret,
                None => {
                    return Err(WorkerError::Enclave(format!(
                        "the deal of key epoch {e} (seq {}) holds no share for this worker, \
                         and its handover had none",
                        dealt.seq
                    ))
                    .into())
                }
            };
            self.push_epoch(dir, secret, genesis)?;
            tracing::info!(epoch = e, key = %dealt.key, "took the key of a new epoch");
        }
        let _ = std::fs::remove_file(dir.join("epoch-candidates.sealed"));
        Ok(())
    }

    /// The secret of epoch `e`, keyed by `dealt`: from the handover's hints, this worker's
    /// own candidates, or its share in the deal entry; each checked against the dealt key.
    async fn epoch_secret(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        e: u32,
        dealt: &phat_primitives::protocol::EpochDealt,
    ) -> Result<Option<ClusterSecret>, WorkerError> {
        let matches = |s: &ClusterSecret| s.envelope_secret().public() == dealt.key.0;
        // A handover's later epochs are not authenticated to their sender: used only when
        // they match the key the applied state holds.
        if let Some(secret) = self.hints.lock().get(e as usize - 1).cloned() {
            if matches(&secret) {
                return Ok(Some(secret));
            }
            tracing::warn!(
                epoch = e,
                "the handover's secret of key epoch {e} is not the epoch's: ignored"
            );
        }
        // This worker dealt it (and may have stopped before taking it).
        for secret in self.candidates(dir, e)? {
            if matches(&secret) {
                return Ok(Some(secret));
            }
        }
        let entries = ledger
            .read(dealt.seq, 1, Duration::from_secs(5))
            .await
            .map_err(WorkerError::Ledger)?;
        let Some(entry) = entries.into_iter().find(|en| en.seq == dealt.seq) else {
            return Err(WorkerError::Enclave(format!(
                "the deal of key epoch {e} at seq {} cannot be read from the ledger",
                dealt.seq
            )));
        };
        let deal = match phat_primitives::protocol::LedgerCommand::decode(&mut &entry.payload[..]) {
            Ok(phat_primitives::protocol::LedgerCommand::DealEpoch(d)) if d.epoch == e => d,
            _ => {
                return Err(WorkerError::Enclave(format!(
                    "seq {} of the ledger is not the deal of key epoch {e} the state names \
                     (the ledger changed under the cluster)",
                    dealt.seq
                )))
            }
        };
        let me = Hash(self.identity.public());
        let Some(share) = deal.shares.iter().find(|s| s.member == me) else {
            return Ok(None);
        };
        let (bytes, _) = self
            .identity
            .open(Purpose::Handover, &share.sealed)
            .map_err(|err| WorkerError::Enclave(format!("the share of key epoch {e}: {err}")))?;
        let secret = ClusterSecret::from_bytes(*to_secret(&bytes)?.expose());
        if !matches(&secret) {
            return Err(WorkerError::Enclave(format!(
                "the share of key epoch {e} is not the epoch's key"
            )));
        }
        Ok(Some(secret))
    }

    /// The secrets this worker dealt for epoch `e` (sealed on disk before each deal).
    fn candidates(&self, dir: &Path, e: u32) -> Result<Vec<ClusterSecret>, WorkerError> {
        let Some(bytes) = read_sealed(dir, "epoch-candidates", &sealing_key())? else {
            return Ok(Vec::new());
        };
        if bytes.len() < 4 || u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) != e {
            return Ok(Vec::new());
        }
        bytes[4..]
            .chunks(32)
            .map(|c| Ok(ClusterSecret::from_bytes(*to_secret(c)?.expose())))
            .collect()
    }

    /// Deals the pending epoch `e`: a fresh secret sealed to each of `recipients` (the
    /// members not revoked), signed with this worker's vote key, appended to the ledger.
    /// The first valid deal ordered keys the epoch; the secret is sealed to disk before the
    /// append, so a crash right after cannot lose an epoch this worker's deal won.
    pub(crate) async fn deal(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        e: u32,
        recipients: &[Hash],
    ) -> Result<(), WorkerError> {
        use phat_primitives::protocol::{EpochDeal, EpochShare, LedgerCommand};
        let secret = ClusterSecret::generate();
        let key = Hash(secret.envelope_secret().public());
        let mut shares = Vec::with_capacity(recipients.len());
        for member in recipients {
            let (sealed, _) = phat_crypto::seal(&member.0, Purpose::Handover, secret.expose())
                .map_err(|err| WorkerError::Enclave(err.to_string()))?;
            shares.push(EpochShare {
                member: *member,
                sealed,
            });
        }
        let mut deal = EpochDeal {
            epoch: e,
            key,
            dealer: Hash(self.identity.public()),
            shares,
            signature: Default::default(),
        };
        deal.signature = self
            .vote_key
            .sign(EpochDeal::VOTE_DOMAIN, &deal.signed_payload())
            .to_vec()
            .into();
        let mut kept = e.to_le_bytes().to_vec();
        for c in self.candidates(dir, e)? {
            kept.extend_from_slice(c.expose());
        }
        kept.extend_from_slice(secret.expose());
        write_sealed(dir, "epoch-candidates", &sealing_key(), &kept)?;
        let appended = ledger
            .append(LedgerCommand::DealEpoch(deal).encode())
            .await?;
        tracing::info!(epoch = e, %key, seq = appended.seq, "dealt the secret of a new key epoch");
        Ok(())
    }

    /// Appends this worker's `Join` entry (its report, with its vote key) to the ledger: once
    /// applied, the worker is a member in replicated state.
    pub(crate) async fn append_join(
        &self,
        ledger: &dyn Ledger,
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let entry =
            phat_primitives::protocol::LedgerCommand::Join(phat_primitives::protocol::JoinEntry {
                report: self.report(None, genesis.encryption)?,
            });
        ledger.append(entry.encode()).await?;
        tracing::info!(worker_key = %Hash(self.identity.public()), "asked to join the cluster's members");
        Ok(())
    }

    /// Gets the cluster secret: unsealed from disk, created (first worker) or handed over
    /// through the ledger by an existing worker (with the secrets of later epochs). A worker
    /// that gets it from another appends its `Join` first (the secret goes to members only),
    /// and the creator right after creating it; `Ok(true)` when this call appended one.
    pub(crate) async fn join(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        genesis: &Genesis,
    ) -> Result<bool, WorkerError> {
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
            if bytes[32..] != genesis.digest() {
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
            return self.install(dir, secret, &[], genesis).map(|()| false);
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
                self.install(dir, secret, &[], genesis)?;
                // The creator asks to be a member at once, so a key epoch dealt early has a
                // share for it (a deal seals to the members of its moment only).
                return match self.append_join(ledger, genesis).await {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        tracing::warn!("asking for membership (retried once caught up): {e}");
                        Ok(false)
                    }
                };
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
        self.append_join(ledger, genesis).await?;
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
                if bytes.len() < 32 || !bytes.len().is_multiple_of(32) {
                    return Err(WorkerError::Enclave(format!(
                        "a handover holds {} bytes (32 per key epoch)",
                        bytes.len()
                    )));
                }
                let secret = ClusterSecret::from_bytes(*to_secret(&bytes[..32])?.expose());
                let record = get_record(ledger)
                    .await?
                    .ok_or_else(|| WorkerError::Enclave("the cluster record disappeared".into()))?;
                if record.cluster_key.0 != secret.envelope_secret().public() {
                    return Err(WorkerError::Enclave(
                        "the handed-over secret is not the cluster's".into(),
                    ));
                }
                tracing::info!(cluster_key = %record.cluster_key, "received the cluster secret");
                return self
                    .install(dir, secret, &bytes[32..], genesis)
                    .map(|()| true);
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

    /// The attested workers of the cluster as the ledger's metadata shows them (see
    /// [`Members`]) with the vote keys their reports attest: the creator of the cluster record
    /// and every worker handed the secret whose join report verifies, minus the workers
    /// revoked in this worker's applied state. For a worker that has no applied state yet (it
    /// is restoring a snapshot); names that fail are counted in `refused`.
    pub(crate) async fn attested_workers(
        &self,
        ledger: &dyn Ledger,
        genesis: &Genesis,
        refused: &crate::metrics::Refused,
    ) -> Result<Vec<(Hash, Option<Hash>)>, WorkerError> {
        let policy = self.policy(genesis);
        let mut members = self
            .members
            .lock()
            .await
            .refresh(ledger, &policy, refused)
            .await?;
        if let Some(record) = get_record(ledger).await? {
            let creator = &record.creator;
            if check_record(&policy, &record).is_ok()
                && !members.iter().any(|(w, _)| *w == creator.worker_key)
            {
                members.push((creator.worker_key, creator.signing_key));
            }
        }
        let revoked = self.revoked.lock().clone();
        members.retain(|(w, _)| !revoked.contains(w));
        Ok(members)
    }

    /// Hands the cluster secret to every joiner whose report verifies and whose `Join` the
    /// applied state admitted, and each later epoch's secret to every member (runs until
    /// dropped). `members` reads the member table of the applied state.
    pub(crate) async fn serve_joiners(
        self: Arc<Self>,
        ledger: Arc<dyn Ledger>,
        genesis: Genesis,
        members: StateMembers,
    ) {
        let policy = self.policy(&genesis);
        // Joins answered (by any worker): their answer is written once and never changes.
        let mut settled = std::collections::HashSet::new();
        loop {
            match members() {
                Ok((table, keyed)) => {
                    if let Err(e) = self
                        .hand_over_once(&*ledger, &policy, (&table, keyed), &mut settled)
                        .await
                    {
                        tracing::warn!("cluster handover: {e}");
                    }
                }
                Err(e) => tracing::warn!("reading the member table: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn hand_over_once(
        &self,
        ledger: &dyn Ledger,
        policy: &AttestationPolicy,
        (table, keyed): (&MemberTable, u32),
        settled: &mut std::collections::HashSet<String>,
    ) -> Result<(), WorkerError> {
        // The member table and the keyed epoch come from one applied state: a joiner admitted
        // after an epoch's deal has no share in it and must get that epoch here, so nothing is
        // handed over until this worker holds every epoch that state keyed.
        if self.keys().held() < keyed {
            return Ok(());
        }
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
            let revoked = self.revoked.lock().iter().any(|w| w.to_string() == who);
            let verdict = AttestationReport::decode(&mut &raw[..])
                .map_err(|e| phat_crypto::CryptoError::Attestation(format!("malformed: {e}")))
                .and_then(|r| {
                    if revoked {
                        return Err(phat_crypto::CryptoError::Attestation(
                            "this worker was revoked from the cluster".into(),
                        ));
                    }
                    policy.verify(&r)?;
                    if r.worker_key.to_string() != who {
                        return Err(phat_crypto::CryptoError::Attestation(
                            "the report is for another worker key".into(),
                        ));
                    }
                    Ok(r)
                });
            match verdict {
                // Not admitted by an applied `Join` yet: asked again next round (the joiner
                // appended its `Join` with its report; this worker may not have applied it).
                Ok(report) if table.get(&report.worker_key).is_none() => continue,
                Ok(report) => {
                    let keys = self.keys();
                    let epoch0 = keys.epoch(0).unwrap_or_else(|| keys.current());
                    let (sealed, _) = phat_crypto::seal(
                        &report.worker_key.0,
                        Purpose::Handover,
                        &keys.keyring(keyed),
                    )
                    .map_err(|e| WorkerError::Enclave(e.to_string()))?;
                    let handover = Handover {
                        sealed,
                        from: epoch0.report.clone(),
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

/// The workers of the cluster as far as the ledger's metadata can show them: each key named
/// under `cluster-key/` counts only if its `cluster-join/` report verifies under the cluster's
/// policy and names that key. The metadata is writable by anyone holding ledger credentials
/// (every worker, a revoked one included): a name alone is no member, or a key planted there
/// would be sent every later epoch's secret.
#[derive(Default)]
pub(crate) struct Members {
    /// Verdicts so far, by key: the vote key its report attests (`Some(None)`: a worker of
    /// an older version), `None` when the report fails. A report, once written, never changes
    /// (`create_meta`).
    verdicts: HashMap<Hash, Option<Option<Hash>>>,
}

impl Members {
    /// The members found now (verifying the reports not judged yet; refusals counted in
    /// `refused`).
    async fn refresh(
        &mut self,
        ledger: &dyn Ledger,
        policy: &AttestationPolicy,
        refused: &crate::metrics::Refused,
    ) -> Result<Vec<(Hash, Option<Hash>)>, WorkerError> {
        // A metadata writer can plant any number of names: each is judged once (the verdict is
        // kept), and only a worker with no applied state asks at all (`replica::voters`).
        let named: Vec<Hash> = ledger
            .meta_keys("cluster-key/")
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix("cluster-key/"))
            .filter_map(|k| k.parse().ok())
            .collect();
        let mut members = Vec::with_capacity(named.len());
        for w in named {
            let verdict = match self.verdicts.get(&w) {
                Some(v) => *v,
                None => {
                    let report = ledger.get_meta(&format!("cluster-join/{w}")).await?;
                    let verdict = match report.map(|r| AttestationReport::decode(&mut &r[..])) {
                        Some(Ok(r)) => match policy.verify(&r) {
                            Ok(()) if r.worker_key == w => Some(r.signing_key),
                            Ok(()) => {
                                tracing::warn!(worker_key = %w, "ignoring a cluster key whose join report names another key");
                                None
                            }
                            Err(e) => {
                                tracing::warn!(worker_key = %w, "ignoring a cluster key whose join report does not verify: {e}");
                                None
                            }
                        },
                        Some(Err(e)) => {
                            tracing::warn!(worker_key = %w, "ignoring a cluster key with a malformed join report: {e}");
                            None
                        }
                        None => {
                            tracing::warn!(worker_key = %w, "ignoring a cluster key with no join report");
                            None
                        }
                    };
                    if verdict.is_none() {
                        crate::metrics::refuse(refused, "cluster-key");
                    }
                    self.verdicts.insert(w, verdict);
                    verdict
                }
            };
            if let Some(vote_key) = verdict {
                members.push((w, vote_key));
            }
        }
        Ok(members)
    }
}

/// Reads the member table of a worker's applied state.
pub(crate) type StateMembers =
    Arc<dyn Fn() -> Result<(MemberTable, u32), WorkerError> + Send + Sync>;

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

async fn get_record(ledger: &dyn Ledger) -> Result<Option<ClusterRecord>, WorkerError> {
    match ledger.get_meta(CLUSTER_KEY).await? {
        Some(raw) => ClusterRecord::decode(&mut &raw[..])
            .map(Some)
            .map_err(|e| WorkerError::Enclave(format!("malformed cluster record: {e}"))),
        None => Ok(None),
    }
}

/// What someone holding this machine and a worker's data directory can read of the ledger:
/// opens a ledger `payload` (a sealed command) with the cluster secrets sealed in `dir`, of
/// every epoch that worker was given. Revocation is shown with it: a revoked worker's
/// directory opens the commands of the epochs it held and none after.
pub fn open_with_data_dir(
    dir: &Path,
    payload: &[u8],
) -> Result<phat_primitives::protocol::SignedRequest, WorkerError> {
    use parity_scale_codec::DecodeAll;
    use phat_primitives::protocol::{LedgerCommand, SignedRequest};
    let sealing = sealing_key();
    let identity = read_sealed(dir, "cluster", &sealing)?.ok_or_else(|| {
        WorkerError::Enclave(format!("{} holds no cluster secret", dir.display()))
    })?;
    let mut secrets = vec![identity.get(..32).unwrap_or_default().to_vec()];
    secrets.extend(
        read_sealed(dir, "epochs", &sealing)?
            .unwrap_or_default()
            .chunks(32)
            .map(<[u8]>::to_vec),
    );
    let secret_of = |epoch: u32| -> Result<ClusterSecret, WorkerError> {
        let secret = secrets.get(epoch as usize).ok_or_else(|| {
            WorkerError::Enclave(format!(
                "{} holds no secret of key epoch {epoch} (it holds epochs 0 to {})",
                dir.display(),
                secrets.len() - 1
            ))
        })?;
        Ok(ClusterSecret::from_bytes(*to_secret(secret)?.expose()))
    };
    let (epoch, sealed) = match LedgerCommand::decode_all(&mut &payload[..]) {
        Ok(LedgerCommand::Sealed(s)) => (0, s),
        Ok(LedgerCommand::SealedAt { epoch, sealed }) => (epoch, sealed),
        Ok(LedgerCommand::Forwarded { epoch, data }) => {
            return crate::apply::forward::open(&secret_of(epoch)?, epoch, &data.0)
                .map(|(req, _)| req)
                .map_err(|e| WorkerError::Enclave(e.to_string()));
        }
        Ok(LedgerCommand::Plain(req)) => return Ok(req),
        Ok(LedgerCommand::Trigger(_)) => {
            return Err(WorkerError::Enclave(
                "a schedule's trigger, not a command".into(),
            ))
        }
        Ok(LedgerCommand::Join(_)) => {
            return Err(WorkerError::Enclave(
                "a worker's request to join, not a command".into(),
            ))
        }
        Ok(LedgerCommand::DealEpoch(_)) => {
            return Err(WorkerError::Enclave(
                "a member's deal of a key epoch, not a command".into(),
            ))
        }
        Ok(
            LedgerCommand::EthLog(_) | LedgerCommand::JobResult(_) | LedgerCommand::QueryLogs(_),
        ) => {
            return Err(WorkerError::Enclave(
                "a worker's own entry (a log report, a job's result, query records), not a \
                 command"
                    .into(),
            ))
        }
        Err(e) => return Err(WorkerError::Enclave(format!("not a ledger command: {e}"))),
    };
    let (plain, _) = secret_of(epoch)?
        .envelope_secret()
        .open(Purpose::Command, &sealed)
        .map_err(|e| WorkerError::Enclave(format!("the command does not open: {e}")))?;
    SignedRequest::decode_all(&mut &plain[..])
        .map_err(|e| WorkerError::Enclave(format!("the command does not decode: {e}")))
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
                // Bit `d` moves to `d + shift`, a word at a time (a bit at a time cost a
                // thousand steps per message, under the sessions lock).
                let (words, bits) = ((shift / 64) as usize, (shift % 64) as u32);
                let n = self.bits.len();
                for i in (0..n).rev() {
                    let from = |j: Option<usize>| j.map_or(0, |j| self.bits[j]);
                    let low = from(i.checked_sub(words));
                    let below = from(i.checked_sub(words + 1));
                    self.bits[i] = match bits {
                        0 => low,
                        b => (low << b) | (below >> (64 - b)),
                    };
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

/// The 32-byte secret sealed in `dir` as `name`, or a fresh random one, sealed there first.
fn sealed_or_new(dir: &Path, name: &str) -> Result<Secret32, WorkerError> {
    let sealing = sealing_key();
    match read_sealed(dir, name, &sealing)? {
        Some(bytes) => to_secret(&bytes),
        None => {
            let secret = Secret32::random();
            write_sealed(dir, name, &sealing, secret.expose())?;
            Ok(secret)
        }
    }
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
