//! Off-chain jobs: on each tick of a schedule, one worker runs a contract's message in query
//! mode (so it may use HTTP, randomness and time) and commits its output to a handler message
//! as a command, once per tick across the cluster.
//!
//! The job table is replicated state ([`StateKey::Jobs`]), changed by the deployer's commands.
//! Which worker runs a tick is decided without agreement: each worker waits a delay drawn
//! from `blake2(job, tick, its key)` (a fraction of the job's timeout, its place in the tick's
//! order) and then runs the query, unless the tick was answered meanwhile. The first worker
//! in the order answers; if it is down or slow, the next one does after its own delay
//! (failover). A result is a [`JobResultEntry`] signed with the worker's vote key; applying
//! it, every worker checks the signer is a member, that the tick is one of the job's, due on
//! ledger time and not answered yet, then runs the handler once with the output and moves
//! the job's `last_tick`. A second result for the tick is refused (`already_answered`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parity_scale_codec::Encode;
use phat_primitives::protocol::{
    Bytes, Call, CallResult, Job, JobDef, JobOp, JobResultEntry, JobTable, LedgerCommand,
    MissedTicks, Schedule, ScheduleDef,
};
use phat_primitives::{Hash, Mode, Refusal, StateKey, Timestamp};
use phat_store::Snapshot;

use crate::{Worker, WorkerError};

// The apply side of this kind: decisions on its ledger entries and commands.
#[allow(unused_imports, reason = "each slice uses a part of the apply kit")]
use crate::apply::kit::*;

/// Most jobs one contract may have.
pub const MAX_PER_CONTRACT: usize = 4;
/// Most jobs in a cluster.
pub const MAX_JOBS: usize = 256;
/// Most bytes of a job's output committed to its handler.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// The shortest and longest failover timeout (ms).
pub const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 500..=60_000;
/// How often a worker looks for due ticks.
const SCAN: Duration = Duration::from_millis(100);
/// Job queries one worker runs at once (each on a blocking thread, up to the query time
/// limit): a job whose query always fails costs every worker at most this much.
const CONCURRENT_QUERIES: usize = 4;
/// How far back a worker looks for a job's latest due tick (older ones are skipped anyway;
/// this bounds the cron steps of a job stuck for long).
const WINDOW_MS: u64 = 3_600_000;
/// How long a worker waits before running a tick again that is still not answered (its
/// result refused: a clock ahead of ledger time, a key rotation), at least.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The job table in `snap`.
pub(crate) fn stored(snap: &Snapshot) -> Result<JobTable, WorkerError> {
    crate::triggers::stored_table(snap, &StateKey::Jobs, "job table")
}

/// `job` as a schedule, for the tick arithmetic they share.
pub(crate) fn as_schedule(job: &Job) -> Schedule {
    Schedule {
        contract: job.contract,
        id: job.id,
        def: ScheduleDef {
            spec: job.def.spec.clone(),
            data: job.def.query.clone(),
            gas_limit: job.def.gas_limit,
            missed: MissedTicks::Skip,
        },
        since: job.since,
        last_tick: job.last_tick,
        runs: job.runs,
        origin: phat_primitives::protocol::ScheduleOrigin::Deployer,
    }
}

/// The storage deposit a job holds: its definition's size plus room for its times and
/// counter, at the cluster's price per byte.
pub(crate) fn deposit(def: &JobDef, price: u128) -> u128 {
    price.saturating_mul((def.encoded_size() + 64) as u128)
}

