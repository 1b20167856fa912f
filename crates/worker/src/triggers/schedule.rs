//! Schedules: a contract's messages run on a cron expression or a fixed period, exactly once
//! per tick across the cluster.
//!
//! The schedule table is replicated state ([`StateKey::Schedules`]), changed by the
//! deployer's commands. Every worker watches it and, when a tick is due on its clock, appends
//! a [`TriggerEntry`] to the ledger. Whoever appended it, the entry runs only if, on ledger
//! time, a tick after the schedule's `last_tick` is due; it then runs once for the latest due
//! tick and moves `last_tick` there, so proposals of the same tick by several workers (or
//! again after a crash) run once, and ticks missed while the cluster was down collapse into
//! that one run ([`MissedTicks`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use parity_scale_codec::Encode;
use phat_primitives::protocol::{
    LedgerCommand, MissedTicks, Schedule, ScheduleDef, ScheduleSpec, ScheduleTable, TriggerEntry,
};
use phat_primitives::{Refusal, StateKey, Timestamp};
use phat_store::Snapshot;

use crate::{ApplyError, Worker, WorkerError};

// The apply side of this kind: decisions on its ledger entries and commands.
#[allow(unused_imports, reason = "each slice uses a part of the apply kit")]
use crate::apply::kit::*;

/// The shortest period of a schedule (and of a cron expression's ticks, checked on its first
/// two).
pub const MIN_PERIOD_MS: u64 = 1_000;
/// Most schedules one contract may have.
pub const MAX_PER_CONTRACT: usize = 8;
/// Most schedules in a cluster.
pub const MAX_SCHEDULES: usize = 1_024;
/// Most bytes of a schedule's message (selector and arguments).
pub const MAX_DATA: usize = 4_096;
/// Most ticks one run counts when it catches up (beyond it, the next run goes on counting).
const MAX_COUNTED: u64 = 100_000;
/// How long a worker waits before proposing a tick again that has not run.
const REPROPOSE: Duration = Duration::from_secs(3);

/// The schedule table in `snap`.
pub(crate) fn stored(snap: &Snapshot) -> Result<ScheduleTable, WorkerError> {
    match snap.get(&StateKey::Schedules)? {
        Some(raw) => {
            ScheduleTable::decode_stored(&raw).map_err(|e| ApplyError::corrupt("schedule table")(e))
        }
        None => Ok(ScheduleTable::default()),
    }
}

/// What a contract's own schedule change did: the paying contract's balance after it, and
/// the line its log gets.
pub(crate) struct RequestApplied {
    /// The contract's balance after the deposit was taken or given back.
    pub balance: u128,
    /// What happened, for the contract's log (`None`: nothing to clear).
    pub line: Option<String>,
}

