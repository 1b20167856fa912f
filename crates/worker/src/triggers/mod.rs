//! Triggers: what makes a contract run without a client's command, one vertical slice per
//! kind. Each kind's file holds its rules (definitions, caps, deposits), the decisions its
//! entries get at apply time (pure functions of the entry, the replicated table and
//! [`Rules`]), and what a worker proposes for it ([`proposer::Proposer`]).
//!
//! - [`schedule`]: a message on a cron expression or a period, once per tick per cluster.
//! - [`subscription`]: a handler once per Ethereum log, in chain order, at a quorum of
//!   workers' reports ([`eth_rpc`] reads the chain).
//! - [`job`]: a query one worker runs per tick, its output committed to a handler.

pub(crate) mod job;
pub(crate) mod schedule;
pub(crate) mod subscription;

// The apply side of this kind: decisions on its ledger entries and commands.
#[allow(unused_imports, reason = "each slice uses a part of the apply kit")]
use crate::apply::kit::*;

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
        .map_err(|e| WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0)))?;
    Ok(info
        .and_then(|raw| phat_primitives::ContractInfo::decode_all(&mut &raw[..]).ok())
        .map(|i| i.deployer))
}

/// The cluster's storage deposit per byte.
pub(crate) fn deposit_price(worker: &Worker) -> u128 {
    u128::from(
        worker
            .inner
            .runtime
            .config()
            .limits
            .storage_deposit_per_byte,
    )
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
        phat_runtime::StateRead::get(&before, key)
            .map_err(|e| WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0)))
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
        let price = deposit_price(worker);
        let mut removed: Vec<(&str, u32, u128)> = Vec::new();
        local.schedules.schedules.retain(|s| {
            let gone = s.contract == id;
            if gone {
                removed.push(("schedule", s.id, schedule_deposit(worker, s)));
            }
            !gone
        });
        local.subscriptions.subscriptions.retain(|s| {
            let gone = s.contract == id;
            if gone {
                removed.push((
                    "subscription",
                    s.id,
                    crate::triggers::subscription::deposit(&s.def, price),
                ));
            }
            !gone
        });
        local.jobs.jobs.retain(|j| {
            let gone = j.contract == id;
            if gone {
                removed.push(("job", j.id, crate::triggers::job::deposit(&j.def, price)));
            }
            !gone
        });
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
