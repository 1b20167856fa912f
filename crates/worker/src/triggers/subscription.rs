//! Ethereum log subscriptions: a contract's handler runs once for each log an Ethereum
//! contract emits (matching topics, past a confirmation depth), in chain order, across the
//! cluster.
//!
//! The subscription table is replicated state ([`StateKey::Subscriptions`]), changed by the
//! deployer's commands. Every worker polls the subscription's RPC endpoint (through its egress
//! rules) from the table's cursor and reports the **first** log after it, as an
//! [`EthLogEntry`] authenticated with a MAC only a worker of the cluster can make
//! (`phat_crypto::entry`). Applying a report, every worker checks the MAC, that the log is
//! what the subscription follows and comes after the cursor, and counts the distinct workers
//! that reported the same log; at the subscription's quorum the handler runs once, the cursor
//! moves to the log, and later reports of it are refused. Since honest workers report only
//! the first log after the cursor, logs are delivered in chain order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use parity_scale_codec::Encode;
use phat_primitives::protocol::{
    EthLog, EthLogEntry, LedgerCommand, LogPosition, Subscription, SubscriptionDef, SubscriptionOp,
    SubscriptionTable,
};
use phat_primitives::{Hash, Refusal, StateKey};
use phat_store::Snapshot;
use serde_json::{json, Value};

use super::eth_rpc;
use crate::{Worker, WorkerError};

// The apply side of this kind: decisions on its ledger entries and commands.
#[allow(unused_imports, reason = "each slice uses a part of the apply kit")]
use crate::apply::kit::*;

/// Most subscriptions one contract may have.
pub const MAX_PER_CONTRACT: usize = 4;
/// Most subscriptions in a cluster.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// Most bytes of a delivered log's data.
pub const MAX_LOG_DATA: usize = 16 * 1024;
/// Most bytes of an RPC URL.
pub const MAX_URL: usize = 512;
/// Largest quorum (distinct workers reporting a log).
pub const MAX_QUORUM: u8 = 16;
/// Deepest confirmation depth.
pub const MAX_CONFIRMATIONS: u32 = 10_000;
/// Most blocks one `eth_getLogs` asks about.
const MAX_RANGE: u64 = 2_000;
/// Blocks under the confirmed head a worker looks at again on every poll, whatever an earlier
/// answer said.
const RESCAN_DEPTH: u64 = 64;
/// How often a worker polls each subscription.
const POLL: Duration = Duration::from_millis(500);
/// How long a worker waits before reporting a log again that was not delivered.
const REPORT_AGAIN: Duration = Duration::from_secs(5);
/// How long one poll of a subscription (its three RPC calls) may take.
const POLL_DEADLINE: Duration = Duration::from_secs(8);
// A poll's deadline leaves room for one RPC call to time out and be reported; a rescan stays
// within one range; a quorum never needs more workers than a cluster may have.
const _: () = assert!(POLL_DEADLINE.as_millis() > super::eth_rpc::RPC_TIMEOUT.as_millis());
const _: () = assert!(RESCAN_DEPTH < MAX_RANGE);
const _: () = assert!(MAX_QUORUM as usize <= phat_primitives::protocol::MAX_MEMBERS);
/// Subscriptions polled at once.
const CONCURRENT_POLLS: usize = 32;

/// The subscription table in `snap`.
pub(crate) fn stored(snap: &Snapshot) -> Result<SubscriptionTable, WorkerError> {
    crate::triggers::stored_table(snap, &StateKey::Subscriptions, "subscription table")
}

