//! The state the runtime reads, and the overlay its writes go to.
//!
//! The runtime never writes to a database. It reads through [`StateRead`] (the worker backs it
//! with a consistent snapshot of its store) and collects writes in an [`Overlay`]; a finished
//! session hands back a [`ChangeSet`] that the caller commits (command) or drops (query).
//! Nested calls take checkpoints in the overlay's journal, so a revert or trap at any depth
//! undoes exactly its own writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use phat_primitives::StateKey;

/// Errors of a state backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Read access to replicated state. Implementations must return the same answers for the same
/// key for the whole life of the value (a snapshot), or queries may see torn state.
pub trait StateRead: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError>;
}

/// Writes of a session, sorted by key: `None` deletes. Applying the same change sets in the
/// same order gives the same state everywhere.
pub type ChangeSet = BTreeMap<StateKey, Option<Vec<u8>>>;

/// A simple in-memory state, for tests, benchmarks and the in-process demo.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    map: BTreeMap<StateKey, Vec<u8>>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a change set.
    pub fn apply(&mut self, changes: ChangeSet) {
        for (k, v) in changes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Iterates over all entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&StateKey, &Vec<u8>)> {
        self.map.iter()
    }
}

impl StateRead for MemoryState {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.map.get(key).cloned())
    }
}

/// A position in the overlay's journal to roll back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint(usize);

/// Pending writes over a base state, with a journal for nested rollback.
pub struct Overlay {
    base: Arc<dyn StateRead>,
    changes: ChangeSet,
    /// Previous overlay entry of each written key, in write order.
    journal: Vec<(StateKey, Option<Option<Vec<u8>>>)>,
    /// Bytes of every write so far ([`Overlay::write_size`] each); only grows, rollbacks
    /// included, so it measures what the host held.
    written: u64,
}

impl Overlay {
    /// An empty overlay over `base`.
    pub fn new(base: Arc<dyn StateRead>) -> Self {
        Self {
            base,
            changes: ChangeSet::new(),
            journal: Vec::new(),
            written: 0,
        }
    }

    /// What one write of `value` at `key` counts toward the bytes written: the key, the value
    /// and [`crate::WRITE_OVERHEAD`] for the host's bookkeeping.
    pub fn write_size(key: &StateKey, value_len: usize) -> u64 {
        let key_len = match key {
            StateKey::Storage(_, k) => 32 + k.len(),
            _ => 32,
        };
        (key_len + value_len) as u64 + crate::config::WRITE_OVERHEAD
    }

    /// Bytes of every write made so far (see [`Overlay::write_size`]), rolled-back ones
    /// included.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The current value at `key`: the overlay's if written, else the base's.
    pub fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError> {
        match self.changes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    /// Sets (`Some`) or removes (`None`) the value at `key`.
    pub fn set(&mut self, key: StateKey, value: Option<Vec<u8>>) {
        self.written = self
            .written
            .saturating_add(Self::write_size(&key, value.as_ref().map_or(0, Vec::len)));
        let previous = self.changes.insert(key.clone(), value);
        self.journal.push((key, previous));
    }

    /// The value at `key` in the base state, ignoring this overlay's writes.
    pub fn base_get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, BackendError> {
        self.base.get(key)
    }

    /// Each key written since `cp`, once, with what the overlay held for it at `cp`: `None`
    /// when the overlay had not written it (the base's value applied), `Some(v)` otherwise.
    pub fn first_writes_since(
        &self,
        cp: Checkpoint,
    ) -> impl Iterator<Item = (&StateKey, &Option<Option<Vec<u8>>>)> {
        let mut seen = std::collections::BTreeSet::new();
        self.journal[cp.0.min(self.journal.len())..]
            .iter()
            .filter(move |(k, _)| seen.insert(k))
            .map(|(k, prev)| (k, prev))
    }

    /// Marks the current state, to roll back to.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(self.journal.len())
    }

    /// Undoes every write made since `cp`.
    pub fn rollback(&mut self, cp: Checkpoint) {
        while self.journal.len() > cp.0 {
            let Some((key, previous)) = self.journal.pop() else {
                break;
            };
            match previous {
                Some(prev) => self.changes.insert(key, prev),
                None => self.changes.remove(&key),
            };
        }
    }

    /// The writes made, for committing.
    pub fn into_changes(self) -> ChangeSet {
        self.changes
    }

    /// The writes made so far.
    pub fn changes(&self) -> &ChangeSet {
        &self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::{Hash, StateKey};

    fn key(n: u8) -> StateKey {
        StateKey::Storage(Hash([0; 32]), vec![n])
    }

    #[test]
    fn nested_rollback_restores_exact_prior_values() {
        let mut base = MemoryState::new();
        base.apply([(key(1), Some(b"base".to_vec()))].into_iter().collect());
        let mut o = Overlay::new(Arc::new(base));
        o.set(key(1), Some(b"outer".to_vec()));
        let cp = o.checkpoint();
        o.set(key(1), Some(b"inner".to_vec()));
        o.set(key(2), Some(b"new".to_vec()));
        o.set(key(1), None);
        assert_eq!(o.get(&key(1)).unwrap(), None);
        o.rollback(cp);
        assert_eq!(o.get(&key(1)).unwrap(), Some(b"outer".to_vec()));
        assert_eq!(o.get(&key(2)).unwrap(), None);
        o.rollback(Checkpoint(0));
        assert_eq!(o.get(&key(1)).unwrap(), Some(b"base".to_vec()));
        assert!(o.into_changes().is_empty());
    }
}
