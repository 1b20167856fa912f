//! The key ring: what derives from the cluster secret of each key epoch this worker holds.

use super::*;

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
    pub(super) epochs: parking_lot::RwLock<Vec<Arc<EpochKeys>>>,
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
    pub(super) fn keyring(&self, last: u32) -> Vec<u8> {
        let epochs = self.epochs.read();
        let mut out = Vec::with_capacity(32 * epochs.len());
        for k in epochs.iter().take(last as usize + 1) {
            out.extend_from_slice(k.secret.expose());
        }
        out
    }
}
