//! The trigger entries and trigger-table commands of the apply loop: schedule changes and
//! their deposits, proposed ticks, Ethereum log reports and their quorum, and the clean-up
//! when a contract terminates. Every function here decides on the entry and replicated state
//! only, so every worker decides the same.

use phat_primitives::protocol::{EthLogEntry, JobResultEntry, ScheduleOrigin};

use super::*;

/// Applies a deployer's change to its contract's schedules: the receipt's output and the
/// writes (the table, the deposit), or the refusal's kind and message; `Err` when this
/// worker's store fails (the batch is retried rather than refused differently).
pub(super) fn apply_schedule_op(
    worker: &Worker,
    state: &Layered,
    table: &mut phat_primitives::protocol::ScheduleTable,
    entry: &LedgerEntry,
    caller: AccountId,
    op: &phat_primitives::protocol::ScheduleOp,
) -> Result<ScheduleChange, WorkerError> {
    let read = |key: &StateKey| {
        phat_runtime::StateRead::get(state, key)
            .map_err(|e| WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0)))
    };
    let info = read(&StateKey::Contract(match op {
        phat_primitives::protocol::ScheduleOp::Add { contract, .. }
        | phat_primitives::protocol::ScheduleOp::Remove { contract, .. } => *contract,
    }))?;
    let balance_of = |account| -> Result<u128, WorkerError> {
        Ok(read(&StateKey::Balance(account))?
            .and_then(|raw| phat_primitives::Balance::decode(&mut &raw[..]).ok())
            .unwrap_or(0))
    };
    let contract = match op {
        phat_primitives::protocol::ScheduleOp::Add { contract, .. }
        | phat_primitives::protocol::ScheduleOp::Remove { contract, .. } => *contract,
    };
    let balances = (balance_of(caller)?, balance_of(contract)?);
    Ok(schedule_change(
        worker, info, balances, table, entry, caller, op,
    ))
}

/// A schedule change's receipt output and writes, or its refusal's kind and message.
pub(super) type ScheduleChange = Result<(Vec<u8>, ChangeSet), (Refusal, String)>;

