//! The cluster simulator: three in-process workers over one embedded ledger, each reading it
//! through a [`FaultyLedger`] (delays, short reads, entries delivered twice, gaps, outages),
//! driven by a seeded random schedule of client commands, hostile appends by a ledger-token
//! holder (junk, replays, plain commands on an encrypted cluster) and worker crashes and
//! restarts. Workers snapshot every 16 entries and trim the log, so a worker down long enough
//! comes back from a snapshot. After every step, every two workers that applied a seq must hold the same receipt
//! for it (its state root included); at the end every worker catches up and all receipts of
//! the whole log must be equal.
//!
//! `PHAT_SIM_SEEDS=n` runs n seeds (3 by default, in the test command) from
//! `PHAT_SIM_FIRST_SEED` (1); `PHAT_SIM_STEPS` sets the steps per seed (40). A failure names
//! its seed: `PHAT_SIM_SEEDS=1 PHAT_SIM_FIRST_SEED=<seed>` replays its schedule (the timing of
//! the threads is not replayed; the faults and the workload are).

use std::sync::atomic::{AtomicU64, Ordering};

use parity_scale_codec::Encode;
use phat_client::primitives::protocol::{LedgerCommand, LedgerEntry, RequestBody, Submitted};
use phat_client::primitives::{AccountId, Mode};
use phat_worker::ledger::{Appended, LedgerError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// Workers in the simulated cluster.
const WORKERS: usize = 3;

/// How often each fault strikes a read, in parts per thousand.
#[derive(Clone, Copy, Debug)]
struct Faults {
    /// Longest delay before a read answers (ms).
    max_delay_ms: u64,
    /// A read returns fewer entries than it has (batches end elsewhere on every worker).
    short: u32,
    /// A read starts up to 8 entries before `from` (entries delivered again).
    duplicate: u32,
    /// A read leaves one entry out (a ledger that skips: the worker must not apply past it).
    gap: u32,
    /// A read fails (an outage).
    fail: u32,
    /// Shows this worker other bytes for the entry at this seq (a ledger that equivocates:
    /// the simulator's own check, which must catch it).
    equivocate_at: Option<u64>,
}

const FAULTS: Faults = Faults {
    max_delay_ms: 15,
    short: 300,
    duplicate: 150,
    gap: 50,
    fail: 30,
    equivocate_at: None,
};

/// How many faults each kind struck, over all workers of a run.
#[derive(Default)]
struct Struck {
    short: AtomicU64,
    duplicate: AtomicU64,
    gap: AtomicU64,
    fail: AtomicU64,
}

/// A worker's view of the shared ledger, with faults drawn from its own seeded generator.
struct FaultyLedger {
    inner: Arc<dyn Ledger>,
    rng: parking_lot::Mutex<StdRng>,
    faults: Faults,
    struck: Arc<Struck>,
    /// While set, every read answers that the log was trimmed below seq 1 (a ledger that
    /// contradicts itself).
    claim_trimmed: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Ledger for FaultyLedger {
    async fn append(&self, payload: Vec<u8>) -> Result<Appended, LedgerError> {
        self.inner.append(payload).await
    }

    async fn read(
        &self,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let f = self.faults;
        let (delay, fail, short, back, gap) = {
            let mut r = self.rng.lock();
            let mut hit = |p: u32| r.gen_range(0..1000) < p;
            let fail = hit(f.fail);
            let short = hit(f.short);
            let duplicate = hit(f.duplicate);
            let gap = hit(f.gap);
            (
                r.gen_range(0..=f.max_delay_ms),
                fail,
                short.then(|| r.gen_range(1..=max.max(1))),
                if duplicate { r.gen_range(1..=8u64) } else { 0 },
                gap.then(|| r.gen_range(1..8usize)),
            )
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if self.claim_trimmed.load(Ordering::Relaxed) {
            return Err(LedgerError::Trimmed { first: 1 });
        }
        if fail {
            self.struck.fail.fetch_add(1, Ordering::Relaxed);
            return Err(LedgerError::Unavailable("simulated outage".into()));
        }
        let start = from.saturating_sub(back).max(1);
        let before = usize::try_from(from - start).unwrap();
        let mut entries = self.inner.read(start, max + before, wait).await?;
        if before > 0 && entries.len() > before {
            self.struck.duplicate.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = short {
            if entries.len() > before + n {
                self.struck.short.fetch_add(1, Ordering::Relaxed);
                entries.truncate(before + n);
            }
        }
        if let Some(e) = entries.iter_mut().find(|e| Some(e.seq) == f.equivocate_at) {
            e.payload = vec![0xee; 8];
        }
        if let Some(i) = gap {
            if before + i < entries.len() {
                self.struck.gap.fetch_add(1, Ordering::Relaxed);
                entries.remove(before + i);
            }
        }
        Ok(entries)
    }

    async fn head(&self) -> Result<u64, LedgerError> {
        self.inner.head().await
    }
    async fn put_code(
        &self,
        wasm: Vec<u8>,
    ) -> Result<phat_client::primitives::CodeHash, LedgerError> {
        self.inner.put_code(wasm).await
    }
    async fn get_code(
        &self,
        hash: &phat_client::primitives::CodeHash,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_code(hash).await
    }
    async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        self.inner.put_meta(key, value).await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_meta(key).await
    }
    async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        self.inner.create_meta(key, value).await
    }
    async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        self.inner.meta_keys(prefix).await
    }
    async fn first_seq(&self) -> Result<u64, LedgerError> {
        self.inner.first_seq().await
    }
    async fn trim(&self, below: u64) -> Result<(), LedgerError> {
        self.inner.trim(below).await
    }
    async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        self.inner.put_snapshot(name, data).await
    }
    async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.inner.get_snapshot(name).await
    }
    async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        self.inner.snapshot_names().await
    }
    async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        self.inner.delete_snapshot(name).await
    }
}

