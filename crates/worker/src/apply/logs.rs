//! Applying what feeds and guards a contract's log: a worker's [`QueryLogsEntry`] (the records
//! of queries it ran, stored by every worker) and a deployer's `Call::LogReaders`.
//!
//! A query log entry is checked as the other entries workers make: signed by a member's vote
//! key in the current key epoch, opened with that epoch's key on a cluster that encrypts,
//! used once (its nonce goes in the nonce table under [`QueryLogsEntry::account`]) and bounded.
//! Its records are stored, never executed, and reach no state but the nonce.

use std::collections::HashMap;

use parity_scale_codec::{DecodeAll, Encode};
use phat_primitives::protocol::{
    LedgerEntry, LogRecord, QueryLogsEntry, MAX_LOG_READERS, MAX_QUERY_LOG_BYTES,
    MAX_QUERY_LOG_RECORDS, MAX_REQUEST_TTL_MS,
};
use phat_primitives::{blake2_256, AccountId, Hash, Mode, StateKey};

use phat_primitives::Refusal;

use super::{check_vote, nonce_expired, Applied, BatchView, Local, Reply, Vote};
use crate::state::Layered;
use crate::{ApplyError, Worker, WorkerError};

/// The longest line a query log record may hold (what the pink host keeps of a line).
pub(crate) const MAX_RECORD_MESSAGE: usize = 8 * 1024;
// One record of the longest line fits in an entry.
const _: () = assert!(MAX_RECORD_MESSAGE < phat_primitives::protocol::MAX_QUERY_LOG_BYTES);

/// Stores the records of `e`, or refuses it.
pub(super) fn apply_query_logs(
    worker: &Worker,
    view: &BatchView<'_>,
    nonces: &mut HashMap<(AccountId, u64), u64>,
    local: &Local,
    entry: &LedgerEntry,
    e: &QueryLogsEntry,
) -> Result<Applied, WorkerError> {
    let caller = QueryLogsEntry::account(&e.worker);
    let reply = Reply::to(entry, None)
        .about(Hash(blake2_256(&e.encode())))
        .for_caller(caller);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    if let Some((kind, message)) = check_vote(
        local,
        Vote {
            epoch: e.epoch,
            by: &e.worker,
            domain: QueryLogsEntry::VOTE_DOMAIN,
            payload: &e.signed_payload(),
            signature: &e.signature.0,
        },
    ) {
        return Ok(refuse(kind, message));
    }
    if e.expires_at < entry.timestamp {
        return Ok(refuse(
            Refusal::Expired,
            format!(
                "the entry expired at {} (now {})",
                e.expires_at, entry.timestamp
            ),
        ));
    }
    if e.expires_at > entry.timestamp.saturating_add(MAX_REQUEST_TTL_MS) {
        return Ok(refuse(
            Refusal::ExpiryTooFar,
            format!("the entry expires at {}, too far ahead", e.expires_at),
        ));
    }
    // A copy appended again (by whoever holds a ledger token) is a replay, as a request's.
    let key = (caller, e.nonce);
    let used = match nonces.get(&key) {
        Some(expiry) => Some(*expiry),
        None => view.snap.nonce_expiry(&caller, e.nonce)?,
    };
    if used.is_some_and(|expiry| !nonce_expired(expiry, entry.timestamp)) {
        return Ok(refuse(
            Refusal::Replayed,
            format!(
                "query log entry {} of {} was already applied",
                e.nonce, e.worker
            ),
        ));
    }
    let plain = if worker.inner.genesis.encryption {
        let opened = worker.inner.enclave.keys().epoch(e.epoch).map(|k| {
            phat_crypto::entry::open_entry_data(
                &k.secret,
                &QueryLogsEntry::sealed_name(&e.worker, e.nonce),
                &e.records.0,
            )
        });
        match opened {
            Some(Ok(p)) => p,
            _ => {
                return Ok(refuse(
                    Refusal::BadRecords,
                    "the records are not sealed for this cluster".into(),
                ))
            }
        }
    } else {
        e.records.0.clone()
    };
    let records = match check_records(&plain) {
        Ok(r) => r,
        Err(why) => return Ok(refuse(Refusal::BadRecords, why)),
    };
    // Records of contracts that do not exist (any more) are dropped, not refused: a contract
    // may have been terminated after the query ran.
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let mut stored = Vec::with_capacity(records.len());
    for r in records {
        let exists = phat_runtime::StateRead::get(&state, &StateKey::Contract(r.contract))
            .map_err(ApplyError::state_read(entry.seq))?
            .is_some();
        if exists {
            stored.push(r);
        }
    }
    nonces.insert(key, e.expires_at);
    let mut applied = reply.accept((stored.len() as u32).encode());
    applied.nonce = Some((caller, e.nonce, e.expires_at));
    applied.logs = stored;
    Ok(applied)
}

