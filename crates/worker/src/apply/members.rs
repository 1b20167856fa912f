//! Membership as replicated state: a worker's `Join` entry is checked at apply against the
//! genesis policy (at the entry's ledger time), and admitted workers go into the member table
//! under the state root. Votes (log reports, job results) count only from members, signed
//! with the vote key their report attested. Every check here reads the entry and replicated
//! state only, so every worker decides the same.

use phat_primitives::protocol::{
    EpochDeal, EpochDealt, JoinEntry, Member, MemberTable, MAX_MEMBERS,
};

use super::*;

/// The member table in `snap` (empty before the first join).
pub(crate) fn stored_members(snap: &Snapshot) -> Result<MemberTable, WorkerError> {
    match snap.get(&StateKey::Members)? {
        Some(raw) => MemberTable::decode_all(&mut &raw[..])
            .map_err(|e| ApplyError::corrupt("member table")(e)),
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
    let reply = Reply::to(entry, None).about(request);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    let first = local.members.members.first().map(|m| m.measurement.0);
    let policy = worker
        .inner
        .enclave
        .apply_policy(&worker.inner.genesis, first, entry.timestamp);
    if let Err(e) = policy.verify(report) {
        return refuse(Refusal::NotAttested, e.to_string());
    }
    let Some(vote_key) = report.signing_key else {
        return refuse(
            Refusal::NoVoteKey,
            "the report attests no vote key (a worker of an older version)".into(),
        );
    };
    let identity = report.worker_key;
    if local.epochs.is_revoked(&identity) {
        return refuse(
            Refusal::RevokedWorker,
            format!("{identity} was revoked from the cluster"),
        );
    }
    if local.members.get(&identity).is_some() {
        return refuse(
            Refusal::AlreadyMember,
            format!("{identity} is a member already"),
        );
    }
    if local.members.members.len() >= MAX_MEMBERS {
        return refuse(
            Refusal::TooManyMembers,
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
    let mut applied = reply.accept((local.members.members.len() as u32).encode());
    applied
        .changes
        .insert(StateKey::Members, Some(local.members.encode()));
    tracing::info!(seq = entry.seq, worker_key = %identity, "a worker joined the cluster's members");
    applied
}

/// A vote a worker made on its own: the key epoch it was made in, by whom, and its signature
/// over `payload` in `domain`.
#[derive(Clone, Copy)]
pub(crate) struct Vote<'a> {
    /// The key epoch the vote was made in.
    pub(crate) epoch: u32,
    /// The worker (identity key) that made it.
    pub(crate) by: &'a Hash,
    /// The signing domain of its kind.
    pub(crate) domain: &'a str,
    /// What was signed.
    pub(crate) payload: &'a [u8],
    /// The signature, by the worker's vote key.
    pub(crate) signature: &'a [u8],
}

/// Why a vote a worker made on its own (a log report, a job's result) does not count: made in
/// another key epoch than the current one, by a worker that is not a member or was revoked,
/// or with a signature its attested vote key did not make.
pub(crate) fn check_vote(local: &Local, vote: Vote<'_>) -> Option<(Refusal, String)> {
    let Vote {
        epoch: epoch_made,
        by,
        domain,
        payload,
        signature,
    } = vote;
    let epoch = local.epochs.keyed();
    if epoch_made != epoch {
        return Some((
            Refusal::StaleEpoch,
            format!("made in key epoch {epoch_made}, the cluster is in {epoch}"),
        ));
    }
    if local.epochs.is_revoked(by) {
        return Some((Refusal::RevokedWorker, format!("{by} was revoked")));
    }
    let Some(member) = local.members.get(by) else {
        return Some((
            Refusal::NotAMember,
            format!("{by} is not a member of the cluster"),
        ));
    };
    let valid = <&[u8; 64]>::try_from(signature)
        .is_ok_and(|sig| phat_crypto::verify_vote(&member.vote_key.0, domain, payload, sig));
    if !valid {
        return Some((
            Refusal::BadSignature,
            format!("not signed by the vote key of {by}"),
        ));
    }
    None
}

/// The members a deal of a new epoch must seal its secret to: every member not revoked, in
/// the member table's order.
pub(crate) fn deal_recipients(members: &MemberTable, epochs: &ClusterEpochs) -> Vec<Hash> {
    members
        .members
        .iter()
        .map(|m| m.identity)
        .filter(|w| !epochs.is_revoked(w))
        .collect()
}

/// Applies a member's deal of the pending key epoch: the first valid one keys it. A deal must
/// name the pending epoch, come from a member that is not revoked, be signed with its vote
/// key, and hold one share for each member not revoked at this entry (a member admitted
/// after the dealer looked makes it invalid; the dealer deals again).
pub(super) fn apply_deal(local: &mut Local, entry: &LedgerEntry, deal: &EpochDeal) -> Applied {
    let request = Hash(blake2_256(&deal.signed_payload()));
    let reply = Reply::to(entry, None).about(request);
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    let Some(pending) = local.epochs.pending() else {
        return refuse(
            Refusal::NoPendingEpoch,
            format!(
                "key epoch {} is keyed already; no epoch waits for a deal",
                local.epochs.epoch()
            ),
        );
    };
    if deal.epoch != pending {
        return refuse(
            Refusal::WrongEpoch,
            format!(
                "the deal is for key epoch {}, the pending one is {pending}",
                deal.epoch
            ),
        );
    }
    if let Some((kind, message)) = check_vote(
        local,
        Vote {
            epoch: local.epochs.keyed(),
            by: &deal.dealer,
            domain: EpochDeal::VOTE_DOMAIN,
            payload: &deal.signed_payload(),
            signature: &deal.signature,
        },
    ) {
        return refuse(kind, message);
    }
    let expected = deal_recipients(&local.members, &local.epochs);
    let mut given: Vec<Hash> = deal.shares.iter().map(|s| s.member).collect();
    let mut wanted = expected.clone();
    given.sort_unstable();
    wanted.sort_unstable();
    if given != wanted {
        return refuse(
            Refusal::WrongShares,
            format!(
                "the deal seals the secret to {} keys; the cluster has {} members not revoked, \
                 each to get one share",
                given.len(),
                expected.len()
            ),
        );
    }
    let reused = (1..pending)
        .filter_map(|e| local.epochs.dealt(e))
        .any(|d| d.key == deal.key);
    if reused {
        return refuse(
            Refusal::ReusedKey,
            "the deal names the key of an earlier epoch".into(),
        );
    }
    let Some(change) = local.epochs.changes.last_mut() else {
        return refuse(Refusal::NoPendingEpoch, "no key epoch was started".into());
    };
    change.dealt = Some(EpochDealt {
        seq: entry.seq,
        key: deal.key,
    });
    debug_assert_eq!(local.epochs.keyed(), pending);
    let mut applied = reply.accept(pending.encode());
    applied
        .changes
        .insert(StateKey::ClusterEpochs, Some(local.epochs.encode()));
    tracing::info!(seq = entry.seq, epoch = pending, key = %deal.key, dealer = %deal.dealer, "a key epoch was dealt");
    applied
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use phat_crypto::{EnvelopeSecret, VoteKey};
    use phat_primitives::protocol::{EpochChange, EpochShare};

    use super::*;

    /// A member: its identity secret and vote key.
    struct Who {
        identity: EnvelopeSecret,
        vote: VoteKey,
    }

    fn who() -> Who {
        Who {
            identity: EnvelopeSecret::generate(),
            vote: VoteKey::generate(),
        }
    }

    fn local(members: &[&Who], changes: Vec<EpochChange>) -> Local {
        Local {
            epochs: ClusterEpochs { changes },
            members: MemberTable {
                members: members
                    .iter()
                    .enumerate()
                    .map(|(i, w)| Member {
                        identity: Hash(w.identity.public()),
                        vote_key: Hash(w.vote.public()),
                        measurement: Hash::default(),
                        joined: i as u64 + 1,
                    })
                    .collect(),
            },
            schedules: Default::default(),
            subscriptions: Default::default(),
            jobs: Default::default(),
        }
    }

    fn started(seq: u64, revoked: Option<Hash>) -> EpochChange {
        EpochChange {
            seq,
            revoked,
            dealt: None,
        }
    }

    /// A deal of `epoch` by `dealer` sealing a fresh key to `to`.
    fn deal(dealer: &Who, epoch: u32, to: &[Hash]) -> EpochDeal {
        let key = Hash(EnvelopeSecret::generate().public());
        let shares = to
            .iter()
            .map(|m| EpochShare {
                member: *m,
                sealed: phat_crypto::seal(&m.0, phat_crypto::Purpose::Handover, &[7; 32])
                    .unwrap()
                    .0,
            })
            .collect();
        let mut d = EpochDeal {
            epoch,
            key,
            dealer: Hash(dealer.identity.public()),
            shares,
            signature: Default::default(),
        };
        d.signature = dealer
            .vote
            .sign(EpochDeal::VOTE_DOMAIN, &d.signed_payload())
            .to_vec()
            .into();
        d
    }

    fn at(seq: u64) -> LedgerEntry {
        LedgerEntry {
            seq,
            timestamp: 1_000,
            payload: Vec::new(),
        }
    }

    fn kind(a: &Applied) -> &str {
        match &a.receipt.result {
            CallResult::Err(e) => &e.kind,
            _ => "",
        }
    }

    fn id(w: &Who) -> Hash {
        Hash(w.identity.public())
    }

    #[test]
    fn the_first_valid_deal_keys_the_pending_epoch_and_every_other_is_refused() {
        let (a, b, c, outsider) = (who(), who(), who(), who());
        // Epoch 1 started at seq 10 revoking c.
        let mut l = local(&[&a, &b, &c], vec![started(10, Some(id(&c)))]);
        let honest = [id(&a), id(&b)];

        let mut forged = deal(&a, 1, &honest);
        forged.key = Hash([9; 32]); // changed after signing
        let mut as_other = deal(&outsider, 1, &honest);
        as_other.dealer = id(&b); // b's name, the outsider's signature
        let cases = [
            (deal(&a, 2, &honest), "wrong_epoch"),
            (deal(&outsider, 1, &honest), "not_a_member"),
            (deal(&c, 1, &honest), "revoked_worker"),
            (forged, "bad_signature"),
            (as_other, "bad_signature"),
            (deal(&a, 1, &[id(&a)]), "wrong_shares"),
            (deal(&a, 1, &[id(&a), id(&b), id(&c)]), "wrong_shares"),
            (deal(&a, 1, &[id(&a), id(&a)]), "wrong_shares"),
            (deal(&a, 1, &[id(&a), id(&outsider)]), "wrong_shares"),
        ];
        for (i, (d, want)) in cases.iter().enumerate() {
            let applied = apply_deal(&mut l, &at(11 + i as u64), d);
            assert_eq!(kind(&applied), *want, "case {i}");
            assert!(applied.changes.is_empty(), "case {i} changed the state");
            assert_eq!(l.epochs.pending(), Some(1));
        }

        let winner = deal(&b, 1, &[id(&b), id(&a)]); // any order of the members
        let applied = apply_deal(&mut l, &at(30), &winner);
        assert_eq!(kind(&applied), "", "{:?}", applied.receipt.result);
        assert_eq!(l.epochs.keyed(), 1);
        assert_eq!(l.epochs.pending(), None);
        assert_eq!(
            l.epochs.dealt(1),
            Some(&EpochDealt {
                seq: 30,
                key: winner.key
            })
        );
        let stored = applied.changes.get(&StateKey::ClusterEpochs).unwrap();
        assert_eq!(stored.as_deref(), Some(&l.epochs.encode()[..]));
        // A later deal, or the winner replayed, changes nothing.
        for late in [deal(&a, 1, &honest), winner.clone()] {
            let applied = apply_deal(&mut l, &at(31), &late);
            assert_eq!(kind(&applied), "no_pending_epoch");
            assert_eq!(l.epochs.dealt(1).unwrap().key, winner.key);
        }

        // Epoch 2 may not reuse epoch 1's key, and epoch 1's deal is no deal of epoch 2.
        l.epochs.changes.push(started(40, None));
        let mut replayed = winner.clone();
        replayed.epoch = 2;
        assert_eq!(
            kind(&apply_deal(&mut l, &at(41), &replayed)),
            "bad_signature"
        );
        let mut reused = deal(&a, 2, &honest);
        reused.key = winner.key;
        reused.signature = a
            .vote
            .sign(EpochDeal::VOTE_DOMAIN, &reused.signed_payload())
            .to_vec()
            .into();
        assert_eq!(kind(&apply_deal(&mut l, &at(42), &reused)), "reused_key");
        assert_eq!(
            kind(&apply_deal(&mut l, &at(43), &deal(&a, 2, &honest))),
            ""
        );
        assert_eq!(l.epochs.keyed(), 2);
    }

    #[test]
    fn a_member_admitted_after_a_deal_was_made_invalidates_it() {
        let (a, b, late) = (who(), who(), who());
        let mut l = local(&[&a, &b], vec![started(5, None)]);
        let stale = deal(&a, 1, &[id(&a), id(&b)]);
        l.members.members.push(Member {
            identity: id(&late),
            vote_key: Hash(late.vote.public()),
            measurement: Hash::default(),
            joined: 6,
        });
        assert_eq!(kind(&apply_deal(&mut l, &at(7), &stale)), "wrong_shares");
        let fresh = deal(&a, 1, &[id(&a), id(&b), id(&late)]);
        assert_eq!(kind(&apply_deal(&mut l, &at(8), &fresh)), "");
    }
}
