//! The one execution path of the worker: queries (`api`) and commands (`apply`) both run a
//! call through [`execute`], which builds the context, the pink host and extension, the
//! runtime session, runs the call and collects its log lines. A rule added here holds for both.
//!
//! What differs between the two is passed in, never decided twice: the mode (a command's
//! non-deterministic pink functions fail the same way on every worker), the state (a snapshot
//! for a query; the batch's snapshot plus its pending writes for a command), the clock (wall
//! time for a query, ledger time for a command) and the block number (the last applied seq for
//! a query, the command's own seq). Gas limits and the query deadline are the runtime's
//! (`Limits::max_gas_per_call`, `Limits::query_time_limit`).

use std::sync::Arc;

use phat_primitives::protocol::{
    Call, CallError, CallOutput, CallResult, EventRecord, LogRecord, Seq,
};
use phat_primitives::{AccountId, Mode};
use phat_runtime::{ChangeSet, ExecContext, ExecError, Outcome, StateRead};

use crate::Worker;

/// One call to run.
pub(crate) struct Run<'a> {
    /// Query or command.
    pub mode: Mode,
    /// The state it reads.
    pub state: Arc<dyn StateRead>,
    /// The command's sequence number (`None` for a query).
    pub seq: Option<Seq>,
    /// What contracts see as the block number.
    pub block_number: u32,
    /// Unix ms contracts see: ledger time for a command, wall time for a query.
    pub timestamp: u64,
    /// The signer.
    pub caller: AccountId,
    /// Who pays the storage deposit when not the caller (a trigger's deployer).
    pub payer: Option<AccountId>,
    /// The call.
    pub call: Call,
    /// The code blob an instantiation needs and the state lacks (commands: from the ledger).
    pub code: Option<&'a [u8]>,
    /// An estimate: a query whose cache writes wait as a command's would and are dropped.
    pub dry_run: bool,
}

/// What a call did.
pub(crate) struct Executed {
    /// The runtime's result.
    pub result: Result<Outcome, ExecError>,
    /// The writes to commit (empty for a failed call; a query's are for the caller to drop).
    pub changes: ChangeSet,
    /// Log lines: the pink extension's, the debug output's and, for commands, the events.
    pub logs: Vec<LogRecord>,
    /// The changes to schedules a command that succeeded made through the extension.
    pub schedules: Vec<phat_pink::ScheduleRequest>,
}

