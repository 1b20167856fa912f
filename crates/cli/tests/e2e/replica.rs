//! Checkpoints, snapshots and divergence with real processes on a real `nats-server`: a worker
//! joins after the log was trimmed (from a snapshot), a worker that applies one write wrongly
//! is caught within one checkpoint interval while the others keep serving, and `--resync`
//! brings it back. The fault switch (`--fault-at-seq`) is in `phat` built with the `testing`
//! feature only, which the test command enables.

use std::path::Path;
use std::time::Duration;

use phat_client::{Client, Signer};
use phat_testkit::*;
use phat_worker::ledger::{JetStreamConfig, JetStreamLedger, Ledger};

/// Checkpoint and snapshot intervals of every worker here.
const REPLICA: [&str; 6] = [
    "--checkpoint-every",
    "10",
    "--snapshot-every",
    "50",
    "--snapshots-kept",
    "1",
];

fn endpoint_port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Sends `n` increments through `worker` from 8 tasks; returns the last seq acknowledged.
async fn increments(worker: &str, counter: &std::sync::Arc<Counter>, n: usize) -> u64 {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (w, counter) = (worker.to_string(), counter.clone());
        let share = n / 8 + usize::from(t < n % 8);
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&w).unwrap();
            let alice = Signer::from_suri("//Alice").unwrap();
            let mut last = 0;
            for _ in 0..share {
                let sub = client.submit(&alice, counter.inc(), false).await.unwrap();
                last = last.max(sub.seq);
            }
            last
        }));
    }
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.unwrap());
    }
    last
}

