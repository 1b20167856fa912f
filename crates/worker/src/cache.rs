//! The contract cache: worker-local, non-replicated key/value data per contract, with expiry
//! and a per-contract quota. Entries never leak between contracts.

use std::collections::HashMap;

use parking_lot::Mutex;
use phat_primitives::AccountId;

/// Bytes a contract may keep in the cache unless configured otherwise.
pub const DEFAULT_CACHE_QUOTA: usize = 1 << 20;

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
    contracts: Mutex<HashMap<AccountId, ContractCache>>,
}

impl Cache {
    /// A cache giving each contract `quota` bytes.
    pub fn new(quota: usize) -> Self {
        Self {
            quota,
            contracts: Mutex::new(HashMap::new()),
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
        let mut all = self.contracts.lock();
        let c = all.entry(*contract).or_default();
        let old = c
            .entries
            .get(key)
            .map(|e| key.len() + e.value.len())
            .unwrap_or(0);
        let size = key.len() + value.len();
        if c.used - old + size > self.quota {
            c.drop_expired(now);
            let old = c
                .entries
                .get(key)
                .map(|e| key.len() + e.value.len())
                .unwrap_or(0);
            if c.used - old + size > self.quota {
                return Err(QuotaExceeded {
                    quota: self.quota,
                    used: c.used,
                    size,
                });
            }
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
    }

    /// Makes `key` expire `secs` seconds from `now`.
    pub fn set_expiration(&self, contract: &AccountId, key: &[u8], secs: u64, now: u64) {
        if let Some(e) = self
            .contracts
            .lock()
            .get_mut(contract)
            .and_then(|c| c.entries.get_mut(key))
        {
            e.expires_at = Some(now.saturating_add(secs));
        }
    }

    /// The value under `key`, unless expired.
    pub fn get(&self, contract: &AccountId, key: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut all = self.contracts.lock();
        let c = all.get_mut(contract)?;
        match c.entries.get(key) {
            Some(e) if e.expires_at.is_some_and(|t| t <= now) => {
                c.remove(key);
                None
            }
            Some(e) => Some(e.value.clone()),
            None => None,
        }
    }

    /// Removes `key`, returning its value unless it had expired.
    pub fn remove(&self, contract: &AccountId, key: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut all = self.contracts.lock();
        let e = all.get_mut(contract)?.remove(key)?;
        if e.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        Some(e.value)
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
}
