//! The cluster's log server, worker side: the records of the queries this worker ran wait in
//! an [`Outbox`] and go to every worker as signed [`QueryLogsEntry`]s four times a second, so a
//! contract's log (commands, triggers and queries alike) reads the same from any worker; and
//! [`read`], which answers a deployer's (or an allowed reader's) `Call::Logs` from the store.
//!
//! Everything here is bounded: the outbox holds at most [`OUTBOX_RECORDS`] records and
//! [`OUTBOX_BYTES`] bytes (what does not fit is counted and said in a `dropped` line), one
//! entry carries at most [`MAX_QUERY_LOG_RECORDS`] records and [`MAX_QUERY_LOG_BYTES`] bytes,
//! one contract at most [`PER_CONTRACT`] records of it, and the store keeps
//! [`phat_store::LOG_RETENTION`] records per contract.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use parity_scale_codec::{Decode, Encode};
use phat_primitives::protocol::{
    Bytes, LedgerCommand, LogFilter, LogPage, LogRecord, QueryLogsEntry, MAX_LOG_WAIT_MS,
    MAX_QUERY_LOG_BYTES, MAX_QUERY_LOG_RECORDS, MAX_REQUEST_TTL_MS,
};
use phat_primitives::{AccountId, ContractInfo, Hash, Mode, StateKey};

use phat_store::StoreError;

use crate::{ApplyError, Worker, WorkerError};

/// The most records waiting in the outbox.
pub(crate) const OUTBOX_RECORDS: usize = 4096;

/// The most bytes (record text) waiting in the outbox.
pub(crate) const OUTBOX_BYTES: usize = 2 * 1024 * 1024;

/// The most records of one contract in one entry, so a noisy contract does not crowd out
/// the others.
pub(crate) const PER_CONTRACT: usize = MAX_QUERY_LOG_RECORDS / 2;

/// How often the outbox is sent: with the entry's bounds, what one worker adds to the ledger
/// is at most 4 entries, 1,024 records and 1 MiB a second.
const SEND_EVERY: Duration = Duration::from_millis(250);

/// How long an entry stays valid after it is made (ms).
const ENTRY_TTL_MS: u64 = 10 * 60 * 1000;

const _: () = assert!(ENTRY_TTL_MS <= MAX_REQUEST_TTL_MS);
const _: () = assert!(PER_CONTRACT <= MAX_QUERY_LOG_RECORDS);

/// Query records waiting to be sent, and what did not fit, per contract.
#[derive(Default)]
pub(crate) struct Outbox {
    records: VecDeque<LogRecord>,
    bytes: usize,
    dropped: BTreeMap<AccountId, u64>,
}

impl Outbox {
    /// Queues the records of one query (all or none: a query's lines belong together).
    pub(crate) fn push(&mut self, mut records: Vec<LogRecord>) {
        for r in &mut records {
            truncate(&mut r.message, crate::apply::MAX_RECORD_MESSAGE);
        }
        let bytes: usize = records.iter().map(record_size).sum();
        if self.records.len() + records.len() > OUTBOX_RECORDS || self.bytes + bytes > OUTBOX_BYTES
        {
            for r in records {
                *self.dropped.entry(r.contract).or_default() += 1;
            }
            return;
        }
        self.bytes += bytes;
        self.records.extend(records);
    }

