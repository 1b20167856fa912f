//! Contracts' logs: reading a page, following new records as a stream, and setting who may
//! read them.

use std::time::Duration;

use futures::{Stream, StreamExt};
use parity_scale_codec::DecodeAll;
use phat_primitives::protocol::{
    Call, CallResult, LogEntry, LogFilter, LogPage, Submitted, MAX_LOG_PAGE,
};
use phat_primitives::AccountId;

use crate::{Client, ClientError, Signer};

impl Client {
    /// One page of a contract's log (`signer` must be its deployer or one of the readers it
    /// allowed): the records `filter` asks for with their index, and the index the
    /// contract's next record will get. A signed query, sealed on a cluster that encrypts.
    pub async fn read_logs(
        &self,
        signer: &Signer,
        id: &AccountId,
        filter: LogFilter,
    ) -> Result<(Vec<LogEntry>, u64), ClientError> {
        let call = Call::Logs {
            contract: *id,
            filter,
        };
        let floor = self.floor.load(std::sync::atomic::Ordering::Relaxed);
        let answer = self
            .query(signer, call, (floor > 0).then_some(floor))
            .await?;
        let data = match answer.result {
            CallResult::Ok(out) => out.data.0,
            CallResult::Err(e) => {
                return Err(ClientError::Api {
                    status: 400,
                    kind: e.kind,
                    message: e.message,
                })
            }
            CallResult::Sealed(_) => {
                return Err(ClientError::Decode("a log page still sealed".into()))
            }
        };
        let page = LogPage::decode_all(&mut &data[..])
            .map_err(|e| ClientError::Decode(format!("a log page: {e}")))?;
        if page.records.len() > MAX_LOG_PAGE as usize {
            return Err(ClientError::Decode(format!(
                "a log page of {} records, more than {MAX_LOG_PAGE}",
                page.records.len()
            )));
        }
        let entries = page
            .records
            .into_iter()
            .map(|(index, record)| LogEntry::new(record, Some(index)))
            .collect();
        Ok((entries, page.next))
    }

    /// The first page of a contract's log (up to 1,000 records, oldest first).
    pub async fn logs(
        &self,
        signer: &Signer,
        id: &AccountId,
    ) -> Result<Vec<LogEntry>, ClientError> {
        Ok(self.read_logs(signer, id, LogFilter::default()).await?.0)
    }

    /// Sets who besides the deployer (`signer`) may read a contract's log (at most 16
    /// accounts; none to allow only the deployer); answers once the receipt exists.
    pub async fn set_log_readers(
        &self,
        signer: &Signer,
        id: &AccountId,
        readers: Vec<AccountId>,
    ) -> Result<Submitted, ClientError> {
        self.submit(
            signer,
            Call::LogReaders {
                contract: *id,
                readers,
            },
            true,
        )
        .await
    }

    /// The records of a contract's log that `filter` selects, then new ones as they are
    /// stored: each read waits up to 20 s for a record past the last one seen. `filter.tail`
    /// starts from the last `limit` records.
    pub fn follow_logs<'a>(
        &'a self,
        signer: &'a Signer,
        id: AccountId,
        filter: LogFilter,
    ) -> impl Stream<Item = Result<LogEntry, ClientError>> + 'a {
        const WAIT_MS: u32 = 20_000;
        let state = (filter, false);
        futures::stream::unfold(Some(state), move |state| async move {
            let (mut filter, mut failed) = state?;
            loop {
                match self.read_logs(signer, &id, filter.clone()).await {
                    Ok((entries, next)) => {
                        failed = false;
                        // Follow from what this page ends at (or, when it is empty, from where
                        // the log is now), oldest first.
                        filter.after = entries
                            .last()
                            .and_then(|e| e.index)
                            .or_else(|| next.checked_sub(1))
                            .or(filter.after);
                        filter.tail = false;
                        filter.wait_ms = WAIT_MS;
                        if !entries.is_empty() {
                            let items: Vec<_> = entries.into_iter().map(Ok).collect();
                            return Some((futures::stream::iter(items), Some((filter, failed))));
                        }
                    }
                    // One failure is said and retried after a pause; a second in a row ends
                    // the stream.
                    Err(e) if !failed => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return Some((futures::stream::iter(vec![Err(e)]), Some((filter, true))));
                    }
                    Err(e) => return Some((futures::stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
    }
}
