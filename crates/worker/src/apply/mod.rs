//! The apply loop: reads ledger entries in order and applies them, one durable store commit
//! per batch, each command's writes chained into the state root. Trigger entries and the
//! commands that change trigger tables are applied in `triggers`.

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
use crate::{Worker, WorkerError};

pub(crate) mod forward;
mod logs;
mod members;
mod receipt;
mod triggers;
pub(crate) use logs::MAX_RECORD_MESSAGE;
pub(crate) use members::stored_members;
use members::*;
pub(crate) use receipt::receipt_digest;
use receipt::{Applied, Reply};
use triggers::*;

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
        let entries = match entries {
            Ok(e) if e.is_empty() => continue,
            Ok(e) => e,
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
        .map_err(|e| WorkerError::Apply(format!("apply task panicked: {e}")))?;
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
            .map_err(|e| WorkerError::Apply(format!("the key epochs in state do not decode: {e}"))),
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

/// A command this worker checked at submission: what applying its ledger payload would
/// compute again (the same bytes decode, open and verify to the same values on any worker).
pub(crate) struct Submitted {
    /// The signed request.
    pub request: SignedRequest,
    /// Its body, decoded, signature and certificate checked (`phat_crypto::verify_request`).
    pub body: phat_primitives::protocol::RequestBody,
    /// The key that seals its result to the caller, when it came sealed.
    pub keys: Option<phat_crypto::ReplyKey>,
}

/// Most submissions remembered before the memo is cleared.
const SUBMITTED_MEMO: usize = 16_384;

/// Remembers what the ledger `payload` of a command checked at submission opens and verifies
/// to, so that applying it skips the key exchange and the signature check.
pub(crate) fn remember_submitted(worker: &Worker, payload: &[u8], submitted: Submitted) {
    let mut memo = worker.inner.submitted.lock();
    if memo.len() >= SUBMITTED_MEMO {
        memo.clear();
    }
    memo.insert(blake2_256(payload), submitted);
}

/// A ledger entry decoded and, if sealed, decrypted.
pub(crate) struct Decoded {
    /// The signed request, or why there is none (the receipt's error).
    request: Result<SignedRequest, CallError>,
    /// Its body, when this worker verified the request at submission.
    verified: Option<phat_primitives::protocol::RequestBody>,
    /// The envelope's reply key, to seal the result to the caller.
    reply: Option<phat_crypto::ReplyKey>,
    /// Sealed to the key of an epoch this worker does not hold (yet).
    needs_epoch: Option<u32>,
    /// A worker's proposal (then `request` is unused).
    proposal: Option<Proposal>,
    /// The key epoch a sealed command names (0 for [`LedgerCommand::Sealed`]).
    sealed_epoch: Option<u32>,
}

/// What a worker proposes on its own, rather than a client's signed request.
enum Proposal {
    /// A schedule's due tick.
    Tick(phat_primitives::protocol::TriggerEntry),
    /// A report of an Ethereum log.
    Log(phat_primitives::protocol::EthLogEntry),
    /// A job's output for a tick.
    Result(phat_primitives::protocol::JobResultEntry),
    /// A worker asking to join.
    Join(phat_primitives::protocol::JoinEntry),
    /// A member dealing a new key epoch.
    Deal(phat_primitives::protocol::EpochDeal),
    /// The records of queries a worker ran.
    QueryLogs(phat_primitives::protocol::QueryLogsEntry),
}

/// Decodes a ledger payload ([`LedgerCommand`]); a sealed one is opened with the cluster key.
/// Every worker gets the same answer for the same bytes.
pub(crate) fn decode_entry(worker: &Worker, payload: &[u8]) -> Decoded {
    let fail = |kind: Refusal, message: String| Decoded {
        request: Err(kind.because(message)),
        verified: None,
        reply: None,
        needs_epoch: None,
        proposal: None,
        sealed_epoch: None,
    };
    // A proposal carries no client request.
    let proposed = |proposal: Proposal, needs_epoch: Option<u32>| Decoded {
        request: Err(Refusal::Malformed.because("a proposal is not a request")),
        verified: None,
        reply: None,
        needs_epoch,
        proposal: Some(proposal),
        sealed_epoch: None,
    };
    // A worker's own entry made with the key of an epoch this worker does not hold yet waits
    // for it, as a command sealed to it does (the batch commits up to it and takes the key).
    let unheld = |epoch: u32| {
        worker
            .inner
            .enclave
            .keys()
            .epoch(epoch)
            .is_none()
            .then_some(epoch)
    };
    let command = LedgerCommand::decode_all(&mut &payload[..]);
    let sealed_epoch = match &command {
        Ok(LedgerCommand::Sealed(_)) => Some(0),
        Ok(LedgerCommand::SealedAt { epoch, .. } | LedgerCommand::Forwarded { epoch, .. }) => {
            Some(*epoch)
        }
        _ => None,
    };
    let plain = matches!(&command, Ok(LedgerCommand::Plain(_)));
    if sealed_epoch.is_some() || (plain && !worker.inner.genesis.encryption) {
        // Checked at submission by this worker: the same bytes open (with the key of the
        // epoch the entry names: `submit_sealed` reads both together) and verify to the same
        // request and body.
        if let Some(s) = worker.inner.submitted.lock().remove(&blake2_256(payload)) {
            return Decoded {
                request: Ok(s.request),
                verified: Some(s.body),
                reply: s.keys,
                needs_epoch: None,
                proposal: None,
                sealed_epoch,
            };
        }
    }
    let decoded = match command {
        Err(e) => fail(
            Refusal::Malformed,
            format!("the ledger entry is not a command: {e}"),
        ),
        Ok(LedgerCommand::Plain(_)) if worker.inner.genesis.encryption => fail(
            Refusal::EncryptionRequired,
            "this cluster accepts only commands sealed to the cluster key".into(),
        ),
        Ok(LedgerCommand::Plain(req)) => Decoded {
            request: Ok(req),
            verified: None,
            reply: None,
            needs_epoch: None,
            proposal: None,
            sealed_epoch: None,
        },
        Ok(LedgerCommand::Sealed(sealed)) => {
            open_sealed(worker, 0, SealedCommand::Envelope(&sealed))
        }
        Ok(LedgerCommand::SealedAt { epoch: 0, .. }) => fail(
            Refusal::Malformed,
            "a command of key epoch 0 is sealed without an epoch".into(),
        ),
        Ok(LedgerCommand::SealedAt { epoch, sealed }) => {
            open_sealed(worker, epoch, SealedCommand::Envelope(&sealed))
        }
        Ok(LedgerCommand::Forwarded { epoch, data }) => {
            open_sealed(worker, epoch, SealedCommand::Forwarded(&data.0))
        }
        Ok(LedgerCommand::Trigger(t)) => proposed(Proposal::Tick(t), None),
        Ok(LedgerCommand::EthLog(l)) => {
            let needs = unheld(l.epoch);
            proposed(Proposal::Log(l), needs)
        }
        Ok(LedgerCommand::JobResult(r)) => {
            let needs = unheld(r.epoch);
            proposed(Proposal::Result(r), needs)
        }
        Ok(LedgerCommand::Join(j)) => proposed(Proposal::Join(j), None),
        Ok(LedgerCommand::DealEpoch(d)) => proposed(Proposal::Deal(d), None),
        Ok(LedgerCommand::QueryLogs(q)) => {
            let needs = unheld(q.epoch);
            proposed(Proposal::QueryLogs(q), needs)
        }
    };
    Decoded {
        sealed_epoch,
        ..decoded
    }
}

/// How a sealed command entry carries its request.
enum SealedCommand<'a> {
    /// As the client sealed it, to the envelope key of the epoch.
    Envelope(&'a phat_primitives::protocol::Sealed),
    /// As a worker forwarded it, under the epoch's worker-entry key ([`forward`]).
    Forwarded(&'a [u8]),
}

/// Opens a command sealed under a key of `epoch`.
fn open_sealed(worker: &Worker, epoch: u32, sealed: SealedCommand<'_>) -> Decoded {
    let fail = |kind: Refusal, message: String, needs_epoch: Option<u32>| Decoded {
        request: Err(kind.because(message)),
        verified: None,
        reply: None,
        needs_epoch,
        proposal: None,
        sealed_epoch: Some(epoch),
    };
    let Some(keys) = worker.inner.enclave.keys().epoch(epoch) else {
        // Unknown to the state too, it is refused at apply; else the worker waits for it.
        return fail(
            Refusal::UnknownEpoch,
            format!("the command is sealed to the key of epoch {epoch}, which the cluster has not started"),
            Some(epoch),
        );
    };
    let opened = match sealed {
        SealedCommand::Envelope(sealed) => {
            match keys.envelope.open(phat_crypto::Purpose::Command, sealed) {
                Err(e) => Err((Refusal::BadEnvelope, e.to_string())),
                Ok((plain, keys)) => SignedRequest::decode_all(&mut &plain[..])
                    .map(|req| (req, keys.reply_key()))
                    .map_err(|e| {
                        (
                            Refusal::Malformed,
                            format!("the sealed command does not decode: {e}"),
                        )
                    }),
            }
        }
        SealedCommand::Forwarded(data) => {
            forward::open(&keys.secret, epoch, data).map_err(|e| match e {
                forward::ForwardError::Envelope(_) => (Refusal::BadEnvelope, e.to_string()),
                forward::ForwardError::Malformed(_) => (Refusal::Malformed, e.to_string()),
            })
        }
    };
    match opened {
        Err((kind, message)) => fail(kind, message, None),
        Ok((req, reply)) => Decoded {
            request: Ok(req),
            verified: None,
            reply: Some(reply),
            needs_epoch: None,
            proposal: None,
            sealed_epoch: Some(epoch),
        },
    }
}

/// The ledger metadata key of the cluster's [`crate::Genesis`] (SCALE-encoded).
pub const GENESIS_KEY: &str = "genesis";

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
        schedules: crate::schedule::stored(&snap)?,
        subscriptions: crate::subscribe::stored(&snap)?,
        jobs: crate::jobs::stored(&snap)?,
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
        if entry.seq != head.seq + 1 {
            return Err(WorkerError::Apply(format!(
                "ledger gap: expected seq {}, got {}",
                head.seq + 1,
                entry.seq
            )));
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
        let mut applied = applied;
        inner.replica.inject_fault(entry.seq, &mut applied.changes);
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

/// Checks a request body against `now` and the expected mode; the same rules at submission,
/// at query time and at apply time (where `now` is ledger time).
pub(crate) fn check_body(body: &RequestBody, mode: Mode, now: u64) -> Result<(), CallError> {
    if body.mode != mode {
        return Err(Refusal::WrongMode.because(
            format!("a {:?} request was sent as a {:?}", body.mode, mode).to_lowercase(),
        ));
    }
    if body.expires_at < now {
        return Err(Refusal::Expired.because(format!(
            "the request expired at {} (now {now})",
            body.expires_at
        )));
    }
    if body.expires_at > now.saturating_add(MAX_REQUEST_TTL_MS) {
        return Err(Refusal::ExpiryTooFar.because(format!(
            "expires_at may be at most {} ms ahead (got {} ms)",
            MAX_REQUEST_TTL_MS,
            body.expires_at - now
        )));
    }
    if let Some(cert) = &body.certificate {
        use phat_primitives::protocol::{CertificateScope, MAX_CERTIFICATE_TTL_MS};
        let refuse = |kind: Refusal, message: String| Err(kind.because(message));
        if cert.expires_at < now {
            return refuse(
                Refusal::CertificateExpired,
                format!("the certificate expired at {} (now {now})", cert.expires_at),
            );
        }
        if cert.expires_at > now.saturating_add(MAX_CERTIFICATE_TTL_MS) {
            return refuse(
                Refusal::CertificateTooLong,
                format!("a certificate may be valid for at most {MAX_CERTIFICATE_TTL_MS} ms"),
            );
        }
        if mode == Mode::Command && cert.scope == CertificateScope::Queries {
            return refuse(
                Refusal::CertificateScope,
                "the certificate allows queries only".into(),
            );
        }
    }
    Ok(())
}

/// Replicated tables the commands of a batch change, kept decoded for the batch.
struct Local {
    epochs: ClusterEpochs,
    members: phat_primitives::protocol::MemberTable,
    schedules: phat_primitives::protocol::ScheduleTable,
    subscriptions: phat_primitives::protocol::SubscriptionTable,
    jobs: phat_primitives::protocol::JobTable,
}

/// What the commands of one batch read: its snapshot, the writes before them, fetched code.
struct BatchView<'a> {
    snap: &'a Arc<Snapshot>,
    pending: &'a Arc<RwLock<ChangeSet>>,
    code: &'a std::collections::HashMap<phat_primitives::CodeHash, Vec<u8>>,
}

fn apply_one(
    worker: &Worker,
    view: &BatchView<'_>,
    nonces: &mut HashMap<(AccountId, u64), u64>,
    local: &mut Local,
    entry: &LedgerEntry,
    request: (SignedRequest, Result<RequestBody, phat_crypto::CryptoError>),
) -> Result<Applied, WorkerError> {
    let BatchView { snap, code, .. } = *view;
    let (req, body) = request;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let kind = match e {
                phat_crypto::CryptoError::BadSignature(_) => Refusal::BadSignature,
                phat_crypto::CryptoError::BadCertificate(_) => Refusal::BadCertificate,
                _ => Refusal::Malformed,
            };
            return Ok(Reply::to(entry, Some(&req)).refuse(kind, e.to_string()));
        }
    };
    // The account the command is made as: the signer, or the account its certificate
    // speaks for. Nonces, receipts and permissions are the caller's.
    let caller = body.caller(&req.signer);
    let reply = Reply::to(entry, Some(&req)).for_caller(caller);
    if let Err(e) = check_body(&body, Mode::Command, entry.timestamp) {
        return Ok(reply.refuse_with(e));
    }
    // A nonce is taken while an earlier use of it has not expired at this entry's ledger
    // time. Judged by expiry, never by whether a row was pruned yet: rows are pruned when a
    // batch commits, and where batches end differs per worker (a worker catching up batches
    // what a live one applied apart), so "a row exists" would split the cluster.
    let key = (caller, body.nonce);
    let used = match nonces.get(&key) {
        Some(expiry) => Some(*expiry),
        None => snap.nonce_expiry(&caller, body.nonce)?,
    };
    if used.is_some_and(|expiry| !nonce_expired(expiry, entry.timestamp)) {
        return Ok(reply.refuse(
            Refusal::Replayed,
            format!("nonce {} of {caller} was already used", body.nonce),
        ));
    }
    nonces.insert(key, body.expires_at);
    let nonce = Some((caller, body.nonce, body.expires_at));
    match &body.call {
        Call::Cluster { op } => {
            let mut applied = apply_cluster_op(worker, &mut local.epochs, entry, &req, caller, op);
            applied.receipt.caller = caller;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Schedule { op } => {
            let state = Layered {
                base: snap.clone(),
                pending: view.pending.clone(),
            };
            let result =
                apply_schedule_op(worker, &state, &mut local.schedules, entry, caller, op)?;
            let mut applied = match result {
                Ok((output, changes)) => {
                    let mut ok = reply.accept(output);
                    ok.changes = changes;
                    ok
                }
                Err((kind, message)) => reply.refuse(kind, message),
            };
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Subscription { op } => {
            let table = &mut local.subscriptions;
            let mut applied = trigger_table_change(
                worker,
                view,
                entry,
                (caller, op.contract()),
                |info, balance, limits| {
                    let out = crate::subscribe::change(table, info, (caller, balance), op, limits)?;
                    Ok((out.0, out.1, (StateKey::Subscriptions, table.encode())))
                },
                &reply,
            )?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Job { op } => {
            let table = &mut local.jobs;
            let mut applied = trigger_table_change(
                worker,
                view,
                entry,
                (caller, op.contract()),
                |info, balance, limits| {
                    let out = crate::jobs::change(
                        table,
                        info,
                        (caller, balance),
                        (op, entry.timestamp),
                        limits,
                    )?;
                    Ok((out.0, out.1, (StateKey::Jobs, table.encode())))
                },
                &reply,
            )?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::LogReaders { contract, readers } => {
            let mut applied =
                logs::apply_log_readers(view, entry, (caller, *contract), readers, &reply)?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Logs { .. } | Call::Estimate { .. } => {
            let mut applied = reply.refuse(
                Refusal::WrongMode,
                "reading a log or an estimate is a query, not a command".into(),
            );
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Transfer { dest, value } => {
            let mut applied = apply_transfer(view, entry, (caller, *dest, *value), &reply)?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Instantiate { .. }
            if worker.inner.genesis.deploy != crate::DeployPermission::Public =>
        {
            let state = Layered {
                base: snap.clone(),
                pending: view.pending.clone(),
            };
            let deployers = phat_runtime::StateRead::get(&state, &StateKey::Deployers)
                .map_err(|e| {
                    WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0))
                })?
                .and_then(|raw| Vec::<AccountId>::decode(&mut &raw[..]).ok())
                .unwrap_or_default();
            if !crate::genesis::may_deploy(&worker.inner.genesis, &deployers, &caller) {
                let mut applied = reply.refuse(
                    Refusal::DeployNotAllowed,
                    format!(
                        "this cluster lets its owner deploy, and the accounts the owner allows; \
                         {caller} is neither"
                    ),
                );
                applied.nonce = nonce;
                return Ok(applied);
            }
        }
        Call::Call { .. } | Call::Instantiate { .. } => {}
    }
    let code = match &body.call {
        Call::Instantiate { code_hash, .. } => code.get(code_hash).map(Vec::as_slice),
        _ => None,
    };
    let mut applied = run_command(
        worker,
        view,
        entry,
        (caller, None),
        req.hash(),
        body.call.clone(),
        code,
    )?;
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    applied.nonce = nonce;
    Ok(applied)
}

/// Moves `value` of native balance from `from` to `to`, read through the batch's earlier
/// writes; refused (`insufficient_balance`) when `from` holds less. Balances are `u128`s in
/// replicated state, so a transfer is two writes (an account at 0 has no row).
fn apply_transfer(
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    (from, to, value): (AccountId, AccountId, phat_primitives::Balance),
    reply: &Reply,
) -> Result<Applied, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let balance_of = |who: &AccountId| -> Result<u128, WorkerError> {
        Ok(
            phat_runtime::StateRead::get(&state, &StateKey::Balance(*who))
                .map_err(|e| {
                    WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0))
                })?
                .and_then(|raw| phat_primitives::Balance::decode(&mut &raw[..]).ok())
                .unwrap_or(0),
        )
    };
    let have = balance_of(&from)?;
    if have < value {
        return Ok(reply.refuse(
            Refusal::InsufficientBalance,
            format!("{from} holds {have}, less than the {value} it sends"),
        ));
    }
    let mut applied = reply.accept(Vec::new());
    if from != to && value > 0 {
        let after_from = have - value;
        let after_to = balance_of(&to)?.saturating_add(value);
        let row = |b: u128| (b != 0).then(|| b.encode());
        applied
            .changes
            .insert(StateKey::Balance(from), row(after_from));
        applied.changes.insert(StateKey::Balance(to), row(after_to));
    }
    Ok(applied)
}

/// Whether an earlier use of a nonce, valid until `expiry`, no longer holds the nonce at
/// ledger time `now`: the earlier request could not be applied at `now` either
/// ([`check_body`] refuses `expires_at < now`). The store prunes exactly these rows
/// (`prune_nonces_before` is a batch's last ledger time, and ledger time never goes back).
pub(crate) fn nonce_expired(expiry: u64, now: u64) -> bool {
    expiry < now
}

/// What a change to a trigger table made: the receipt's output, the deployer's new balance,
/// and the table's write.
type TableChange = (Vec<u8>, u128, (StateKey, Vec<u8>));

/// A deployer's change to a trigger table (subscriptions, jobs): reads the contract's info
/// and the caller's balance through the batch's writes, lets `change` decide with the
/// cluster's gas cap and deposit price, and makes the receipt with the table's and the
/// balance's writes, or the refusal.
fn trigger_table_change(
    worker: &Worker,
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    (caller, contract): (AccountId, AccountId),
    change: impl FnOnce(Option<Vec<u8>>, u128, (u64, u128)) -> Result<TableChange, (Refusal, String)>,
    reply: &Reply,
) -> Result<Applied, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let read = |key: &StateKey| {
        phat_runtime::StateRead::get(&state, key)
            .map_err(|e| WorkerError::Apply(format!("seq {}: reading state: {}", entry.seq, e.0)))
    };
    let info = read(&StateKey::Contract(contract))?;
    let balance = read(&StateKey::Balance(caller))?
        .and_then(|raw| phat_primitives::Balance::decode(&mut &raw[..]).ok())
        .unwrap_or(0);
    let max_gas = worker.inner.runtime.config().limits.max_gas_per_call;
    Ok(
        match change(info, balance, (max_gas, deposit_price(worker))) {
            Ok((output, balance, (key, table))) => {
                let mut ok = reply.accept(output);
                ok.changes.insert(key, Some(table));
                ok.changes.insert(
                    StateKey::Balance(caller),
                    (balance != 0).then(|| balance.encode()),
                );
                ok
            }
            Err((kind, message)) => reply.refuse(kind, message),
        },
    )
}

/// Runs `call` for `caller` as the command at `entry` on the batch's state; `payer`, when
/// given, pays its storage deposit instead of the caller (a trigger's runs).
fn run_command(
    worker: &Worker,
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    (caller, payer): (AccountId, Option<AccountId>),
    request: Hash,
    call: Call,
    code: Option<&[u8]>,
) -> Result<Applied, WorkerError> {
    let state = Arc::new(Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    });
    let executed = crate::execute::execute(
        worker,
        crate::execute::Run {
            mode: Mode::Command,
            state,
            seq: Some(entry.seq),
            block_number: u32::try_from(entry.seq).unwrap_or(u32::MAX),
            timestamp: entry.timestamp,
            caller,
            payer,
            call,
            code,
            dry_run: false,
        },
    );
    if let Err(e) = &executed.result {
        if !e.is_deterministic() {
            // This worker's own failure (no instance slot, a store read error): retry the
            // batch rather than record a result other workers would not produce.
            return Err(WorkerError::Apply(format!("seq {}: {e}", entry.seq)));
        }
    }
    let (result, changes, logs, schedules) = (
        executed.result,
        executed.changes,
        executed.logs,
        executed.schedules,
    );
    let (result, events, gas_used) = crate::execute::outcome_parts(result);
    Ok(Applied {
        executed: true,
        receipt: Receipt {
            seq: entry.seq,
            request,
            caller,
            timestamp: entry.timestamp,
            result,
            events,
            gas_used,
            state_root: Hash::default(),
        },
        changes,
        nonce: None,
        logs,
        schedules,
    })
}