/// Why a subscription definition is refused (the receipt's message; kind `bad_subscription`).
pub(crate) fn check(def: &SubscriptionDef, max_gas: u64) -> Result<(), String> {
    if def.rpc_url.len() > MAX_URL {
        return Err(format!("the RPC URL is over {MAX_URL} bytes"));
    }
    match reqwest::Url::parse(&def.rpc_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return Err("the RPC URL is not an http(s) URL".into()),
    }
    if def.address.0.len() != 20 {
        return Err(format!(
            "an Ethereum address is 20 bytes, not {}",
            def.address.0.len()
        ));
    }
    if def.topics.len() > 4 {
        return Err(format!("at most 4 topics, not {}", def.topics.len()));
    }
    if def.handler.0.len() != 4 {
        return Err(format!(
            "the handler is a 4-byte selector, not {} bytes",
            def.handler.0.len()
        ));
    }
    if def.gas_limit == 0 || def.gas_limit > max_gas {
        return Err(format!(
            "a gas limit of {} is outside 1..={max_gas}",
            def.gas_limit
        ));
    }
    if def.quorum == 0 || def.quorum > MAX_QUORUM {
        return Err(format!(
            "a quorum of {} is outside 1..={MAX_QUORUM}",
            def.quorum
        ));
    }
    if def.confirmations > MAX_CONFIRMATIONS {
        return Err(format!(
            "{} confirmations, more than {MAX_CONFIRMATIONS}",
            def.confirmations
        ));
    }
    Ok(())
}

/// The storage deposit a subscription holds: its definition's encoded size, plus room for its
/// cursor and counters, at the cluster's price per byte (taken at `add`, given back at `rm`
/// or when the contract terminates).
pub(crate) fn deposit(def: &SubscriptionDef, price: u128) -> u128 {
    price.saturating_mul((def.encoded_size() + 64) as u128)
}

/// A deployer's change to its contract's subscriptions on `table` (the contract's stored
/// info is `info`, the deployer's balance `balance`, the deposit price per byte `price`): the
/// receipt's output and the deployer's new balance, or the refusal's kind and message.
pub(crate) fn change(
    table: &mut SubscriptionTable,
    info: Option<Vec<u8>>,
    payer: super::Payer,
    op: &SubscriptionOp,
    rules: super::Rules,
) -> super::Changed {
    let contract = op.contract();
    super::deployer_only(info, contract, payer.account, "subscriptions")?;
    match op {
        SubscriptionOp::Add { def, .. } => {
            check(def, rules.max_gas).map_err(|m| (Refusal::BadSubscription, m))?;
            super::add(table, contract, payer, deposit(def, rules.price), |id| {
                Subscription {
                    contract,
                    id,
                    def: def.clone(),
                    cursor: None,
                    delivered: 0,
                    votes: Vec::new(),
                }
            })
        }
        SubscriptionOp::Remove { id, .. } => {
            super::remove(table, contract, *id, payer, rules.price)
        }
    }
}

/// Why `log` is not one `s` delivers next (the refusal's message), if it is not.
pub(crate) fn unfit(s: &Subscription, log: &EthLog) -> Option<(Refusal, String)> {
    let def = &s.def;
    if log.chain_id != def.chain_id {
        return Some((
            Refusal::NotMatching,
            format!("chain {} is not {}", log.chain_id, def.chain_id),
        ));
    }
    if log.address != def.address {
        return Some((Refusal::NotMatching, "another contract's log".into()));
    }
    if log.topics.len() > 4 || log.data.0.len() > MAX_LOG_DATA {
        return Some((
            Refusal::NotMatching,
            format!(
                "a log has at most 4 topics and {MAX_LOG_DATA} bytes of data here ({} and {})",
                log.topics.len(),
                log.data.0.len()
            ),
        ));
    }
    for (i, want) in def.topics.iter().enumerate() {
        if let Some(want) = want {
            if log.topics.get(i) != Some(want) {
                return Some((Refusal::NotMatching, format!("topic {i} is not {want}")));
            }
        }
    }
    if log.position.block_number < def.from_block {
        return Some((
            Refusal::NotMatching,
            format!(
                "block {} is before the subscription's first, {}",
                log.position.block_number, def.from_block
            ),
        ));
    }
    if s.cursor.is_some_and(|c| log.position <= c) {
        return Some((
            Refusal::AlreadyDelivered,
            format!(
                "subscription {} delivered up to block {} log {}",
                s.id,
                s.cursor.map(|c| c.block_number).unwrap_or_default(),
                s.cursor.map(|c| c.log_index).unwrap_or_default()
            ),
        ));
    }
    None
}

