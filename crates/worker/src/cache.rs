//! The contract cache: worker-local, non-replicated key/value data per contract, with expiry,
//! a per-contract quota (key and value bytes) and a worker-wide budget that counts what the
//! entries really cost in memory (bookkeeping included). Entries never leak between contracts.

use std::collections::HashMap;

use parking_lot::Mutex;
use phat_primitives::AccountId;

/// Bytes a contract may keep in the cache unless configured otherwise.
pub const DEFAULT_CACHE_QUOTA: usize = 1 << 20;

/// Bytes all contracts together may make one worker hold in its cache, unless configured
/// otherwise.
pub const DEFAULT_CACHE_BUDGET: usize = 128 << 20;

/// What an entry costs the worker beyond its key and value (map slot, allocations, expiry),
/// counted against the worker-wide budget: many tiny entries cost real memory too.
pub const ENTRY_OVERHEAD: usize = 96;

struct Entry {
    value: Vec<u8>,
    /// Unix seconds after which the entry is gone; `None` never expires.
    expires_at: Option<u64>,
}

#[derive(Default)]
struct ContractCache {
    entries: HashMap<Vec<u8>, Entry>,
    /// Sum of key and value sizes.
    used: usize,
}

impl ContractCache {
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.used -= key.len() + e.value.len();
        Some(e)
    }

    fn drop_expired(&mut self, now: u64) {
        let expired: Vec<Vec<u8>> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }
}

/// Why a cache write was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cache quota of {quota} bytes exceeded (in use {used}, writing {size})")]
pub struct QuotaExceeded {
    /// The quota.
    pub quota: usize,
    /// Bytes in use after dropping expired entries.
    pub used: usize,
    /// Bytes the write needed.
    pub size: usize,
}

/// All contracts' caches of one worker.
pub struct Cache {
    quota: usize,
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    contracts: HashMap<AccountId, ContractCache>,
    /// Sum of every contract's [`footprint`].
    total: usize,
}

/// What a contract's entries cost the worker: keys, values and [`ENTRY_OVERHEAD`] each.
fn footprint(c: &ContractCache) -> usize {
    c.used + c.entries.len() * ENTRY_OVERHEAD
}

impl State {
    /// Runs `f` on `contract`'s cache and keeps the total in step with what it changed.
    fn with<T>(&mut self, contract: &AccountId, f: impl FnOnce(&mut ContractCache) -> T) -> T {
        let c = self.contracts.entry(*contract).or_default();
        let before = footprint(c);
        let out = f(c);
        let after = footprint(c);
        if c.entries.is_empty() {
            self.contracts.remove(contract);
        }
        self.total = self.total + after - before;
        out
    }
}

impl Cache {
    /// A cache giving each contract `quota` bytes, within the default worker-wide budget.
    #[cfg(test)]
    pub fn new(quota: usize) -> Self {
        Self::with_budget(quota, DEFAULT_CACHE_BUDGET)
    }

    /// The bytes (keys and values) each contract may keep.
    pub fn quota(&self) -> usize {
        self.quota
    }

    /// A cache giving each contract `quota` bytes and all of them together `budget` bytes of
    /// memory (entries counted with [`ENTRY_OVERHEAD`]).
    pub fn with_budget(quota: usize, budget: usize) -> Self {
        Self {
            quota,
            budget,
            state: Mutex::new(State::default()),
        }
    }

    /// Stores `value` under `key`; expired entries are dropped first when space is short.
    pub fn set(
        &self,
        contract: &AccountId,
        key: &[u8],
        value: &[u8],
        now: u64,
    ) -> Result<(), QuotaExceeded> {
        let (quota, budget) = (self.quota, self.budget);
        let mut state = self.state.lock();
        let total = state.total;
        state.with(contract, |c| {
            let size = key.len() + value.len();
            let old =
                |c: &ContractCache| c.entries.get(key).map_or(0, |e| key.len() + e.value.len());
            if c.used - old(c) + size > quota {
                c.drop_expired(now);
                if c.used - old(c) + size > quota {
                    return Err(QuotaExceeded {
                        quota,
                        used: c.used,
                        size,
                    });
                }
            }
            // The worker-wide budget, entries' bookkeeping included.
            let old_cost = c
                .entries
                .get(key)
                .map_or(0, |e| key.len() + e.value.len() + ENTRY_OVERHEAD);
            let new_cost = size + ENTRY_OVERHEAD;
            if new_cost > old_cost && total + new_cost - old_cost > budget {
                return Err(QuotaExceeded {
                    quota: budget,
                    used: total,
                    size: new_cost,
                });
            }
            let expires_at = c.remove(key).and_then(|e| e.expires_at);
            c.used += size;
            c.entries.insert(
                key.to_vec(),
                Entry {
                    value: value.to_vec(),
                    expires_at,
                },
            );
            Ok(())
        })
    }

