//! How the workers of a cluster check each other, and how a worker starts without replaying
//! the whole log.
//!
//! - **Checkpoints.** Every [`ReplicaConfig::checkpoint_every`] commands a worker records its
//!   `(seq, state_root)` and publishes its recent checkpoints under the ledger metadata key
//!   `checkpoint/<worker key>`. A watcher task compares them with the other workers' records.
//!   At a seq where roots differ, a worker that another root outvotes (more workers report
//!   it than this worker's root) is **diverged**: `/healthz` answers 503 naming the seq and
//!   who disagrees, queries and submissions get 503 `diverged`, and it stays so until
//!   restarted with `--resync`. A worker not outvoted only reports the disagreement (log,
//!   metric, `/healthz` text). A tie decides nothing: with two workers, or before the others
//!   reported, nobody can tell who is right, and one faulty worker must not be able to stop a
//!   healthy one. Run at least three workers for a verdict.
//! - **Snapshots.** Every [`ReplicaConfig::snapshot_every`] commands a worker seals an image of
//!   its replicated state (state and nonce rows, see [`phat_store::StateImage`]) with the
//!   cluster's snapshot key, signs it with its vote key and stores it in the ledger as
//!   `<seq>-<worker>`; it keeps its
//!   newest [`ReplicaConfig::snapshots_kept`] and trims the log below the oldest of them.
//! - **Starting from a snapshot.** A new worker, one whose next entry was trimmed, or one
//!   started with `--resync` restores the newest snapshot signed by a member whose root more
//!   members' checkpoints confirm than contradict, then follows the log from there. Later
//!   checkpoints check that replaying from it reaches the roots the others report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parity_scale_codec::{Decode, DecodeAll, Encode};
use parking_lot::Mutex;
use phat_ledger::LedgerError;
use phat_primitives::protocol::Seq;
use phat_primitives::{Hash, MetaKey, MetaPrefix};
use phat_store::{Head, StateImage};

use crate::{ApplyError, Worker, WorkerError};

mod checkpoints;
mod snapshots;

pub(crate) use checkpoints::watch;
use checkpoints::*;
pub(crate) use snapshots::restore_newest;
use snapshots::*;

/// Recent checkpoints a worker publishes (older ones are dropped, but those at the seqs of
/// its kept snapshots stay, so a snapshot can be checked against them).
const POINTS_KEPT: usize = 64;

/// How often the watcher compares checkpoints when nothing new happened.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// How checkpoints, snapshots and the fault switch are set up.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Commands between two checkpoints (and the most one apply batch holds); at least 1.
    pub checkpoint_every: u64,
    /// Commands between two snapshots (a multiple of `checkpoint_every`); `None`: none.
    pub snapshot_every: Option<u64>,
    /// Snapshots of this worker kept in the ledger; the log is trimmed below the oldest.
    pub snapshots_kept: usize,
    /// Whether to trim the log below the oldest kept snapshot.
    pub trim_log: bool,
    /// Whether a worker with no state starts from a snapshot (else it replays the log).
    pub start_from_snapshot: bool,
    /// Start by restoring the newest confirmed snapshot, dropping the local state (the way
    /// out of `diverged`).
    pub resync: bool,
    /// **Tests only** (the `testing` feature, which release builds lack): at this seq, apply
    /// one extra write that no other worker applies, so that this worker diverges (the
    /// divergence test's fault switch).
    #[cfg(feature = "testing")]
    pub fault_at_seq: Option<Seq>,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 100,
            snapshot_every: Some(10_000),
            snapshots_kept: 2,
            trim_log: true,
            start_from_snapshot: true,
            resync: false,
            #[cfg(feature = "testing")]
            fault_at_seq: None,
        }
    }
}

impl ReplicaConfig {
    /// Checks that the intervals fit together.
    pub fn check(&self) -> Result<(), String> {
        if self.checkpoint_every == 0 {
            return Err("checkpoint interval must be at least 1".into());
        }
        if let Some(n) = self.snapshot_every {
            if n == 0 || n % self.checkpoint_every != 0 {
                return Err(format!(
                    "the snapshot interval ({n}) must be a multiple of the checkpoint interval ({})",
                    self.checkpoint_every
                ));
            }
        }
        if self.snapshots_kept == 0 {
            return Err("keep at least one snapshot".into());
        }
        Ok(())
    }
}

