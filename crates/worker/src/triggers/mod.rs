//! Triggers: what makes a contract run without a client's command, one vertical slice per
//! kind. Each kind's file holds its rules (definitions, caps, deposits), the decisions its
//! entries get at apply time (pure functions of the entry, the replicated table and
//! [`Rules`]), and what a worker proposes for it ([`proposer::Proposer`]).
//!
//! - [`schedule`]: a message on a cron expression or a period, once per tick per cluster.
//! - [`subscription`]: a handler once per Ethereum log, in chain order, at a quorum of
//!   workers' reports ([`eth_rpc`] reads the chain).
//! - [`job`]: a query one worker runs per tick, its output committed to a handler.

pub(crate) mod eth_rpc;
pub(crate) mod job;
pub(crate) mod proposer;
pub(crate) mod schedule;
pub(crate) mod subscription;

// The apply side of this kind: decisions on its ledger entries and commands.
#[allow(unused_imports, reason = "each slice uses a part of the apply kit")]
use crate::apply::kit::*;
use crate::ApplyError;
use phat_primitives::Refusal;
use phat_store::Snapshot;

/// The cluster's settings that trigger decisions depend on (from its genesis limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The most gas one call may be given (`Limits::max_gas_per_call`).
    pub(crate) max_gas: u64,
    /// The storage deposit per byte (`Limits::storage_deposit_per_byte`).
    pub(crate) price: u128,
}

impl Rules {
    /// The rules `worker`'s cluster applies.
    pub(crate) fn of(worker: &Worker) -> Self {
        let limits = &worker.inner.runtime.config().limits;
        Self {
            max_gas: limits.max_gas_per_call,
            price: u128::from(limits.storage_deposit_per_byte),
        }
    }
}

/// Who asks for a change to a trigger table, and the balance they hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Payer {
    /// The caller (a contract's deployer, or it is refused).
    pub(crate) account: AccountId,
    /// Its balance before the change.
    pub(crate) balance: u128,
}

/// What a change to a trigger table answers: the receipt's output and the payer's balance
/// after it, or the refusal.
pub(crate) type Changed = Result<(Vec<u8>, u128), (Refusal, String)>;

/// Most entries of a kind per contract and per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Per contract.
    pub(crate) per_contract: usize,
    /// In the whole cluster.
    pub(crate) per_cluster: usize,
}

// A contract's cap is within the cluster's for every kind.
const _: () = assert!(schedule::MAX_PER_CONTRACT <= schedule::MAX_SCHEDULES);
const _: () = assert!(subscription::MAX_PER_CONTRACT <= subscription::MAX_SUBSCRIPTIONS);
const _: () = assert!(job::MAX_PER_CONTRACT <= job::MAX_JOBS);

/// The replicated table of one trigger kind: entries owned by contracts, named by ids, each
/// holding a storage deposit its deployer paid.
pub(crate) trait TriggerTable {
    /// One entry (a schedule, a subscription, a job).
    type Entry;
    /// The kind's name in messages.
    const KIND: &'static str;
    /// Its caps.
    const CAPS: Caps;
    /// The refusal past the caps.
    const TOO_MANY: Refusal;
    /// The refusal for an id the contract does not have.
    const UNKNOWN: Refusal;
    /// The entries.
    fn entries(&mut self) -> &mut Vec<Self::Entry>;
    /// The id the next entry gets.
    fn next_id(&mut self) -> &mut u32;
    /// The contract an entry belongs to.
    fn owner(e: &Self::Entry) -> AccountId;
    /// An entry's id.
    fn id(e: &Self::Entry) -> u32;
    /// The deposit an entry holds at `price` per byte.
    fn deposit(e: &Self::Entry, price: u128) -> u128;
}