/// [`apply_schedule_op`] on what it read: the contract's info, the signer's balance and the
/// contract's (a schedule the contract set itself gives its deposit back to it).
pub(super) fn schedule_change(
    worker: &Worker,
    info: Option<Vec<u8>>,
    (balance, contract_balance): (phat_primitives::Balance, phat_primitives::Balance),
    table: &mut phat_primitives::protocol::ScheduleTable,
    entry: &LedgerEntry,
    caller: AccountId,
    op: &phat_primitives::protocol::ScheduleOp,
) -> ScheduleChange {
    use phat_primitives::protocol::{Schedule, ScheduleOp};
    let contract = match op {
        ScheduleOp::Add { contract, .. } | ScheduleOp::Remove { contract, .. } => *contract,
    };
    // The contract's deployer decides its schedules. Read through the batch's earlier writes
    // (by the caller): a contract instantiated earlier in the same batch exists (workers
    // batch differently).
    crate::schedule::deployer_only(info, contract, caller, "schedules")?;
    // Each schedule holds a storage deposit, like state bytes: its encoded size at the
    // cluster's price, taken from the deployer at `Add` and given back at `Remove`.
    let price = deposit_price(worker);
    let deposit = |s: &Schedule| schedule_deposit(worker, s);
    let mut changes = ChangeSet::new();
    let mut set_balance = |account: AccountId, amount: phat_primitives::Balance| {
        let value = (amount != 0).then(|| amount.encode());
        changes.insert(StateKey::Balance(account), value);
    };
    let output = match op {
        ScheduleOp::Add { def, .. } => {
            let max_gas = worker.inner.runtime.config().limits.max_gas_per_call;
            crate::schedule::check(def, max_gas).map_err(|m| (Refusal::BadSchedule, m))?;
            let mine = table
                .schedules
                .iter()
                .filter(|s| s.contract == contract)
                .count();
            if mine >= crate::schedule::MAX_PER_CONTRACT
                || table.schedules.len() >= crate::schedule::MAX_SCHEDULES
            {
                return Err((
                    Refusal::TooManySchedules,
                    format!(
                        "at most {} schedules per contract and {} in a cluster",
                        crate::schedule::MAX_PER_CONTRACT,
                        crate::schedule::MAX_SCHEDULES
                    ),
                ));
            }
            let id = table.next_id;
            let schedule = Schedule {
                contract,
                id,
                def: def.clone(),
                since: entry.timestamp,
                last_tick: entry.timestamp,
                runs: 0,
                origin: ScheduleOrigin::Deployer,
            };
            let due = deposit(&schedule);
            if balance < due {
                return Err((
                    Refusal::StorageDeposit,
                    format!(
                        "a schedule holds a deposit of {due} ({} bytes at {price} each); {} has {balance}",
                        schedule.encoded_size(),
                        caller
                    ),
                ));
            }
            set_balance(caller, balance - due);
            table.next_id = id.saturating_add(1);
            table.schedules.push(schedule);
            id.encode()
        }
        ScheduleOp::Remove { id, .. } => {
            let Some(at) = table
                .schedules
                .iter()
                .position(|s| s.id == *id && s.contract == contract)
            else {
                return Err((
                    Refusal::UnknownSchedule,
                    format!("{contract} has no schedule {id}"),
                ));
            };
            // Its deposit is what `Add` took: the counters and times are fixed-size, so runs
            // do not change the encoded size.
            let removed = table.schedules.remove(at);
            match removed.origin {
                ScheduleOrigin::Deployer => {
                    set_balance(caller, balance.saturating_add(deposit(&removed)))
                }
                // The deployer stops a schedule the contract set and paid for: the deposit
                // goes back to the contract.
                ScheduleOrigin::Contract => {
                    set_balance(contract, contract_balance.saturating_add(deposit(&removed)))
                }
            }
            id.encode()
        }
    };
    changes.insert(StateKey::Schedules, Some(table.encode()));
    Ok((output, changes))
}