    /// Takes what one entry carries: the `dropped` lines first, then queued records in order
    /// within the entry's bounds; records of a contract past [`PER_CONTRACT`] stay queued.
    pub(crate) fn take(&mut self, now: u64) -> Vec<LogRecord> {
        let mut out: Vec<LogRecord> = Vec::new();
        let mut bytes = 0;
        let mut per: BTreeMap<AccountId, usize> = BTreeMap::new();
        for (contract, n) in std::mem::take(&mut self.dropped) {
            let line = LogRecord {
                contract,
                level: "warn".into(),
                origin: Mode::Query,
                seq: None,
                timestamp: now,
                message: format!(
                    "{n} query log records dropped: this worker's log outbox was full"
                ),
            };
            bytes += record_size(&line);
            *per.entry(contract).or_default() += 1;
            out.push(line);
        }
        let mut kept = VecDeque::new();
        while let Some(r) = self.records.pop_front() {
            let size = record_size(&r);
            let n = per.entry(r.contract).or_default();
            if out.len() >= MAX_QUERY_LOG_RECORDS || bytes + size > MAX_QUERY_LOG_BYTES {
                kept.push_back(r);
                kept.extend(self.records.drain(..));
                break;
            }
            if *n >= PER_CONTRACT {
                kept.push_back(r);
                continue;
            }
            *n += 1;
            bytes += size;
            self.bytes -= size;
            out.push(r);
        }
        self.records = kept;
        debug_assert!(out.len() <= MAX_QUERY_LOG_RECORDS);
        out
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dropped.is_empty()
    }
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// What a record costs in an entry (its text and a fixed overhead).
fn record_size(r: &LogRecord) -> usize {
    r.message.len() + r.level.len() + 64
}

/// Sends what the outbox holds, one entry every [`SEND_EVERY`], until the worker stops.
pub(crate) async fn send(worker: Worker) {
    let mut tick = tokio::time::interval(SEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if worker.inner.query_logs.lock().is_empty() {
            continue;
        }
        if let Err(e) = send_once(&worker).await {
            tracing::warn!(worker = %worker.inner.config.name, "sending query log records: {e}");
        }
    }
}

/// Makes and appends one entry of what the outbox holds.
async fn send_once(worker: &Worker) -> Result<(), WorkerError> {
    let inner = &worker.inner;
    let me = Hash(worker.worker_key());
    let epoch = inner.enclave.keys().held();
    let Some(keys) = inner.enclave.keys().epoch(epoch) else {
        return Ok(());
    };
    let now = crate::now_ms();
    let records = inner.query_logs.lock().take(now);
    if records.is_empty() {
        return Ok(());
    }
    let n = records.len();
    let nonce: u64 = rand::random();
    let plain = records.encode();
    debug_assert!(plain.len() <= MAX_QUERY_LOG_BYTES + 16 * MAX_QUERY_LOG_RECORDS);
    // On a cluster that encrypts, the ledger reads none of it: log lines may hold secrets.
    let sealed = if inner.genesis.encryption {
        phat_crypto::entry::seal_entry_data(
            &keys.secret,
            &QueryLogsEntry::sealed_name(&me, nonce),
            &plain,
        )
    } else {
        plain
    };
    let mut entry = QueryLogsEntry {
        worker: me,
        epoch,
        nonce,
        expires_at: now + ENTRY_TTL_MS,
        records: Bytes(sealed),
        signature: Bytes(Vec::new()),
    };
    entry.signature = Bytes(
        inner
            .enclave
            .vote_key
            .sign(QueryLogsEntry::VOTE_DOMAIN, &entry.signed_payload())
            .to_vec(),
    );
    inner
        .ledger
        .append(LedgerCommand::QueryLogs(entry).encode())
        .await
        .map_err(|e| ApplyError::QueryLogs {
            records: n,
            message: e.to_string(),
        })?;
    inner.metrics.query_log_records.inc_by(n as u64);
    Ok(())
}

/// Whether `caller` may read `contract`'s log: its deployer, or an account the deployer
/// allowed (`Call::LogReaders`).
pub(crate) fn may_read(
    snap: &phat_store::Snapshot,
    info: &ContractInfo,
    contract: &AccountId,
    caller: &AccountId,
) -> Result<bool, StoreError> {
    if info.deployer == *caller {
        return Ok(true);
    }
    Ok(readers(snap, contract)?.contains(caller))
}

/// Who besides the deployer reads `contract`'s log.
pub(crate) fn readers(
    snap: &phat_store::Snapshot,
    contract: &AccountId,
) -> Result<Vec<AccountId>, StoreError> {
    Ok(snap
        .get(&StateKey::LogReaders(*contract))?
        .and_then(|r| Vec::<AccountId>::decode(&mut &r[..]).ok())
        .unwrap_or_default())
}

/// The page of `contract`'s log `filter` asks for, as stored now.
pub(crate) fn page(
    store: &phat_store::Store,
    contract: &AccountId,
    filter: &LogFilter,
) -> Result<LogPage, StoreError> {
    let want = filter.page();
    let mut records = Vec::new();
    let next = store.scan_logs(contract, filter.after, filter.tail, |index, raw| {
        if let Ok(record) = LogRecord::decode(&mut &raw[..]) {
            if filter.matches(&record) {
                records.push((index, record));
            }
        }
        records.len() < want
    })?;
    if filter.tail {
        records.reverse();
    }
    debug_assert!(records.len() <= want);
    debug_assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
    Ok(LogPage { records, next })
}

/// Answers a log read: the page, or, when it is empty and the filter waits, the page once a
/// record of the contract is stored or the wait ends.
pub(crate) async fn read(
    worker: &Worker,
    contract: AccountId,
    filter: LogFilter,
) -> Result<LogPage, StoreError> {
    // Subscribed before the first read, so a record stored between the two is not missed.
    let mut live = worker.inner.logs.subscribe();
    let first = page(&worker.inner.store, &contract, &filter)?;
    if !first.records.is_empty() || filter.wait_ms == 0 {
        return Ok(first);
    }
    let wait = Duration::from_millis(filter.wait_ms.min(MAX_LOG_WAIT_MS).into());
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Err(_) => return Ok(first),
            Ok(Ok(r)) if r.contract != contract => continue,
            // A record of the contract, or records missed while lagging: read again.
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                let again = page(&worker.inner.store, &contract, &filter)?;
                if !again.records.is_empty() {
                    return Ok(again);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return Ok(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(contract: u8, message: &str) -> LogRecord {
        LogRecord {
            contract: AccountId([contract; 32]),
            level: "info".into(),
            origin: Mode::Query,
            seq: None,
            timestamp: 1,
            message: message.into(),
        }
    }

    #[test]
    fn a_full_outbox_counts_what_it_drops_and_says_so_first() {
        let mut outbox = Outbox::default();
        for _ in 0..OUTBOX_RECORDS {
            outbox.push(vec![line(1, "x")]);
        }
        outbox.push(vec![line(2, "late"), line(2, "later")]);
        let sent = outbox.take(9);
        assert_eq!(sent[0].contract, AccountId([2; 32]));
        assert_eq!(
            sent[0].message,
            "2 query log records dropped: this worker's log outbox was full"
        );
        assert_eq!(sent[0].timestamp, 9);
        // Contract 1 gets at most its share of an entry; the rest waits, nothing is lost.
        assert_eq!(sent.len(), 1 + PER_CONTRACT);
        assert_eq!(outbox.records.len(), OUTBOX_RECORDS - PER_CONTRACT);
    }

    #[test]
    fn an_entry_stays_within_its_bounds_and_shares_among_contracts() {
        let mut outbox = Outbox::default();
        for c in 0..8u8 {
            for i in 0..200 {
                outbox.push(vec![line(c, &format!("{i}"))]);
            }
        }
        let sent = outbox.take(0);
        assert_eq!(sent.len(), MAX_QUERY_LOG_RECORDS);
        // The first two contracts take their share each; the others wait for the next.
        for c in 0..2u8 {
            let theirs: Vec<_> = sent.iter().filter(|r| r.contract.0[0] == c).collect();
            assert_eq!(theirs.len(), PER_CONTRACT);
            assert_eq!(theirs[0].message, "0");
        }
        // Long lines: the byte bound ends the entry first.
        let mut outbox = Outbox::default();
        let big = "y".repeat(4000);
        for c in 0..8u8 {
            for _ in 0..50 {
                outbox.push(vec![line(c, &big)]);
            }
        }
        let sent = outbox.take(0);
        assert!(sent.len() < MAX_QUERY_LOG_RECORDS);
        assert!(sent.encode().len() <= MAX_QUERY_LOG_BYTES);
        // Everything goes out eventually, in order per contract, and the count of bytes
        // waiting comes back to zero.
        let mut all = sent;
        while !outbox.is_empty() {
            all.extend(outbox.take(0));
        }
        assert_eq!(all.len(), 400);
        assert_eq!(outbox.bytes, 0);
    }
}
