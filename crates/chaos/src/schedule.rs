//! Faults and schedules: what is done to the cluster, and when it is undone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use phat_ledger::JetStreamLedger;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, CLIENT, NATS, WORKERS};
use crate::proxy::pair;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The stream leader's host cut off from every other host but the client.
    LeaderMinority,
    /// Two NATS nodes and two workers on one side, the rest on the other.
    MajorityPartition,
    /// One worker cut from every NATS node; clients still reach it.
    WorkerCutFromNats,
    /// The link between the stream leader and another NATS node goes down and up.
    Flapping,
    /// The stream leader's nats-server stopped with SIGSTOP, then SIGCONT.
    PausedLeader,
    /// One worker restarted with its clock 30 s off (libfaketime), then without.
    ClockSkew,
    /// Every NATS node, then every worker, killed (-9) and restarted, one at a time.
    RollingRestart,
    /// Every link slow (30-80 ms) and lossy (5%).
    SlowLinks,
    /// A NATS follower's network link down in the kernel.
    LinkDown,
    /// The stream leader's nats-server killed (-9), restarted halfway through.
    KillLeader,
    /// Every nats-server killed (-9) at once, all restarted halfway through (a coordinated
    /// crash: what they acknowledged must survive it).
    KillAllNats,
    /// One worker stopped with SIGSTOP, then SIGCONT.
    PausedWorker,
}

impl Fault {
    /// Every fault, in the short run's order.
    pub const ALL: [Fault; 12] = [
        Fault::LeaderMinority,
        Fault::MajorityPartition,
        Fault::WorkerCutFromNats,
        Fault::Flapping,
        Fault::PausedLeader,
        Fault::ClockSkew,
        Fault::SlowLinks,
        Fault::LinkDown,
        Fault::KillLeader,
        Fault::PausedWorker,
        Fault::KillAllNats,
        Fault::RollingRestart,
    ];

    /// Its name, as the command line spells it.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// A fault in effect, to be undone.
pub struct Active {
    fault: Fault,
    /// What exactly was done (hosts, leader).
    pub detail: String,
    stop: Option<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)>,
    nats: Option<usize>,
    worker: Option<usize>,
    paused_worker: Option<usize>,
    link: Option<usize>,
}

async fn leader_or_any(cluster: &Cluster, ledger: &JetStreamLedger, rng: &mut StdRng) -> usize {
    match cluster.leader(ledger).await {
        Some(l) => l,
        None => rng.gen_range(0..NATS),
    }
}

