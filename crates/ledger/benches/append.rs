//! Append throughput and latency of the embedded ledger: one sequential appender (latency) and
//! 64 concurrent appenders (throughput, where group commit pays off), 128-byte payloads.
//!
//! Run with `cargo bench -p phat-ledger --bench append`; set `PHAT_BENCH_SECS` to change the
//! duration of each case (default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use phat_ledger::{EmbeddedLedger, Ledger, LedgerConfig};

/// Payload size of every append.
const PAYLOAD: usize = 128;
/// Concurrent appenders in the throughput case.
const CONCURRENCY: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = std::env::var("PHAT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let duration = Duration::from_secs_f64(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(duration))
}

async fn run(duration: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    // One appender: every append is its own fsync'ed transaction.
    let ledger = EmbeddedLedger::open(&dir.path().join("seq.redb"), LedgerConfig::default())?;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        ledger.append(vec![7; PAYLOAD]).await?;
        latencies.push(t.elapsed());
    }
    let seq_rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_micros();
    let (p50, p99) = (pct(0.50), pct(0.99));
    drop(ledger);

    // Many appenders: appends pile up behind each fsync and commit together.
    let ledger = Arc::new(EmbeddedLedger::open(
        &dir.path().join("conc.redb"),
        LedgerConfig::default(),
    )?);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < duration {
                let t = Instant::now();
                ledger.append(vec![7; PAYLOAD]).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, phat_ledger::LedgerError>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let conc_rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    let conc_p50 = all[all.len() / 2].as_micros();

    println!("embedded ledger append, {PAYLOAD}-byte payloads, {duration:?} per case");
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>10}",
        "case", "appends", "appends/s", "p50 µs", "p99 µs"
    );
    println!(
        "{:<22} {:>10} {:>12.0} {:>10} {:>10}",
        "1 sequential",
        latencies.len(),
        seq_rate,
        p50,
        p99
    );
    let conc_p99 = all[((all.len() - 1) as f64 * 0.99) as usize].as_micros();
    println!(
        "{:<22} {:>10} {:>12.0} {:>10} {:>10}",
        format!("{CONCURRENCY} concurrent"),
        all.len(),
        conc_rate,
        conc_p50,
        conc_p99
    );
    Ok(())
}