/// Applies an owner's change to the cluster: starts a new key epoch (with a revocation),
/// keyed later by the first valid [`EpochDeal`](phat_primitives::protocol::EpochDeal).
fn apply_cluster_op(
    worker: &Worker,
    epochs: &mut ClusterEpochs,
    entry: &LedgerEntry,
    req: &SignedRequest,
    caller: AccountId,
    op: &ClusterOp,
) -> Applied {
    let reply = Reply::to(entry, Some(req));
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    match worker.inner.genesis.owner {
        None => {
            return refuse(
                Refusal::NotOwner,
                "this cluster has no owner (none was named at genesis): nobody may change it"
                    .into(),
            )
        }
        Some(owner) if owner != caller => {
            return refuse(
                Refusal::NotOwner,
                format!("only the cluster owner {owner} may change the cluster"),
            )
        }
        Some(_) => {}
    }
    if let ClusterOp::SetDeployers { accounts } = op {
        let mut accounts = accounts.clone();
        accounts.sort();
        accounts.dedup();
        if accounts.len() > phat_primitives::protocol::MAX_DEPLOYERS {
            return refuse(
                Refusal::TooManyDeployers,
                format!(
                    "{} deployers, more than {}",
                    accounts.len(),
                    phat_primitives::protocol::MAX_DEPLOYERS
                ),
            );
        }
        let mut applied = reply.accept((accounts.len() as u32).encode());
        applied.changes.insert(
            StateKey::Deployers,
            (!accounts.is_empty()).then(|| accounts.encode()),
        );
        return applied;
    }
    // One epoch at a time: the next starts once the last is keyed (a deal names the epoch it
    // keys, and its shares go to the members of that moment).
    if let Some(pending) = epochs.pending() {
        return refuse(
            Refusal::KeyEpochPending,
            format!("key epoch {pending} is not keyed yet; try again in a moment"),
        );
    }
    let revoked = match op {
        ClusterOp::RotateKey => None,
        ClusterOp::RevokeWorker { worker } if epochs.is_revoked(worker) => {
            return refuse(
                Refusal::AlreadyRevoked,
                format!("worker {worker} was already revoked"),
            )
        }
        ClusterOp::RevokeWorker { worker } => Some(*worker),
        ClusterOp::SetDeployers { .. } => unreachable!("answered above"),
    };
    epochs.changes.push(EpochChange {
        seq: entry.seq,
        revoked,
        dealt: None,
    });
    let mut changes = ChangeSet::new();
    changes.insert(StateKey::ClusterEpochs, Some(epochs.encode()));
    let mut applied = reply.accept(epochs.epoch().encode());
    applied.changes = changes;
    applied
}