/// Starts `fault`; `window` is how long it will last (a rolling restart takes its own time).
pub async fn begin(
    fault: Fault,
    cluster: &mut Cluster,
    ledger: &JetStreamLedger,
    rng: &mut StdRng,
    window: Duration,
) -> Result<Active> {
    let mut active = Active {
        fault,
        detail: String::new(),
        stop: None,
        nats: None,
        worker: None,
        paused_worker: None,
        link: None,
    };
    let everyone: Vec<usize> = (0..CLIENT).collect();
    let leader = cluster.leader(ledger).await;
    match fault {
        Fault::LeaderMinority => {
            let l = leader_or_any(cluster, ledger, rng).await;
            let rest: Vec<usize> = everyone.iter().copied().filter(|h| *h != l).collect();
            cluster.links.partition(&[l], &rest);
            active.detail = format!("n{} (leader) alone", l + 1);
        }
        Fault::MajorityPartition => {
            let mut nats: Vec<usize> = (0..NATS).collect();
            nats.shuffle(rng);
            let mut workers: Vec<usize> = (NATS..NATS + WORKERS).collect();
            workers.shuffle(rng);
            let small = [nats[2], workers[2]];
            let big = [nats[0], nats[1], workers[0], workers[1]];
            cluster.links.partition(&small, &big);
            active.detail = format!(
                "{{n{}, w{}}} | {{n{}, n{}, w{}, w{}}}",
                small[0] + 1,
                small[1] - NATS + 1,
                big[0] + 1,
                big[1] + 1,
                big[2] - NATS + 1,
                big[3] - NATS + 1
            );
        }
        Fault::WorkerCutFromNats => {
            let w = NATS + rng.gen_range(0..WORKERS);
            let nats: Vec<usize> = (0..NATS).collect();
            cluster.links.partition(&[w], &nats);
            active.detail = format!("w{} cut from NATS", w - NATS + 1);
        }
        Fault::Flapping => {
            let l = leader_or_any(cluster, ledger, rng).await;
            let other = (l + rng.gen_range(1..NATS)) % NATS;
            let p = pair(l, other);
            let links = cluster.links.clone();
            let stop = Arc::new(AtomicBool::new(false));
            let mut flip_rng: StdRng = rand::SeedableRng::seed_from_u64(rng.gen());
            let task = {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut cut = false;
                    while !stop.load(Ordering::Relaxed) {
                        cut = !cut;
                        links.update(|t| {
                            if cut {
                                t.cut.insert(p);
                            } else {
                                t.cut.remove(&p);
                            }
                        });
                        let ms = flip_rng.gen_range(300..2000);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                })
            };
            active.stop = Some((stop, task));
            active.detail = format!("n{} (leader) <-> n{}", l + 1, other + 1);
        }
        Fault::PausedLeader => {
            let l = leader_or_any(cluster, ledger, rng).await;
            cluster.nats[l].pause(true)?;
            active.nats = Some(l);
            active.detail = format!("n{} (leader) stopped", l + 1);
        }
        Fault::ClockSkew => {
            let w = rng.gen_range(0..WORKERS);
            let skew = if rng.gen_bool(0.5) { 30 } else { -30 };
            cluster.workers[w].set_skew(skew);
            cluster.workers[w].restart().await?;
            active.worker = Some(w);
            active.detail = format!("w{} at {skew:+} s", w + 1);
        }
        Fault::SlowLinks => {
            let mut delays = Vec::new();
            for a in 0..=CLIENT {
                for b in a + 1..=CLIENT {
                    delays.push((pair(a, b), Duration::from_millis(rng.gen_range(30..=80))));
                }
            }
            cluster.links.update(|t| {
                for (p, d) in delays {
                    t.delay.insert(p, d);
                    t.loss.insert(p, 0.05);
                }
            });
            active.detail = "30-80 ms, 5% loss".into();
        }
        Fault::LinkDown => {
            let l = cluster.leader(ledger).await;
            let follower = (0..NATS)
                .filter(|n| Some(*n) != l)
                .collect::<Vec<_>>()
                .choose(rng)
                .copied()
                .unwrap_or(0);
            cluster.net.set_link(follower, false)?;
            active.link = Some(follower);
            active.detail = format!("n{} link down", follower + 1);
        }
        Fault::KillLeader => {
            let l = leader_or_any(cluster, ledger, rng).await;
            cluster.nats[l].kill9().await;
            tokio::time::sleep(window / 2).await;
            cluster.nats[l].restart().await?;
            active.detail = format!("n{} (leader) killed, back after {:?}", l + 1, window / 2);
        }
        Fault::KillAllNats => {
            for n in &mut cluster.nats {
                n.kill9().await;
            }
            tokio::time::sleep(window / 2).await;
            for n in &mut cluster.nats {
                n.restart().await?;
            }
            active.detail = format!("n1..n3 killed at once, back after {:?}", window / 2);
        }
        Fault::PausedWorker => {
            let w = rng.gen_range(0..WORKERS);
            cluster.workers[w].pause(true)?;
            active.paused_worker = Some(w);
            active.detail = format!("w{} stopped", w + 1);
        }
        Fault::RollingRestart => {
            for n in 0..NATS {
                cluster.nats[n].restart().await?;
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            for w in 0..WORKERS {
                cluster.workers[w].restart().await?;
                cluster.wait_worker(w, Duration::from_secs(60)).await?;
            }
            active.detail = "n1..n3 then w1..w3".into();
        }
    }
    if let Some(l) = leader {
        active.detail = format!("{}; the log's leader was n{}", active.detail, l + 1);
    }
    Ok(active)
}

impl Active {
    /// Undoes the fault.
    pub async fn end(mut self, cluster: &mut Cluster) -> Result<()> {
        if let Some((stop, task)) = self.stop.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = task.await;
        }
        if let Some(n) = self.nats {
            cluster.nats[n].pause(false)?;
        }
        if let Some(w) = self.worker {
            cluster.workers[w].set_skew(0);
            cluster.workers[w].restart().await?;
        }
        if let Some(w) = self.paused_worker {
            cluster.workers[w].pause(false)?;
        }
        if let Some(h) = self.link {
            cluster.net.set_link(h, true)?;
        }
        match self.fault {
            Fault::LeaderMinority
            | Fault::MajorityPartition
            | Fault::WorkerCutFromNats
            | Fault::Flapping
            | Fault::SlowLinks => cluster.links.heal_all(),
            _ => {}
        }
        Ok(())
    }
}