/// Adds the entry `make(id)` to `contract`'s entries of `table`: refused past the caps or
/// when `payer` cannot pay `due`; else the new id and the payer's balance after the deposit.
pub(crate) fn add<T: TriggerTable>(
    table: &mut T,
    contract: AccountId,
    payer: Payer,
    due: u128,
    make: impl FnOnce(u32) -> T::Entry,
) -> Changed {
    let (caps, what) = (T::CAPS, T::KIND);
    let entries = table.entries();
    let mine = entries.iter().filter(|e| T::owner(e) == contract).count();
    if mine >= caps.per_contract || entries.len() >= caps.per_cluster {
        return Err((
            T::TOO_MANY,
            format!(
                "at most {} {what}s per contract and {} in a cluster",
                caps.per_contract, caps.per_cluster
            ),
        ));
    }
    if payer.balance < due {
        return Err((
            Refusal::StorageDeposit,
            format!(
                "a {what} holds a deposit of {due}; {} has {}",
                payer.account, payer.balance
            ),
        ));
    }
    let id = *table.next_id();
    *table.next_id() = id.saturating_add(1);
    let entries = table.entries();
    entries.push(make(id));
    debug_assert!(entries.len() <= caps.per_cluster);
    Ok((id.encode(), payer.balance - due))
}

/// Removes entry `id` of `contract` from `table`: the id and the payer's balance with the
/// entry's deposit back, or the kind's unknown-id refusal.
pub(crate) fn remove<T: TriggerTable>(
    table: &mut T,
    contract: AccountId,
    id: u32,
    payer: Payer,
    price: u128,
) -> Changed {
    let entries = table.entries();
    let Some(at) = entries
        .iter()
        .position(|e| (T::owner(e), T::id(e)) == (contract, id))
    else {
        return Err((T::UNKNOWN, format!("{contract} has no {} {id}", T::KIND)));
    };
    let removed = entries.remove(at);
    Ok((
        id.encode(),
        payer.balance.saturating_add(T::deposit(&removed, price)),
    ))
}

/// Takes every entry of `contract` out of `table`: (kind, id, deposit) of each.
pub(crate) fn drain<T: TriggerTable>(
    table: &mut T,
    contract: AccountId,
    price: u128,
) -> Vec<(&'static str, u32, u128)> {
    let mut removed = Vec::new();
    table.entries().retain(|e| {
        let gone = T::owner(e) == contract;
        if gone {
            removed.push((T::KIND, T::id(e), T::deposit(e, price)));
        }
        !gone
    });
    removed
}

/// Implements [`TriggerTable`] for a table whose entries sit in `$entries`.
macro_rules! trigger_table {
    ($table:ident, $entry:ident, $entries:ident, $kind:literal, $caps:expr, $too_many:ident, $unknown:ident, $deposit:expr) => {
        impl TriggerTable for phat_primitives::protocol::$table {
            type Entry = phat_primitives::protocol::$entry;
            const KIND: &'static str = $kind;
            const CAPS: Caps = $caps;
            const TOO_MANY: Refusal = Refusal::$too_many;
            const UNKNOWN: Refusal = Refusal::$unknown;
            fn entries(&mut self) -> &mut Vec<Self::Entry> {
                &mut self.$entries
            }
            fn next_id(&mut self) -> &mut u32 {
                &mut self.next_id
            }
            fn owner(e: &Self::Entry) -> AccountId {
                e.contract
            }
            fn id(e: &Self::Entry) -> u32 {
                e.id
            }
            fn deposit(e: &Self::Entry, price: u128) -> u128 {
                let deposit: fn(&Self::Entry, u128) -> u128 = $deposit;
                deposit(e, price)
            }
        }
    };
}

trigger_table!(
    ScheduleTable,
    Schedule,
    schedules,
    "schedule",
    Caps {
        per_contract: schedule::MAX_PER_CONTRACT,
        per_cluster: schedule::MAX_SCHEDULES,
    },
    TooManySchedules,
    UnknownSchedule,
    schedule::deposit
);
trigger_table!(
    SubscriptionTable,
    Subscription,
    subscriptions,
    "subscription",
    Caps {
        per_contract: subscription::MAX_PER_CONTRACT,
        per_cluster: subscription::MAX_SUBSCRIPTIONS,
    },
    TooManySubscriptions,
    UnknownSubscription,
    |e, price| subscription::deposit(&e.def, price)
);
trigger_table!(
    JobTable,
    Job,
    jobs,
    "job",
    Caps {
        per_contract: job::MAX_PER_CONTRACT,
        per_cluster: job::MAX_JOBS,
    },
    TooManyJobs,
    UnknownJob,
    |e, price| job::deposit(&e.def, price)
);