/// Why a job definition is refused (the receipt's message; kind `bad_job`).
pub(crate) fn check(def: &JobDef, max_gas: u64) -> Result<(), String> {
    let schedule_def = ScheduleDef {
        spec: def.spec.clone(),
        data: def.query.clone(),
        gas_limit: def.gas_limit,
        missed: MissedTicks::Skip,
    };
    crate::triggers::schedule::check(&schedule_def, max_gas)?;
    if def.handler.0.len() != 4 {
        return Err(format!(
            "the handler is a 4-byte selector, not {} bytes",
            def.handler.0.len()
        ));
    }
    let period = match &def.spec {
        phat_primitives::protocol::ScheduleSpec::Every { ms } => Some(*ms),
        phat_primitives::protocol::ScheduleSpec::Cron { .. } => {
            let s = Job {
                contract: phat_primitives::AccountId([0; 32]),
                id: 0,
                def: def.clone(),
                since: 0,
                last_tick: 0,
                runs: 0,
            };
            let s = as_schedule(&s);
            crate::triggers::schedule::next_tick(&s, 0)
                .and_then(|a| Some((a, crate::triggers::schedule::next_tick(&s, a)?)))
                .map(|(a, b)| b - a)
        }
    };
    if period.is_some_and(|p| u64::from(def.timeout_ms) >= p) {
        return Err(format!(
            "a timeout of {} ms is not shorter than the period of {} ms (ticks would be lost)",
            def.timeout_ms,
            period.unwrap_or_default()
        ));
    }
    if !TIMEOUT_MS.contains(&def.timeout_ms) {
        return Err(format!(
            "a timeout of {} ms is outside {}..={} ms",
            def.timeout_ms,
            TIMEOUT_MS.start(),
            TIMEOUT_MS.end()
        ));
    }
    Ok(())
}

/// A deployer's change to its contract's jobs on `table`: the receipt's output and the
/// deployer's new balance, or the refusal's kind and message.
pub(crate) fn change(
    table: &mut JobTable,
    info: Option<Vec<u8>>,
    payer: super::Payer,
    op: &JobOp,
    now: Timestamp,
    rules: super::Rules,
) -> super::Changed {
    let contract = op.contract();
    super::deployer_only(info, contract, payer.account, "jobs")?;
    match op {
        JobOp::Add { def, .. } => {
            check(def, rules.max_gas).map_err(|m| (Refusal::BadJob, m))?;
            super::add(table, contract, payer, deposit(def, rules.price), |id| {
                Job {
                    contract,
                    id,
                    def: def.clone(),
                    since: now,
                    last_tick: now,
                    runs: 0,
                }
            })
        }
        JobOp::Remove { id, .. } => super::remove(table, contract, *id, payer, rules.price),
    }
}

/// Why `tick` is not one `job` may be answered for at ledger time `now` (kind, message).
pub(crate) fn unanswerable(
    job: &Job,
    tick: Timestamp,
    now: Timestamp,
) -> Option<(Refusal, String)> {
    if tick <= job.last_tick {
        return Some((
            Refusal::AlreadyAnswered,
            format!("job {} answered up to tick {}", job.id, job.last_tick),
        ));
    }
    if tick > now {
        return Some((
            Refusal::NotDue,
            format!("tick {tick} is after ledger time {now}"),
        ));
    }
    let s = as_schedule(job);
    if crate::triggers::schedule::next_tick(&s, tick.saturating_sub(1)) != Some(tick) {
        return Some((
            Refusal::NotATick,
            format!("{tick} is not a tick of job {}", job.id),
        ));
    }
    None
}

/// The call data of a tick's handler run: its selector and `(tick, output)`.
pub(crate) fn handler_data(def: &JobDef, tick: Timestamp, output: &[u8]) -> Vec<u8> {
    let mut data = def.handler.0.clone();
    (tick, output).encode_to(&mut data);
    data
}

/// This worker's place in `tick`'s order, as a delay: a fraction of the timeout drawn from
/// `blake2(job, tick, worker)`, the same for everyone who computes it.
fn delay(job: &Job, tick: Timestamp, worker: &[u8; 32]) -> Duration {
    let h = phat_primitives::blake2_256(&(job.contract, job.id, tick, worker).encode());
    let fraction =
        u64::from_le_bytes(h[..8].try_into().unwrap_or_default()) as f64 / u64::MAX as f64;
    Duration::from_millis((fraction * f64::from(job.def.timeout_ms)) as u64)
}

/// The tick of `job` this worker runs at its wall time `now`, if any: the latest tick due
/// (missed ones are skipped, looked for in the last hour only), once this worker's place in
/// the tick's order ([`delay`]) has come.
pub(crate) fn tick_to_run(job: &Job, me: &[u8; 32], now: Timestamp) -> Option<Timestamp> {
    let after = job.last_tick.max(now.saturating_sub(WINDOW_MS));
    let (_, Some(tick)) = crate::triggers::schedule::due(&as_schedule(job), after, now) else {
        return None;
    };
    let due_for = Duration::from_millis(now.saturating_sub(tick));
    (due_for >= delay(job, tick, me)).then_some(tick)
}