/// GET `url/healthz`: status and body.
async fn health(url: &str) -> (u16, String) {
    let r = reqwest::get(format!("{url}/healthz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_joins_from_a_snapshot_and_a_diverged_worker_is_caught_and_resynced() {
    let mut args = vec!["--ledger", "nats"];
    args.extend_from_slice(&REPLICA);
    let dev = Dev::start_with(2, &args).await;
    let data = dev.data();
    let w0 = dev.workers[0].clone();
    let counter = std::sync::Arc::new(deploy_counter(&Client::new(&w0).unwrap()).await);

    // 120 commands: snapshots at seq 50 and 100, the log trimmed below the newest.
    let head = increments(&w0, &counter, 120).await;
    let mut roots = Vec::new();
    for w in &dev.workers {
        roots.push(root_at(w, head).await);
    }
    assert_eq!(roots[0], roots[1]);

    let password = read(&data.join("nats.password"));
    let mut config = JetStreamConfig::new(
        format!("nats://127.0.0.1:{}", endpoint_port(&dev.endpoint) + 1),
        "phat",
    );
    config.user = Some("phat".into());
    config.password = Some(password.trim().into());
    let ledger = JetStreamLedger::connect(config).await.unwrap();
    // Each worker stores its snapshot, deletes its older one, then trims.
    let settled = |names: &[String]| {
        names.len() == 2 && names.iter().all(|n| n.starts_with("00000000000000000100-"))
    };
    let trimmed = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            ledger.first_seq().await.unwrap() > 100
                && settled(&ledger.snapshot_names().await.unwrap())
        },
    )
    .await;
    assert!(
        trimmed.is_some(),
        "the log was not trimmed: first seq {}, snapshots {:?}\n{}",
        ledger.first_seq().await.unwrap(),
        ledger.snapshot_names().await,
        read(&data.join("worker-0/worker.log"))
    );
    // One snapshot per worker kept, at seq 100 (the loop above waited for exactly that).
    let names = ledger.snapshot_names().await.unwrap();
    assert!(settled(&names), "{names:?}");
    assert!(matches!(
        ledger.read(1, 10, Duration::from_millis(100)).await,
        Err(phat_worker::ledger::LedgerError::Trimmed { first: 101 })
    ));

    // A new worker cannot replay from seq 1: it starts from the snapshot and catches up.
    let ports = free_ports(2);
    let late_url = format!("http://127.0.0.1:{ports}");
    let mut late = dev.start_worker("late", ports, &REPLICA);
    wait_up(&late_url).await;
    assert_eq!(
        root_at(&late_url, head).await,
        roots[0],
        "the late worker's root"
    );
    let late_log = read(&dev.dir.path().join("late.log"));
    assert!(late_log.contains("started from a snapshot"), "{late_log}");
    let (value, _) = counter
        .get(&Client::new(&late_url).unwrap(), Some(head))
        .await;
    assert_eq!(value, 120);

    // Five votes forged by someone who can write the metadata but holds no cluster key, all
    // for one made-up root at every checkpoint: they count for nothing (unsigned, they would
    // outvote the three honest workers and stop them).
    for i in 0..5u8 {
        let points: Vec<(u64, [u8; 32])> = (1..=30).map(|k| (k * 10, [7; 32])).collect();
        let record = parity_scale_codec::Encode::encode(&(format!("forger-{i}"), points));
        let forged = parity_scale_codec::Encode::encode(&(record, [i; 32]));
        ledger
            .put_meta(
                &format!("checkpoint/{}", "ab".repeat(31) + &format!("{i:02x}")),
                forged,
            )
            .await
            .unwrap();
    }

    // A worker that applies one write no other applies is caught at the next checkpoint.
    let fault = head + 3;
    let caught_at = fault.div_ceil(10) * 10;
    let bad_url = format!("http://127.0.0.1:{}", ports + 1);
    let fault_text = fault.to_string();
    let mut bad = dev.start_worker(
        "bad",
        ports + 1,
        &[&REPLICA[..], &["--fault-at-seq", &fault_text]].concat(),
    );
    wait_up(&bad_url).await;
    wait_seq(&bad_url, head).await;
    let head = increments(&w0, &counter, 20).await;
    let (status, text) = eventually(
        "the bad worker to report itself unhealthy",
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || match health(&bad_url).await {
            (503, text) => Ok((503, text)),
            (status, text) => Err(format!("{status} {text}")),
        },
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains(&format!("diverged: at seq {caught_at} ")),
        "{text}"
    );
    // Outvoted: at least two of the healthy workers are named.
    let named = ["worker-0", "worker-1", "late"]
        .iter()
        .filter(|w| text.contains(*w))
        .count();
    assert!(named >= 2, "{text}");
    // It answers no query (a clear 503), and says why in `phat info` and its metrics.
    let refused = run_fail(&bad_url, &["query", &counter.id.to_string(), "get"]);
    assert!(refused.contains("diverged"), "{refused}");
    let info = run_json(&bad_url, &["info"]);
    let why = info["worker"]["diverged"].as_str().unwrap_or_default();
    assert!(why.starts_with(&format!("at seq {caught_at} ")), "{info}");
    let metrics = reqwest::get(format!("{bad_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("phat_diverged_seq") && l.ends_with(&format!(" {caught_at}"))),
        "{metrics}"
    );
    // The others keep serving, agree with each other, and only report the disagreement.
    for w in dev.workers.iter().chain([&late_url]) {
        wait_seq(w, head).await;
        assert_eq!(health(w).await.0, 200, "{w}");
        let (value, _) = counter.get(&Client::new(w).unwrap(), Some(head)).await;
        assert_eq!(value, 140, "{w}");
    }
    // The forged records were ignored and counted, by every healthy worker.
    for w in dev.workers.iter().chain([&late_url]) {
        let metrics = reqwest::get(format!("{w}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let refused: f64 = metrics
            .lines()
            .find(|l| l.starts_with("phat_refused_metadata_total") && l.contains("checkpoint"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{w} counted no refused checkpoint record:\n{metrics}"));
        assert!(refused >= 5.0, "{w}: {refused}");
    }
    let good_root = root_at(&w0, head).await;
    assert_eq!(root_at(&late_url, head).await, good_root);
    // (A diverged worker serves no receipt; its root differs at every seq after the fault.)
    assert_ne!(wait_seq(&bad_url, head).await.state_root, good_root);

    // `--resync` drops its state and starts again from a snapshot the others confirm.
    assert!(bad.terminate());
    let mut bad = dev.start_worker("bad", ports + 1, &[&REPLICA[..], &["--resync"]].concat());
    wait_up(&bad_url).await;
    let info = wait_seq(&bad_url, head).await;
    assert_eq!(
        root_at(&bad_url, head).await,
        good_root,
        "after --resync:\n{}",
        read(&dev.dir.path().join("bad.log"))
    );
    assert_eq!(info.diverged, None);
    assert_eq!(health(&bad_url).await.0, 200);
    let (value, _) = counter
        .get(&Client::new(&bad_url).unwrap(), Some(head))
        .await;
    assert_eq!(value, 140);
    let log = read(&dev.dir.path().join("bad.log"));
    assert!(log.contains("resynced from a snapshot"), "{log}");

    assert!(bad.terminate());
    assert!(late.terminate());
}