/// The deployer of `contract` (who pays the storage deposit of its triggers' runs: it set them
/// up), if the contract exists.
pub(super) fn deployer_of(
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
pub(super) fn deposit_price(worker: &Worker) -> u128 {
    u128::from(
        worker
            .inner
            .runtime
            .config()
            .limits
            .storage_deposit_per_byte,
    )
}

/// The deposit a schedule holds: its encoded size at the cluster's price (the counters and
/// times are fixed-size, so runs do not change it).
pub(super) fn schedule_deposit(worker: &Worker, s: &phat_primitives::protocol::Schedule) -> u128 {
    deposit_price(worker).saturating_mul(s.encoded_size() as u128)
}

/// Applies the changes to schedules a run made through the extension, in order, all or
/// none: the contracts pay (or get back) the deposits from their own balances, as this run's
/// writes left them. A change refused (caps, deposit, a definition the cluster refuses)
/// fails the whole run with `schedule_refused`, its writes and events dropped, as a refused
/// storage deposit fails a call.
pub(super) fn apply_schedule_requests(
    worker: &Worker,
    view: &BatchView<'_>,
    schedules: &mut phat_primitives::protocol::ScheduleTable,
    entry: &LedgerEntry,
    applied: &mut Applied,
) -> Result<(), WorkerError> {
    let requests = std::mem::take(&mut applied.schedules);
    if requests.is_empty() {
        return Ok(());
    }
    debug_assert!(requests.len() <= crate::pink_host::MAX_SCHEDULE_CHANGES);
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let max_gas = worker.inner.runtime.config().limits.max_gas_per_call;
    let price = deposit_price(worker);
    let mut table = schedules.clone();
    let mut balances: std::collections::BTreeMap<AccountId, u128> = Default::default();
    let mut lines = Vec::new();
    for request in &requests {
        let contract = match request {
            phat_pink::ScheduleRequest::Set { contract, .. }
            | phat_pink::ScheduleRequest::Clear { contract, .. } => *contract,
        };
        let balance = match balances.get(&contract) {
            Some(b) => *b,
            None => {
                let key = StateKey::Balance(contract);
                let raw = match applied.changes.get(&key) {
                    Some(v) => v.clone(),
                    None => phat_runtime::StateRead::get(&state, &key).map_err(|e| {
                        WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0))
                    })?,
                };
                raw.and_then(|r| phat_primitives::Balance::decode(&mut &r[..]).ok())
                    .unwrap_or(0)
            }
        };
        match crate::schedule::apply_request(
            &mut table,
            request,
            balance,
            (entry.timestamp, max_gas, price),
        ) {
            Ok(done) => {
                balances.insert(contract, done.balance);
                if let Some(line) = done.line {
                    lines.push((contract, line));
                }
            }
            Err((kind, message)) => {
                applied.changes = ChangeSet::new();
                applied.receipt.events.clear();
                applied.receipt.result =
                    CallResult::Err(Refusal::ScheduleRefused.because(format!("{kind}: {message}")));
                applied.logs.retain(|l| l.level != "event");
                applied.logs.push(LogRecord {
                    contract,
                    level: "warn".into(),
                    origin: Mode::Command,
                    seq: Some(entry.seq),
                    timestamp: entry.timestamp,
                    message: format!(
                        "the contract's schedule change was refused ({kind}: {message}): the \
                         call failed"
                    ),
                });
                return Ok(());
            }
        }
    }
    *schedules = table;
    applied
        .changes
        .insert(StateKey::Schedules, Some(schedules.encode()));
    for (contract, balance) in balances {
        applied.changes.insert(
            StateKey::Balance(contract),
            (balance != 0).then(|| balance.encode()),
        );
    }
    for (contract, message) in lines {
        applied.logs.push(LogRecord {
            contract,
            level: "trigger".into(),
            origin: Mode::Command,
            seq: Some(entry.seq),
            timestamp: entry.timestamp,
            message,
        });
    }
    Ok(())
}

