//! Snapshots: a sealed, signed image of the state at every snapshot seq, stored in the
//! ledger, and the restore of the newest one the other members' checkpoints confirm.

use super::*;

/// Domain of the snapshot seal's associated data.
pub(super) const SNAPSHOT_DOMAIN: &[u8] = b"phat/snapshot/v1";

/// The header of a stored snapshot (in the clear, authenticated by the seal).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(super) struct SnapshotHeader {
    pub(super) seq: Seq,
    pub(super) state_root: [u8; 32],
    pub(super) timestamp: u64,
    /// The identity key of the worker that wrote it.
    pub(super) worker: [u8; 32],
}

/// A stored snapshot: header and the sealed SCALE [`StateImage`].
#[derive(Encode, Decode)]
pub(super) struct SnapshotBlob {
    pub(super) header: SnapshotHeader,
    pub(super) sealed: Vec<u8>,
    /// The writer's vote-key signature of [`snapshot_signed`] (64 bytes): anyone holding the
    /// snapshot key (a revoked worker holds old epochs') can seal an image; only the worker the
    /// header names can sign it.
    pub(super) signature: Vec<u8>,
}

/// The domain snapshots are signed under.
pub(super) const SNAPSHOT_VOTE: &str = "phat/v1/vote/snapshot";

/// What a snapshot's writer signs: its header and the digest of the sealed image.
pub(super) fn snapshot_signed(header: &SnapshotHeader, sealed: &[u8]) -> Vec<u8> {
    (header, phat_primitives::blake2_256(sealed)).encode()
}

/// The name of this worker's snapshot at `seq`: sorts by seq.
pub(super) fn snapshot_name(seq: Seq, worker: &[u8; 32]) -> String {
    format!("{seq:020}-{}", hex::encode(&worker[..8]))
}

/// The seq a snapshot name starts with.
pub(super) fn snapshot_seq(name: &str) -> Option<Seq> {
    name.split('-').next()?.parse().ok()
}

/// Seals the image of `view`, stores it, deletes this worker's older snapshots and trims the
/// log below the oldest kept. Returns the stored size.
pub(super) async fn write_snapshot(
    worker: &Worker,
    view: phat_store::Snapshot,
) -> Result<usize, WorkerError> {
    let inner = &worker.inner;
    let me = worker.worker_key();
    let cipher = inner.enclave.keys().snapshot.clone();
    let enclave = inner.enclave.clone();
    let blob = tokio::task::spawn_blocking(move || -> Result<_, WorkerError> {
        let image = view.image()?;
        let header = SnapshotHeader {
            seq: image.seq,
            state_root: image.state_root.0,
            timestamp: image.timestamp,
            worker: me,
        };
        let aad = [SNAPSHOT_DOMAIN, &header.encode()].concat();
        let sealed = cipher.seal(&aad, &image.encode());
        let signature = enclave
            .vote_key
            .sign(SNAPSHOT_VOTE, &snapshot_signed(&header, &sealed))
            .to_vec();
        Ok(SnapshotBlob {
            header,
            sealed,
            signature,
        }
        .encode())
    })
    .await
    .map_err(ApplyError::task("snapshot"))??;
    let size = blob.len();
    let seq = SnapshotBlob::decode(&mut blob.as_slice())
        .map(|b| b.header.seq)
        .unwrap_or_default();
    inner
        .ledger
        .put_snapshot(&snapshot_name(seq, &me), blob)
        .await?;
    // Retention: this worker's newest `snapshots_kept`.
    let suffix = format!("-{}", hex::encode(&me[..8]));
    let mine: Vec<String> = inner
        .ledger
        .snapshot_names()
        .await?
        .into_iter()
        .filter(|n| n.ends_with(&suffix))
        .collect();
    let kept = inner.replica.config.snapshots_kept;
    let drop = mine.len().saturating_sub(kept);
    for name in &mine[..drop] {
        inner.ledger.delete_snapshot(name).await?;
    }
    if inner.replica.config.trim_log {
        if let Some(oldest) = mine.get(drop).and_then(|n| snapshot_seq(n)) {
            // A worker starting from the oldest kept snapshot needs the entries after it.
            inner.ledger.trim(oldest + 1).await?;
        }
    }
    Ok(size)
}

/// Restores the newest usable snapshot at a seq of at least `min_seq`; returns its seq, or
/// `None` when there is none. Usable: it opens with the cluster's key, its writer is a member
/// of the cluster, and more members' checkpoints at its seq report its root than another (at
/// least one: a snapshot at a seq nobody checkpointed, or that only its writer vouches for
/// against another member, is never restored). The image itself cannot be checked against
/// the root (the root chains writes, not the state), so this is what stands between a
/// restoring worker and forged state.
pub(crate) async fn restore_newest(
    worker: &Worker,
    min_seq: Seq,
) -> Result<Option<Seq>, WorkerError> {
    let inner = &worker.inner;
    let mut names = inner.ledger.snapshot_names().await?;
    names.sort_by_key(|n| std::cmp::Reverse(snapshot_seq(n)));
    let others = others(worker).await?;
    let voters = voters(worker).await?;
    let cipher = inner.enclave.keys().snapshot.clone();
    for name in names {
        let Some(seq) = snapshot_seq(&name) else {
            continue;
        };
        if seq < min_seq.max(1) {
            break;
        }
        let Some(raw) = inner.ledger.get_snapshot(&name).await? else {
            continue;
        };
        let Ok(blob) = SnapshotBlob::decode_all(&mut raw.as_slice()) else {
            tracing::warn!(%name, "skipping an unreadable snapshot");
            continue;
        };
        let header = blob.header;
        // The writer's signature first: nothing else of a stranger's blob is worked on.
        let signed = voters.get(&header.worker).is_some_and(|vote_key| {
            <&[u8; 64]>::try_from(blob.signature.as_slice()).is_ok_and(|sig| {
                phat_crypto::verify_vote(
                    vote_key,
                    SNAPSHOT_VOTE,
                    &snapshot_signed(&header, &blob.sealed),
                    sig,
                )
            })
        });
        if !signed {
            tracing::warn!(%name, "skipping a snapshot not signed by a member");
            crate::metrics::refuse(&inner.metrics.refused_metadata, "snapshot");
            continue;
        }
        let aad = [SNAPSHOT_DOMAIN, &header.encode()].concat();
        let image = match cipher
            .open(&aad, &blob.sealed)
            .map(|plain| StateImage::decode_all(&mut plain.as_slice()).map_err(|e| e.to_string()))
        {
            Ok(Ok(image)) if image.seq == header.seq && image.state_root.0 == header.state_root => {
                image
            }
            _ => {
                tracing::warn!(%name, "skipping a snapshot that does not open with this cluster's key");
                continue;
            }
        };
        let (confirm, contradict) = confirmations(image.seq, image.state_root, &others);
        if confirm <= contradict {
            tracing::warn!(
                %name,
                confirm,
                contradict,
                "skipping a snapshot whose root most members' checkpoints do not confirm"
            );
            crate::metrics::refuse(&inner.metrics.refused_metadata, "snapshot");
            continue;
        }
        let seq = image.seq;
        let store = inner.store.clone();
        tokio::task::spawn_blocking(move || store.restore(&image))
            .await
            .map_err(ApplyError::task("restore"))??;
        inner.replica.reset();
        inner.metrics.diverged_seq.set(0);
        inner.metrics.applied_seq.set(seq as i64);
        inner.applied.send_replace(seq);
        inner
            .ledger_head
            .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
        return Ok(Some(seq));
    }
    Ok(None)
}