/// A worker's state differs from other workers' at some seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Divergence {
    /// The first checkpoint seq where the roots differ.
    pub seq: Seq,
    /// This worker's root there.
    pub ours: Hash,
    /// The root the largest other group reports.
    pub theirs: Hash,
    /// The workers reporting `theirs`.
    pub who: Vec<String>,
    /// Workers (this one included) reporting `ours`.
    pub agreeing: usize,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at seq {} this worker's state root is {} ({} worker(s)), {} report {}; restart it with `phat worker --resync`",
            self.seq,
            self.ours,
            self.agreeing,
            self.who.join(", "),
            self.theirs
        )
    }
}

/// Who may vote, by identity key, with the vote key to check: the members of this worker's
/// applied state, or, while that state lists none (a worker restoring a snapshot has no state
/// yet), the workers whose attested reports are in the ledger's metadata; never a worker
/// this worker's state revoked.
async fn voters(worker: &Worker) -> Result<BTreeMap<[u8; 32], [u8; 32]>, WorkerError> {
    let inner = &worker.inner;
    let revoked = inner.enclave.revoked.lock().clone();
    let table = crate::apply::stored_members(&inner.store.snapshot()?)?;
    let mut out: BTreeMap<[u8; 32], [u8; 32]> = table
        .members
        .iter()
        .map(|m| (m.identity.0, m.vote_key.0))
        .collect();
    if out.is_empty() {
        let attested = inner
            .enclave
            .attested_workers(
                &*inner.ledger,
                &inner.genesis,
                &inner.metrics.refused_metadata,
            )
            .await?;
        for (identity, vote_key) in attested {
            if let Some(vote_key) = vote_key {
                out.insert(identity.0, vote_key.0);
            }
        }
    }
    out.retain(|identity, _| !revoked.contains(&Hash(*identity)));
    Ok(out)
}

/// Checkpoint and divergence state of a worker.
pub(crate) struct Replica {
    pub(crate) config: ReplicaConfig,
    /// This worker's recent checkpoints.
    points: Mutex<VecDeque<(Seq, Hash)>>,
    /// Wakes the watcher when a checkpoint was recorded.
    changed: tokio::sync::Notify,
    diverged: Mutex<Option<Divergence>>,
    /// Others that disagree with the majority this worker belongs to.
    disagreement: Mutex<Option<Divergence>>,
    /// A snapshot is being written.
    snapshotting: AtomicBool,
    /// The ledger said it keeps no snapshots (HTTP transport): stop trying.
    no_snapshots: AtomicBool,
}

impl Replica {
    pub(crate) fn new(config: ReplicaConfig) -> Self {
        Self {
            config,
            points: Mutex::new(VecDeque::new()),
            changed: tokio::sync::Notify::new(),
            diverged: Mutex::new(None),
            disagreement: Mutex::new(None),
            snapshotting: AtomicBool::new(false),
            no_snapshots: AtomicBool::new(false),
        }
    }

    /// Why this worker must not answer, if it diverged.
    pub(crate) fn diverged(&self) -> Option<Divergence> {
        self.diverged.lock().clone()
    }

    /// Workers that disagree with this one while it holds the majority.
    pub(crate) fn disagreement(&self) -> Option<Divergence> {
        self.disagreement.lock().clone()
    }

    /// The most entries the apply batch starting at `from` may take, so that a batch ends
    /// at every snapshot seq (a snapshot is the committed state exactly there).
    pub(crate) fn batch_limit(&self, from: Seq, batch: usize) -> usize {
        let Some(n) = self.config.snapshot_every.filter(|n| *n > 0) else {
            return batch;
        };
        let to_boundary = n - (from.saturating_sub(1) % n);
        usize::try_from(to_boundary)
            .map_or(batch, |b| b.min(batch))
            .max(1)
    }

    /// Whether `seq` is a snapshot seq (a batch ends there: [`Replica::batch_limit`]).
    pub(crate) fn is_snapshot_seq(&self, seq: Seq) -> bool {
        self.config
            .snapshot_every
            .is_some_and(|n| n > 0 && seq > 0 && seq.is_multiple_of(n))
    }

