//! Resource accounting of a call: the per-call bounds (events, bytes written), each contract's
//! storage quota and the storage deposit, all deterministic (they depend only on the state and
//! the call's writes), checked where the host holds the bytes and once more at the call's end.

use parity_scale_codec::{Decode, Encode};
use phat_primitives::{Hash, StateKey};

use crate::error::{Bound, ExecError};
use crate::exec::TxState;

/// Resources one top-level call has used so far, nested calls included. Counts only grow:
/// a rolled-back nested call's events and writes were held by the host all the same.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub events: u64,
    pub event_bytes: u64,
    /// [`Overlay::written`](crate::Overlay::written) when the call started.
    pub written_at_start: u64,
    /// Bytes the call added to storage (negative: freed), as its deposit was settled.
    pub storage_growth: i64,
}

impl TxState {
    /// Adds `amount` to a per-call counter, failing when it would pass `limit`.
    pub(crate) fn consume(
        counter: &mut u64,
        amount: u64,
        limit: u64,
        bound: Bound,
    ) -> Result<(), ExecError> {
        let used = counter.saturating_add(amount);
        if used > limit {
            return Err(ExecError::LimitExceeded { bound, used, limit });
        }
        *counter = used;
        Ok(())
    }

    /// Fails when the call's writes so far, plus `more` bytes about to be written, pass
    /// [`crate::Limits::max_storage_written_per_call`]. Every host function checks it (in
    /// `charge_base`), storage writes before writing, and the call once more at its end.
    pub(crate) fn check_written(&self, more: u64) -> Result<(), ExecError> {
        let limit = self.config().limits.max_storage_written_per_call;
        let used = (self.overlay.written() - self.usage.written_at_start).saturating_add(more);
        if used > limit {
            return Err(ExecError::LimitExceeded {
                bound: Bound::StorageWrittenPerCall,
                used,
                limit,
            });
        }
        Ok(())
    }

    /// Accounts an event of `bytes` (data and topics) to this call.
    pub(crate) fn account_event(&mut self, bytes: usize) -> Result<(), ExecError> {
        let limits = &self.rt.config.limits;
        let (max_events, max_bytes) = (
            u64::from(limits.max_events_per_call),
            limits.max_event_bytes_per_call,
        );
        Self::consume(&mut self.usage.events, 1, max_events, Bound::EventsPerCall)?;
        Self::consume(
            &mut self.usage.event_bytes,
            bytes as u64,
            max_bytes,
            Bound::EventBytesPerCall,
        )
    }

    /// Charges the storage growth of the writes made since `cp` to each contract's usage
    /// record, failing when a contract would hold more than
    /// [`crate::Limits::max_contract_storage`]. Deterministic: it depends only on the state
    /// and the writes.
    pub(crate) fn settle_storage_usage(
        &mut self,
        cp: crate::state::Checkpoint,
    ) -> Result<(), ExecError> {
        let mut delta: std::collections::BTreeMap<Hash, i64> = Default::default();
        // Bytes the call adds to the whole state (any key but the usage records).
        let mut growth: i64 = 0;
        for (key, before) in self.overlay.first_writes_since(cp) {
            if matches!(key, StateKey::StorageUsage(_)) {
                continue;
            }
            let before_len = match before {
                Some(v) => v.as_ref().map(Vec::len),
                None => self
                    .overlay
                    .base_get(key)
                    .map_err(|e| ExecError::Backend(e.0))?
                    .as_ref()
                    .map(Vec::len),
            };
            let after_len = self
                .overlay
                .changes()
                .get(key)
                .and_then(|v| v.as_ref().map(Vec::len));
            let key_len = match key {
                StateKey::Storage(_, k) => k.len(),
                _ => 32,
            };
            let size = |v: Option<usize>| v.map_or(0, |l| (l + key_len) as i64);
            let d = size(after_len) - size(before_len);
            growth += d;
            if let StateKey::Storage(sid, _) = key {
                *delta.entry(*sid).or_default() += d;
            }
        }
        let limit = self.config().limits.max_contract_storage;
        for (sid, d) in delta {
            if d == 0 {
                continue;
            }
            let key = StateKey::StorageUsage(sid);
            let used = self
                .get(&key)?
                .and_then(|b| u64::decode(&mut &b[..]).ok())
                .unwrap_or(0);
            let now = if d > 0 {
                used.saturating_add(d as u64)
            } else {
                used.saturating_sub(d.unsigned_abs())
            };
            if d > 0 && now > limit {
                return Err(ExecError::LimitExceeded {
                    bound: Bound::ContractStorage,
                    used: now,
                    limit,
                });
            }
            self.overlay.set(key, (now != 0).then(|| now.encode()));
        }
        self.usage.storage_growth = growth;
        self.settle_deposit(growth)
    }

    /// Takes the storage deposit for `growth` bytes from the call's signer, or from the
    /// session's deposit payer when it has one (or gives it back when the call freed bytes).
    fn settle_deposit(&mut self, growth: i64) -> Result<(), ExecError> {
        let price = u128::from(self.config().limits.storage_deposit_per_byte);
        if growth == 0 || price == 0 {
            return Ok(());
        }
        let origin = self.deposit_payer.unwrap_or(self.origin);
        let balance = self.balance(&origin)?;
        let amount = price.saturating_mul(u128::from(growth.unsigned_abs()));
        if growth < 0 {
            self.set_balance(&origin, balance.saturating_add(amount));
            return Ok(());
        }
        if balance < amount {
            return Err(ExecError::LimitExceeded {
                bound: Bound::StorageDeposit,
                used: growth as u64,
                limit: u64::try_from(balance / price).unwrap_or(u64::MAX),
            });
        }
        self.set_balance(&origin, balance - amount);
        Ok(())
    }
}
