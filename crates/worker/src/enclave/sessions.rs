//! Query sessions: keys agreed once per client, counters used once within a replay window,
//! a bounded table evicted in expiry order.

use super::*;

/// Most sessions a worker keeps open.
pub(super) const MAX_SESSIONS: usize = 100_000;
/// How far behind the highest counter a session message may arrive (out of order).
pub(super) const REPLAY_WINDOW: u64 = 1024;
// The window is whole words of bits, shifted by words.
const _: () = assert!(REPLAY_WINDOW > 0 && REPLAY_WINDOW.is_multiple_of(64));

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
pub(super) struct ReplayWindow {
    highest: u64,
    /// Bit `d` is set when counter `highest - d` was seen.
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// A window that has seen counter 0 (the session's opening message).
    pub(super) fn new() -> Self {
        let mut bits = [0; (REPLAY_WINDOW / 64) as usize];
        bits[0] = 1;
        Self { highest: 0, bits }
    }

    pub(super) fn bit(&self, d: u64) -> bool {
        self.bits[(d / 64) as usize] >> (d % 64) & 1 == 1
    }

    pub(super) fn set(&mut self, d: u64) {
        self.bits[(d / 64) as usize] |= 1 << (d % 64);
    }

    /// Records `counter`; false if it was seen or is too old to tell.
    pub(super) fn accept(&mut self, counter: u64) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