/// Runs each job's latest due tick not answered yet once this worker's place in the tick's
/// order has come (unless the tick was answered meanwhile), and appends the result.
pub(crate) struct JobRunner {
    me: [u8; 32],
    /// Ticks this worker started (job, tick) → when: it runs a tick again only after
    /// `RETRY_AFTER` (or twice the job's timeout) if the tick is still not answered.
    started: HashMap<(u32, Timestamp), (Instant, Duration)>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Jobs with a query under way on this worker (at most one per job).
    running: Arc<parking_lot::Mutex<std::collections::HashSet<u32>>>,
}

impl JobRunner {
    /// The runner of the worker whose identity key is `me`.
    pub(crate) fn new(me: [u8; 32]) -> Self {
        Self {
            me,
            started: HashMap::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_QUERIES)),
            running: Arc::default(),
        }
    }
}

impl super::proposer::Proposer for JobRunner {
    const EVERY: Duration = SCAN;

    async fn round(&mut self, worker: &Worker, snap: Snapshot, now: Timestamp) {
        let Ok(table) = stored(&snap) else {
            return;
        };
        self.started.retain(|_, (at, keep)| at.elapsed() < *keep);
        for job in table.jobs {
            let Some(tick) = tick_to_run(&job, &self.me, now) else {
                continue;
            };
            if self.started.contains_key(&(job.id, tick)) || self.running.lock().contains(&job.id) {
                continue;
            }
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                // Every query slot is busy: this tick waits for the next scan.
                break;
            };
            let keep = RETRY_AFTER.max(Duration::from_millis(u64::from(job.def.timeout_ms) * 2));
            self.started.insert((job.id, tick), (Instant::now(), keep));
            self.running.lock().insert(job.id);
            let (w, running) = (worker.clone(), self.running.clone());
            worker.spawn_task(async move {
                let id = job.id;
                answer(w, job, tick).await;
                running.lock().remove(&id);
                drop(slot);
            });
        }
    }
}

/// Runs `job`'s query for `tick` and appends the result, unless the tick was answered.
async fn answer(worker: Worker, job: Job, tick: Timestamp) {
    let inner = worker.inner.clone();
    let answered = inner
        .store
        .snapshot()
        .ok()
        .and_then(|s| stored(&s).ok())
        .and_then(|t| t.jobs.into_iter().find(|j| j.id == job.id))
        .is_none_or(|j| j.last_tick >= tick);
    if answered {
        return;
    }
    let output = {
        let worker = worker.clone();
        let job = job.clone();
        tokio::task::spawn_blocking(move || run_query(&worker, &job)).await
    };
    let output = match output {
        Ok(Ok(o)) => o,
        Ok(Err(why)) => {
            tracing::warn!(job = job.id, tick, "the job's query failed: {why}");
            return;
        }
        Err(e) => {
            tracing::warn!(job = job.id, tick, "the job's query panicked: {e}");
            return;
        }
    };
    let me = Hash(worker.worker_key());
    let epoch = inner.enclave.keys().held();
    let Some(keys) = inner.enclave.keys().epoch(epoch) else {
        return;
    };
    // On a cluster that encrypts, the ledger does not read the output (what an HTTP API
    // answered may be private): it is sealed for the workers.
    let output = if inner.genesis.encryption {
        phat_crypto::entry::seal_entry_data(&keys.secret, &output_name(&job, tick), &output)
    } else {
        output
    };
    let mut entry = JobResultEntry {
        contract: job.contract,
        job: job.id,
        tick,
        output: Bytes(output),
        worker: me,
        epoch,
        signature: Bytes(Vec::new()),
    };
    entry.signature = Bytes(
        inner
            .enclave
            .vote_key
            .sign(JobResultEntry::VOTE_DOMAIN, &entry.signed_payload())
            .to_vec(),
    );
    if let Err(e) = inner
        .ledger
        .append(LedgerCommand::JobResult(entry).encode())
        .await
    {
        tracing::warn!(job = job.id, tick, "appending a job's result: {e}");
    }
}