/// A worker of the simulation: running (with its URL and the way to stop it) or crashed.
struct Node {
    name: String,
    batch: usize,
    faults: Faults,
    running: Option<Running>,
}

struct Running {
    worker: Worker,
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), phat_worker::WorkerError>>,
}

/// The simulated cluster.
struct Sim {
    dir: tempfile::TempDir,
    ledger: Arc<dyn Ledger>,
    nodes: Vec<Node>,
    rng: StdRng,
    seed: u64,
    struck: Arc<Struck>,
}

impl Sim {
    /// Starts (or restarts) node `i` over its own faulty view of the ledger.
    async fn start(&mut self, i: usize) {
        let view: Arc<dyn Ledger> = Arc::new(FaultyLedger {
            inner: self.ledger.clone(),
            rng: parking_lot::Mutex::new(StdRng::seed_from_u64(self.rng.gen())),
            faults: self.nodes[i].faults,
            struck: self.struck.clone(),
            claim_trimmed: Arc::default(),
        });
        let node = &self.nodes[i];
        // A stopped worker's tasks have all ended (`Worker::serve`): its store opens at once.
        let (worker, listener) = open_worker(&node.name, self.dir.path(), view, node.batch, |c| {
            // Checkpoints compared often; snapshots and trims within a run, so that a
            // worker down for a while comes back from a snapshot.
            c.replica.checkpoint_every = 4;
            c.replica.snapshot_every = Some(16);
            c.replica.snapshots_kept = 2;
        })
        .await
        .unwrap_or_else(|e| panic!("seed {}: {} does not reopen: {e}", self.seed, node.name));
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel();
        let w = worker.clone();
        let served = tokio::spawn(async move {
            w.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        self.nodes[i].running = Some(Running {
            worker,
            client: Client::new(&url).unwrap(),
            stop,
            served,
        });
    }

    /// Stops node `i` as a crash would: whatever it had not committed is gone.
    async fn crash(&mut self, i: usize) {
        let Some(r) = self.nodes[i].running.take() else {
            return;
        };
        let _ = r.stop.send(());
        r.served
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("seed {}: {} failed: {e}", self.seed, self.nodes[i].name));
    }

    async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.crash(i).await;
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].running.is_some())
            .collect()
    }

    /// Worker `i`'s receipt of `seq`; `None` when it has none because it was restored from a
    /// snapshot past it (receipts are not part of a snapshot).
    async fn receipt(
        &self,
        i: usize,
        seq: u64,
    ) -> Result<Option<phat_client::primitives::protocol::Receipt>, String> {
        match self.client(i).receipt(seq).await {
            Ok(r) => Ok(Some(r)),
            Err(phat_client::ClientError::Api { kind, .. }) if kind == "unknown_receipt" => {
                Ok(None)
            }
            Err(e) => Err(format!("seed {}: w{i}'s receipt {seq}: {e}", self.seed)),
        }
    }

    fn client(&self, i: usize) -> &Client {
        &self.nodes[i].running.as_ref().unwrap().client
    }

    /// Every two running workers that applied a seq agree on its receipt.
    async fn check(&self, step: usize) -> Result<(), String> {
        let running = self.running();
        let common = running
            .iter()
            .map(|i| {
                self.nodes[*i]
                    .running
                    .as_ref()
                    .unwrap()
                    .worker
                    .applied_seq()
            })
            .min()
            .unwrap_or(0);
        if common == 0 {
            return Ok(());
        }
        let mut first: Option<(usize, phat_client::primitives::protocol::Receipt)> = None;
        for &i in &running {
            let Some(receipt) = self
                .receipt(i, common)
                .await
                .map_err(|e| format!("step {step}: {e}"))?
            else {
                continue;
            };
            match &first {
                None => first = Some((i, receipt)),
                Some((j, want)) if &receipt != want => {
                    return Err(format!(
                        "seed {}, step {step}: {} and {} disagree at seq {common}",
                        self.seed, self.nodes[i].name, self.nodes[*j].name
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// One seed's run: setup, `steps` random steps each followed by a check, then catch-up and the
/// whole log compared.
async fn run(
    seed: u64,
    steps: usize,
    erc20: &Contract,
    faults: [Faults; WORKERS],
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes = (0..WORKERS)
        .map(|i| Node {
            name: format!("w{i}"),
            // Batches end in different places on every worker.
            batch: [1, 3, 16, 256][rng.gen_range(0..4)],
            faults: faults[i],
            running: None,
        })
        .collect();
    let mut sim = Sim {
        dir,
        ledger: ledger.clone(),
        nodes,
        rng,
        seed,
        struck: Arc::default(),
    };
    for i in 0..WORKERS {
        sim.start(i).await;
    }
    let alice = Signer::from_suri("//Alice").unwrap();
    let users: Vec<Signer> = (0..4)
        .map(|i| Signer::from_suri(&format!("//sim{i}")).unwrap())
        .collect();
    let token = deploy_erc20(sim.client(0), erc20, "1000000").await;
    let cluster = sim.client(0).info().await.unwrap().cluster_key;
    let mut counts = std::collections::BTreeMap::<&str, u32>::new();
    // The hostile appends: (seq, the refusal it must get, or any refusal).
    let mut hostile: Vec<(u64, Option<&str>)> = Vec::new();
    for step in 0..steps {
        let running = sim.running();
        let at = running[sim.rng.gen_range(0..running.len())];
        let roll = sim.rng.gen_range(0..100);
        let action = match roll {
            0..=34 => {
                // A client's erc20 transfer, sealed, through any running worker.
                for _ in 0..sim.rng.gen_range(1..=4) {
                    let to = users[sim.rng.gen_range(0..users.len())].account();
                    let amount = sim.rng.gen_range(0..5_000u32);
                    let data = erc20
                        .encode_message("transfer", &[to.to_hex(), amount.to_string()])
                        .unwrap();
                    let from = if sim.rng.gen_bool(0.8) {
                        &alice
                    } else {
                        &users[sim.rng.gen_range(0..users.len())]
                    };
                    submit(&sim, at, from, phat_client::call(token, data)).await;
                }
                "erc20 transfer"
            }
            35..=49 => {
                // A native transfer, often from an account that holds nothing.
                let from = &users[sim.rng.gen_range(0..users.len())];
                let dest = users[sim.rng.gen_range(0..users.len())].account();
                let value = sim.rng.gen_range(0..3u128);
                let call = phat_client::primitives::protocol::Call::Transfer { dest, value };
                let call = if sim.rng.gen_bool(0.5) {
                    phat_client::primitives::protocol::Call::Transfer {
                        dest: from.account(),
                        value: 0,
                    }
                } else {
                    call
                };
                submit(&sim, at, from, call).await;
                "native transfer"
            }
            50..=59 => {
                // A ledger-token holder appends junk.
                let len = sim.rng.gen_range(0..64);
                let junk: Vec<u8> = (0..len).map(|_| sim.rng.gen()).collect();
                let at = ledger.append(junk).await.unwrap();
                hostile.push((at.seq, None));
                "junk append"
            }
            60..=71 => {
                // ... or appends an earlier entry again (a replay).
                let head = ledger.head().await.unwrap();
                let first = ledger.first_seq().await.unwrap();
                let seq = sim.rng.gen_range(first..=head);
                let entry = ledger.read(seq, 1, Duration::ZERO).await.unwrap();
                ledger.append(entry[0].payload.clone()).await.unwrap();
                "replayed append"
            }
            72..=79 => {
                // ... or appends a signed command unsealed on a cluster that wants it sealed.
                let req = alice.sign_request(
                    &cluster,
                    &RequestBody {
                        mode: Mode::Command,
                        call: phat_client::primitives::protocol::Call::Transfer {
                            dest: AccountId([7; 32]),
                            value: 1,
                        },
                        nonce: sim.rng.gen(),
                        expires_at: now_ms() + 60_000,
                        certificate: None,
                    },
                );
                let at = ledger
                    .append(LedgerCommand::Plain(req).encode())
                    .await
                    .unwrap();
                hostile.push((at.seq, Some("encryption_required")));
                "plain append"
            }
            80..=89 if running.len() > 1 => {
                sim.crash(at).await;
                "crash"
            }
            _ => {
                let down: Vec<usize> = (0..WORKERS)
                    .filter(|i| sim.nodes[*i].running.is_none())
                    .collect();
                if down.is_empty() {
                    tokio::time::sleep(Duration::from_millis(sim.rng.gen_range(0..30))).await;
                    "pause"
                } else {
                    let i = down[sim.rng.gen_range(0..down.len())];
                    sim.start(i).await;
                    "restart"
                }
            }
        };
        *counts.entry(action).or_default() += 1;
        if let Err(e) = sim.check(step).await {
            sim.stop_all().await;
            return Err(e);
        }
    }
    // Everyone back, caught up, and in agreement on the whole log.
    for i in 0..WORKERS {
        if sim.nodes[i].running.is_none() {
            sim.start(i).await;
        }
    }
    // Caught up: each worker's committed head (what it answers from) is the ledger's.
    let head = ledger.head().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for i in 0..WORKERS {
        loop {
            let at = sim.client(i).info().await.map(|info| info.seq);
            if at.as_ref().is_ok_and(|seq| *seq >= head) {
                break;
            }
            if std::time::Instant::now() > deadline {
                let why = format!("seed {seed}: w{i} stuck at {at:?} of {head}");
                sim.stop_all().await;
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut kinds = std::collections::BTreeMap::<String, u32>::new();
    let (mut compared, mut missing) = (0, 0);
    for seq in 1..=head {
        let mut held = Vec::new();
        for i in 0..WORKERS {
            match sim.receipt(i, seq).await {
                Ok(Some(r)) => held.push((i, r)),
                Ok(None) => {}
                Err(e) => {
                    sim.stop_all().await;
                    return Err(e);
                }
            }
        }
        let split = held
            .iter()
            .zip(held.iter().skip(1))
            .find(|(a, b)| a.1 != b.1);
        if let Some(((i, a), (j, b))) = split {
            let why = format!("seed {seed}: w{i} and w{j} disagree at seq {seq}: {a:?} / {b:?}");
            sim.stop_all().await;
            return Err(why);
        }
        let Some((_, want)) = held.first() else {
            continue;
        };
        compared += usize::from(held.len() > 1);
        missing += WORKERS - held.len();
        let kind = match &want.result {
            CallResult::Ok(_) => "ok".to_string(),
            CallResult::Err(e) => e.kind.clone(),
            CallResult::Sealed(_) => "sealed".to_string(),
        };
        // A hostile append was refused, not applied (checked where a worker holds it).
        if let Some((_, must)) = hostile.iter().find(|(at, _)| *at == seq) {
            let refused = matches!(&want.result, CallResult::Err(_));
            if !refused || must.is_some_and(|m| m != kind) {
                let why = format!("seed {seed}: the hostile entry at seq {seq} got {kind}");
                sim.stop_all().await;
                return Err(why);
            }
        }
        *kinds.entry(kind).or_default() += 1;
    }
    // Every worker ends at the same head with the same root, restored or not.
    let mut heads = Vec::new();
    for i in 0..WORKERS {
        let info = sim.client(i).info().await.unwrap();
        heads.push((info.seq, info.state_root));
    }
    if heads.iter().any(|h| *h != heads[0]) {
        let why = format!("seed {seed}: the workers end apart: {heads:?}");
        sim.stop_all().await;
        return Err(why);
    }
    let first = ledger.first_seq().await.unwrap();
    for i in 0..WORKERS {
        let info = sim.client(i).info().await.unwrap();
        assert_eq!(info.diverged, None, "seed {seed}: w{i} diverged");
    }
    let s = &sim.struck;
    eprintln!(
        "seed {seed}: {head} entries (log trimmed below {first}, {missing} receipts not held by \
         restored workers, {compared} compared); steps {counts:?}; receipts {kinds:?}; faults: {} short, \
         {} duplicated, {} gaps, {} outages",
        s.short.load(Ordering::Relaxed),
        s.duplicate.load(Ordering::Relaxed),
        s.gap.load(Ordering::Relaxed),
        s.fail.load(Ordering::Relaxed),
    );
    sim.stop_all().await;
    Ok(())
}

/// Submits `call` by `signer` through node `at` without waiting for its receipt. A refusal
/// at submission (a replay, a rate limit) is part of the workload, not a failure.
async fn submit(
    sim: &Sim,
    at: usize,
    signer: &Signer,
    call: phat_client::primitives::protocol::Call,
) {
    let r: Result<Submitted, _> = sim.client(at).submit(signer, call, false).await;
    if let Err(e) = r {
        assert!(
            matches!(e, phat_client::ClientError::Api { .. }),
            "seed {}: submitting: {e}",
            sim.seed
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_clusters_agree_on_every_root_under_faults() {
    let seeds = env_or("PHAT_SIM_SEEDS", 3);
    let first = env_or("PHAT_SIM_FIRST_SEED", 1);
    let steps = usize::try_from(env_or("PHAT_SIM_STEPS", 40)).unwrap();
    let erc20 = erc20();
    for seed in first..first + seeds {
        if let Err(e) = run(seed, steps, &erc20, [FAULTS; WORKERS]).await {
            panic!("{e} (replay: PHAT_SIM_SEEDS=1 PHAT_SIM_FIRST_SEED={seed})");
        }
    }
}

/// The simulator's check is not vacuous: a ledger that shows one worker other bytes for one
/// entry (which no worker can tell on its own) splits the roots, and the run fails.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_catches_a_ledger_that_equivocates() {
    let erc20 = erc20();
    let mut faults = [FAULTS; WORKERS];
    // Seq 1 is the first worker's join, applied by every worker.
    faults[1].equivocate_at = Some(1);
    let err = run(7, 10, &erc20, faults)
        .await
        .expect_err("an equivocating ledger went unnoticed");
    assert!(err.contains("disagree"), "{err}");
}

/// A ledger that answers "trimmed below seq 1" to a worker that applied past its snapshots
/// contradicts itself (the worker may still read from where it is): the worker reads again
/// and keeps its state; before this was found by the simulator it restored an old snapshot
/// and went back.
#[tokio::test(flavor = "multi_thread")]
async fn a_self_contradicting_trim_does_not_rewind_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let lie = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let view: Arc<dyn Ledger> = Arc::new(FaultyLedger {
        inner: ledger.clone(),
        rng: parking_lot::Mutex::new(StdRng::seed_from_u64(1)),
        faults: Faults {
            max_delay_ms: 0,
            short: 0,
            duplicate: 0,
            gap: 0,
            fail: 0,
            equivocate_at: None,
        },
        struck: Arc::default(),
        claim_trimmed: lie.clone(),
    });
    let tweak = |c: &mut WorkerConfig| {
        c.replica.checkpoint_every = 2;
        c.replica.snapshot_every = Some(4);
    };
    let (worker, listener) = open_worker("a", dir.path(), view, 1, tweak).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn({
        let w = worker.clone();
        async move { w.serve(listener, std::future::pending()).await }
    });
    // A second, honest worker: its checkpoints confirm the snapshots (a restore needs that).
    let (other, _, stop_other) = start_with("b", dir.path(), ledger.clone(), 1, tweak).await;
    // Both have applied the joins before the log moves on (and gets trimmed).
    let joined = ledger.head().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.applied_seq() < joined || other.applied_seq() < joined {
        assert!(
            std::time::Instant::now() < deadline,
            "the workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Client::new(&url).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    for _ in 0..10 {
        let call = phat_client::primitives::protocol::Call::Transfer {
            dest: AccountId([7; 32]),
            value: 1,
        };
        client.submit(&alice, call, true).await.unwrap();
    }
    let head = ledger.head().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.info().await.unwrap().seq < head || other.applied_seq() < head {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Snapshots exist (every 4 entries) to go back to, and the other worker's checkpoints
    // confirm them (a restore needs that).
    assert!(!ledger.snapshot_names().await.unwrap().is_empty());
    let prefix = phat_client::primitives::MetaPrefix::Checkpoint.to_string();
    while ledger.meta_keys(&prefix).await.unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoints published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The ledger now lies on every read after the one under way (one more command ends it).
    lie.store(true, Ordering::Relaxed);
    let call = phat_client::primitives::protocol::Call::Transfer {
        dest: AccountId([7; 32]),
        value: 1,
    };
    let last = client.submit(&alice, call, true).await.unwrap().seq;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            client.info().await.unwrap().seq,
            last,
            "the worker went back"
        );
    }
    lie.store(false, Ordering::Relaxed);
    worker.shut_down();
    served.await.unwrap().unwrap();
    let _ = stop_other.send(());
}
