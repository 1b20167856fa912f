//! Checkpoints: each worker publishes its recent `(seq, root)` points, signed with its vote
//! key, and judges its own against the other members' (outvoted: `diverged`).

use super::*;

/// What a worker publishes: its name and recent `(seq, root)` checkpoints, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(super) struct CheckpointRecord {
    pub(super) name: String,
    pub(super) points: Vec<(Seq, [u8; 32])>,
}

/// A published record: the SCALE record and the publisher's signature with its attested vote
/// key, so that nobody but that worker (not a NATS user, not anyone who can write the
/// metadata, not another worker) can make its votes.
#[derive(Encode, Decode)]
pub(super) struct SignedRecord {
    pub(super) record: Vec<u8>,
    /// ed25519, 64 bytes.
    pub(super) signature: Vec<u8>,
}

/// The domain checkpoint records are signed under.
pub(super) const CHECKPOINT_VOTE: &str = "phat/v1/vote/checkpoint";

/// This worker's record, signed with its vote key.
pub(super) fn sign_record(worker: &Worker, record: Vec<u8>) -> SignedRecord {
    SignedRecord {
        signature: worker
            .inner
            .enclave
            .vote_key
            .sign(CHECKPOINT_VOTE, &record)
            .to_vec(),
        record,
    }
}

/// The other workers' checkpoint records. A record counts only if its publisher may vote
/// ([`voters`]: a member, or attested, and not revoked) and its signature verifies under that
/// worker's vote key: one vote per worker. Anything else is ignored and counted: the metadata
/// is writable by anyone holding ledger credentials.
pub(super) async fn others(worker: &Worker) -> Result<Vec<CheckpointRecord>, WorkerError> {
    let inner = &worker.inner;
    let me = worker.worker_key();
    let voters = voters(worker).await?;
    let mut out = Vec::new();
    let prefix = MetaPrefix::Checkpoint.to_string();
    for key in inner.ledger.meta_keys(&prefix).await? {
        let Some(MetaKey::Checkpoint(publisher)) = MetaKey::parse(&key) else {
            crate::metrics::refuse(&inner.metrics.refused_metadata, "checkpoint");
            continue;
        };
        if publisher == me {
            continue;
        }
        let Some(vote_key) = voters.get(&publisher) else {
            tracing::warn!(%key, "ignoring a checkpoint record of a worker that may not vote");
            crate::metrics::refuse(&inner.metrics.refused_metadata, "checkpoint");
            continue;
        };
        let Some(raw) = inner.ledger.get_meta(&key).await? else {
            continue;
        };
        let record = SignedRecord::decode_all(&mut raw.as_slice())
            .ok()
            .filter(|s| {
                <&[u8; 64]>::try_from(s.signature.as_slice()).is_ok_and(|sig| {
                    phat_crypto::verify_vote(vote_key, CHECKPOINT_VOTE, &s.record, sig)
                })
            })
            .and_then(|s| CheckpointRecord::decode_all(&mut s.record.as_slice()).ok());
        match record {
            Some(record) => out.push(record),
            None => {
                tracing::warn!(%key, "ignoring a checkpoint record that does not verify");
                crate::metrics::refuse(&inner.metrics.refused_metadata, "checkpoint");
            }
        }
    }
    Ok(out)
}

/// The verdict on this worker's checkpoints against the others'.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// This worker is not in the largest group at some seq.
    pub(super) diverged: Option<Divergence>,
    /// Others differ from the majority this worker is in.
    pub(super) disagreement: Option<Divergence>,
}

/// Compares `ours` with `others` at every seq both have; the first seq that differs decides.
pub(super) fn judge(ours: &[(Seq, Hash)], others: &[CheckpointRecord]) -> Verdict {
    let mut verdict = Verdict::default();
    for &(seq, root) in ours {
        let mut groups: BTreeMap<[u8; 32], Vec<String>> = BTreeMap::new();
        for record in others {
            if let Some((_, r)) = record.points.iter().find(|(s, _)| *s == seq) {
                groups.entry(*r).or_default().push(record.name.clone());
            }
        }
        let agreeing = 1 + groups.remove(&root.0).map_or(0, |v| v.len());
        let Some((theirs, who)) = groups
            .into_iter()
            .max_by_key(|(r, who)| (who.len(), std::cmp::Reverse(*r)))
        else {
            continue;
        };
        let d = Divergence {
            seq,
            ours: root,
            theirs: Hash(theirs),
            who,
            agreeing,
        };
        if agreeing >= d.who.len() {
            verdict.disagreement.get_or_insert(d);
        } else {
            verdict.diverged = Some(d);
            break;
        }
    }
    verdict
}

/// Publishes this worker's checkpoints and compares them with the others' until `stop`.
pub(crate) async fn watch(worker: Worker) {
    let inner = &worker.inner;
    let key = MetaKey::Checkpoint(worker.worker_key()).key();
    let mut published: Option<Seq> = None;
    loop {
        let _ = tokio::time::timeout(WATCH_EVERY, inner.replica.changed.notified()).await;
        let ours: Vec<(Seq, Hash)> = inner.replica.points.lock().iter().copied().collect();
        let last = ours.last().map(|p| p.0);
        if last.is_some() && last != published {
            let record = CheckpointRecord {
                name: inner.config.name.clone(),
                points: ours.iter().map(|(s, r)| (*s, r.0)).collect(),
            };
            let signed = sign_record(&worker, record.encode());
            match inner.ledger.put_meta(&key, signed.encode()).await {
                Ok(()) => published = last,
                Err(e) => tracing::warn!("publishing checkpoints: {e}"),
            }
        }
        if ours.is_empty() {
            continue;
        }
        let others = match others(&worker).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("reading other workers' checkpoints: {e}");
                continue;
            }
        };
        let verdict = judge(&ours, &others);
        if let Some(d) = verdict.diverged {
            let mut diverged = inner.replica.diverged.lock();
            if diverged.is_none() {
                tracing::error!(worker = %inner.config.name, "DIVERGED: {d}");
                inner.metrics.diverged_seq.set(d.seq as i64);
                *diverged = Some(d);
            }
        }
        if let Some(d) = &verdict.disagreement {
            if inner.replica.disagreement().as_ref() != Some(d) {
                tracing::warn!(
                    worker = %inner.config.name,
                    "workers {} disagree with the majority at seq {} (their root {})",
                    d.who.join(", "),
                    d.seq,
                    d.theirs
                );
                inner.metrics.disagreement_seq.set(d.seq as i64);
            }
        }
        *inner.replica.disagreement.lock() = verdict.disagreement;
    }
}

/// How many of `others` report `root` at `seq`, and how many another root.
pub(super) fn confirmations(seq: Seq, root: Hash, others: &[CheckpointRecord]) -> (usize, usize) {
    let mut counts = (0, 0);
    for record in others {
        match record.points.iter().find(|(s, _)| *s == seq) {
            Some((_, r)) if *r == root.0 => counts.0 += 1,
            Some(_) => counts.1 += 1,
            None => {}
        }
    }
    counts
}