/// What a sealed output is bound to: its job and tick.
pub(crate) fn output_name(job: &Job, tick: Timestamp) -> Vec<u8> {
    (b"phat/v1/job-output", job.contract, job.id, tick).encode()
}

/// The query's output bytes (its return data), or why there are none.
fn run_query(worker: &Worker, job: &Job) -> Result<Vec<u8>, String> {
    let snap = Arc::new(worker.inner.store.snapshot().map_err(|e| e.to_string())?);
    let head = snap.head();
    let executed = crate::execute::execute(
        worker,
        crate::execute::Run {
            mode: Mode::Query,
            state: Arc::new(crate::state::SnapshotState(snap)),
            seq: None,
            block_number: u32::try_from(head.seq).unwrap_or(u32::MAX),
            timestamp: crate::now_ms(),
            caller: phat_primitives::protocol::job_caller(),
            payer: None,
            call: Call::Call {
                dest: job.contract,
                value: 0,
                data: job.def.query.clone(),
                gas_limit: job.def.gas_limit,
            },
            code: None,
            dry_run: false,
        },
    );
    let (result, _, _) = crate::execute::outcome_parts(executed.result);
    match result {
        CallResult::Ok(o) if o.reverted => Err("the query reverted".into()),
        CallResult::Ok(o) if o.data.0.len() > MAX_OUTPUT => Err(format!(
            "the output is {} bytes, more than {MAX_OUTPUT}",
            o.data.0.len()
        )),
        CallResult::Ok(o) => Ok(o.data.0),
        CallResult::Err(e) => Err(format!("{}: {}", e.kind, e.message)),
        CallResult::Sealed(_) => Err("sealed".into()),
    }
}

