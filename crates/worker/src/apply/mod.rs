//! The apply loop: reads ledger entries in order and applies them, one durable store commit
//! per batch, each command's writes chained into the state root. Trigger entries and the
//! commands that change trigger tables are applied by their kind's slice in `crate::triggers`,
//! through [`kit`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parity_scale_codec::{Decode, DecodeAll, Encode};
use parking_lot::RwLock;
use phat_primitives::protocol::{
    Call, CallError, CallResult, ClusterEpochs, ClusterOp, EpochChange, LedgerCommand, LedgerEntry,
    LogRecord, Receipt, RequestBody, SignedRequest, MAX_REQUEST_TTL_MS,
};
use phat_primitives::{blake2_256, AccountId, Hash, Mode, Refusal, StateKey};
use phat_runtime::{ChangeSet, ExecContext};
use phat_store::{Batch, Head, Snapshot};

use crate::state::Layered;
use crate::{ApplyError, Worker, WorkerError};

mod command;
mod decode;
pub(crate) mod forward;
mod logs;
mod members;
mod receipt;

use crate::triggers::drop_terminated_triggers;
use crate::triggers::job::apply_job_result;
use crate::triggers::schedule::{apply_schedule_op, apply_schedule_requests, apply_trigger};
use crate::triggers::subscription::apply_eth_log;
use command::*;
pub(crate) use command::{check_body, nonce_expired};
use decode::*;
pub(crate) use decode::{decode_entry, remember_submitted, Decoded, Submitted};
pub(crate) use logs::MAX_RECORD_MESSAGE;
pub(crate) use members::stored_members;
use members::*;
pub(crate) use receipt::receipt_digest;
use receipt::{Applied, Reply};