/// The trigger table (`what`: schedule, subscription, job) stored under `key` in `snap`;
/// empty when there is none yet.
pub(crate) fn stored_table<T: parity_scale_codec::Decode + Default>(
    snap: &Snapshot,
    key: &StateKey,
    what: &'static str,
) -> Result<T, WorkerError> {
    match snap.get(key)? {
        Some(raw) => T::decode_all(&mut &raw[..]).map_err(ApplyError::corrupt(what)),
        None => Ok(T::default()),
    }
}

/// Whether `caller` is the deployer of `contract` (its stored info `info`), who alone changes
/// its schedules, subscriptions and jobs (`what`); the refusal's kind and message if not.
pub(crate) fn deployer_only(
    info: Option<Vec<u8>>,
    contract: phat_primitives::AccountId,
    caller: phat_primitives::AccountId,
    what: &str,
) -> Result<(), (Refusal, String)> {
    let info = info.and_then(|raw| phat_primitives::ContractInfo::decode_all(&mut &raw[..]).ok());
    let Some(info) = info else {
        return Err((Refusal::UnknownContract, format!("no contract {contract}")));
    };
    if info.deployer != caller {
        return Err((
            Refusal::NotDeployer,
            format!(
                "only {contract}'s deployer {} may change its {what}",
                info.deployer
            ),
        ));
    }
    Ok(())
}

/// How a trigger's run ended, for its log line: `ok`, `reverted`, `sealed` or the error kind.
pub(crate) fn outcome(result: &CallResult) -> String {
    match result {
        CallResult::Ok(o) if o.reverted => "reverted".to_string(),
        CallResult::Ok(_) => "ok".to_string(),
        CallResult::Err(e) => e.kind.clone(),
        CallResult::Sealed(_) => "sealed".to_string(),
    }
}

/// The deployer of `contract` (who pays the storage deposit of its triggers' runs: it set them
/// up), if the contract exists.
pub(crate) fn deployer_of(
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    contract: &AccountId,
) -> Result<Option<AccountId>, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let info = phat_runtime::StateRead::get(&state, &StateKey::Contract(*contract))
        .map_err(ApplyError::state_read(entry.seq))?;
    Ok(info
        .and_then(|raw| phat_primitives::ContractInfo::decode_all(&mut &raw[..]).ok())
        .map(|i| i.deployer))
}

