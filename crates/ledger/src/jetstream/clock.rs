//! The log's clamped timestamps: `ts(n) = max(stored(n), ts(n - 1))`, computed from the log
//! itself so every reader agrees, with the last [`CLOCK_MEMORY`] remembered.

use std::collections::VecDeque;

use phat_primitives::Timestamp;

use super::Feed;
use crate::Seq;

/// How many recent timestamps the ledger remembers (8 bytes each); asking for an older one
/// recomputes the clamp from the start of the log.
pub const CLOCK_MEMORY: usize = 1 << 20;

/// The clamped timestamps: `ts(n) = max(stored(n), ts(n - 1))`.
pub(super) struct Clock {
    /// The first seq whose timestamp is not known yet.
    pub(super) next: Seq,
    /// `ts(next - 1)` (0 before the first entry).
    pub(super) last: Timestamp,
    /// The seq of `ring[0]`.
    pub(super) base: Seq,
    pub(super) ring: VecDeque<Timestamp>,
    /// A headers-only ordered consumer at or below `next`.
    pub(super) feed: Option<Feed>,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self {
            next: 1,
            last: 0,
            base: 1,
            ring: VecDeque::new(),
            feed: None,
        }
    }

    pub(super) fn get(&self, seq: Seq) -> Option<Timestamp> {
        if seq >= self.base && seq < self.next {
            self.ring.get((seq - self.base) as usize).copied()
        } else {
            None
        }
    }

    /// Records the stored time of `seq`, which must be `next` (or later, after a trimmed start).
    pub(super) fn push(&mut self, seq: Seq, stored: Timestamp) {
        if seq < self.next {
            return;
        }
        if seq > self.next {
            // The log starts above `next` (trimmed): the clamp starts at its first entry.
            self.ring.clear();
            self.base = seq;
            self.next = seq;
        }
        let ts = stored.max(self.last);
        self.ring.push_back(ts);
        if self.ring.len() > CLOCK_MEMORY {
            self.ring.pop_front();
            self.base += 1;
        }
        self.next += 1;
        self.last = ts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_clamps_and_remembers() {
        let mut c = Clock::new();
        c.push(1, 100);
        c.push(2, 90);
        c.push(3, 120);
        assert_eq!(
            (c.get(1), c.get(2), c.get(3), c.get(4)),
            (Some(100), Some(100), Some(120), None)
        );
        c.push(2, 0); // already known: ignored
        assert_eq!(c.get(2), Some(100));
        let mut t = Clock::new();
        t.push(5, 50); // a trimmed log starts at 5
        assert_eq!((t.get(4), t.get(5)), (None, Some(50)));
    }
}