/// Applies a contract's own change to its schedules (`phat_pink::ScheduleRequest`, made
/// through the extension in a command that succeeded) to `table`. The contract pays: its
/// `balance` gives a new schedule's deposit and gets a replaced or cleared one's back (at
/// `price` a byte of the schedule's encoding). A contract has at most one schedule of its own
/// per message selector: setting one again replaces it. Refused past the caps, without the
/// deposit, or for a definition the cluster refuses (`max_gas`).
pub(crate) fn apply_request(
    table: &mut ScheduleTable,
    request: &phat_pink::ScheduleRequest,
    balance: u128,
    now: Timestamp,
    rules: super::Rules,
) -> Result<RequestApplied, (Refusal, String)> {
    let super::Rules { max_gas, price } = rules;
    use phat_pink::ScheduleRequest;
    use phat_primitives::protocol::ScheduleOrigin;
    let deposit = |s: &Schedule| price.saturating_mul(s.encoded_size() as u128);
    let (contract, selector) = match request {
        ScheduleRequest::Set { contract, def } => {
            let selector: [u8; 4] = def.data.0.get(..4).and_then(|s| s.try_into().ok()).ok_or((
                Refusal::BadSchedule,
                "a schedule's message has no selector".to_string(),
            ))?;
            (*contract, selector)
        }
        ScheduleRequest::Clear { contract, selector } => (*contract, *selector),
    };
    let own = |s: &Schedule| {
        s.contract == contract
            && s.origin == ScheduleOrigin::Contract
            && s.def.data.0.get(..4) == Some(&selector[..])
    };
    let replaced = table.schedules.iter().position(own);
    // Decided in full before the table changes: a refused change leaves it as it was.
    let refund = replaced.map_or(0, |at| deposit(&table.schedules[at]));
    let def = match request {
        ScheduleRequest::Clear { .. } => {
            let line = replaced.map(|at| {
                let old = table.schedules.remove(at);
                format!(
                    "schedule {} cleared by the contract (its deposit went back to it)",
                    old.id
                )
            });
            return Ok(RequestApplied {
                balance: balance.saturating_add(refund),
                line,
            });
        }
        ScheduleRequest::Set { def, .. } => def,
    };
    check(def, max_gas).map_err(|m| (Refusal::BadSchedule, m))?;
    let kept = usize::from(replaced.is_some());
    let mine = table
        .schedules
        .iter()
        .filter(|s| s.contract == contract)
        .count()
        - kept;
    if mine >= MAX_PER_CONTRACT || table.schedules.len() - kept >= MAX_SCHEDULES {
        return Err((
            Refusal::TooManySchedules,
            format!(
                "at most {MAX_PER_CONTRACT} schedules per contract and {MAX_SCHEDULES} in a \
                 cluster"
            ),
        ));
    }
    let schedule = Schedule {
        contract,
        id: table.next_id,
        def: def.clone(),
        since: now,
        last_tick: now,
        runs: 0,
        origin: ScheduleOrigin::Contract,
    };
    let due = deposit(&schedule);
    let available = balance.saturating_add(refund);
    if available < due {
        return Err((
            Refusal::StorageDeposit,
            format!("a schedule holds a deposit of {due}; {contract} has {available}"),
        ));
    }
    let id = schedule.id;
    let old = replaced.map(|at| table.schedules.remove(at).id);
    table.next_id = id.saturating_add(1);
    table.schedules.push(schedule);
    let line = match old {
        Some(old) => {
            format!("schedule {id} set by the contract, replacing schedule {old} (deposit {due})")
        }
        None => format!("schedule {id} set by the contract (deposit {due})"),
    };
    Ok(RequestApplied {
        balance: available - due,
        line: Some(line),
    })
}

/// Why a schedule definition is refused (the receipt's message; kind `bad_schedule`).
pub(crate) fn check(def: &ScheduleDef, max_gas: u64) -> Result<(), String> {
    match &def.spec {
        ScheduleSpec::Every { ms } if *ms < MIN_PERIOD_MS => {
            return Err(format!(
                "a period of {ms} ms is under the minimum of {MIN_PERIOD_MS} ms"
            ))
        }
        ScheduleSpec::Every { .. } => {}
        ScheduleSpec::Cron { expr } => {
            let cron = parse_cron(expr)?;
            let mut next = cron.after(&chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
            if let (Some(a), Some(b)) = (next.next(), next.next()) {
                if (b - a).num_milliseconds() < MIN_PERIOD_MS as i64 {
                    return Err(format!(
                        "`{expr}` fires more often than once per {MIN_PERIOD_MS} ms"
                    ));
                }
            }
        }
    }
    if def.data.0.len() < 4 || def.data.0.len() > MAX_DATA {
        return Err(format!(
            "the message is {} bytes: a 4-byte selector and arguments, at most {MAX_DATA}",
            def.data.0.len()
        ));
    }
    if def.gas_limit == 0 || def.gas_limit > max_gas {
        return Err(format!(
            "a gas limit of {} is outside 1..={max_gas}",
            def.gas_limit
        ));
    }
    Ok(())
}

fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    if expr.len() > 256 {
        return Err("a cron expression is at most 256 bytes".into());
    }
    cron::Schedule::from_str(expr).map_err(|e| {
        format!("`{expr}` is not a cron expression (sec min hour day month weekday [year]): {e}")
    })
}