/// Runs `run` on this worker's runtime.
pub(crate) fn execute(worker: &Worker, run: Run<'_>) -> Executed {
    let host = Arc::new(crate::pink_host::WorkerHost::new(
        worker.inner.pink.clone(),
        run.seq,
        run.timestamp,
        run.dry_run,
    ));
    let extension = Arc::new(phat_pink::PinkExtension::with_config(
        host.clone(),
        worker.inner.pink_config.clone(),
    ));
    let ctx = ExecContext {
        mode: run.mode,
        block_number: run.block_number,
        timestamp: run.timestamp,
        extension,
    };
    let mut session = worker.inner.runtime.session(run.state, ctx);
    session.set_deposit_payer(run.payer);
    let target = run.call.dest();
    // What a query's record names of its input: a digest, never the plaintext.
    let input = match &run.call {
        Call::Call { data, .. } | Call::Instantiate { data, .. } => {
            Some((phat_primitives::blake2_256(&data.0), data.0.len()))
        }
        _ => None,
    };
    let (mode, seq, timestamp, caller) = (run.mode, run.seq, run.timestamp, run.caller);
    let result = match run.call {
        Call::Instantiate {
            code_hash,
            value,
            data,
            salt,
            gas_limit,
        } => {
            // Code that comes with the command is written inside the call, so the caller
            // pays its deposit and it counts toward the call's write bound.
            match run.code {
                Some(blob) => session.instantiate_with_code(
                    run.caller, blob, code_hash, value, data.0, &salt, gas_limit,
                ),
                None => session.instantiate(run.caller, code_hash, value, data.0, &salt, gas_limit),
            }
        }
        Call::Call {
            dest,
            value,
            data,
            gas_limit,
        } => session.call(run.caller, dest, value, data.0, gas_limit),
        // Applied by the apply loop itself, never executed (queries refuse them first).
        Call::Cluster { .. }
        | Call::Schedule { .. }
        | Call::Subscription { .. }
        | Call::Job { .. }
        | Call::Logs { .. }
        | Call::LogReaders { .. }
        | Call::Transfer { .. }
        | Call::Estimate { .. } => Err(phat_runtime::ExecError::Decode(
            "a change to the cluster, a trigger or a log, a log read or a transfer runs no \
             contract",
        )),
    };
    let changes = match &result {
        Ok(_) => session.into_changes(),
        Err(_) => ChangeSet::new(),
    };
    // A command's cache writes and schedule changes count only if it succeeded, as its state
    // writes do.
    let schedules = if matches!(&result, Ok(o) if !o.reverted) && !run.dry_run {
        host.commit_cache();
        host.take_schedules()
    } else {
        Vec::new()
    };
    let mut logs = host.take_logs();
    let record = |contract, level: &str, message: String| LogRecord {
        contract,
        level: level.into(),
        origin: mode,
        seq,
        timestamp,
        message,
    };
    if let Ok(o) = &result {
        if let Some(contract) = target.or(o.address) {
            for line in o.debug_message.lines().filter(|l| !l.is_empty()) {
                logs.push(record(contract, "debug", line.to_string()));
            }
        }
        // A query's events are dropped with its writes; a command's are its record.
        if mode == Mode::Command {
            for e in &o.events {
                logs.push(record(
                    e.contract,
                    "event",
                    phat_primitives::protocol::event_summary(&e.topics, &e.data),
                ));
            }
        }
    }
    // A run that logged a line or failed leaves how it ended next to its lines and, for a
    // query, who asked and a digest of what; a quiet success leaves nothing (its receipt or
    // reply is its record). Events alone do not count: a command's receipt holds them.
    let failed = !matches!(&result, Ok(o) if !o.reverted);
    let logged = logs.iter().any(|l| l.level != "event");
    let contract = target.or(result.as_ref().ok().and_then(|o| o.address));
    if let (Some(contract), true) = (contract, failed || logged) {
        let sealed = worker.inner.genesis.encryption;
        if let (Mode::Query, Some((digest, len))) = (mode, input) {
            logs.insert(
                0,
                record(contract, "query", query_line(&caller, &digest, len)),
            );
        }
        logs.push(record(contract, "output", output_line(&result, sealed)));
    }
    Executed {
        result,
        changes,
        logs,
        schedules,
    }
}

/// The most output bytes an `output` record shows (the rest is elided).
const OUTPUT_SHOWN: usize = 256;

/// The text of a `query` record: the caller and the digest and size of its input.
pub(crate) fn query_line(caller: &AccountId, digest: &[u8; 32], len: usize) -> String {
    format!(
        "from {caller}, input blake2 0x{} ({len} bytes)",
        hex::encode(digest)
    )
}

/// The text of an `output` record: how the run ended, its gas and its output (a digest of it
/// when `sealed`: what the caller sealed stays theirs).
pub(crate) fn output_line(result: &Result<Outcome, ExecError>, sealed: bool) -> String {
    match result {
        Err(e) => format!("error {}: {e}", e.kind()),
        Ok(o) => {
            let how = if o.reverted { "reverted" } else { "ok" };
            let data = &o.data;
            let shown = if sealed {
                format!(
                    ", blake2 0x{}",
                    hex::encode(phat_primitives::blake2_256(data))
                )
            } else if data.is_empty() {
                String::new()
            } else if data.len() > OUTPUT_SHOWN {
                format!(": 0x{}…", hex::encode(&data[..OUTPUT_SHOWN]))
            } else {
                format!(": 0x{}", hex::encode(data))
            };
            format!("{how}, gas {}, {} bytes{shown}", o.gas_used, data.len())
        }
    }
}

/// Splits a runtime result into the API's result, events and gas.
pub(crate) fn outcome_parts(
    result: Result<Outcome, ExecError>,
) -> (CallResult, Vec<EventRecord>, u64) {
    match result {
        Ok(o) => (
            CallResult::Ok(CallOutput {
                data: o.data.into(),
                reverted: o.reverted,
                address: o.address,
            }),
            o.events.into_iter().map(EventRecord::from).collect(),
            o.gas_used,
        ),
        Err(e) => (CallResult::Err(exec_error(&e)), Vec::new(), 0),
    }
}

/// The API form of a runtime error.
pub(crate) fn exec_error(e: &ExecError) -> CallError {
    CallError {
        kind: e.kind().into(),
        message: e.to_string(),
    }
}
