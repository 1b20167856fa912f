//! Appending to the log: deduplicated by payload hash, retried through a stream leader's
//! failover, answered with the entry's seq and clamped timestamp.

use std::time::Duration;

use tokio::time::Instant;

use super::{unavailable, Inner};
use crate::{Appended, LedgerError};

/// How long an append keeps retrying while the stream has no leader (a JetStream leader
/// election after a server died took up to 9 s with nats-server 2.9.10 here).
const FAILOVER_WAIT: Duration = Duration::from_secs(15);

/// How long an append waits for a lost connection to come back before failing.
const RECONNECT_GRACE: Duration = Duration::from_secs(1);

impl Inner {
    /// True once the client is connected, if it is or becomes so within `grace`.
    async fn reconnects_within(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            if self.client.connection_state() == async_nats::connection::State::Connected {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// See [`crate::Ledger::append`].
    pub(super) async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        let inner = self;
        if payload.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: payload.len(),
                max: inner.max_payload,
            });
        }
        let id = hex::encode(phat_primitives::blake2_256(&payload));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let payload = bytes::Bytes::from(payload);
        // While a stream leader is being elected (a server died) publishes fail; retrying
        // with the same `Nats-Msg-Id` is safe, since the stream stores a payload once.
        let deadline = Instant::now() + FAILOVER_WAIT;
        let ack = loop {
            // Cut off from every NATS server, a worker says so at once: a client then sends
            // its command to another worker instead of waiting out the failover here.
            if !inner.reconnects_within(RECONNECT_GRACE).await {
                return Err(unavailable(
                    "this worker is not connected to any NATS server; send the command to \
                     another worker",
                ));
            }
            let attempt = async {
                inner
                    .js
                    .publish_with_headers(inner.subject.clone(), headers.clone(), payload.clone())
                    .await
                    .map_err(|e| inner.failed("cannot publish to the log", e))?
                    .await
                    .map_err(|e| inner.failed("the log did not acknowledge the append", e))
            };
            match attempt.await {
                Ok(ack) => break ack,
                Err(e @ LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                    tracing::debug!("append failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        };
        if ack.duplicate {
            tracing::debug!(seq = ack.sequence, "append deduplicated by Nats-Msg-Id");
        }
        // The entry is in the log now: failing here would tell the client a command failed
        // that every worker applies. Reading its time back needs a consumer, which fails
        // while a new stream leader is elected; wait that out as the publish does.
        let mut clock = inner.clock.lock().await;
        let timestamp = loop {
            match inner.timestamp(&mut clock, ack.sequence).await {
                Ok(timestamp) => break timestamp,
                Err(e @ LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                    tracing::debug!(
                        seq = ack.sequence,
                        "reading an append's time, retrying: {e}"
                    );
                    clock.feed = None;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Appended {
            seq: ack.sequence,
            timestamp,
        })
    }
}
