//! `phat-chaos`: runs a phat cluster over a 3-node NATS JetStream cluster, each process in a
//! network namespace of its own, drives a workload through every worker while it partitions,
//! slows, pauses, kills and skews the hosts, then checks the recorded history against what
//! every worker applied (docs/RELIABILITY.md).

mod checker;
mod cluster;
mod net;
mod proxy;
mod schedule;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use phat_client::primitives::protocol::{CallResult, ScheduleOp};
use phat_client::{Client, Signer};
use phat_ledger::Ledger;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use checker::{Applied, Observed};
use cluster::{Cluster, WORKERS};
use schedule::Fault;
use workload::{History, Outcome, ACCOUNTS};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Seed of every random choice (faults, hosts, operations).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults to inject, one after the other (default: every kind once).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Run this long, drawing faults (and pairs of faults) at random, instead of `--faults`.
    #[arg(long)]
    minutes: Option<f64>,
    /// How long each fault lasts, in seconds.
    #[arg(long, default_value_t = 10.0)]
    window: f64,
    /// Seconds of quiet after each fault (the cluster recovers).
    #[arg(long, default_value_t = 8.0)]
    recovery: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// The `phat` binary (default: next to this one).
    #[arg(long)]
    phat: Option<PathBuf>,
    /// The contracts directory (erc20 and counter are built from it).
    #[arg(long, default_value = "contracts")]
    contracts: PathBuf,
    /// Where logs, data and the report go (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One fault as it happened, with what clients saw.
#[derive(Debug, Serialize)]
struct Window {
    faults: Vec<String>,
    detail: String,
    start: f64,
    heal: f64,
    /// Commands invoked while it lasted: acknowledged, refused, unknown.
    ok: usize,
    failed: usize,
    unknown: usize,
    /// Commands acknowledged per second while it lasted.
    rate: f64,
    /// The longest time while it lasted in which no command was acknowledged, in seconds.
    stall: f64,
    /// Seconds from the heal until a command invoked after it was acknowledged.
    recovery: Option<f64>,
    /// Reads that asked for no seq: how far the most stale answer was behind the highest
    /// seq clients knew of.
    stale_by: Option<u64>,
    /// The longest time, from the fault's start to 10 s after its heal, that a worker's
    /// applied seq stood still while the log's head moved past it, in seconds.
    stuck: f64,
}

/// One look at every worker's applied seq.
#[derive(Clone, Debug, Serialize)]
struct Sample {
    t: f64,
    /// Per worker: its applied seq, if it answered within a second.
    seqs: Vec<Option<u64>>,
}