    /// Whether `seq` is a checkpoint seq.
    pub(crate) fn is_checkpoint(&self, seq: Seq) -> bool {
        seq > 0 && seq.is_multiple_of(self.config.checkpoint_every.max(1))
    }

    /// The fault switch: an extra write at the configured seq.
    #[cfg(feature = "testing")]
    pub(crate) fn inject_fault(&self, seq: Seq, changes: &mut phat_runtime::ChangeSet) {
        if self.config.fault_at_seq == Some(seq) {
            tracing::warn!(
                seq,
                "fault switch: applying a write no other worker applies"
            );
            changes.insert(
                phat_primitives::StateKey::Storage(Hash([0xfa; 32]), b"phat-fault".to_vec()),
                Some(seq.to_le_bytes().to_vec()),
            );
        }
    }

    /// Records the checkpoint `(seq, root)`.
    fn record(&self, seq: Seq, root: Hash) {
        let newest = seq;
        let mut points = self.points.lock();
        points.push_back((seq, root));
        // Drop the oldest point that is not at a kept snapshot's seq.
        if points.len() > POINTS_KEPT {
            let keep_snap = |seq: Seq| match self.config.snapshot_every {
                Some(n) => {
                    seq.is_multiple_of(n)
                        && newest - seq <= n.saturating_mul(self.config.snapshots_kept as u64)
                }
                None => false,
            };
            if let Some(i) = points.iter().position(|(s, _)| !keep_snap(*s)) {
                points.remove(i);
            }
        }
    }

    /// Forgets this worker's checkpoints and verdicts (after a restore).
    fn reset(&self) {
        self.points.lock().clear();
        *self.diverged.lock() = None;
        *self.disagreement.lock() = None;
    }
}

