//! Key epochs: installing a secret, taking the epochs the state started (from this
//! worker's share of a deal, or its handover), and dealing a pending one.

use super::*;

impl Enclave {
    /// Keeps `secret` (with the digest of the genesis it was joined under) sealed on disk and
    /// derives the cluster keys.
    pub(super) fn install(
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
    pub(super) fn push_epoch(
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
    pub(super) async fn epoch_secret(
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
    pub(super) fn candidates(&self, dir: &Path, e: u32) -> Result<Vec<ClusterSecret>, WorkerError> {
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
}