/// Applies a job's result for a tick: checks who made it ([`check_vote`]), that the
/// tick is one of the job's, due on ledger time and not answered yet, and the output's size;
/// then runs the handler once with `(tick, output)` and moves the job's `last_tick`.
pub(crate) fn apply_job_result(
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
        Vote {
            epoch: r.epoch,
            by: &r.worker,
            domain: JobResultEntry::VOTE_DOMAIN,
            payload: &r.signed_payload(),
            signature: &r.signature.0,
        },
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
    if let Some((kind, message)) = crate::triggers::job::unanswerable(job, r.tick, entry.timestamp)
    {
        return Ok(refuse(kind, message));
    }
    // Sealed for the workers on a cluster that encrypts (every worker holds the key of the
    // current epoch here: the batch waited for it, and `check_vote` passed).
    let output = if worker.inner.genesis.encryption {
        let opened = worker.inner.enclave.keys().epoch(r.epoch).map(|k| {
            phat_crypto::entry::open_entry_data(
                &k.secret,
                &crate::triggers::job::output_name(job, r.tick),
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
    if output.len() > crate::triggers::job::MAX_OUTPUT {
        return Ok(refuse(
            Refusal::TooLarge,
            format!(
                "an output of {} bytes, more than {}",
                output.len(),
                crate::triggers::job::MAX_OUTPUT
            ),
        ));
    }
    let (id, contract) = (job.id, job.contract);
    let call = Call::Call {
        dest: contract,
        value: 0,
        data: crate::triggers::job::handler_data(&job.def, r.tick, &output).into(),
        gas_limit: job.def.gas_limit,
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
    let job = &mut local.jobs.jobs[index];
    job.last_tick = r.tick;
    job.runs += 1;
    applied
        .changes
        .insert(StateKey::Jobs, Some(local.jobs.encode()));
    let outcome = super::outcome(&applied.receipt.result);
    applied.logs.push(LogRecord {
        contract,
        level: "trigger".into(),
        origin: Mode::Command,
        seq: Some(entry.seq),
        timestamp: entry.timestamp,
        message: format!(
            "job {id} tick {} answered by {} ({} bytes): {outcome}",
            crate::triggers::schedule::format_tick(r.tick),
            r.worker,
            output.len()
        ),
    });
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    applied.executed = false;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::protocol::ScheduleSpec;
    use phat_primitives::AccountId;

    fn job() -> Job {
        Job {
            contract: AccountId([1; 32]),
            id: 0,
            def: JobDef {
                spec: ScheduleSpec::Every { ms: 1_000 },
                query: Bytes(vec![1, 2, 3, 4]),
                handler: Bytes(vec![5, 6, 7, 8]),
                gas_limit: 10,
                timeout_ms: 500,
            },
            since: 10_500,
            last_tick: 10_500,
            runs: 0,
        }
    }

    #[test]
    fn only_due_ticks_of_the_job_after_the_last_are_answered() {
        let j = job();
        assert_eq!(unanswerable(&j, 11_500, 11_500), None);
        assert_eq!(
            unanswerable(&j, 13_500, 20_000),
            None,
            "a later tick skips missed ones"
        );
        assert_eq!(
            unanswerable(&j, 10_500, 20_000).map(|u| u.0),
            Some(Refusal::AlreadyAnswered)
        );
        assert_eq!(
            unanswerable(&j, 11_500, 11_499).map(|u| u.0),
            Some(Refusal::NotDue)
        );
        assert_eq!(
            unanswerable(&j, 11_501, 20_000).map(|u| u.0),
            Some(Refusal::NotATick)
        );
        let data = handler_data(&j.def, 11_500, b"42");
        assert_eq!(&data[..4], &[5, 6, 7, 8]);
        assert_eq!(&data[4..], &(11_500u64, b"42".to_vec()).encode()[..]);
    }

    #[test]
    fn definitions_are_checked_and_orders_differ_per_tick() {
        let ok = job().def;
        assert_eq!(check(&ok, 10), Ok(()));
        // A timeout as long as the period would lose ticks.
        let slow = JobDef {
            timeout_ms: 1_000,
            ..ok.clone()
        };
        assert!(check(&slow, 10).unwrap_err().contains("period"));
        assert!(check(
            &JobDef {
                handler: Bytes(vec![1]),
                ..ok.clone()
            },
            10
        )
        .is_err());
        assert!(check(
            &JobDef {
                timeout_ms: 10,
                ..ok.clone()
            },
            10
        )
        .is_err());
        assert!(check(
            &JobDef {
                spec: ScheduleSpec::Every { ms: 10 },
                ..ok.clone()
            },
            10
        )
        .is_err());
        // Every worker's delay is within the timeout, and the first worker changes with the tick.
        let j = job();
        let firsts: std::collections::HashSet<u8> = (0..20u64)
            .map(|k| {
                let tick = 11_500 + k * 1_000;
                (0..3u8)
                    .min_by_key(|w| delay(&j, tick, &[*w; 32]))
                    .unwrap_or_default()
            })
            .collect();
        assert!(firsts.len() > 1, "one worker first on every tick");
        assert!(delay(&j, 11_500, &[0; 32]) < Duration::from_millis(500));
    }

    #[test]
    fn a_worker_runs_the_latest_due_tick_once_its_place_has_come() {
        let j = job();
        let me = [3; 32];
        // The job ticks every second from its registration at 10_500.
        let first = crate::triggers::schedule::next_tick(&as_schedule(&j), j.last_tick).unwrap();
        assert_eq!(first, 11_500);
        assert_eq!(tick_to_run(&j, &me, first - 1), None);
        // Its place in the tick's order: not before its delay, and within the timeout.
        let wait = u64::try_from(delay(&j, first, &me).as_millis()).unwrap();
        assert!(wait <= u64::from(j.def.timeout_ms));
        if wait > 0 {
            assert_eq!(tick_to_run(&j, &me, first + wait - 1), None);
        }
        assert_eq!(tick_to_run(&j, &me, first + wait), Some(first));
        // Missed ticks are skipped: the latest due one is run once its place has come.
        let later = first + 4_000;
        let wait = u64::try_from(delay(&j, later, &me).as_millis()).unwrap();
        assert_eq!(tick_to_run(&j, &me, later + wait), Some(later));
        // Workers take different places: over 16 keys the delays are not all equal.
        let places: std::collections::HashSet<Duration> =
            (0..16u8).map(|k| delay(&j, first, &[k; 32])).collect();
        assert!(places.len() > 1);
        // A long-stopped cluster does not replay old ticks: only the latest, in the window.
        let now = 10_500 + WINDOW_MS * 3 + 999;
        assert!(tick_to_run(&j, &me, now).is_none_or(|t| t + WINDOW_MS >= now && t <= now));
    }
}