/// After a batch committed with `head` and passed the `checkpoints`: records them and starts
/// a snapshot when due.
pub(crate) fn after_commit(worker: &Worker, head: Head, checkpoints: &[(Seq, Hash)]) {
    let replica = &worker.inner.replica;
    for &(seq, root) in checkpoints {
        replica.record(seq, root);
    }
    if !checkpoints.is_empty() {
        replica.changed.notify_one();
    }
    let Some(n) = replica.config.snapshot_every else {
        return;
    };
    if head.seq == 0
        || !head.seq.is_multiple_of(n)
        || replica.no_snapshots.load(Ordering::Relaxed)
        || replica.diverged().is_some()
        || replica.snapshotting.swap(true, Ordering::AcqRel)
    {
        return;
    }
    // The apply loop is the only writer and has not started the next batch: this view is
    // exactly the state at `head`.
    let view = match worker.inner.store.snapshot() {
        Ok(view) if view.head().seq == head.seq => view,
        Ok(_) | Err(_) => {
            replica.snapshotting.store(false, Ordering::Release);
            return;
        }
    };
    let w = worker.clone();
    worker.spawn_task(async move {
        let started = std::time::Instant::now();
        match write_snapshot(&w, view).await {
            Ok(bytes) => tracing::info!(
                worker = %w.inner.config.name,
                seq = head.seq,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "snapshot stored"
            ),
            Err(WorkerError::Ledger(LedgerError::Unsupported(what))) => {
                tracing::info!("the ledger keeps no snapshots ({what}): snapshots are off");
                w.inner.replica.no_snapshots.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(seq = head.seq, "snapshot failed: {e}"),
        }
        w.inner.replica.snapshotting.store(false, Ordering::Release);
    });
}

/// Before the apply loop starts: restores a snapshot when asked to (`--resync`), when the
/// worker has no state yet, or when the log no longer holds its next entry.
pub(crate) async fn on_start(worker: &Worker) -> Result<(), WorkerError> {
    let inner = &worker.inner;
    let head = inner.store.head()?;
    if inner.replica.config.resync {
        return match restore_newest(worker, 0).await? {
            Some(seq) => {
                tracing::info!(worker = %inner.config.name, seq, "resynced from a snapshot");
                Ok(())
            }
            None => Err(WorkerError::from(ApplyError::NoSnapshot)),
        };
    }
    let first = match inner.ledger.first_seq().await {
        Ok(first) => first,
        Err(_) => return Ok(()),
    };
    let fresh = head.seq == 0 && inner.replica.config.start_from_snapshot;
    if fresh || first > head.seq + 1 {
        match restore_newest(worker, head.seq + 1).await {
            Ok(Some(seq)) => {
                tracing::info!(worker = %inner.config.name, seq, "started from a snapshot")
            }
            Ok(None) => {}
            Err(WorkerError::Ledger(LedgerError::Unsupported(_))) => {}
            Err(e) => tracing::warn!("no snapshot restored: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, points: &[(Seq, u8)]) -> CheckpointRecord {
        CheckpointRecord {
            name: name.into(),
            points: points.iter().map(|(s, r)| (*s, [*r; 32])).collect(),
        }
    }

    #[test]
    fn the_minority_diverges_and_the_majority_only_reports() {
        let ours = [(10, Hash([1; 32])), (20, Hash([9; 32]))];
        let others = [
            record("a", &[(10, 1), (20, 2)]),
            record("b", &[(10, 1), (20, 2)]),
        ];
        let v = judge(&ours, &others);
        let d = v.diverged.expect("diverged");
        assert_eq!((d.seq, d.theirs, d.agreeing), (20, Hash([2; 32]), 1));
        assert_eq!(d.who, vec!["a".to_string(), "b".to_string()]);

        // Seen from "a": the majority, with one worker disagreeing.
        let ours = [(10, Hash([1; 32])), (20, Hash([2; 32]))];
        let others = [
            record("b", &[(10, 1), (20, 2)]),
            record("bad", &[(10, 1), (20, 9)]),
        ];
        let v = judge(&ours, &others);
        assert_eq!(v.diverged, None);
        assert_eq!(
            v.disagreement.expect("reported").who,
            vec!["bad".to_string()]
        );
    }

    #[test]
    fn a_tie_is_only_a_disagreement_and_agreement_or_no_overlap_is_fine() {
        let ours = [(10, Hash([1; 32]))];
        let tie = judge(&ours, &[record("x", &[(10, 2)])]);
        assert_eq!(tie.diverged, None);
        assert_eq!(
            tie.disagreement.expect("reported").who,
            vec!["x".to_string()]
        );
        assert_eq!(judge(&ours, &[record("x", &[(10, 1)])]), Verdict::default());
        assert_eq!(judge(&ours, &[record("x", &[(20, 5)])]), Verdict::default());
        assert_eq!(judge(&ours, &[]), Verdict::default());
    }

    #[test]
    fn batches_end_at_snapshots_and_intervals_are_checked() {
        let r = Replica::new(ReplicaConfig {
            checkpoint_every: 10,
            ..ReplicaConfig::default()
        });
        // Batches end at snapshot seqs only (checkpoints are taken inside batches).
        assert_eq!(r.batch_limit(1, 1024), 1024);
        assert_eq!(r.batch_limit(9_995, 1024), 6);
        assert_eq!(r.batch_limit(10_001, 3), 3);
        assert!(r.is_checkpoint(20) && !r.is_checkpoint(21) && !r.is_checkpoint(0));
        let none = Replica::new(ReplicaConfig {
            snapshot_every: None,
            ..ReplicaConfig::default()
        });
        assert_eq!(none.batch_limit(9_995, 1024), 1024);
        assert!(ReplicaConfig {
            checkpoint_every: 10,
            snapshot_every: Some(25),
            ..ReplicaConfig::default()
        }
        .check()
        .is_err());
        assert!(ReplicaConfig::default().check().is_ok());
    }

    #[test]
    fn checkpoints_at_kept_snapshot_seqs_outlive_the_window() {
        let r = Replica::new(ReplicaConfig {
            checkpoint_every: 1,
            snapshot_every: Some(50),
            snapshots_kept: 2,
            ..ReplicaConfig::default()
        });
        for seq in 1..=200 {
            r.record(seq, Hash::default());
        }
        let points: Vec<Seq> = r.points.lock().iter().map(|p| p.0).collect();
        assert_eq!(points.len(), POINTS_KEPT);
        assert!(points.contains(&100) && points.contains(&150));
        assert!(!points.contains(&50), "older than the kept snapshots");
        assert_eq!(points.last(), Some(&200));
    }

    #[test]
    fn snapshot_names_sort_by_seq() {
        let a = snapshot_name(99, &[1; 32]);
        let b = snapshot_name(100, &[0; 32]);
        assert!(a < b);
        assert_eq!(snapshot_seq(&b), Some(100));
    }
}
