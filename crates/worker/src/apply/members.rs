//! Membership as replicated state: a worker's `Join` entry is checked at apply against the
//! genesis policy (at the entry's ledger time), and admitted workers go into the member table
//! under the state root. Votes (log reports, job results) count only from members, signed
//! with the vote key their report attested. Every check here reads the entry and replicated
//! state only, so every worker decides the same.

use phat_primitives::protocol::{JoinEntry, Member, MemberTable, MAX_MEMBERS};

use super::*;

/// The member table in `snap` (empty before the first join).
pub(crate) fn stored_members(snap: &Snapshot) -> Result<MemberTable, WorkerError> {
    match snap.get(&StateKey::Members)? {
        Some(raw) => MemberTable::decode_all(&mut &raw[..])
            .map_err(|e| WorkerError::Apply(format!("the member table does not decode: {e}"))),
        None => Ok(MemberTable::default()),
    }
}

/// Applies a worker's request to join: its report must verify under the genesis policy at
/// the entry's ledger time, attest a vote key and, once the cluster has members, the first
/// member's measurement; a revoked, present or surplus worker is refused.
pub(super) fn apply_join(
    worker: &Worker,
    local: &mut Local,
    entry: &LedgerEntry,
    join: &JoinEntry,
) -> Applied {
    let report = &join.report;
    let request = Hash(blake2_256(&join.encode()));
    let refuse = |kind: &str, message: String| {
        let mut a = reject(entry, None, kind, message);
        a.receipt.request = request;
        a
    };
    let first = local.members.members.first().map(|m| m.measurement.0);
    let policy = worker
        .inner
        .enclave
        .apply_policy(&worker.inner.genesis, first, entry.timestamp);
    if let Err(e) = policy.verify(report) {
        return refuse("not_attested", e.to_string());
    }
    let Some(vote_key) = report.signing_key else {
        return refuse(
            "no_vote_key",
            "the report attests no vote key (a worker of an older version)".into(),
        );
    };
    let identity = report.worker_key;
    if local.epochs.is_revoked(&identity) {
        return refuse(
            "revoked_worker",
            format!("{identity} was revoked from the cluster"),
        );
    }
    if local.members.get(&identity).is_some() {
        return refuse("already_member", format!("{identity} is a member already"));
    }
    if local.members.members.len() >= MAX_MEMBERS {
        return refuse(
            "too_many_members",
            format!("the cluster has {MAX_MEMBERS} members, its most"),
        );
    }
    local.members.members.push(Member {
        identity,
        vote_key,
        measurement: report.measurement,
        joined: entry.seq,
    });
    debug_assert!(local.members.members.len() <= MAX_MEMBERS);
    let mut applied = refuse("", String::new());
    applied.receipt.result = CallResult::Ok(phat_primitives::protocol::CallOutput {
        data: (local.members.members.len() as u32).encode().into(),
        reverted: false,
        address: None,
    });
    applied
        .changes
        .insert(StateKey::Members, Some(local.members.encode()));
    tracing::info!(seq = entry.seq, worker_key = %identity, "a worker joined the cluster's members");
    applied
}

/// Why a vote a worker made on its own (a log report, a job's result) does not count: made in
/// another key epoch than the current one, by a worker that is not a member or was revoked,
/// or with a signature its attested vote key did not make.
pub(super) fn check_vote(
    local: &Local,
    (epoch_made, by): (u32, &Hash),
    (domain, payload, signature): (&str, &[u8], &[u8]),
) -> Option<(&'static str, String)> {
    let epoch = local.epochs.epoch();
    if epoch_made != epoch {
        return Some((
            "stale_epoch",
            format!("made in key epoch {epoch_made}, the cluster is in {epoch}"),
        ));
    }
    if local.epochs.is_revoked(by) {
        return Some(("revoked_worker", format!("{by} was revoked")));
    }
    let Some(member) = local.members.get(by) else {
        return Some((
            "not_a_member",
            format!("{by} is not a member of the cluster"),
        ));
    };
    let valid = <&[u8; 64]>::try_from(signature)
        .is_ok_and(|sig| phat_crypto::verify_vote(&member.vote_key.0, domain, payload, sig));
    if !valid {
        return Some((
            "bad_signature",
            format!("not signed by the vote key of {by}"),
        ));
    }
    None
}