/// Pause between retries when the ledger or store fails.
const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn run(
    worker: Worker,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    tokio::pin!(shutdown);
    let batch = worker.inner.config.apply_batch;
    loop {
        // A key epoch the state started and this worker does not hold yet: take it first.
        match ensure_epochs(&worker, &mut shutdown).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(pause) => {
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        }
        let from = worker.applied_seq() + 1;
        let max = worker.inner.replica.batch_limit(from, batch);
        let read = worker.inner.ledger.read(from, max, Duration::from_secs(10));
        let entries = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = read => r,
        };
        // The ledger is untrusted: only what was asked for (seqs from `from`, at most `max`)
        // is applied, so a batch ends where the worker decided (at every snapshot seq).
        let entries = entries.map(|e| {
            e.into_iter()
                .filter(|e| e.seq >= from)
                .take(max)
                .collect::<Vec<_>>()
        });
        let entries = match entries {
            Ok(e) if e.is_empty() => continue,
            Ok(e) => e,
            Err(phat_ledger::LedgerError::Trimmed { first }) if first <= from => {
                // A ledger that says it was trimmed below an entry this worker still may
                // read contradicts itself (the cluster simulator's duplicated reads found it):
                // restoring would rewind this worker's state for nothing. Asked again.
                tracing::warn!(worker = %worker.inner.config.name, "the ledger says it was trimmed below seq {first}, which keeps seq {from}: read again");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(RETRY) => {}
                }
                continue;
            }
            Err(phat_ledger::LedgerError::Trimmed { first }) => {
                // The entries this worker needs are gone: start from a snapshot.
                match crate::replica::restore_newest(&worker, first.saturating_sub(1)).await {
                    Ok(Some(seq)) => {
                        tracing::info!(worker = %worker.inner.config.name, seq, "the log was trimmed past this worker: restored a snapshot");
                        continue;
                    }
                    Ok(None) => tracing::error!(
                        worker = %worker.inner.config.name,
                        "the log was trimmed below seq {first} and no snapshot reaches seq {}; waiting for one",
                        first - 1
                    ),
                    Err(e) => {
                        tracing::error!(worker = %worker.inner.config.name, "restoring a snapshot: {e}")
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(worker = %worker.inner.config.name, "ledger read failed: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Some(last) = entries.last() {
            worker
                .inner
                .ledger_head
                .fetch_max(last.seq, Ordering::Relaxed);
        }
        // Decode (and decrypt) each entry once, for the code fetch here and the apply below.
        let decoded: Vec<Decoded> = entries
            .iter()
            .map(|e| decode_entry(&worker, &e.payload))
            .collect();
        let code = fetch_missing_code(&worker, &decoded).await;
        let genesis = (from == 1).then(|| worker.inner.genesis.clone());
        let w = worker.clone();
        let started = std::time::Instant::now();
        let n = entries.len();
        let result = tokio::task::spawn_blocking(move || {
            apply_batch(&w, entries, decoded, &code, genesis.as_ref())
        })
        .await
        .map_err(ApplyError::task("apply"))?;
        match result {
            Ok(BatchApplied {
                head,
                logs,
                checkpoints,
            }) => {
                if worker.inner.stuck.lock().take().is_some() {
                    worker.inner.metrics.apply_stuck_seq.set(0);
                    tracing::info!(worker = %worker.inner.config.name, "apply resumed at seq {}", head.seq);
                }
                worker.inner.metrics.observe_batch(n, started.elapsed());
                worker.inner.metrics.applied_seq.set(head.seq as i64);
                worker.inner.applied.send_replace(head.seq);
                for l in logs {
                    let _ = worker.inner.logs.send(l);
                }
                crate::replica::after_commit(&worker, head, &checkpoints);
            }
            Err(e) => {
                let attempts = {
                    let mut stuck = worker.inner.stuck.lock();
                    // A failure at another seq starts a new count.
                    let s = match stuck.take() {
                        Some(s) if s.seq == from => stuck.insert(s),
                        _ => stuck.insert(Stuck {
                            seq: from,
                            since: std::time::Instant::now(),
                            attempts: 0,
                            error: String::new(),
                        }),
                    };
                    s.attempts += 1;
                    s.error = e.to_string();
                    s.attempts
                };
                worker.inner.metrics.apply_failures.inc();
                worker.inner.metrics.apply_stuck_seq.set(from as i64);
                tracing::error!(
                    worker = %worker.inner.config.name,
                    "apply failed at seq {from} (attempt {attempts}), retrying: {e}"
                );
                // Back off up to 5 s between attempts of a batch that keeps failing.
                let pause = RETRY * attempts.min(25);
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// The apply loop keeps failing at one entry: for `/healthz`, metrics and the log.
#[derive(Clone, Debug)]
pub(crate) struct Stuck {
    /// The first seq of the batch that fails.
    pub seq: phat_primitives::protocol::Seq,
    /// When it first failed.
    pub since: std::time::Instant,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

/// The cluster's key epochs in the committed state.
pub(crate) fn stored_epochs(snap: &Snapshot) -> Result<ClusterEpochs, WorkerError> {
    match snap.get(&StateKey::ClusterEpochs)? {
        Some(raw) => ClusterEpochs::decode_all(&mut &raw[..])
            .map_err(|e| ApplyError::corrupt("key epochs")(e)),
        None => Ok(ClusterEpochs::default()),
    }
}

/// Makes sure this worker holds every key epoch the committed state has started. `Ok(false)`
/// on shutdown; `Err(pause)` to try again after a pause (and, for a revoked worker, for ever).
async fn ensure_epochs(
    worker: &Worker,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<bool, Duration> {
    let inner = &worker.inner;
    let epochs = match inner
        .store
        .snapshot()
        .map_err(WorkerError::from)
        .and_then(|s| stored_epochs(&s))
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(worker = %inner.config.name, "reading the key epochs: {e}");
            return Err(RETRY);
        }
    };
    *inner.enclave.revoked.lock() = epochs.revoked().copied().collect();
    inner
        .epoch_dealing
        .store(epochs.pending().is_some(), Ordering::Release);
    let me = Hash(inner.enclave.identity.public());
    let held = inner.enclave.keys().held();
    if epochs.keyed() <= held && !epochs.is_revoked(&me) {
        inner.epoch_pending.store(false, Ordering::Release);
        if let Some(pending) = epochs.pending() {
            deal_pending(worker, pending, &epochs).await;
        }
        return Ok(true);
    }
    inner.epoch_pending.store(true, Ordering::Release);
    let ensure = inner.enclave.ensure_epochs(
        &inner.config.data_dir,
        &*inner.ledger,
        &inner.genesis,
        &epochs,
    );
    let result = tokio::select! {
        _ = shutdown.as_mut() => return Ok(false),
        r = ensure => r,
    };
    match result {
        Ok(()) => {
            inner.epoch_pending.store(false, Ordering::Release);
            Ok(true)
        }
        Err(crate::enclave::EpochError::Revoked { seq }) => {
            if inner.revoked_at.swap(seq, Ordering::AcqRel) == 0 {
                tracing::error!(
                    worker = %inner.config.name,
                    "this worker was revoked from the cluster at seq {seq}: it gets no new key \
                     and applies nothing after it"
                );
            }
            Err(Duration::from_secs(2))
        }
        Err(crate::enclave::EpochError::Worker(e)) => {
            tracing::warn!(worker = %inner.config.name, "taking a new key epoch: {e}");
            Err(Duration::from_secs(1))
        }
    }
}

/// Deals the pending key epoch when this worker is a member and has not dealt it to the
/// same members yet (a deal made before a member was admitted does not count: dealt again).
async fn deal_pending(worker: &Worker, pending: u32, epochs: &ClusterEpochs) {
    let inner = &worker.inner;
    let me = Hash(inner.enclave.identity.public());
    let members = match inner
        .store
        .snapshot()
        .map_err(WorkerError::from)
        .and_then(|s| stored_members(&s))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(worker = %inner.config.name, "reading the member table: {e}");
            return;
        }
    };
    if members.get(&me).is_none() {
        return;
    }
    let recipients = deal_recipients(&members, epochs);
    let done = Some((pending, recipients.clone()));
    if *inner.enclave.dealt.lock() == done {
        return;
    }
    match inner
        .enclave
        .deal(&inner.config.data_dir, &*inner.ledger, pending, &recipients)
        .await
    {
        Ok(()) => *inner.enclave.dealt.lock() = done,
        Err(e) => tracing::warn!(worker = %inner.config.name, "dealing key epoch {pending}: {e}"),
    }
}

/// Attempts after which a failing entry makes the worker report itself unhealthy.
pub(crate) const STUCK_AFTER: u32 = 3;

/// Code blobs the batch's instantiations need that the state does not hold yet. The
/// submission path stores a blob in the ledger before appending the command that uses it, so
/// a missing blob is an availability problem: wait for it rather than fail differently from
/// other workers.
async fn fetch_missing_code(
    worker: &Worker,
    decoded: &[Decoded],
) -> std::collections::HashMap<phat_primitives::CodeHash, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    let Ok(snap) = worker.inner.store.snapshot() else {
        return out;
    };
    for req in decoded.iter().filter_map(|d| d.request.as_ref().ok()) {
        let Ok(body) = RequestBody::decode(&mut &req.body[..]) else {
            continue;
        };
        let phat_primitives::protocol::Call::Instantiate { code_hash, .. } = body.call else {
            continue;
        };
        // Only a signed request may make the worker wait for code (a bogus entry would
        // otherwise stall the apply loop); the apply refuses the others anyway.
        if phat_crypto::verify_request(req, &worker.cluster_id()).is_err() {
            continue;
        }
        if out.contains_key(&code_hash)
            || matches!(snap.get(&StateKey::Code(code_hash)), Ok(Some(_)))
        {
            continue;
        }
        for attempt in 0.. {
            match worker.inner.ledger.get_code(&code_hash).await {
                Ok(Some(blob)) => {
                    out.insert(code_hash, blob);
                    break;
                }
                Ok(None) if attempt >= 25 => break,
                Ok(None) | Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }
    out
}

/// The ledger metadata key of the cluster's [`crate::Genesis`] (SCALE-encoded).
pub const GENESIS_KEY: &str = phat_primitives::meta::GENESIS;

/// Applies `entries` and commits them in one store transaction. Returns the new head and the
/// log records to publish.
fn apply_batch(
    worker: &Worker,
    entries: Vec<LedgerEntry>,
    decoded: Vec<Decoded>,
    code: &std::collections::HashMap<phat_primitives::CodeHash, Vec<u8>>,
    genesis: Option<&crate::Genesis>,
) -> Result<BatchApplied, WorkerError> {
    let inner = &worker.inner;
    let snap = Arc::new(inner.store.snapshot()?);
    let mut head = snap.head();
    let pending: Arc<RwLock<ChangeSet>> = Arc::default();
    let mut batch = Batch::default();
    let mut checkpoints = Vec::new();
    let genesis =
        genesis.filter(|g| head.seq == 0 && (!g.balances.is_empty() || g.system.is_some()));
    if let Some(genesis) = genesis {
        // Block 0: command seq n runs at block n.
        let ctx = ExecContext {
            block_number: 0,
            ..ExecContext::new(Mode::Command)
        };
        let mut session = inner
            .runtime
            .session(Arc::new(crate::state::SnapshotState(snap.clone())), ctx);
        for (who, amount) in &genesis.balances {
            session.set_balance(who, *amount);
        }
        if let Some(setup) = &genesis.system {
            let gas = inner.runtime.config().limits.max_gas_per_call;
            crate::genesis::set_up_system(&mut session, genesis, setup, gas)?;
        }
        let changes = session.into_changes();
        head.state_root =
            inner
                .store
                .chain_root(&head.state_root, 0, &changes, &blake2_256(b"phat/genesis"));
        batch.writes.extend(changes.clone());
        pending.write().extend(changes);
    }
    // The nonces this batch used, with their expiry (the store's rows, for the entries before).
    let mut nonces: HashMap<(AccountId, u64), u64> = HashMap::new();
    let mut logs = Vec::new();
    let mut local = Local {
        epochs: stored_epochs(&snap)?,
        members: stored_members(&snap)?,
        schedules: crate::triggers::schedule::stored(&snap)?,
        subscriptions: crate::triggers::subscription::stored(&snap)?,
        jobs: crate::triggers::job::stored(&snap)?,
    };
    // Skip entries already applied (a re-read after a restart).
    let (entries, decoded): (Vec<LedgerEntry>, Vec<Decoded>) = entries
        .into_iter()
        .zip(decoded)
        .filter(|(e, _)| e.seq > head.seq)
        .unzip();
    // Check in one batch the signatures this worker did not check at submission.
    let signed: Vec<&SignedRequest> = decoded
        .iter()
        .filter(|d| d.verified.is_none())
        .filter_map(|d| d.request.as_ref().ok())
        .collect();
    let mut verified = phat_crypto::verify_requests(&signed, &worker.cluster_id()).into_iter();
    let requests: Vec<_> = decoded
        .into_iter()
        .map(|d| {
            let checked = d.verified;
            let request = d.request.map(|r| {
                let body = checked.map(Ok).unwrap_or_else(|| {
                    verified.next().unwrap_or_else(|| {
                        Err(phat_crypto::CryptoError::MalformedBody(
                            "missing verification".into(),
                        ))
                    })
                });
                (r, body)
            });
            (request, d.reply, d.needs_epoch, d.proposal, d.sealed_epoch)
        })
        .collect();
    let first_seq = head.seq;
    for (entry, (req, reply, needs_epoch, proposal, sealed_epoch)) in
        entries.into_iter().zip(requests)
    {
        if needs_epoch.is_some_and(|e| e <= local.epochs.keyed()) {
            // Started earlier in this batch: commit up to here, take the key, go on.
            break;
        }
        // Sealed to an epoch the state has not started: refused whatever keys this worker
        // holds (one restored from an older snapshot may hold it already, and opening it
        // would give another receipt than the workers that applied it live).
        let req = match sealed_epoch {
            Some(e) if e > local.epochs.keyed() => Err(Refusal::UnknownEpoch.because(format!(
                "the command is sealed to the key of epoch {e}, which the cluster has not keyed"
            ))),
            _ => req,
        };
        // A batch never crosses a snapshot seq: the snapshot is the state committed there.
        debug_assert!(
            !inner.replica.is_snapshot_seq(head.seq) || head.seq == first_seq,
            "seq {} is a snapshot seq inside a batch",
            head.seq
        );
        if entry.seq != head.seq + 1 {
            return Err(ApplyError::Gap {
                expected: head.seq + 1,
                got: entry.seq,
            }
            .into());
        }
        // Ledger time never goes back, whatever the ledger says: an old entry appended again
        // with its old timestamp is judged (expiry, replay) at the current time.
        let entry = LedgerEntry {
            timestamp: entry.timestamp.max(head.timestamp),
            ..entry
        };
        let entry = &entry;
        let view = BatchView {
            snap: &snap,
            pending: &pending,
            code,
        };
        let started = local.epochs.epoch();
        let applied = match (proposal, req) {
            (Some(Proposal::Tick(t)), _) => apply_trigger(worker, &view, &mut local, entry, &t)?,
            (Some(Proposal::Log(l)), _) => apply_eth_log(worker, &view, &mut local, entry, &l)?,
            (Some(Proposal::Result(r)), _) => {
                apply_job_result(worker, &view, &mut local, entry, &r)?
            }
            (Some(Proposal::Join(j)), _) => apply_join(worker, &mut local, entry, &j),
            (Some(Proposal::Deal(d)), _) => apply_deal(&mut local, entry, &d),
            (Some(Proposal::QueryLogs(q)), _) => {
                logs::apply_query_logs(worker, &view, &mut nonces, &local, entry, &q)?
            }
            (None, Ok(req)) => apply_one(worker, &view, &mut nonces, &mut local, entry, req)?,
            (None, Err(e)) => Reply::to(entry, None).refuse_with(e),
        };
        #[cfg(feature = "testing")]
        let applied = {
            let mut applied = applied;
            inner.replica.inject_fault(entry.seq, &mut applied.changes);
            applied
        };
        let mut receipt = applied.receipt;
        // The root commits to the plaintext receipt, error kinds but not their wording.
        let digest = receipt_digest(&receipt);
        if let (Some(keys), true) = (reply, applied.executed) {
            // Only the caller (holder of the envelope's ephemeral key) reads what the contract
            // returned; refusals before execution (signature, expiry, replay) stay readable.
            let sealed = keys.seal_reply(0, &receipt.result.encode());
            receipt.result = CallResult::Sealed(sealed.into());
        }
        receipt.state_root =
            inner
                .store
                .chain_root(&head.state_root, entry.seq, &applied.changes, &digest);
        debug_assert!(entry.timestamp >= head.timestamp, "ledger time went back");
        head = Head {
            seq: entry.seq,
            state_root: receipt.state_root,
            timestamp: entry.timestamp,
        };
        if inner.replica.is_checkpoint(head.seq) {
            checkpoints.push((head.seq, head.state_root));
        }
        if let Some((signer, nonce, expiry)) = applied.nonce {
            batch.nonces.push((signer, nonce, expiry));
        }
        for l in applied.logs {
            batch.logs.push((l.contract, l.encode()));
            logs.push(l);
        }
        batch.receipts.push((entry.seq, receipt.encode()));
        let mut p = pending.write();
        for (k, v) in applied.changes {
            batch.writes.insert(k.clone(), v.clone());
            p.insert(k, v);
        }
        drop(p);
        debug_assert!(
            local.epochs.keyed() <= local.epochs.epoch(),
            "an epoch is keyed before it started"
        );
        if local.epochs.epoch() != started {
            // A key epoch started: commit here, so a revoked worker applies nothing after its
            // revocation and the others deal the epoch before going on.
            break;
        }
    }
    batch.head = head;
    batch.prune_nonces_before = head.timestamp;
    batch.prune_receipts_before = head.seq.saturating_sub(inner.config.receipts_kept);
    inner.store.commit(batch)?;
    // Commands submitted through this worker are now remembered by the store.
    let mut recent = inner.recent_nonces.lock();
    for key in nonces.keys() {
        recent.remove(key);
    }
    Ok(BatchApplied {
        head,
        logs,
        checkpoints,
    })
}

/// What one batch applied.
pub(crate) struct BatchApplied {
    /// The head after the batch.
    head: Head,
    /// The log records it produced.
    logs: Vec<LogRecord>,
    /// `(seq, root)` at the checkpoint seqs inside the batch.
    checkpoints: Vec<(phat_primitives::protocol::Seq, Hash)>,
}

/// Replicated tables the commands of a batch change, kept decoded for the batch.
pub(crate) struct Local {
    pub(crate) epochs: ClusterEpochs,
    pub(crate) members: phat_primitives::protocol::MemberTable,
    pub(crate) schedules: phat_primitives::protocol::ScheduleTable,
    pub(crate) subscriptions: phat_primitives::protocol::SubscriptionTable,
    pub(crate) jobs: phat_primitives::protocol::JobTable,
}

/// What the commands of one batch read: its snapshot, the writes before them, fetched code.
pub(crate) struct BatchView<'a> {
    pub(crate) snap: &'a Arc<Snapshot>,
    pub(crate) pending: &'a Arc<RwLock<ChangeSet>>,
    pub(crate) code: &'a std::collections::HashMap<phat_primitives::CodeHash, Vec<u8>>,
}

/// What the trigger slices (`crate::triggers`) use of the apply loop to apply their entries.
pub(crate) mod kit {
    pub(crate) use super::command::{run_command, RunAs};
    pub(crate) use super::members::{check_vote, Vote};
    pub(crate) use super::receipt::{Applied, Reply};
    pub(crate) use super::{BatchView, Local};
    pub(crate) use crate::state::Layered;
    pub(crate) use crate::triggers::schedule::apply_schedule_requests;
    pub(crate) use crate::triggers::{deployer_of, drop_terminated_triggers};
    pub(crate) use crate::{Worker, WorkerError};
    pub(crate) use parity_scale_codec::{Decode, DecodeAll, Encode};
    pub(crate) use phat_primitives::protocol::{
        Call, CallResult, LedgerEntry, LogRecord, ScheduleOrigin,
    };
    pub(crate) use phat_primitives::{blake2_256, AccountId, Hash, Mode, StateKey};
    pub(crate) use phat_runtime::ChangeSet;
}
