//! Reading and following the log: ordered consumers, the reads workers follow the log with,
//! each entry's clamped timestamp, the head and trimming.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures::{FutureExt, StreamExt};
use phat_primitives::Timestamp;
use tokio::time::Instant;

use super::clock::Clock;
use super::{unavailable, Feed, Inner, Raw};
use crate::{LedgerEntry, LedgerError, Seq};

impl Inner {
    /// The log stream's current state (first and last seq).
    async fn log_state(&self) -> Result<stream::State, LedgerError> {
        Ok(self
            .log
            .get_info()
            .await
            .map_err(|e| self.failed("cannot read the log's state", e))?
            .state)
    }

    /// True when `feed` was made over the current connection.
    fn current(&self, feed: &Feed) -> bool {
        feed.connection == self.connections.load(Ordering::Acquire)
    }

    async fn open_feed(&self, from: Seq, headers_only: bool) -> Result<Feed, LedgerError> {
        let consumer = self
            .log
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: self.subject.clone(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                headers_only,
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("cannot create a consumer on the log", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| self.failed("cannot follow the log", e))?;
        Ok(Feed {
            next: from,
            messages,
            connection: self.connections.load(Ordering::Acquire),
        })
    }

    /// The next message of `feed` if it comes before `deadline` (`None` otherwise).
    async fn next_raw(
        &self,
        feed: &mut Feed,
        deadline: Option<Instant>,
    ) -> Result<Option<Raw>, LedgerError> {
        let item = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, feed.messages.next()).await {
                Ok(item) => item,
                Err(_) => return Ok(None),
            },
            None => match feed.messages.next().now_or_never() {
                Some(item) => item,
                None => return Ok(None),
            },
        };
        let message = match item {
            None => return Err(unavailable("the log consumer ended")),
            Some(Err(e)) => return Err(self.failed("reading the log", e)),
            Some(Ok(message)) => message,
        };
        let info = message
            .info()
            .map_err(|e| LedgerError::Protocol(format!("bad log message metadata: {e}")))?;
        let seq = info.stream_sequence;
        let stored = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        feed.next = seq + 1;
        Ok(Some((seq, stored, message.payload.to_vec())))
    }

    /// The clamped timestamp of `seq`, which is in the log.
    pub(super) async fn timestamp(
        &self,
        clock: &mut Clock,
        seq: Seq,
    ) -> Result<Timestamp, LedgerError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(ts) = clock.get(seq) {
                return Ok(ts);
            }
            if seq < clock.base {
                // Older than the memory: recompute from the start of the log.
                *clock = Clock::new();
            }
            if clock.feed.as_ref().is_some_and(|f| !self.current(f)) {
                clock.feed = None;
            }
            let feed = match clock.feed {
                Some(ref mut feed) => feed,
                None => clock.feed.insert(self.open_feed(clock.next, true).await?),
            };
            match self.next_raw(feed, Some(deadline)).await {
                Ok(Some((s, stored, _))) => {
                    clock.push(s, stored);
                    if clock.base > seq {
                        return Err(LedgerError::Trimmed { first: clock.base });
                    }
                }
                Ok(None) => {
                    clock.feed = None;
                    return Err(unavailable(format!(
                        "timed out waiting for the time of seq {seq}"
                    )));
                }
                Err(e) => {
                    clock.feed = None;
                    return Err(e);
                }
            }
        }
    }

    /// Reads raw messages `from..` (see [`Ledger::read`]).
    async fn read_raw(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Raw>, LedgerError> {
        let mut cursor = self.cursor.lock().await;
        if cursor.as_ref().map(|c| c.next) != Some(from)
            || cursor.as_ref().is_some_and(|c| !self.current(c))
        {
            *cursor = None;
        }
        let feed = match *cursor {
            Some(ref mut feed) => feed,
            None => cursor.insert(self.open_feed(from, false).await?),
        };
        let head = self.log_state().await?.last_sequence;
        let mut out: Vec<Raw> = Vec::new();
        let result = async {
            if head >= from {
                // Entries exist: take them up to `max` (or the head), however long they take.
                let target = head.min(from + max as u64 - 1);
                let deadline = Instant::now() + self.timeout;
                while out.last().map_or(from, |r| r.0 + 1) <= target {
                    match self.next_raw(feed, Some(deadline)).await? {
                        Some(raw) => out.push(raw),
                        None => {
                            return Err(unavailable(format!(
                                "timed out reading seq {} of the log",
                                out.last().map_or(from, |r| r.0 + 1)
                            )))
                        }
                    }
                }
            } else {
                // None yet: wait up to `wait` for the first.
                match self.next_raw(feed, Some(Instant::now() + wait)).await? {
                    Some(raw) => out.push(raw),
                    None => return Ok(()),
                }
            }
            // Then whatever else has already arrived.
            while out.len() < max {
                match self.next_raw(feed, None).await? {
                    Some(raw) => out.push(raw),
                    None => break,
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            *cursor = None;
            return Err(e);
        }
        // The stream denies deletes, so a gap means the log was trimmed below `from`.
        for (i, raw) in out.iter().enumerate() {
            if raw.0 != from + i as u64 {
                *cursor = None;
                return Err(LedgerError::Trimmed { first: raw.0 });
            }
        }
        Ok(out)
    }

    /// See [`crate::Ledger::read`].
    pub(super) async fn read(
        &self,
        from: Seq,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let inner = self;
        let from = from.max(1);
        if max == 0 {
            return Ok(Vec::new());
        }
        let raw = inner.read_raw(from, max, wait).await?;
        let mut clock = inner.clock.lock().await;
        for (seq, stored, _) in &raw {
            if *seq == clock.next {
                clock.push(*seq, *stored);
            }
        }
        let mut out = Vec::with_capacity(raw.len());
        for (seq, _, payload) in raw {
            let timestamp = inner.timestamp(&mut clock, seq).await?;
            out.push(LedgerEntry {
                seq,
                timestamp,
                payload,
            });
        }
        Ok(out)
    }

    /// See [`crate::Ledger::head`].
    pub(super) async fn head(&self) -> Result<Seq, LedgerError> {
        Ok(self.log_state().await?.last_sequence)
    }

    /// See [`crate::Ledger::first_seq`].
    pub(super) async fn first_seq(&self) -> Result<Seq, LedgerError> {
        // An empty stream reports first = last + 1.
        Ok(self.log_state().await?.first_sequence.max(1))
    }

    /// See [`crate::Ledger::trim`].
    pub(super) async fn trim(&self, below: Seq) -> Result<(), LedgerError> {
        let inner = self;
        let head = self.head().await?;
        let below = below.min(head);
        if below <= 1 {
            return Ok(());
        }
        // Purge keeps `below` and everything after it.
        inner
            .log
            .purge()
            .sequence(below)
            .await
            .map_err(|e| inner.failed("cannot trim the log", e))?;
        Ok(())
    }
}