/// The call data of `log`'s run: the handler's selector and its arguments
/// `(block_number: u64, log_index: u32, topics: Vec<[u8; 32]>, data: Vec<u8>)`.
pub(crate) fn run_data(def: &SubscriptionDef, log: &EthLog) -> Vec<u8> {
    let mut data = def.handler.0.clone();
    let topics: Vec<[u8; 32]> = log.topics.iter().map(|t| t.0).collect();
    (
        log.position.block_number,
        log.position.log_index,
        topics,
        &log.data.0,
    )
        .encode_to(&mut data);
    data
}

/// Polls every subscription's RPC endpoint and reports the first log after its cursor that
/// this worker has not reported.
pub(crate) struct LogReporter {
    me: Hash,
    /// Per subscription: the block this worker has looked at up to, for the current cursor.
    scanned: HashMap<u32, (Option<LogPosition>, u64)>,
    /// Per subscription: how many blocks one `eth_getLogs` asks about (halved when an answer
    /// fails, as a busy contract's logs may be over the endpoint's or the egress's limits).
    ranges: HashMap<u32, u64>,
    reported: HashMap<(u32, LogPosition, Hash), Instant>,
}

impl LogReporter {
    /// The reporter of the worker whose identity key is `me`.
    pub(crate) fn new(me: [u8; 32]) -> Self {
        Self {
            me: Hash(me),
            scanned: HashMap::new(),
            ranges: HashMap::new(),
            reported: HashMap::new(),
        }
    }
}

impl super::proposer::Proposer for LogReporter {
    const EVERY: Duration = POLL;

    async fn round(&mut self, worker: &Worker, snap: Snapshot, _now: phat_primitives::Timestamp) {
        let Ok(table) = stored(&snap) else {
            return;
        };
        self.reported.retain(|_, at| at.elapsed() < REPORT_AGAIN);
        self.scanned
            .retain(|id, _| table.subscriptions.iter().any(|s| s.id == *id));
        self.ranges
            .retain(|id, _| table.subscriptions.iter().any(|s| s.id == *id));
        // Polled concurrently, each bounded in time, so that a slow or silent endpoint of one
        // subscription delays the others by at most one poll's deadline.
        let mut polls = Vec::new();
        for s in table.subscriptions {
            // A contract that is gone has nothing to deliver to.
            if !matches!(snap.get(&StateKey::Contract(s.contract)), Ok(Some(_))) {
                continue;
            }
            let from = match self.scanned.get(&s.id) {
                Some((cursor, upto)) if *cursor == s.cursor => upto.saturating_add(1),
                _ => s.cursor.map_or(s.def.from_block, |c| c.block_number),
            };
            let worker = worker.clone();
            let range = self.ranges.get(&s.id).copied().unwrap_or(MAX_RANGE);
            polls.push(async move {
                let next = tokio::time::timeout(POLL_DEADLINE, next_log(&worker, &s, from, range))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer in {POLL_DEADLINE:?}")));
                (s, range, next)
            });
        }
        let polled: Vec<(Subscription, u64, Result<Next, String>)> = futures::stream::iter(polls)
            .buffer_unordered(CONCURRENT_POLLS)
            .collect()
            .await;
        for (s, range, next) in polled {
            // An answer grows the range back; a failed one halves it.
            let range = match &next {
                Ok(_) => range.saturating_mul(2).min(MAX_RANGE),
                Err(_) => (range / 2).max(1),
            };
            self.ranges.insert(s.id, range);
            match next {
                Ok(Next::Log(log)) => {
                    // The same log as this worker already voted for (an endpoint may answer
                    // another version of a position: then it votes for that one too).
                    let digest = Hash(phat_primitives::blake2_256(&log.encode()));
                    let key = (s.id, log.position, digest);
                    let mine = s.votes.iter().any(|v| {
                        v.position == log.position
                            && v.digest == digest
                            && v.workers.contains(&self.me)
                    });
                    if mine || self.reported.contains_key(&key) {
                        continue;
                    }
                    self.reported.insert(key, Instant::now());
                    let Some(entry) = sign(worker, self.me, &s, log) else {
                        continue;
                    };
                    if let Err(e) = worker
                        .inner
                        .ledger
                        .append(LedgerCommand::EthLog(entry).encode())
                        .await
                    {
                        tracing::warn!(subscription = s.id, "reporting a log: {e}");
                    }
                }
                Ok(Next::NoneUpTo(upto)) => {
                    self.scanned.insert(s.id, (s.cursor, upto));
                }
                Ok(Next::Wait) => {}
                Err(e) => {
                    // An endpoint's error text is cut short: it comes from anywhere.
                    let e: String = e.chars().take(300).collect();
                    tracing::warn!(subscription = s.id, url = %crate::egress::redact_url(&s.def.rpc_url), "polling logs: {e}");
                }
            }
        }
    }
}

