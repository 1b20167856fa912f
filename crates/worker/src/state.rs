//! The runtime's view of the store: a snapshot, optionally with the writes of the commands
//! already applied earlier in the same batch layered on top.

use std::sync::Arc;

use parking_lot::RwLock;
use phat_primitives::StateKey;
use phat_runtime::{BackendError, ChangeSet, StateRead};
use phat_store::Snapshot;

/// A store snapshot plus the not-yet-committed writes of the current batch.
pub(crate) struct Layered {
    pub(crate) base: Arc<Snapshot>,
    pub(crate) pending: Arc<RwLock<ChangeSet>>,
}

impl StateRead for Layered {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(v) = self.pending.read().get(key) {
            return Ok(v.clone());
        }
        self.base.get(key).map_err(|e| BackendError(e.to_string()))
    }
}

/// A plain snapshot, for queries.
pub(crate) struct SnapshotState(pub(crate) Arc<Snapshot>);

impl StateRead for SnapshotState {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError> {
        self.0.get(key).map_err(|e| BackendError(e.to_string()))
    }
}
