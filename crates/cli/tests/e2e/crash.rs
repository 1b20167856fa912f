//! Crash safety and concurrency with real processes: `kill -9` of workers and of the ledger
//! under load, and queries racing commands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phat_client::primitives::protocol::CallResult;
use phat_client::{Client, Signer};
use phat_testkit::*;

fn worker_args<'a>(ledger: &'a str, token: &'a str, data: &'a str, port: &'a str) -> [&'a str; 9] {
    [
        "worker",
        "--ledger",
        ledger,
        "--ledger-token-file",
        token,
        "--data",
        data,
        "--port",
        port,
    ]
}

async fn ledger_head(url: &str, token: &str) -> u64 {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/ledger/v1/head"))
        .header(
            reqwest::header::AUTHORIZATION,
            ledger_bearer(std::path::Path::new(token)),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_workers_catch_up_with_the_same_state_and_no_lost_or_repeated_command() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let ledger_url = format!("http://127.0.0.1:{base}");
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    let _ledger = start_ledger(dir.path(), base);
    let token = path("ledger/ledger.token");
    let (p0, p1) = ((base + 1).to_string(), (base + 2).to_string());
    let (d0, d1) = (path("w0"), path("w1"));
    let _w0 = Proc::start(
        "w0",
        &worker_args(&ledger_url, &token, &d0, &p0),
        &dir.path().join("w0.log"),
    );
    let w1_log = dir.path().join("w1.log");
    let mut w1 = Proc::start("w1", &worker_args(&ledger_url, &token, &d1, &p1), &w1_log);
    let (u0, u1) = (
        format!("http://127.0.0.1:{p0}"),
        format!("http://127.0.0.1:{p1}"),
    );
    wait_up(&u0).await;
    wait_up(&u1).await;
    let c0 = Client::new(&u0).unwrap();
    let counter = Arc::new(deploy_counter(&c0).await);

    // Kill -9 the second worker again and again while commands flow.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let (ledger_url, token, d1, p1, w1_log) = (
            ledger_url.clone(),
            token.clone(),
            d1.clone(),
            p1.clone(),
            w1_log.clone(),
        );
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(150 + (kills * 37) % 250));
                w1.kill9();
                kills += 1;
                std::thread::sleep(Duration::from_millis(50));
                w1 = Proc::start("w1", &worker_args(&ledger_url, &token, &d1, &p1), &w1_log);
            }
            (w1, kills)
        })
    };

    const N: u64 = 3000;
    let alice = Signer::from_suri("//Alice").unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c0, counter, alice, sent) = (c0.clone(), counter.clone(), alice.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < N {
                c0.submit(&alice, counter.inc(), false)
                    .await
                    .expect("submit");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (_w1, kills) = killer.join().unwrap();
    assert!(kills >= 3, "the worker was killed only {kills} times");

    let head = ledger_head(&ledger_url, &token).await;
    assert_eq!(head, counter.deployed_at + N);
    let i0 = wait_seq(&u0, head).await;
    wait_up(&u1).await;
    let i1 = wait_seq(&u1, head).await;
    assert_eq!(i0.seq, i1.seq);
    assert_eq!(
        i0.state_root, i1.state_root,
        "state roots differ after {kills} kills"
    );
    // Every increment applied exactly once on both workers.
    let c1 = Client::new(&u1).unwrap();
    assert_eq!(counter.get(&c0, Some(head)).await.0, N);
    assert_eq!(counter.get(&c1, Some(head)).await.0, N);
    // Receipts are identical, seq by seq.
    for seq in (1..=head).step_by(97).chain([head]) {
        assert_eq!(
            c0.receipt(seq).await.unwrap(),
            c1.receipt(seq).await.unwrap(),
            "seq {seq}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_ledger_loses_no_acknowledged_command() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(2);
    let ledger_url = format!("http://127.0.0.1:{base}");
    let ledger_dir = dir.path().join("ledger");
    let ledger_args = [
        "ledger",
        "--data",
        ledger_dir.to_str().unwrap(),
        "--port",
        &base.to_string(),
        "--fund-dev-accounts",
    ]
    .map(String::from);
    let args: Vec<&str> = ledger_args.iter().map(|s| s.as_str()).collect();
    let mut ledger = Proc::start("ledger", &args, &dir.path().join("ledger.log"));
    let token = ledger_token_file(&ledger_dir).to_str().unwrap().to_string();
    let wport = (base + 1).to_string();
    let wdata = dir.path().join("w0");
    let _w = Proc::start(
        "w0",
        &worker_args(&ledger_url, &token, wdata.to_str().unwrap(), &wport),
        &dir.path().join("w0.log"),
    );
    let url = format!("http://127.0.0.1:{wport}");
    wait_up(&url).await;
    let client = Client::new(&url).unwrap();
    let counter = Arc::new(deploy_counter(&client).await);

    let stop = Arc::new(AtomicBool::new(false));
    let alice = Signer::from_suri("//Alice").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, counter, alice, stop) =
            (client.clone(), counter.clone(), alice.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match client.submit(&alice, counter.inc(), false).await {
                    Ok(s) => acked.push((s.seq, s.request)),
                    Err(_) => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ledger.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ledger2 = Proc::start("ledger", &args, &dir.path().join("ledger2.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (a, f) = t.await.unwrap();
        acked.extend(a);
        failed += f;
    }
    assert!(failed > 0, "no submission failed: the ledger was not down");
    assert!(
        acked.len() > 100,
        "too few acknowledged commands: {}",
        acked.len()
    );
    let head = ledger_head(&ledger_url, &token).await;
    wait_seq(&url, head).await;
    // Every acknowledged command is in the ledger at the seq it was given, and was applied.
    for (seq, request) in &acked {
        let r = client.receipt(*seq).await.unwrap();
        assert_eq!(&r.request, request, "seq {seq} holds another command");
        // Executed (its output is sealed to the sender, so not readable here), not refused.
        assert!(
            !matches!(r.result, CallResult::Err(_)),
            "seq {seq}: {:?}",
            r.result
        );
    }
    let (value, _) = counter.get(&client, Some(head)).await;
    assert_eq!(
        value,
        head - counter.deployed_at,
        "every entry after the deploy is one increment"
    );
    assert!(value >= acked.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_queries_see_consistent_snapshots_while_commands_apply() {
    let dev = Dev::start(1).await;
    let url = dev.workers[0].clone();
    let client = Client::new(&url).unwrap();
    let counter = Arc::new(deploy_counter(&client).await);
    const N: u64 = 1000;
    let alice = Signer::from_suri("//Alice").unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..16 {
        let (client, counter, alice, sent) =
            (client.clone(), counter.clone(), alice.clone(), sent.clone());
        writers.push(tokio::spawn(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < N {
                client
                    .submit(&alice, counter.inc(), false)
                    .await
                    .expect("submit");
            }
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (client, counter, done) = (client.clone(), counter.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut checked = 0u64;
            let mut seqs = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                let (value, seq) = counter.get(&client, None).await;
                // Only increments follow the deploy, so a consistent snapshot at `seq` holds
                // exactly `seq - deployed_at`.
                assert_eq!(
                    value,
                    seq - counter.deployed_at,
                    "torn snapshot at seq {seq}"
                );
                checked += 1;
                seqs.insert(seq);
            }
            (checked, seqs.len())
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let head = counter.deployed_at + N;
    wait_seq(&url, head).await;
    done.store(true, Ordering::Relaxed);
    let mut distinct = 0;
    for r in readers {
        let (checked, seqs) = r.await.unwrap();
        assert!(checked > 0);
        distinct += seqs;
    }
    assert!(
        distinct > 8,
        "queries saw only {distinct} distinct snapshots while commands applied"
    );
    assert_eq!(counter.get(&client, Some(head)).await.0, N);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_ledger_serves_only_holders_of_its_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(2);
    let ledger_url = format!("http://127.0.0.1:{base}");
    let mut ledger = start_ledger(dir.path(), base);
    let token = ledger_token_file(&dir.path().join("ledger"));
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    let first = std::fs::read_to_string(&token).unwrap();
    assert_eq!(first.trim().len(), 64, "{first}");

    // No token, a wrong one: 401 on reads and writes, and the genesis is not overwritten.
    let client = reqwest::Client::new();
    let status = eventually(
        "the ledger to answer",
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            client
                .get(format!("{ledger_url}/ledger/v1/head"))
                .send()
                .await
                .map(|r| r.status())
        },
    )
    .await;
    assert_eq!(status, 401);
    let genesis = format!("{ledger_url}/ledger/v1/meta/genesis");
    for auth in [None, Some("Bearer 00")] {
        let mut put = client.put(&genesis).body(b"evil".to_vec());
        if let Some(a) = auth {
            put = put.header(reqwest::header::AUTHORIZATION, a);
        }
        assert_eq!(put.send().await.unwrap().status(), 401, "{auth:?}");
    }
    let real = client
        .get(&genesis)
        .header(reqwest::header::AUTHORIZATION, ledger_bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 200);
    assert_ne!(real.bytes().await.unwrap().as_ref(), b"evil");

    // A worker without the token does not start, and says which flag to pass.
    let out = phat()
        .env_remove("PHAT_LEDGER_TOKEN_FILE")
        .args(["worker", "--ledger", &ledger_url, "--data"])
        .arg(dir.path().join("w0"))
        .args(["--port", &(base + 1).to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("--ledger-token-file"), "{err}");
    assert!(last.starts_with("error:"), "{err}");

    // A restarted ledger keeps its token.
    assert!(ledger.terminate());
    let _ledger = start_ledger(dir.path(), base);
    assert_eq!(std::fs::read_to_string(&token).unwrap(), first);
}