/// What a poll found.
enum Next {
    /// The first log after the cursor.
    Log(EthLog),
    /// No log after the cursor up to this block (confirmed).
    NoneUpTo(u64),
    /// Nothing confirmed past `from` yet.
    Wait,
}

/// The first confirmed log of `s` after its cursor, looking from block `from` at most `range`
/// blocks ahead.
async fn next_log(
    worker: &Worker,
    s: &Subscription,
    from: u64,
    range: u64,
) -> Result<Next, String> {
    let def = &s.def;
    let chain = eth_rpc::call(worker, &def.rpc_url, "eth_chainId", json!([])).await?;
    if eth_rpc::quantity(&chain)? != def.chain_id {
        return Err(format!(
            "the endpoint serves chain {}, not {}",
            eth_rpc::quantity(&chain)?,
            def.chain_id
        ));
    }
    let head = eth_rpc::quantity(
        &eth_rpc::call(worker, &def.rpc_url, "eth_blockNumber", json!([])).await?,
    )?;
    let confirmed = head.saturating_sub(u64::from(def.confirmations));
    if confirmed < from {
        return Ok(Next::Wait);
    }
    let to = confirmed.min(from.saturating_add(range.max(1) - 1));
    let topics: Vec<Value> = def
        .topics
        .iter()
        .map(|t| t.map_or(Value::Null, |h| json!(h.to_hex())))
        .collect();
    let filter = json!([{
        "fromBlock": format!("0x{from:x}"),
        "toBlock": format!("0x{to:x}"),
        "address": format!("0x{}", hex::encode(&def.address.0)),
        "topics": topics,
    }]);
    let logs = eth_rpc::call(worker, &def.rpc_url, "eth_getLogs", filter).await?;
    let mut found: Vec<EthLog> = logs
        .as_array()
        .ok_or("eth_getLogs did not answer a list")?
        .iter()
        .filter(|l| l["removed"] != json!(true))
        .map(|l| eth_rpc::parse_log(def.chain_id, l))
        .collect::<Result<_, _>>()?;
    // Only what was asked for: a log outside the range (above the confirmed head) is not
    // taken from an endpoint that answers more.
    found.retain(|l| (from..=to).contains(&l.position.block_number));
    found.sort_by_key(|l| l.position);
    for log in found {
        if s.cursor.is_some_and(|c| log.position <= c) {
            continue;
        }
        match unfit(s, &log) {
            None => return Ok(Next::Log(log)),
            Some((_, why)) => {
                // Matching the filter but over the bounds (topics, data): skipped, said.
                tracing::warn!(
                    subscription = s.id,
                    block = log.position.block_number,
                    index = log.position.log_index,
                    "a log is not delivered: {why}"
                );
            }
        }
    }
    // Blocks near the head are looked at again next time: an endpoint behind a load
    // balancer may answer from a node that has not seen their logs yet.
    let settled = confirmed.saturating_sub(RESCAN_DEPTH);
    if to <= settled {
        Ok(Next::NoneUpTo(to))
    } else if settled >= from {
        Ok(Next::NoneUpTo(settled))
    } else {
        Ok(Next::Wait)
    }
}

/// `entry` for `log`, signed with this worker's vote key.
fn sign(worker: &Worker, me: Hash, s: &Subscription, log: EthLog) -> Option<EthLogEntry> {
    let epoch = worker.inner.enclave.keys().held();
    let mut entry = EthLogEntry {
        contract: s.contract,
        subscription: s.id,
        log,
        worker: me,
        epoch,
        signature: Default::default(),
    };
    entry.signature = phat_primitives::protocol::Bytes(
        worker
            .inner
            .enclave
            .vote_key
            .sign(EthLogEntry::VOTE_DOMAIN, &entry.signed_payload())
            .to_vec(),
    );
    Some(entry)
}

