//! The one proposer loop. Every worker, for every trigger kind, looks at its applied state at
//! the kind's pace and proposes ledger entries for what is due there ([`Proposer::round`]):
//! ticks, log reports, job results. Proposals are judged at apply time on ledger time, so
//! proposing twice, late or from several workers is harmless; proposing from a stale table
//! is wasteful, so a worker behind the log (or diverged, or revoked) proposes nothing.

use std::future::Future;
use std::time::Duration;

use phat_primitives::Timestamp;
use phat_store::Snapshot;

use crate::Worker;

/// What one trigger kind proposes.
pub(crate) trait Proposer: Send + 'static {
    /// How often a round runs.
    const EVERY: Duration;

    /// One round: look at the applied state `snap` at this worker's wall time `now` and
    /// propose what is due.
    fn round(
        &mut self,
        worker: &Worker,
        snap: Snapshot,
        now: Timestamp,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs `proposer` every [`Proposer::EVERY`] until the worker shuts down.
pub(crate) async fn run<P: Proposer>(worker: Worker, mut proposer: P) {
    let mut every = tokio::time::interval(P::EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        // A worker behind the log judges from an old table: it leaves proposing to others.
        if !worker.may_propose() {
            continue;
        }
        let Ok(snap) = worker.inner.store.snapshot() else {
            continue;
        };
        proposer.round(&worker, snap, crate::now_ms()).await;
    }
}
