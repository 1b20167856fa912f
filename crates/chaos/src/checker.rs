//! The checker: what every worker applied, against what every client was told.
//!
//! It replays the log's executed commands through a model of the two contracts (a token
//! whose `transfer` fails on an insufficient balance, and a counter) and compares the model
//! with every acknowledged result, every read and every worker's final state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workload::{History, Kind, Outcome, ACCOUNTS, SEED_BALANCE, SUPPLY};

/// What one worker's receipt at a seq says, as far as the checker needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The request hash (hex).
    pub request: String,
    /// True when the call ran (its result is sealed to its caller or plain output).
    pub executed: bool,
    /// The state root after it (hex).
    pub state_root: String,
    /// Ledger time.
    pub timestamp: u64,
}

/// What the checker reads off the cluster after the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Observed {
    /// The log's head at the end.
    pub head: u64,
    /// Per worker: receipts of seq 1..=head (`None` where the worker had none).
    pub receipts: Vec<Vec<Option<Applied>>>,
    /// Per worker: token balances of [`ACCOUNTS`] at `head`.
    pub balances: Vec<Vec<u128>>,
    /// Per worker: the counter at `head`.
    pub counter: Vec<u64>,
    /// Per worker: the ticker at `head`.
    pub ticker: Vec<u64>,
    /// The ticker's trigger runs: (tick time text, ticks it stands for).
    pub ticks: Vec<(String, u64)>,
}

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Its kind (`lost`, `duplicate`, `roots_differ`, …).
    pub kind: String,
    /// What was seen.
    pub detail: String,
}

/// How many receipts a worker lacks at the start of the log (it restored a snapshot there).
pub fn restored_below(receipts: &[Option<Applied>]) -> usize {
    receipts
        .iter()
        .position(Option::is_some)
        .unwrap_or(receipts.len())
}

fn anomaly(out: &mut Vec<Anomaly>, kind: &str, detail: String) {
    out.push(Anomaly {
        kind: kind.into(),
        detail,
    });
}

/// Output bytes of `Ok(Ok(()))` and `Ok(Err(InsufficientBalance))` of the token's `transfer`.
const TRANSFER_OK: [u8; 2] = [0, 0];
const TRANSFER_INSUFFICIENT: [u8; 3] = [0, 1, 0];