fn utc(ms: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The first tick of `s` after `after`, if any.
pub(crate) fn next_tick(s: &Schedule, after: Timestamp) -> Option<Timestamp> {
    match &s.def.spec {
        ScheduleSpec::Every { ms } => {
            let ms = (*ms).max(1);
            let k = after.saturating_sub(s.since) / ms + 1;
            s.since.checked_add(k.checked_mul(ms)?)
        }
        ScheduleSpec::Cron { expr } => {
            let t = parse_cron(expr).ok()?.after(&utc(after)).next()?;
            u64::try_from(t.timestamp_millis()).ok()
        }
    }
}

/// The ticks of `s` in `(after, until]`: how many (at most [`MAX_COUNTED`]) and the latest
/// counted. The same on every worker: it depends on the schedule and the two times only.
pub(crate) fn due(s: &Schedule, after: Timestamp, until: Timestamp) -> (u64, Option<Timestamp>) {
    if until <= after {
        return (0, None);
    }
    match &s.def.spec {
        ScheduleSpec::Every { ms } => {
            let ms = (*ms).max(1);
            let first = after.saturating_sub(s.since) / ms + 1;
            let last = until.saturating_sub(s.since) / ms;
            if until < s.since || last < first {
                return (0, None);
            }
            let count = (last - first + 1).min(MAX_COUNTED);
            let latest = first + count - 1;
            (count, Some(s.since + latest * ms))
        }
        ScheduleSpec::Cron { expr } => {
            let Ok(cron) = parse_cron(expr) else {
                return (0, None);
            };
            let (mut count, mut latest) = (0, None);
            for t in cron.after(&utc(after)) {
                let Ok(t) = u64::try_from(t.timestamp_millis()) else {
                    break;
                };
                if t > until || count == MAX_COUNTED {
                    break;
                }
                count += 1;
                latest = Some(t);
            }
            (count, latest)
        }
    }
}

/// A tick as people read it (RFC 3339, UTC, milliseconds).
pub(crate) fn format_tick(ms: Timestamp) -> String {
    utc(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The call data of a run standing for `ticks` ticks.
pub(crate) fn run_data(def: &ScheduleDef, ticks: u64) -> Vec<u8> {
    let mut data = def.data.0.clone();
    if def.missed == MissedTicks::RunOnce {
        ticks.encode_to(&mut data);
    }
    data
}

/// The ticks a worker proposes of `table` at its wall time `now`: for each schedule, its next
/// tick after `last_tick` once due (plus this worker's jitter for it, under 300 ms, so that
/// usually one proposal is applied before the others look again), unless `proposed` already.
pub(crate) fn proposals(
    table: &ScheduleTable,
    me: &[u8; 32],
    now: Timestamp,
    proposed: &HashMap<(u32, Timestamp), Instant>,
) -> Vec<TriggerEntry> {
    let mut out = Vec::new();
    for s in &table.schedules {
        let Some(tick) = next_tick(s, s.last_tick) else {
            continue;
        };
        let jitter = u64::from_le_bytes(
            phat_primitives::blake2_256(&(me, s.id, tick).encode())[..8]
                .try_into()
                .unwrap_or_default(),
        ) % 300;
        if tick.saturating_add(jitter) > now || proposed.contains_key(&(s.id, tick)) {
            continue;
        }
        out.push(TriggerEntry {
            contract: s.contract,
            schedule: s.id,
            tick,
        });
    }
    out
}

/// Proposes a trigger for every due tick the applied state has not run. Ticks are proposed on
/// this worker's clock and judged on ledger time.
pub(crate) struct TickProposer {
    me: [u8; 32],
    /// Ticks proposed lately, proposed again after [`REPROPOSE`] if still not run.
    proposed: HashMap<(u32, Timestamp), Instant>,
}

impl TickProposer {
    /// The proposer of the worker whose identity key is `me`.
    pub(crate) fn new(me: [u8; 32]) -> Self {
        Self {
            me,
            proposed: HashMap::new(),
        }
    }
}

impl super::proposer::Proposer for TickProposer {
    const EVERY: Duration = Duration::from_millis(100);

    async fn round(&mut self, worker: &Worker, snap: Snapshot, now: Timestamp) {
        let Ok(table) = stored(&snap) else {
            return;
        };
        self.proposed.retain(|_, at| at.elapsed() < REPROPOSE);
        for t in proposals(&table, &self.me, now, &self.proposed) {
            self.proposed.insert((t.schedule, t.tick), Instant::now());
            let (schedule, tick) = (t.schedule, t.tick);
            let entry = LedgerCommand::Trigger(t);
            if let Err(e) = worker.inner.ledger.append(entry.encode()).await {
                tracing::warn!(schedule, tick, "proposing a tick: {e}");
            }
        }
    }
}

/// Applies a deployer's change to its contract's schedules: the receipt's output and the
/// writes (the table, the deposit), or the refusal's kind and message; `Err` when this
/// worker's store fails (the batch is retried rather than refused differently).
pub(crate) fn apply_schedule_op(
    worker: &Worker,
    state: &Layered,
    table: &mut phat_primitives::protocol::ScheduleTable,
    entry: &LedgerEntry,
    caller: AccountId,
    op: &phat_primitives::protocol::ScheduleOp,
) -> Result<ScheduleChange, WorkerError> {
    let read = |key: &StateKey| {
        phat_runtime::StateRead::get(state, key).map_err(ApplyError::state_read(entry.seq))
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
    let balances = Balances {
        caller: balance_of(caller)?,
        contract: balance_of(contract)?,
    };
    Ok(schedule_change(
        super::Rules::of(worker),
        info,
        balances,
        table,
        entry,
        caller,
        op,
    ))
}

/// The balances a deployer's schedule change reads: the caller's (who pays for a schedule it
/// adds) and the contract's (which gets back the deposit of a schedule it set itself).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Balances {
    /// The caller's balance.
    pub(crate) caller: phat_primitives::Balance,
    /// The contract's balance.
    pub(crate) contract: phat_primitives::Balance,
}

/// A schedule change's receipt output and writes, or its refusal's kind and message.
pub(crate) type ScheduleChange = Result<(Vec<u8>, ChangeSet), (Refusal, String)>;

/// [`apply_schedule_op`] on what it read: the contract's info, the signer's balance and the
/// contract's (a schedule the contract set itself gives its deposit back to it).
pub(crate) fn schedule_change(
    rules: super::Rules,
    info: Option<Vec<u8>>,
    balances: Balances,
    table: &mut phat_primitives::protocol::ScheduleTable,
    entry: &LedgerEntry,
    caller: AccountId,
    op: &phat_primitives::protocol::ScheduleOp,
) -> ScheduleChange {
    let Balances {
        caller: balance,
        contract: contract_balance,
    } = balances;
    use phat_primitives::protocol::{Schedule, ScheduleOp};
    let contract = match op {
        ScheduleOp::Add { contract, .. } | ScheduleOp::Remove { contract, .. } => *contract,
    };
    // The contract's deployer decides its schedules. Read through the batch's earlier writes
    // (by the caller): a contract instantiated earlier in the same batch exists (workers
    // batch differently).
    super::deployer_only(info, contract, caller, "schedules")?;
    // Each schedule holds a storage deposit, like state bytes: its encoded size at the
    // cluster's price, taken from the deployer at `Add` and given back at `Remove`.
    let price = rules.price;
    let deposit = |s: &Schedule| crate::triggers::schedule::deposit(s, price);
    let mut changes = ChangeSet::new();
    let mut set_balance = |account: AccountId, amount: phat_primitives::Balance| {
        let value = (amount != 0).then(|| amount.encode());
        changes.insert(StateKey::Balance(account), value);
    };
    let output = match op {
        ScheduleOp::Add { def, .. } => {
            crate::triggers::schedule::check(def, rules.max_gas)
                .map_err(|m| (Refusal::BadSchedule, m))?;
            let mine = table
                .schedules
                .iter()
                .filter(|s| s.contract == contract)
                .count();
            if mine >= crate::triggers::schedule::MAX_PER_CONTRACT
                || table.schedules.len() >= crate::triggers::schedule::MAX_SCHEDULES
            {
                return Err((
                    Refusal::TooManySchedules,
                    format!(
                        "at most {} schedules per contract and {} in a cluster",
                        crate::triggers::schedule::MAX_PER_CONTRACT,
                        crate::triggers::schedule::MAX_SCHEDULES
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

/// The deposit a schedule holds: its encoded size at the cluster's price (the counters and
/// times are fixed-size, so runs do not change it).
pub(crate) fn deposit(s: &Schedule, price: u128) -> u128 {
    price.saturating_mul(s.encoded_size() as u128)
}

/// Applies the changes to schedules a run made through the extension, in order, all or
/// none: the contracts pay (or get back) the deposits from their own balances, as this run's
/// writes left them. A change refused (caps, deposit, a definition the cluster refuses)
/// fails the whole run with `schedule_refused`, its writes and events dropped, as a refused
/// storage deposit fails a call.
pub(crate) fn apply_schedule_requests(
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
    let rules = crate::triggers::Rules::of(worker);
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
                    None => phat_runtime::StateRead::get(&state, &key)
                        .map_err(ApplyError::state_read(entry.seq))?,
                };
                raw.and_then(|r| phat_primitives::Balance::decode(&mut &r[..]).ok())
                    .unwrap_or(0)
            }
        };
        match crate::triggers::schedule::apply_request(
            &mut table,
            request,
            balance,
            entry.timestamp,
            rules,
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

/// Applies a proposed tick: runs the schedule once for its latest due tick if one is due on
/// ledger time after its last run; otherwise a receipt says why not (`already_run`,
/// `not_due`, `unknown_schedule`) and nothing changes.
pub(crate) fn apply_trigger(
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
    let (count, latest) = crate::triggers::schedule::due(s, s.last_tick, entry.timestamp);
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
        data: crate::triggers::schedule::run_data(&s.def, count).into(),
        gas_limit: s.def.gas_limit,
    };
    let (id, policy, origin) = (s.id, s.def.missed, s.origin);
    // A schedule the contract set itself is its own: it pays its runs' deposits and they are
    // called by it, as Phala calls hooks; a deployer's schedule is the deployer's.
    let (caller, payer) = match origin {
        ScheduleOrigin::Contract => (t.contract, Some(t.contract)),
        ScheduleOrigin::Deployer => (caller, deployer_of(view, entry, &t.contract)?),
    };
    let mut applied = run_command(
        worker,
        view,
        entry,
        RunAs { caller, payer },
        request,
        call,
        None,
    )?;
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
    let outcome = super::outcome(&applied.receipt.result);
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
            crate::triggers::schedule::format_tick(latest)
        ),
    });
    // A run that terminated its contract removes the contract's schedules, this one too.
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    // A run's result is readable by anyone who may read the contract's receipts.
    applied.executed = false;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::Bytes;
    use phat_primitives::AccountId;

    fn schedule(spec: ScheduleSpec, since: Timestamp) -> Schedule {
        Schedule {
            contract: AccountId([1; 32]),
            id: 0,
            def: ScheduleDef {
                spec,
                data: Bytes(vec![1, 2, 3, 4]),
                gas_limit: 1,
                missed: MissedTicks::RunOnce,
            },
            since,
            last_tick: since,
            runs: 0,
            origin: Default::default(),
        }
    }

    #[test]
    fn periods_tick_from_the_registration_and_collapse_missed_ticks() {
        let s = schedule(ScheduleSpec::Every { ms: 1_000 }, 10_500);
        assert_eq!(next_tick(&s, 10_500), Some(11_500));
        assert_eq!(next_tick(&s, 11_499), Some(11_500));
        assert_eq!(next_tick(&s, 11_500), Some(12_500));
        // Nothing due before the first tick; exactly one at it; several after a gap.
        assert_eq!(due(&s, 10_500, 11_499), (0, None));
        assert_eq!(due(&s, 10_500, 11_500), (1, Some(11_500)));
        assert_eq!(due(&s, 11_500, 15_700), (4, Some(15_500)));
        assert_eq!(due(&s, 15_500, 15_500), (0, None));
        // A day of 1-second ticks is counted up to the cap, deterministically.
        let (n, latest) = due(&s, 10_500, 10_500 + 200_000 * 1_000);
        assert_eq!(n, MAX_COUNTED);
        assert_eq!(latest, Some(10_500 + MAX_COUNTED * 1_000));
    }

    #[test]
    fn cron_expressions_tick_in_utc_with_seconds() {
        // Every 10 s at :00, :10, …
        let s = schedule(
            ScheduleSpec::Cron {
                expr: "*/10 * * * * *".into(),
            },
            1_000_003_000,
        );
        assert_eq!(next_tick(&s, 1_000_003_000), Some(1_000_010_000));
        assert_eq!(due(&s, 1_000_003_000, 1_000_009_999), (0, None));
        assert_eq!(
            due(&s, 1_000_003_000, 1_000_035_000),
            (3, Some(1_000_030_000))
        );
        assert_eq!(format_tick(1_000_030_000), "1970-01-12T13:47:10.000Z");
        assert_eq!(format_tick(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn definitions_are_checked() {
        let ok = schedule(ScheduleSpec::Every { ms: 1_000 }, 0).def;
        assert_eq!(check(&ok, 10), Ok(()));
        let fast = ScheduleDef {
            spec: ScheduleSpec::Every { ms: 999 },
            ..ok.clone()
        };
        assert!(check(&fast, 10).unwrap_err().contains("minimum"));
        let every_second = ScheduleDef {
            spec: ScheduleSpec::Cron {
                expr: "* * * * * *".into(),
            },
            ..ok.clone()
        };
        assert_eq!(check(&every_second, 10), Ok(()));
        for bad in ["* * * * *x", "", "61 * * * * *"] {
            let def = ScheduleDef {
                spec: ScheduleSpec::Cron { expr: bad.into() },
                ..ok.clone()
            };
            assert!(
                check(&def, 10)
                    .unwrap_err()
                    .contains("not a cron expression"),
                "{bad}"
            );
        }
        let long = ScheduleDef {
            spec: ScheduleSpec::Cron {
                expr: "*".repeat(300),
            },
            ..ok.clone()
        };
        assert!(check(&long, 10).unwrap_err().contains("at most 256"));
        let no_selector = ScheduleDef {
            data: Bytes(vec![1]),
            ..ok.clone()
        };
        assert!(check(&no_selector, 10).is_err());
        let huge = ScheduleDef {
            data: Bytes(vec![0; MAX_DATA + 1]),
            ..ok.clone()
        };
        assert!(check(&huge, 10).is_err());
        let gas = ScheduleDef {
            gas_limit: 11,
            ..ok.clone()
        };
        assert!(check(&gas, 10).unwrap_err().contains("gas"));
        // `run_once` appends the ticks as a u64; `skip` sends the message as given.
        assert_eq!(run_data(&ok, 3), vec![1, 2, 3, 4, 3, 0, 0, 0, 0, 0, 0, 0]);
        let skip = ScheduleDef {
            missed: MissedTicks::Skip,
            ..ok
        };
        assert_eq!(run_data(&skip, 3), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_contracts_own_schedules_replace_clear_and_pay() {
        use phat_pink::ScheduleRequest;
        use phat_primitives::protocol::ScheduleOrigin;
        let contract = AccountId([1; 32]);
        let def = |ms, selector: u8| ScheduleDef {
            spec: ScheduleSpec::Every { ms },
            data: Bytes(vec![selector, 0, 0, 0, 9]),
            gas_limit: 10,
            missed: MissedTicks::Skip,
        };
        let set = |ms, selector| ScheduleRequest::Set {
            contract,
            def: def(ms, selector),
        };
        let price = 3u128;
        let (now, rules) = (
            100,
            crate::triggers::Rules {
                max_gas: 1_000,
                price,
            },
        );
        let mut table = ScheduleTable::default();
        // A deployer's schedule for the same selector is not the contract's to replace.
        let mut by_deployer = schedule(ScheduleSpec::Every { ms: 5_000 }, 0);
        by_deployer.def.data = Bytes(vec![7, 0, 0, 0]);
        table.schedules.push(by_deployer);
        table.next_id = 1;
        let first = apply_request(&mut table, &set(1_000, 7), 10_000, now, rules).unwrap();
        let size = table.schedules[1].encoded_size() as u128;
        assert_eq!(first.balance, 10_000 - size * price);
        assert_eq!(table.schedules[1].origin, ScheduleOrigin::Contract);
        assert_eq!(table.schedules[1].since, 100);
        // Again for the same selector: replaced (its deposit back, the new one taken).
        let again = apply_request(&mut table, &set(2_000, 7), first.balance, now, rules).unwrap();
        assert_eq!(again.balance, first.balance);
        assert_eq!(table.schedules.len(), 2);
        assert_eq!(table.schedules[1].id, 2);
        assert!(again.line.unwrap().contains("replacing schedule 1"));
        // A replacement the deposit does not cover changes nothing.
        let bigger = ScheduleRequest::Set {
            contract,
            def: ScheduleDef {
                data: Bytes(vec![7, 0, 0, 0, 1, 2, 3, 4, 5, 6]),
                ..def(1_000, 7)
            },
        };
        let mut t = table.clone();
        let refused = apply_request(&mut t, &bigger, 0, now, rules).err().unwrap();
        assert_eq!(refused.0, Refusal::StorageDeposit);
        assert_eq!(t, table);
        // Cleared: the deposit comes back; clearing what is not there changes nothing.
        let clear = ScheduleRequest::Clear {
            contract,
            selector: [7, 0, 0, 0],
        };
        let cleared = apply_request(&mut table, &clear, again.balance, now, rules).unwrap();
        assert_eq!(cleared.balance, 10_000);
        assert_eq!(table.schedules.len(), 1, "the deployer's stays");
        let nothing = apply_request(&mut table, &clear, 10_000, now, rules).unwrap();
        assert_eq!((nothing.balance, nothing.line), (10_000, None));
        // Refusals: no deposit, a bad definition, no selector, the caps.
        let mut t = table.clone();
        assert_eq!(
            apply_request(&mut t, &set(1_000, 8), 1, now, rules)
                .err()
                .unwrap()
                .0,
            Refusal::StorageDeposit
        );
        assert_eq!(
            apply_request(&mut t, &set(10, 8), 10_000, now, rules)
                .err()
                .unwrap()
                .0,
            Refusal::BadSchedule
        );
        let short = ScheduleRequest::Set {
            contract,
            def: ScheduleDef {
                data: Bytes(vec![1, 2]),
                ..def(1_000, 8)
            },
        };
        assert_eq!(
            apply_request(&mut t, &short, 10_000, now, rules)
                .err()
                .unwrap()
                .0,
            Refusal::BadSchedule
        );
        assert_eq!(t, table, "a refused change leaves the table as it was");
        let mut full = ScheduleTable::default();
        for selector in 0..MAX_PER_CONTRACT as u8 {
            apply_request(&mut full, &set(1_000, selector), u128::MAX, now, rules).unwrap();
        }
        assert_eq!(
            apply_request(&mut full, &set(1_000, 200), u128::MAX, now, rules)
                .err()
                .unwrap()
                .0,
            Refusal::TooManySchedules
        );
    }

    #[test]
    fn a_due_tick_is_proposed_once_after_its_jitter() {
        let mut s = schedule(ScheduleSpec::Every { ms: 1_000 }, 10_000);
        s.id = 3;
        let mut table = ScheduleTable::default();
        table.schedules.push(s);
        let me = [7; 32];
        let none = HashMap::new();
        // Not due before the tick.
        assert!(proposals(&table, &me, 10_999, &none).is_empty());
        // Due once the tick and this worker's jitter (under 300 ms) have passed.
        let due = proposals(&table, &me, 11_300, &none);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].schedule, due[0].tick), (3, 11_000));
        assert_eq!(due[0].contract, table.schedules[0].contract);
        // Another worker waits another jitter for the same tick: the two differ for some key.
        let jitters: std::collections::HashSet<bool> = (0..32u8)
            .map(|k| proposals(&table, &[k; 32], 11_150, &none).is_empty())
            .collect();
        assert_eq!(jitters.len(), 2, "every worker waits the same moment");
        // Proposed already: not again until forgotten.
        let mut proposed = HashMap::new();
        proposed.insert((3, 11_000), Instant::now());
        assert!(proposals(&table, &me, 11_300, &proposed).is_empty());
        // Once it ran (last_tick moved), the next tick is the one proposed.
        table.schedules[0].last_tick = 11_000;
        assert!(proposals(&table, &me, 11_300, &none).is_empty());
        assert_eq!(proposals(&table, &me, 12_300, &none)[0].tick, 12_000);
    }
}