/// The records of an entry, if they are what a worker's outbox makes: at most
/// [`MAX_QUERY_LOG_RECORDS`] in at most [`MAX_QUERY_LOG_BYTES`], each from a query, with a
/// bounded line.
pub(crate) fn check_records(plain: &[u8]) -> Result<Vec<LogRecord>, String> {
    // The encoding adds a few bytes per record to what the outbox counts.
    let max_encoded = MAX_QUERY_LOG_BYTES + 16 * MAX_QUERY_LOG_RECORDS;
    if plain.len() > max_encoded {
        return Err(format!(
            "{} bytes of records, more than {max_encoded}",
            plain.len()
        ));
    }
    let records = Vec::<LogRecord>::decode_all(&mut &plain[..])
        .map_err(|e| format!("the records do not decode: {e}"))?;
    if records.len() > MAX_QUERY_LOG_RECORDS {
        return Err(format!(
            "{} records, more than {MAX_QUERY_LOG_RECORDS}",
            records.len()
        ));
    }
    for r in &records {
        if r.origin != Mode::Query || r.seq.is_some() {
            return Err("a record that is not a query's".into());
        }
        if r.message.len() > MAX_RECORD_MESSAGE || r.level.len() > 16 {
            return Err("a record longer than a worker makes".into());
        }
    }
    Ok(records)
}

/// Sets who besides the deployer reads a contract's log.
pub(super) fn apply_log_readers(
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    caller: AccountId,
    contract: AccountId,
    readers: &[AccountId],
    reply: &Reply,
) -> Result<Applied, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let info = phat_runtime::StateRead::get(&state, &StateKey::Contract(contract))
        .map_err(ApplyError::state_read(entry.seq))?;
    if let Err((kind, message)) =
        crate::triggers::deployer_only(info, contract, caller, "log readers")
    {
        return Ok(reply.refuse(kind, message));
    }
    let mut readers = readers.to_vec();
    readers.sort();
    readers.dedup();
    if readers.len() > MAX_LOG_READERS {
        return Ok(reply.refuse(
            Refusal::TooManyReaders,
            format!("{} log readers, more than {MAX_LOG_READERS}", readers.len()),
        ));
    }
    let mut applied = reply.accept(Vec::new());
    applied.changes.insert(
        StateKey::LogReaders(contract),
        (!readers.is_empty()).then(|| readers.encode()),
    );
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(origin: Mode, seq: Option<u64>, message: String) -> LogRecord {
        LogRecord {
            contract: AccountId([1; 32]),
            level: "info".into(),
            origin,
            seq,
            timestamp: 5,
            message,
        }
    }

    #[test]
    fn only_bounded_query_records_pass() {
        let ok = vec![record(Mode::Query, None, "fine".into())];
        assert_eq!(check_records(&ok.encode()).unwrap(), ok);
        let command = vec![record(Mode::Command, Some(3), "forged".into())];
        assert!(check_records(&command.encode()).is_err());
        let seq = vec![record(Mode::Query, Some(3), "forged".into())];
        assert!(check_records(&seq.encode()).is_err());
        let long = vec![record(
            Mode::Query,
            None,
            "x".repeat(MAX_RECORD_MESSAGE + 1),
        )];
        assert!(check_records(&long.encode()).is_err());
        let many = vec![record(Mode::Query, None, String::new()); MAX_QUERY_LOG_RECORDS + 1];
        assert!(check_records(&many.encode()).is_err());
        assert!(check_records(&[1, 2, 3]).is_err());
        // Trailing bytes after the records are not the outbox's making either.
        let mut trailing = ok.encode();
        trailing.push(0);
        assert!(check_records(&trailing).is_err());
    }
}