/// Checks `history` against `observed`; answers every anomaly found.
pub fn check(history: &History, observed: &Observed) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let head = observed.head as usize;
    // One log: every worker holds every receipt from where it started applying (a worker
    // that restored a snapshot holds none below it), and they agree.
    for (w, receipts) in observed.receipts.iter().enumerate() {
        if receipts.len() != head {
            anomaly(
                &mut out,
                "missing_receipt",
                format!("worker {w} has {} receipts of {head}", receipts.len()),
            );
        }
        let from = restored_below(receipts);
        if let Some(gap) = receipts[from..].iter().position(Option::is_none) {
            anomaly(
                &mut out,
                "missing_receipt",
                format!("worker {w} has no receipt at seq {}", from + gap + 1),
            );
        }
    }
    if !observed.receipts.is_empty() && observed.receipts.iter().all(|r| restored_below(r) > 0) {
        anomaly(
            &mut out,
            "missing_receipt",
            "every worker restored a snapshot: no worker shows the whole log".into(),
        );
    }
    let canonical: Vec<Option<&Applied>> = (0..head)
        .map(|i| {
            observed
                .receipts
                .iter()
                .find_map(|r| r.get(i).and_then(Option::as_ref))
        })
        .collect();
    for (i, first) in canonical.iter().enumerate() {
        let Some(first) = first else { continue };
        for (w, receipts) in observed.receipts.iter().enumerate() {
            if let Some(Some(r)) = receipts.get(i) {
                if r != *first {
                    anomaly(
                        &mut out,
                        "roots_differ",
                        format!("seq {}: worker {w} has {r:?}, another {first:?}", i + 1),
                    );
                }
            }
        }
    }
    // Ledger time never goes back.
    let mut last = 0;
    for (i, r) in canonical.iter().enumerate() {
        if let Some(r) = r {
            if r.timestamp < last {
                anomaly(
                    &mut out,
                    "time_went_back",
                    format!("seq {}: {} after {last}", i + 1, r.timestamp),
                );
            }
            last = last.max(r.timestamp);
        }
    }
    // Each request runs at most once; acknowledged ones exactly once, where they were told.
    let mut executed: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in canonical.iter().enumerate() {
        if let Some(r) = r.filter(|r| r.executed) {
            executed.entry(r.request.as_str()).or_default().push(i + 1);
        }
    }
    let ops: BTreeMap<&str, &crate::workload::Op> =
        history.ops.iter().map(|o| (o.hash.as_str(), o)).collect();
    for op in &history.ops {
        let runs = executed
            .get(op.hash.as_str())
            .map_or(&[][..], Vec::as_slice);
        if runs.len() > 1 {
            anomaly(
                &mut out,
                "duplicate",
                format!("{} ran at seqs {runs:?}", op.hash),
            );
        }
        match &op.outcome {
            Outcome::Ok { seq, output } => {
                let at = canonical.get(*seq as usize - 1).copied().flatten();
                if at.is_none_or(|r| r.request != op.hash) {
                    anomaly(
                        &mut out,
                        "lost",
                        format!("{} acknowledged at seq {seq}, which holds {at:?}", op.hash),
                    );
                } else if output.is_some() && runs != [*seq as usize] {
                    anomaly(
                        &mut out,
                        "lost",
                        format!("{} ran at {seq} but the log runs it at {runs:?}", op.hash),
                    );
                }
            }
            Outcome::Failed { kind } if !runs.is_empty() => anomaly(
                &mut out,
                "refused_applied",
                format!("{} was refused ({kind}) yet ran at {runs:?}", op.hash),
            ),
            Outcome::Failed { .. } | Outcome::Unknown { .. } => {}
        }
    }
    // The model, replayed in log order.
    // Clients start after the setup gave each of the others its share of Alice's supply.
    let mut balances = vec![SEED_BALANCE; ACCOUNTS.len()];
    balances[0] = SUPPLY - SEED_BALANCE * (ACCOUNTS.len() as u128 - 1);
    let mut count = 0u64;
    let mut count_at = vec![0u64; head + 1];
    for (i, r) in canonical.iter().enumerate() {
        let seq = i + 1;
        if let Some(op) = r
            .filter(|r| r.executed)
            .and_then(|r| ops.get(r.request.as_str()))
        {
            let output = match &op.outcome {
                Outcome::Ok { output, .. } => output.as_deref(),
                _ => None,
            };
            match op.kind {
                Kind::Inc => {
                    count += 1;
                    let mut expect = vec![0u8];
                    expect.extend(count.to_le_bytes());
                    if output.is_some_and(|o| o != expect) {
                        anomaly(
                            &mut out,
                            "wrong_result",
                            format!("inc at seq {seq} answered {output:?}, the model {count}"),
                        );
                    }
                }
                Kind::Transfer { from, to, amount } => {
                    let ok = balances[from] >= amount;
                    if ok {
                        balances[from] -= amount;
                        balances[to] += amount;
                    }
                    let expect: &[u8] = if ok {
                        &TRANSFER_OK
                    } else {
                        &TRANSFER_INSUFFICIENT
                    };
                    if output.is_some_and(|o| o != expect) {
                        anomaly(
                            &mut out,
                            "wrong_result",
                            format!(
                                "transfer at seq {seq} answered {output:?}, the model {expect:?}"
                            ),
                        );
                    }
                }
            }
        }
        count_at[seq] = count;
    }
    for (w, b) in observed.balances.iter().enumerate() {
        if b.iter().sum::<u128>() != SUPPLY {
            anomaly(
                &mut out,
                "supply_changed",
                format!("worker {w}: balances {b:?} do not add up to {SUPPLY}"),
            );
        }
        if *b != balances {
            anomaly(
                &mut out,
                "wrong_state",
                format!("worker {w}: balances {b:?}, the model {balances:?}"),
            );
        }
    }
    for (w, c) in observed.counter.iter().enumerate() {
        if *c != count {
            anomaly(
                &mut out,
                "wrong_state",
                format!("worker {w}: counter {c}, the model {count}"),
            );
        }
    }
    // Reads see exactly the state after the seq they read at, and at least their own writes.
    for r in &history.reads {
        let Some((seq, value)) = r.answer else {
            continue;
        };
        if seq < r.min_seq {
            anomaly(
                &mut out,
                "stale_read",
                format!(
                    "worker {} read at {seq} for min_seq {}",
                    r.worker, r.min_seq
                ),
            );
        }
        match count_at.get(seq as usize) {
            Some(expect) if *expect == value => {}
            expect => anomaly(
                &mut out,
                "wrong_read",
                format!(
                    "worker {} read {value} at seq {seq}, the model {expect:?}",
                    r.worker
                ),
            ),
        }
    }
    // Ticks run once each, in order, and the ticker counts exactly the ticks they stand for.
    for pair in observed.ticks.windows(2) {
        if pair[1].0 <= pair[0].0 {
            anomaly(
                &mut out,
                "tick_twice",
                format!("tick {} ran after tick {}", pair[1].0, pair[0].0),
            );
        }
    }
    let ticks: u64 = observed.ticks.iter().map(|t| t.1).sum();
    for (w, t) in observed.ticker.iter().enumerate() {
        if *t != ticks {
            anomaly(
                &mut out,
                "tick_twice",
                format!("worker {w}: the ticker is {t}, its runs stand for {ticks} ticks"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Op;

    fn applied(request: &str, root: &str, ts: u64) -> Option<Applied> {
        Some(Applied {
            request: request.into(),
            executed: true,
            state_root: root.into(),
            timestamp: ts,
        })
    }

    fn op(hash: &str, kind: Kind, outcome: Outcome) -> Op {
        Op {
            client: 0,
            kind,
            hash: hash.into(),
            invoked: 0.0,
            done: 0.0,
            worker: 0,
            attempts: 1,
            outcome,
        }
    }

    fn inc_ok(seq: u64, value: u64) -> Outcome {
        let mut output = vec![0u8];
        output.extend(value.to_le_bytes());
        Outcome::Ok {
            seq,
            output: Some(output),
        }
    }

    /// Two increments at seqs 1 and 2 on two agreeing workers, with a correct final state.
    fn good() -> (History, Observed) {
        let history = History {
            ops: vec![
                op("a", Kind::Inc, inc_ok(1, 1)),
                op("b", Kind::Inc, inc_ok(2, 2)),
            ],
            reads: vec![crate::workload::Read {
                worker: 1,
                min_seq: 1,
                known_head: 2,
                answer: Some((2, 2)),
                invoked: 0.0,
            }],
        };
        let log = vec![applied("a", "r1", 10), applied("b", "r2", 11)];
        let model = vec![SUPPLY - 400_000, 100_000, 100_000, 100_000, 100_000];
        let observed = Observed {
            head: 2,
            receipts: vec![log.clone(), log],
            balances: vec![model.clone(), model],
            counter: vec![2, 2],
            ticker: vec![3, 3],
            ticks: vec![("t1".into(), 1), ("t2".into(), 2)],
        };
        (history, observed)
    }

    fn kinds(history: &History, observed: &Observed) -> Vec<String> {
        check(history, observed)
            .into_iter()
            .map(|a| a.kind)
            .collect()
    }

    #[test]
    fn a_consistent_history_has_no_anomaly() {
        let (h, o) = good();
        assert_eq!(check(&h, &o), vec![]);
    }

    #[test]
    fn every_broken_promise_is_found() {
        let (h, mut o) = good();
        o.receipts[1][1] = applied("b", "other", 11);
        assert_eq!(kinds(&h, &o), ["roots_differ"]);

        let (h, mut o) = good();
        o.receipts[0][1] = applied("b", "r2", 9);
        o.receipts[1][1] = applied("b", "r2", 9);
        assert_eq!(kinds(&h, &o), ["time_went_back"]);

        // Acknowledged, then gone from the log (and the state).
        let (h, mut o) = good();
        for r in &mut o.receipts {
            r[1] = applied("x", "r2", 11);
        }
        o.counter = vec![1, 1];
        let k = kinds(&h, &o);
        assert!(k.contains(&"lost".to_string()), "{k:?}");
        assert!(k.contains(&"wrong_read".to_string()), "{k:?}");

        // Run twice.
        let (h, mut o) = good();
        for r in &mut o.receipts {
            r.push(applied("b", "r3", 12));
        }
        o.head = 3;
        o.counter = vec![3, 3];
        assert!(kinds(&h, &o).contains(&"duplicate".to_string()));

        // Refused at the door, yet applied.
        let (mut h, o) = good();
        h.ops[1].outcome = Outcome::Failed {
            kind: "expired".into(),
        };
        assert_eq!(kinds(&h, &o), ["refused_applied"]);

        let (h, mut o) = good();
        o.balances[0][1] += 1;
        assert_eq!(kinds(&h, &o), ["supply_changed", "wrong_state"]);

        let (mut h, o) = good();
        h.reads[0].min_seq = 3;
        assert_eq!(kinds(&h, &o), ["stale_read"]);

        // A read that does not show the state after the seq it claims.
        let (mut h, o) = good();
        h.reads[0].answer = Some((2, 1));
        assert_eq!(kinds(&h, &o), ["wrong_read"]);

        let (h, mut o) = good();
        o.ticks.push(("t2".into(), 1));
        o.ticker = vec![4, 4];
        assert_eq!(kinds(&h, &o), ["tick_twice"]);

        let (h, mut o) = good();
        o.receipts[1].pop();
        assert_eq!(kinds(&h, &o), ["missing_receipt"]);

        // A worker that restored a snapshot lacks the receipts below it, and only those.
        let (h, mut o) = good();
        o.receipts[1][0] = None;
        assert_eq!(check(&h, &o), vec![]);
        o.receipts[0][0] = None;
        assert_eq!(kinds(&h, &o)[..2], ["missing_receipt", "lost"]);
        let (h, mut o) = good();
        o.receipts[1].push(applied("c", "r3", 12));
        o.receipts[0].push(None);
        o.receipts[1].push(None);
        o.receipts[0].push(applied("d", "r4", 13));
        o.head = 4;
        assert_eq!(kinds(&h, &o), ["missing_receipt", "missing_receipt"]);
    }

    #[test]
    fn transfers_follow_the_token_model() {
        let (mut h, mut o) = good();
        h.ops.push(op(
            "t",
            Kind::Transfer {
                from: 1,
                to: 2,
                amount: 200_000,
            },
            Outcome::Ok {
                seq: 3,
                // It answered success although Bob holds 100,000.
                output: Some(TRANSFER_OK.to_vec()),
            },
        ));
        for r in &mut o.receipts {
            r.push(applied("t", "r3", 12));
        }
        o.head = 3;
        assert_eq!(kinds(&h, &o), ["wrong_result"]);
    }
}