    /// Makes `key` expire `secs` seconds from `now`.
    pub fn set_expiration(&self, contract: &AccountId, key: &[u8], secs: u64, now: u64) {
        if let Some(e) = self
            .state
            .lock()
            .contracts
            .get_mut(contract)
            .and_then(|c| c.entries.get_mut(key))
        {
            e.expires_at = Some(now.saturating_add(secs));
        }
    }

    /// The value under `key`, unless expired.
    pub fn get(&self, contract: &AccountId, key: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut state = self.state.lock();
        if !state.contracts.contains_key(contract) {
            return None;
        }
        state.with(contract, |c| match c.entries.get(key) {
            Some(e) if e.expires_at.is_some_and(|t| t <= now) => {
                c.remove(key);
                None
            }
            Some(e) => Some(e.value.clone()),
            None => None,
        })
    }

    /// Removes `key`, returning its value unless it had expired.
    pub fn remove(&self, contract: &AccountId, key: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut state = self.state.lock();
        if !state.contracts.contains_key(contract) {
            return None;
        }
        let e = state.with(contract, |c| c.remove(key))?;
        if e.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        Some(e.value)
    }

    /// Memory all entries cost the worker now (see [`ENTRY_OVERHEAD`]).
    pub fn footprint(&self) -> usize {
        self.state.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AccountId = AccountId([1; 32]);
    const B: AccountId = AccountId([2; 32]);

    #[test]
    fn entries_are_per_contract() {
        let c = Cache::new(100);
        c.set(&A, b"k", b"a", 0).unwrap();
        assert_eq!(c.get(&A, b"k", 0), Some(b"a".to_vec()));
        assert_eq!(c.get(&B, b"k", 0), None);
        c.set(&B, b"k", b"b", 0).unwrap();
        assert_eq!(c.get(&A, b"k", 0), Some(b"a".to_vec()));
        assert_eq!(c.remove(&A, b"k", 0), Some(b"a".to_vec()));
        assert_eq!(c.get(&A, b"k", 0), None);
        assert_eq!(c.get(&B, b"k", 0), Some(b"b".to_vec()));
    }

    #[test]
    fn expiry_and_quota_evict_expired_entries_first() {
        let c = Cache::new(20);
        c.set(&A, b"old", &[0; 7], 0).unwrap(); // 10 bytes
        c.set_expiration(&A, b"old", 5, 0);
        c.set(&A, b"keep", &[0; 6], 0).unwrap(); // 10 bytes: full
        assert_eq!(
            c.set(&A, b"new", &[0; 7], 1),
            Err(QuotaExceeded {
                quota: 20,
                used: 20,
                size: 10
            })
        );
        // After `old` expires, its space is reused.
        c.set(&A, b"new", &[0; 7], 5).unwrap();
        assert_eq!(c.get(&A, b"old", 5), None);
        assert_eq!(c.get(&A, b"keep", 5), Some(vec![0; 6]));
        // Overwriting counts only the difference; other contracts have their own quota.
        c.set(&A, b"new", &[1; 7], 5).unwrap();
        c.set(&B, b"x", &[0; 19], 5).unwrap();
    }

    #[test]
    fn a_worker_wide_budget_counts_every_entry_of_every_contract() {
        // 10 contracts with a quota of 1,000 bytes each, 2,000 bytes for all of them.
        let c = Cache::with_budget(1_000, 2_000);
        let mut stored = 0;
        'fill: for n in 0..10u8 {
            let contract = AccountId([n; 32]);
            for k in 0..100u8 {
                // Tiny entries: 2 bytes each against the quota, 98 against the budget.
                if c.set(&contract, &[k], &[0], 0).is_err() {
                    break 'fill;
                }
                stored += 1;
            }
        }
        assert_eq!(stored, 2_000 / (2 + ENTRY_OVERHEAD));
        assert_eq!(c.footprint(), stored * (2 + ENTRY_OVERHEAD));
        let err = c.set(&AccountId([99; 32]), b"k", b"v", 0).unwrap_err();
        assert_eq!(err.quota, 2_000);
        // Removing and expiring give the room back.
        c.remove(&AccountId([0; 32]), &[0], 0).unwrap();
        c.set(&AccountId([99; 32]), b"k", b"", 0).unwrap();
        c.set_expiration(&AccountId([99; 32]), b"k", 1, 0);
        assert_eq!(c.get(&AccountId([99; 32]), b"k", 5), None);
        assert_eq!(c.footprint(), (stored - 1) * (2 + ENTRY_OVERHEAD));
    }
}