/// A command that terminated contracts takes their schedules, subscriptions and jobs with them:
/// each is removed, its deposit goes back to the contract's deployer, and a `trigger` log line
/// says so. (Left in the tables, schedules would be proposed, refused and logged every tick,
/// for ever, and both would hold the cluster's slots.) Deterministic: it reads only the
/// command's writes and the state before it.
pub(crate) fn drop_terminated_triggers(
    worker: &Worker,
    view: &BatchView<'_>,
    local: &mut Local,
    entry: &LedgerEntry,
    applied: &mut Applied,
) -> Result<(), WorkerError> {
    let gone: Vec<AccountId> = applied
        .changes
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (StateKey::Contract(id), None) => Some(*id),
            _ => None,
        })
        .filter(|id| {
            local.schedules.schedules.iter().any(|s| s.contract == *id)
                || local
                    .subscriptions
                    .subscriptions
                    .iter()
                    .any(|s| s.contract == *id)
                || local.jobs.jobs.iter().any(|j| j.contract == *id)
        })
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let before = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let read = |key: &StateKey| {
        phat_runtime::StateRead::get(&before, key).map_err(ApplyError::state_read(entry.seq))
    };
    let balance_of = |raw: Option<Vec<u8>>| {
        raw.and_then(|r| phat_primitives::Balance::decode(&mut &r[..]).ok())
            .unwrap_or(0)
    };
    for id in gone {
        // The deployer, from the state before this command removed the contract's info.
        let Some(info) = read(&StateKey::Contract(id))?
            .and_then(|raw| phat_primitives::ContractInfo::decode_all(&mut &raw[..]).ok())
        else {
            continue;
        };
        // What it held: (kind, id, deposit) of each schedule, subscription and job.
        let price = Rules::of(worker).price;
        let mut removed = drain(&mut local.schedules, id, price);
        removed.extend(drain(&mut local.subscriptions, id, price));
        removed.extend(drain(&mut local.jobs, id, price));
        // The deployer's balance after this command's own writes (a terminated contract's
        // balance may just have gone to it).
        let key = StateKey::Balance(info.deployer);
        let balance = match applied.changes.get(&key) {
            Some(v) => balance_of(v.clone()),
            None => balance_of(read(&key)?),
        };
        let mut refund: u128 = 0;
        for (kind, n, deposit) in removed {
            refund = refund.saturating_add(deposit);
            applied.logs.push(LogRecord {
                contract: id,
                level: "trigger".into(),
                origin: Mode::Command,
                seq: Some(entry.seq),
                timestamp: entry.timestamp,
                message: format!(
                    "{kind} {n} removed: the contract terminated (its deposit of {deposit} went back to {})",
                    info.deployer
                ),
            });
        }
        let after = balance.saturating_add(refund);
        applied
            .changes
            .insert(key, (after != 0).then(|| after.encode()));
    }
    applied
        .changes
        .insert(StateKey::Schedules, Some(local.schedules.encode()));
    applied
        .changes
        .insert(StateKey::Subscriptions, Some(local.subscriptions.encode()));
    applied
        .changes
        .insert(StateKey::Jobs, Some(local.jobs.encode()));
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use super::*;
    use phat_primitives::protocol::{Bytes, Job, JobDef, JobTable, ScheduleSpec};

    fn job(contract: AccountId, id: u32) -> Job {
        Job {
            contract,
            id,
            def: JobDef {
                spec: ScheduleSpec::Every { ms: 1_000 },
                query: Bytes(vec![1]),
                handler: Bytes(vec![2]),
                gas_limit: 1,
                timeout_ms: 500,
            },
            since: 0,
            last_tick: 0,
            runs: 0,
        }
    }

    #[test]
    fn a_table_adds_within_its_caps_and_deposit_and_gives_deposits_back() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let rich = Payer {
            account: a,
            balance: 1_000,
        };
        let mut t = JobTable::default();
        for n in 0..job::MAX_PER_CONTRACT {
            let (out, left) = add(&mut t, a, rich, 10, |id| job(a, id)).unwrap();
            assert_eq!(out, u32::try_from(n).unwrap().encode());
            assert_eq!(left, 990);
        }
        // Past the per-contract cap: refused, nothing added, the id not taken.
        let refused = add(&mut t, a, rich, 10, |id| job(a, id)).unwrap_err();
        assert_eq!(refused.0, Refusal::TooManyJobs);
        assert_eq!((t.jobs.len(), t.next_id), (job::MAX_PER_CONTRACT, 4));
        // Another contract, but a payer short of the deposit.
        let poor = Payer {
            account: b,
            balance: 9,
        };
        let refused = add(&mut t, b, poor, 10, |id| job(b, id)).unwrap_err();
        assert_eq!(refused.0, Refusal::StorageDeposit);
        // Removing gives the entry's deposit at the price back; an unknown id is refused.
        let price = 3;
        let deposit = <JobTable as TriggerTable>::deposit(&t.jobs[1], price);
        let (out, after) = remove(&mut t, a, 1, rich, price).unwrap();
        assert_eq!((out, after), (1u32.encode(), 1_000 + deposit));
        assert_eq!(
            remove(&mut t, a, 1, rich, price).unwrap_err().0,
            Refusal::UnknownJob
        );
        assert_eq!(
            remove(&mut t, b, 0, rich, price).unwrap_err().0,
            Refusal::UnknownJob
        );
        // A terminated contract's entries all go, each with its deposit.
        t.jobs.push(job(b, 9));
        let drained = drain(&mut t, a, price);
        assert_eq!(
            drained.iter().map(|d| (d.0, d.1)).collect::<Vec<_>>(),
            vec![("job", 0), ("job", 2), ("job", 3)]
        );
        assert!(drained.iter().all(|d| d.2 == deposit));
        assert_eq!(t.jobs.len(), 1);
        assert_eq!(t.jobs[0].contract, b);
    }
}