/// A command that terminated contracts takes their schedules, subscriptions and jobs with them:
/// each is removed, its deposit goes back to the contract's deployer, and a `trigger` log line
/// says so. (Left in the tables, schedules would be proposed, refused and logged every tick,
/// for ever, and both would hold the cluster's slots.) Deterministic: it reads only the
/// command's writes and the state before it.
pub(super) fn drop_terminated_triggers(
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
                    crate::subscribe::deposit(&s.def, price),
                ));
            }
            !gone
        });
        local.jobs.jobs.retain(|j| {
            let gone = j.contract == id;
            if gone {
                removed.push(("job", j.id, crate::jobs::deposit(&j.def, price)));
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

/// Applies a job's result for a tick: checks who made it ([`check_vote`]), that the
/// tick is one of the job's, due on ledger time and not answered yet, and the output's size;
/// then runs the handler once with `(tick, output)` and moves the job's `last_tick`.
pub(super) fn apply_job_result(
    worker: &Worker,
    view: &BatchView<'_>,
    local: &mut Local,
    entry: &LedgerEntry,
    r: &phat_primitives::protocol::JobResultEntry,
) -> Result<Applied, WorkerError> {
    let caller = phat_primitives::protocol::job_caller();
    let request = Hash(blake2_256(&r.encode()));
    let reply = Reply::to(entry, None).about(request).for_caller(caller);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    if let Some((kind, message)) = check_vote(
        local,
        (r.epoch, &r.worker),
        (
            JobResultEntry::VOTE_DOMAIN,
            &r.signed_payload(),
            &r.signature.0,
        ),
    ) {
        return Ok(refuse(kind, message));
    }
    let Some(index) = local
        .jobs
        .jobs
        .iter()
        .position(|j| j.id == r.job && j.contract == r.contract)
    else {
        return Ok(refuse(
            Refusal::UnknownJob,
            format!("{} has no job {}", r.contract, r.job),
        ));
    };
    let job = &local.jobs.jobs[index];
    if let Some((kind, message)) = crate::jobs::unanswerable(job, r.tick, entry.timestamp) {
        return Ok(refuse(kind, message));
    }
    // Sealed for the workers on a cluster that encrypts (every worker holds the key of the
    // current epoch here: the batch waited for it, and `check_vote` passed).
    let output = if worker.inner.genesis.encryption {
        let opened = worker.inner.enclave.keys().epoch(r.epoch).map(|k| {
            phat_crypto::entry::open_entry_data(
                &k.secret,
                &crate::jobs::output_name(job, r.tick),
                &r.output.0,
            )
        });
        match opened {
            Some(Ok(o)) => o,
            _ => {
                return Ok(refuse(
                    Refusal::BadOutput,
                    "the output is not sealed for this cluster".into(),
                ))
            }
        }
    } else {
        r.output.0.clone()
    };
    if output.len() > crate::jobs::MAX_OUTPUT {
        return Ok(refuse(
            Refusal::TooLarge,
            format!(
                "an output of {} bytes, more than {}",
                output.len(),
                crate::jobs::MAX_OUTPUT
            ),
        ));
    }
    let (id, contract) = (job.id, job.contract);
    let call = Call::Call {
        dest: contract,
        value: 0,
        data: crate::jobs::handler_data(&job.def, r.tick, &output).into(),
        gas_limit: job.def.gas_limit,
    };
    let payer = deployer_of(view, entry, &contract)?;
    let mut applied = run_command(worker, view, entry, (caller, payer), request, call, None)?;
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    let job = &mut local.jobs.jobs[index];
    job.last_tick = r.tick;
    job.runs += 1;
    applied
        .changes
        .insert(StateKey::Jobs, Some(local.jobs.encode()));
    let outcome = match &applied.receipt.result {
        CallResult::Ok(o) if o.reverted => "reverted".to_string(),
        CallResult::Ok(_) => "ok".to_string(),
        CallResult::Err(err) => err.kind.clone(),
        CallResult::Sealed(_) => "sealed".to_string(),
    };
    applied.logs.push(LogRecord {
        contract,
        level: "trigger".into(),
        origin: Mode::Command,
        seq: Some(entry.seq),
        timestamp: entry.timestamp,
        message: format!(
            "job {id} tick {} answered by {} ({} bytes): {outcome}",
            crate::schedule::format_tick(r.tick),
            r.worker,
            output.len()
        ),
    });
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    applied.executed = false;
    Ok(applied)
}

/// Applies a worker's report of an Ethereum log: checks who reports it (the MAC of a worker of
/// the cluster, in the current key epoch, not revoked) and that it is a log the subscription
/// delivers next; counts the worker's vote; at the quorum runs the handler once and moves the
/// cursor. Otherwise a receipt says why not and nothing changes.
pub(super) fn apply_eth_log(
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
        (e.epoch, &e.worker),
        (
            EthLogEntry::VOTE_DOMAIN,
            &e.signed_payload(),
            &e.signature.0,
        ),
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
    if let Some((kind, message)) = crate::subscribe::unfit(&table.subscriptions[index], &e.log) {
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
        data: crate::subscribe::run_data(&s.def, &e.log).into(),
        gas_limit: s.def.gas_limit,
    };
    let payer = deployer_of(view, entry, &contract)?;
    let mut applied = run_command(worker, view, entry, (caller, payer), request, call, None)?;
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    let s = &mut table.subscriptions[index];
    s.cursor = Some(e.log.position);
    s.delivered += 1;
    s.votes.retain(|v| v.position > e.log.position);
    applied
        .changes
        .insert(StateKey::Subscriptions, Some(table.encode()));
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    let outcome = match &applied.receipt.result {
        CallResult::Ok(o) if o.reverted => "reverted".to_string(),
        CallResult::Ok(_) => "ok".to_string(),
        CallResult::Err(err) => err.kind.clone(),
        CallResult::Sealed(_) => "sealed".to_string(),
    };
    applied.logs.push(log_line(format!(
        "subscription {id} {place} (chain {}, {votes} of {quorum} workers): {outcome}",
        e.log.chain_id
    )));
    applied.executed = false;
    Ok(applied)
}

/// Applies a proposed tick: runs the schedule once for its latest due tick if one is due on
/// ledger time after its last run; otherwise a receipt says why not (`already_run`,
/// `not_due`, `unknown_schedule`) and nothing changes.
pub(super) fn apply_trigger(
    worker: &Worker,
    view: &BatchView<'_>,
    local: &mut Local,
    entry: &LedgerEntry,
    t: &phat_primitives::protocol::TriggerEntry,
) -> Result<Applied, WorkerError> {
    let table = &mut local.schedules;
    let caller = phat_primitives::protocol::schedule_caller();
    let request = Hash(blake2_256(&t.encode()));
    let reply = Reply::to(entry, None).about(request).for_caller(caller);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    let Some(index) = table
        .schedules
        .iter()
        .position(|s| s.id == t.schedule && s.contract == t.contract)
    else {
        return Ok(refuse(
            Refusal::UnknownSchedule,
            format!("{} has no schedule {}", t.contract, t.schedule),
        ));
    };
    let s = &table.schedules[index];
    if t.tick <= s.last_tick {
        return Ok(refuse(
            Refusal::AlreadyRun,
            format!("schedule {} already ran up to tick {}", s.id, s.last_tick),
        ));
    }
    let (count, latest) = crate::schedule::due(s, s.last_tick, entry.timestamp);
    let Some(latest) = latest else {
        return Ok(refuse(
            Refusal::NotDue,
            format!(
                "schedule {} has no tick due at ledger time {}",
                s.id, entry.timestamp
            ),
        ));
    };
    let call = Call::Call {
        dest: s.contract,
        value: 0,
        data: crate::schedule::run_data(&s.def, count).into(),
        gas_limit: s.def.gas_limit,
    };
    let (id, policy, origin) = (s.id, s.def.missed, s.origin);
    // A schedule the contract set itself is its own: it pays its runs' deposits and they are
    // called by it, as Phala calls hooks; a deployer's schedule is the deployer's.
    let (caller, payer) = match origin {
        ScheduleOrigin::Contract => (t.contract, Some(t.contract)),
        ScheduleOrigin::Deployer => (caller, deployer_of(view, entry, &t.contract)?),
    };
    let mut applied = run_command(worker, view, entry, (caller, payer), request, call, None)?;
    // The run's own changes first (it may replace or clear this very schedule), then its tick.
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    let table = &mut local.schedules;
    if let Some(s) = table
        .schedules
        .iter_mut()
        .find(|s| s.id == id && s.contract == t.contract)
    {
        s.last_tick = latest;
        s.runs += 1;
    }
    applied
        .changes
        .insert(StateKey::Schedules, Some(table.encode()));
    let outcome = match &applied.receipt.result {
        CallResult::Ok(o) if o.reverted => "reverted".to_string(),
        CallResult::Ok(_) => "ok".to_string(),
        CallResult::Err(e) => e.kind.clone(),
        CallResult::Sealed(_) => "sealed".to_string(),
    };
    let missed = match policy {
        phat_primitives::protocol::MissedTicks::Skip => format!("{} skipped", count - 1),
        phat_primitives::protocol::MissedTicks::RunOnce => format!("{count} ticks"),
    };
    applied.logs.push(LogRecord {
        contract: t.contract,
        level: "trigger".into(),
        origin: Mode::Command,
        seq: Some(entry.seq),
        timestamp: entry.timestamp,
        message: format!(
            "schedule {id} tick {} ({missed}): {outcome}",
            crate::schedule::format_tick(latest)
        ),
    });
    // A run that terminated its contract removes the contract's schedules, this one too.
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    // A run's result is readable by anyone who may read the contract's receipts.
    applied.executed = false;
    Ok(applied)
}