/// Applies a worker's report of an Ethereum log: checks who reports it (the MAC of a worker of
/// the cluster, in the current key epoch, not revoked) and that it is a log the subscription
/// delivers next; counts the worker's vote; at the quorum runs the handler once and moves the
/// cursor. Otherwise a receipt says why not and nothing changes.
pub(crate) fn apply_eth_log(
    worker: &Worker,
    view: &BatchView<'_>,
    local: &mut Local,
    entry: &LedgerEntry,
    e: &phat_primitives::protocol::EthLogEntry,
) -> Result<Applied, WorkerError> {
    use phat_primitives::protocol::{LogVote, MAX_PENDING_VOTES};
    let caller = phat_primitives::protocol::eth_log_caller();
    let request = Hash(blake2_256(&e.encode()));
    let reply = Reply::to(entry, None).about(request).for_caller(caller);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    if let Some((kind, message)) = check_vote(
        local,
        Vote {
            epoch: e.epoch,
            by: &e.worker,
            domain: EthLogEntry::VOTE_DOMAIN,
            payload: &e.signed_payload(),
            signature: &e.signature.0,
        },
    ) {
        return Ok(refuse(kind, message));
    }
    let table = &mut local.subscriptions;
    let Some(index) = table
        .subscriptions
        .iter()
        .position(|s| s.id == e.subscription && s.contract == e.contract)
    else {
        return Ok(refuse(
            Refusal::UnknownSubscription,
            format!("{} has no subscription {}", e.contract, e.subscription),
        ));
    };
    if let Some((kind, message)) =
        crate::triggers::subscription::unfit(&table.subscriptions[index], &e.log)
    {
        return Ok(refuse(kind, message));
    }
    let digest = Hash(blake2_256(&e.log.encode()));
    let s = &mut table.subscriptions[index];
    let at = match s
        .votes
        .iter()
        .position(|v| v.position == e.log.position && v.digest == digest)
    {
        Some(at) => at,
        None => {
            if s.votes.len() >= MAX_PENDING_VOTES {
                s.votes.remove(0);
            }
            s.votes.push(LogVote {
                position: e.log.position,
                digest,
                workers: Vec::new(),
            });
            s.votes.len() - 1
        }
    };
    if s.votes[at].workers.contains(&e.worker) {
        return Ok(refuse(
            Refusal::AlreadyReported,
            format!("{} already reported this log", e.worker),
        ));
    }
    s.votes[at].workers.push(e.worker);
    let votes = s.votes[at].workers.len();
    let (id, quorum, contract) = (s.id, s.def.quorum, s.contract);
    let place = format!(
        "block {} log {}",
        e.log.position.block_number, e.log.position.log_index
    );
    let log_line = |message: String| LogRecord {
        contract,
        level: "trigger".into(),
        origin: Mode::Command,
        seq: Some(entry.seq),
        timestamp: entry.timestamp,
        message,
    };
    if votes < usize::from(quorum) {
        let mut counted = reply.accept((votes as u32, u32::from(quorum)).encode());
        counted
            .changes
            .insert(StateKey::Subscriptions, Some(table.encode()));
        counted.logs.push(log_line(format!(
            "subscription {id} {place}: reported by {votes} of {quorum} workers"
        )));
        return Ok(counted);
    }
    let call = Call::Call {
        dest: contract,
        value: 0,
        data: crate::triggers::subscription::run_data(&s.def, &e.log).into(),
        gas_limit: s.def.gas_limit,
    };
    let payer = deployer_of(view, entry, &contract)?;
    let mut applied = run_command(
        worker,
        view,
        entry,
        RunAs { caller, payer },
        request,
        call,
        None,
    )?;
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    let s = &mut table.subscriptions[index];
    s.cursor = Some(e.log.position);
    s.delivered += 1;
    s.votes.retain(|v| v.position > e.log.position);
    applied
        .changes
        .insert(StateKey::Subscriptions, Some(table.encode()));
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    let outcome = super::outcome(&applied.receipt.result);
    applied.logs.push(log_line(format!(
        "subscription {id} {place} (chain {}, {votes} of {quorum} workers): {outcome}",
        e.log.chain_id
    )));
    applied.executed = false;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::Bytes;
    use phat_primitives::AccountId;

    fn sub() -> Subscription {
        Subscription {
            contract: AccountId([1; 32]),
            id: 0,
            def: SubscriptionDef {
                rpc_url: "http://127.0.0.1:8545".into(),
                chain_id: 5,
                address: Bytes(vec![9; 20]),
                topics: vec![Some(Hash([7; 32])), None],
                confirmations: 2,
                from_block: 10,
                handler: Bytes(vec![1, 2, 3, 4]),
                gas_limit: 10,
                quorum: 1,
            },
            cursor: None,
            delivered: 0,
            votes: vec![],
        }
    }

    fn log(block_number: u64, log_index: u32) -> EthLog {
        EthLog {
            chain_id: 5,
            position: LogPosition {
                block_number,
                log_index,
            },
            block_hash: Hash([3; 32]),
            address: Bytes(vec![9; 20]),
            topics: vec![Hash([7; 32]), Hash([8; 32])],
            data: Bytes(vec![0xaa]),
        }
    }

    #[test]
    fn definitions_are_checked() {
        let ok = sub().def;
        assert_eq!(check(&ok, 10), Ok(()));
        let bad = [
            SubscriptionDef {
                rpc_url: "ftp://x".into(),
                ..ok.clone()
            },
            SubscriptionDef {
                address: Bytes(vec![1; 19]),
                ..ok.clone()
            },
            SubscriptionDef {
                topics: vec![None; 5],
                ..ok.clone()
            },
            SubscriptionDef {
                handler: Bytes(vec![1]),
                ..ok.clone()
            },
            SubscriptionDef {
                gas_limit: 11,
                ..ok.clone()
            },
            SubscriptionDef {
                quorum: 0,
                ..ok.clone()
            },
            SubscriptionDef {
                confirmations: MAX_CONFIRMATIONS + 1,
                ..ok.clone()
            },
        ];
        for def in bad {
            assert!(check(&def, 10).is_err(), "{def:?}");
        }
    }

    #[test]
    fn only_matching_logs_after_the_cursor_fit() {
        let mut s = sub();
        assert_eq!(unfit(&s, &log(10, 0)), None);
        let other_chain = EthLog {
            chain_id: 6,
            ..log(10, 0)
        };
        let other_topic = EthLog {
            topics: vec![Hash([6; 32])],
            ..log(10, 0)
        };
        let other_address = EthLog {
            address: Bytes(vec![8; 20]),
            ..log(10, 0)
        };
        let huge = EthLog {
            data: Bytes(vec![0; MAX_LOG_DATA + 1]),
            ..log(10, 0)
        };
        for l in [other_chain, other_topic, other_address, huge, log(9, 0)] {
            assert_eq!(
                unfit(&s, &l).map(|u| u.0),
                Some(Refusal::NotMatching),
                "{l:?}"
            );
        }
        s.cursor = Some(LogPosition {
            block_number: 12,
            log_index: 1,
        });
        assert_eq!(
            unfit(&s, &log(12, 1)).map(|u| u.0),
            Some(Refusal::AlreadyDelivered)
        );
        assert_eq!(
            unfit(&s, &log(11, 5)).map(|u| u.0),
            Some(Refusal::AlreadyDelivered)
        );
        assert_eq!(unfit(&s, &log(12, 2)), None);
        assert_eq!(unfit(&s, &log(13, 0)), None);
        // The handler gets the log's place, topics and data after its selector.
        let data = run_data(&s.def, &log(13, 0));
        assert_eq!(&data[..4], &[1, 2, 3, 4]);
        let args: (u64, u32, Vec<[u8; 32]>, Vec<u8>) =
            parity_scale_codec::Decode::decode(&mut &data[4..]).unwrap_or_default();
        assert_eq!(args, (13, 0, vec![[7; 32], [8; 32]], vec![0xaa]));
    }
}