#[derive(Serialize)]
struct Report<'a> {
    seed: u64,
    seconds: f64,
    windows: &'a [Window],
    samples: &'a [Sample],
    anomalies: &'a [checker::Anomaly],
    history: &'a History,
    observed: &'a Observed,
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(0) => {}
        Ok(n) => {
            eprintln!("chaos: {n} anomalies");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("chaos: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(args: Args) -> Result<usize> {
    let phat = match &args.phat {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("phat"),
    };
    anyhow::ensure!(
        phat.is_file(),
        "no phat binary at {} (build it: cargo build -p phat-cli, or pass --phat)",
        phat.display()
    );
    let contracts = std::fs::canonicalize(&args.contracts)
        .with_context(|| format!("--contracts {}", args.contracts.display()))?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("phat-chaos-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    // Hosts first, from this thread; then this thread (and every later one) is the client.
    let net = cluster::lay_out()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ctrl-C drops the run: its processes are killed and its namespaces deleted.
    let result = rt.block_on(async {
        tokio::select! {
            r = drive(&args, net, &dir, &phat, &contracts) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    eprintln!("chaos: logs, data and report.json in {}", dir.display());
    result
}

async fn drive(
    args: &Args,
    net: net::Net,
    dir: &std::path::Path,
    phat: &std::path::Path,
    contracts: &std::path::Path,
) -> Result<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let t0 = Instant::now();
    eprintln!("chaos: starting 3 NATS nodes and {WORKERS} workers in their own namespaces");
    let mut cluster = Cluster::start(net, dir, phat).await?;
    let ledger = cluster.ledger().await?;
    let urls: Vec<String> = (0..WORKERS).map(|i| cluster.url(i)).collect();
    let setup = workload::set_up(contracts, urls.clone(), phat).await?;
    eprintln!(
        "chaos: cluster up and contracts deployed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let monitor = {
        let (urls, stop, samples) = (urls.clone(), stop.clone(), samples.clone());
        tokio::spawn(async move {
            let clients: Vec<Client> = urls.iter().filter_map(|u| Client::new(u).ok()).collect();
            while !stop.load(Ordering::Relaxed) {
                let t = started.elapsed().as_secs_f64();
                let mut seqs = Vec::new();
                for c in &clients {
                    let info = tokio::time::timeout(Duration::from_secs(1), c.info()).await;
                    seqs.push(info.ok().and_then(Result::ok).map(|i| i.seq));
                }
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample { t, seqs });
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let tasks = workload::spawn_clients(
        &setup,
        args.clients,
        args.seed,
        started,
        stop.clone(),
        history.clone(),
    );
    let window = Duration::from_secs_f64(args.window);
    let recovery = Duration::from_secs_f64(args.recovery);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut windows = Vec::new();
    let plan: Vec<Vec<Fault>> = if args.minutes.is_some() {
        Vec::new()
    } else if args.faults.is_empty() {
        Fault::ALL.iter().map(|f| vec![*f]).collect()
    } else {
        args.faults.iter().map(|f| vec![*f]).collect()
    };
    let deadline = args
        .minutes
        .map(|m| started + Duration::from_secs_f64(m * 60.0));
    let mut next = 0;
    loop {
        let faults = match deadline {
            Some(d) if Instant::now() + window + recovery > d => break,
            Some(_) => {
                let first = Fault::ALL[rng.gen_range(0..Fault::ALL.len())];
                let mut faults = vec![first];
                // A third of the time, a second fault of another kind at once.
                if rng.gen_bool(0.33) {
                    let second = Fault::ALL[rng.gen_range(0..Fault::ALL.len())];
                    // Faults that restart processes go alone.
                    let alone = [Fault::RollingRestart, Fault::KillLeader, Fault::KillAllNats];
                    if second != first && !alone.contains(&second) && !alone.contains(&first) {
                        faults.push(second);
                    }
                }
                faults
            }
            None => match plan.get(next) {
                Some(f) => f.clone(),
                None => break,
            },
        };
        next += 1;
        let names: Vec<String> = faults.iter().map(|f| f.name()).collect();
        let start = started.elapsed().as_secs_f64();
        let mut active = Vec::new();
        for f in &faults {
            active.push(schedule::begin(*f, &mut cluster, &ledger, &mut rng, window).await?);
        }
        let detail: Vec<String> = active.iter().map(|a| a.detail.clone()).collect();
        eprintln!(
            "chaos: {:>6.1} s  {} UTC  {}  ({})",
            start,
            utc_now(),
            names.join(" + "),
            detail.join("; ")
        );
        tokio::time::sleep(window).await;
        for a in active {
            a.end(&mut cluster).await?;
        }
        let heal = started.elapsed().as_secs_f64();
        eprintln!("chaos: {heal:>6.1} s  {} UTC  healed", utc_now());
        windows.push(Window {
            faults: names,
            detail: detail.join("; "),
            start,
            heal,
            ok: 0,
            failed: 0,
            unknown: 0,
            rate: 0.0,
            stall: 0.0,
            recovery: None,
            stale_by: None,
            stuck: 0.0,
        });
        tokio::time::sleep(recovery).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = monitor.await;
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let seconds = started.elapsed().as_secs_f64();
    let history = history.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!(
        "chaos: {} commands and {} reads in {seconds:.0} s; reading every worker's log",
        history.ops.len(),
        history.reads.len()
    );
    let observed = observe(&cluster, &ledger, &setup).await?;
    let anomalies = checker::check(&history, &observed);
    for w in &mut windows {
        for op in history
            .ops
            .iter()
            .filter(|o| o.invoked >= w.start && o.invoked < w.heal)
        {
            match op.outcome {
                Outcome::Ok { .. } => w.ok += 1,
                Outcome::Failed { .. } => w.failed += 1,
                Outcome::Unknown { .. } => w.unknown += 1,
            }
        }
        let mut acks: Vec<f64> = history
            .ops
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok { .. }))
            .map(|o| o.done)
            .filter(|t| *t >= w.start && *t <= w.heal)
            .collect();
        acks.sort_by(f64::total_cmp);
        w.rate = acks.len() as f64 / (w.heal - w.start).max(0.001);
        let mut edges = vec![w.start];
        edges.extend(&acks);
        edges.push(w.heal);
        w.stall = edges.windows(2).map(|p| p[1] - p[0]).fold(0.0, f64::max);
        w.recovery = history
            .ops
            .iter()
            .filter(|o| o.invoked >= w.heal && matches!(o.outcome, Outcome::Ok { .. }))
            .map(|o| o.done - w.heal)
            .min_by(f64::total_cmp);
        w.stuck = stuck(&samples, w.start, w.heal + 10.0);
        w.stale_by = history
            .reads
            .iter()
            .filter(|r| r.min_seq == 0 && r.invoked >= w.start && r.invoked < w.heal)
            .filter_map(|r| r.answer.map(|(seq, _)| r.known_head.saturating_sub(seq)))
            .max();
    }
    print_report(&windows, &history, &observed, &anomalies);
    let report = Report {
        seed: args.seed,
        seconds,
        windows: &windows,
        samples: &samples,
        anomalies: &anomalies,
        history: &history,
        observed: &observed,
    };
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    cluster.stop().await;
    Ok(anomalies.len())
}

/// The longest time in `[from, to]` a worker's applied seq stood still while another
/// worker's was ahead of it (a worker that did not answer counts as standing still).
fn stuck(samples: &[Sample], from: f64, to: f64) -> f64 {
    let in_range: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    let workers = in_range.first().map_or(0, |s| s.seqs.len());
    let mut worst = 0.0f64;
    for w in 0..workers {
        let mut since: Option<(f64, Option<u64>)> = None;
        for s in &in_range {
            let head = s.seqs.iter().flatten().max().copied().unwrap_or(0);
            let mine = s.seqs[w];
            let behind = mine.is_none_or(|m| m < head);
            match since {
                Some((t0, seq)) if behind && seq == mine => worst = worst.max(s.t - t0),
                _ if behind => since = Some((s.t, mine)),
                _ => since = None,
            }
        }
    }
    worst
}

/// The time of day, UTC, as the servers' logs print it (`HH:MM:SS.mmm`).
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day = now.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        day / 60_000 % 60,
        day / 1000 % 60,
        day % 1000
    )
}

/// Heals everything, waits for every worker to apply the whole log, and reads it back.
async fn observe(
    cluster: &Cluster,
    ledger: &phat_ledger::JetStreamLedger,
    setup: &workload::Setup,
) -> Result<Observed> {
    cluster.links.heal_all();
    for i in 0..WORKERS {
        cluster.wait_worker(i, Duration::from_secs(60)).await?;
    }
    // The ticker stops, so the log stops growing.
    let alice = Signer::from_suri("//Alice")?;
    let admin = Client::new(&setup.urls[0])?;
    let removed = async {
        for _ in 0..20 {
            let op = ScheduleOp::Remove {
                contract: setup.ticker,
                id: 0,
            };
            match tokio::time::timeout(Duration::from_secs(10), admin.change_schedule(&alice, op))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                other => eprintln!("chaos: removing the schedule, again: {other:?}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        anyhow::bail!("the schedule could not be removed")
    };
    removed.await?;
    let head = ledger.head().await?;
    let mut observed = Observed {
        head,
        ..Observed::default()
    };
    let ferdie = Signer::from_suri("//Ferdie")?;
    for url in &setup.urls {
        let client = Client::new(url)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while client.info().await.map(|i| i.seq).unwrap_or(0) < head {
            anyhow::ensure!(Instant::now() < deadline, "{url} did not reach seq {head}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut receipts = Vec::with_capacity(head as usize);
        for seq in 1..=head {
            receipts.push(client.receipt(seq).await.ok().map(|r| Applied {
                request: hex::encode(r.request.0),
                executed: matches!(r.result, CallResult::Ok(_) | CallResult::Sealed(_)),
                state_root: hex::encode(r.state_root.0),
                timestamp: r.timestamp,
            }));
        }
        observed.receipts.push(receipts);
        let read = |id, data: Vec<u8>| {
            let client = client.clone();
            let ferdie = ferdie.clone();
            async move {
                let r = client
                    .query(&ferdie, phat_client::call(id, data), Some(head))
                    .await?;
                match r.result {
                    CallResult::Ok(o) => Ok::<Vec<u8>, anyhow::Error>(o.data.to_vec()),
                    other => anyhow::bail!("{other:?}"),
                }
            }
        };
        let (erc20, token) = &setup.erc20;
        let mut balances = Vec::new();
        for i in 0..ACCOUNTS.len() {
            let who = format!("0x{}", hex::encode(workload::account(i).0));
            let data = erc20.encode_message("balance_of", &[who.as_str()])?;
            let out = read(*token, data).await?;
            balances.push(u128::from_le_bytes(out[1..17].try_into()?));
        }
        observed.balances.push(balances);
        let (counter, id) = &setup.counter;
        let get = counter.encode_message("get", &[] as &[&str])?;
        let out = read(*id, get.clone()).await?;
        observed
            .counter
            .push(u64::from_le_bytes(out[1..9].try_into()?));
        let out = read(setup.ticker, get).await?;
        observed
            .ticker
            .push(u64::from_le_bytes(out[1..9].try_into()?));
    }
    // The ticker's runs, from a worker that holds the whole log (its stored records are
    // as old as its state).
    let whole = (0..observed.receipts.len())
        .min_by_key(|w| checker::restored_below(&observed.receipts[*w]))
        .unwrap_or(0);
    let client = Client::new(&setup.urls[whole])?;
    let deployer = Signer::from_suri("//Alice")?;
    let mut after = None;
    loop {
        let filter = phat_client::primitives::protocol::LogFilter {
            after,
            kinds: vec![phat_client::primitives::protocol::LogKind::Trigger],
            ..Default::default()
        };
        let (page, _) = client.read_logs(&deployer, &setup.ticker, filter).await?;
        for t in &page {
            // "schedule 0 tick <time> (<n> ticks): ok"
            let m = &t.record.message;
            let tick = m.split_whitespace().nth(3).unwrap_or_default().to_string();
            let n = m
                .split('(')
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            observed.ticks.push((tick, n));
        }
        match page.last().and_then(|t| t.index) {
            Some(last) if page.len() == 5_000 => after = Some(last),
            _ => break,
        }
    }
    Ok(observed)
}

fn print_report(
    windows: &[Window],
    history: &History,
    observed: &Observed,
    anomalies: &[checker::Anomaly],
) {
    let quiet = |o: &&workload::Op| {
        windows
            .iter()
            .all(|w| o.done < w.start || o.invoked > w.heal + 2.0)
    };
    let calm: Vec<&workload::Op> = history.ops.iter().filter(quiet).collect();
    let calm_seconds = history.ops.last().map_or(0.0, |o| o.done)
        - windows.iter().map(|w| w.heal - w.start + 2.0).sum::<f64>();
    println!(
        "without faults: {:.0} commands acknowledged per second\n",
        calm.len() as f64 / calm_seconds.max(1.0)
    );
    println!("| fault | what | commands invoked during it (ok / refused / unknown) | acknowledged per second | longest stall | recovery after heal | stalest read (seqs behind) | a worker stuck behind |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for w in windows {
        println!(
            "| {} | {} | {} / {} / {} | {:.0} | {:.1} s | {} | {} | {:.1} s |",
            w.faults.join(" + "),
            w.detail,
            w.ok,
            w.failed,
            w.unknown,
            w.rate,
            w.stall,
            w.recovery.map_or("-".to_string(), |r| format!("{r:.1} s")),
            w.stale_by.map_or("-".to_string(), |s| s.to_string()),
            w.stuck
        );
    }
    // Per kind of fault (a pair of faults counts as a combination).
    let mut kinds: std::collections::BTreeMap<String, Vec<&Window>> = Default::default();
    for w in windows {
        let kind = match w.faults.len() {
            1 => w.faults[0].clone(),
            _ => "two at once".to_string(),
        };
        kinds.entry(kind).or_default().push(w);
    }
    if windows.len() > kinds.len() {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!("\n| fault | times | acknowledged per second (median) | longest stall (median / max) | recovery after heal (median / max) |");
        println!("| --- | --- | --- | --- | --- |");
        for (kind, ws) in &kinds {
            let stalls: Vec<f64> = ws.iter().map(|w| w.stall).collect();
            let recoveries: Vec<f64> = ws.iter().filter_map(|w| w.recovery).collect();
            println!(
                "| {kind} | {} | {:.0} | {:.1} / {:.1} s | {:.1} / {:.1} s |",
                ws.len(),
                median(ws.iter().map(|w| w.rate).collect()),
                median(stalls.clone()),
                max(&stalls),
                median(recoveries.clone()),
                max(&recoveries)
            );
        }
    }
    let count = |f: fn(&Outcome) -> bool| history.ops.iter().filter(|o| f(&o.outcome)).count();
    println!(
        "\n{} commands: {} acknowledged, {} refused, {} unknown; {} reads; log head {}; {} ticks; {} anomalies",
        history.ops.len(),
        count(|o| matches!(o, Outcome::Ok { .. })),
        count(|o| matches!(o, Outcome::Failed { .. })),
        count(|o| matches!(o, Outcome::Unknown { .. })),
        history.reads.iter().filter(|r| r.answer.is_some()).count(),
        observed.head,
        observed.ticks.len(),
        anomalies.len()
    );
    for a in anomalies.iter().take(50) {
        println!("ANOMALY {}: {}", a.kind, a.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, seqs: &[Option<u64>]) -> Sample {
        Sample {
            t,
            seqs: seqs.to_vec(),
        }
    }

    #[test]
    fn a_worker_is_stuck_while_others_move_past_it() {
        let samples = [
            at(0.0, &[Some(5), Some(5)]),
            at(1.0, &[Some(6), Some(5)]),
            at(2.0, &[Some(9), Some(5)]),
            at(3.0, &[Some(12), None]),
            at(4.0, &[Some(12), Some(12)]),
        ];
        // Worker 1 stood at 5 from t=1 to t=2, then did not answer: 1 s at seq 5.
        assert_eq!(stuck(&samples, 0.0, 10.0), 1.0);
        // Equal seqs are not stuck, however long.
        let even = [at(0.0, &[Some(3), Some(3)]), at(9.0, &[Some(3), Some(3)])];
        assert_eq!(stuck(&even, 0.0, 10.0), 0.0);
        // Only the range counts.
        assert_eq!(stuck(&samples, 3.5, 10.0), 0.0);
    }
}
