//! `phat dev --ledger nats`: a real local `nats-server` with JetStream orders the commands of
//! two workers; `phat dev` stops it when it stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const BOB: &str = "0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48";
const ALICE: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

/// Pids of the `nats-server` processes whose config is in `data` (zombies have no cmdline).
fn nats_servers_of(data: &Path) -> Vec<i32> {
    let conf = data.join("nats.conf");
    let conf = conf.to_str().unwrap().as_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_nats = args.first().is_some_and(|a| a.ends_with(b"nats-server"));
        if is_nats && args.contains(&conf) {
            pids.push(pid);
        }
    }
    pids
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn erc20_on_two_workers_over_jetstream() {
    let erc20 = bundle("erc20");
    let mut dev = Dev::start_with(2, &["--ledger", "nats"]).await;
    let data = dev.data();
    let port: u16 = dev.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let ledger = format!("nats://127.0.0.1:{} (JetStream, R1)", port + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dev.log().contains(&ledger) {
        assert!(Instant::now() < deadline, "no `{ledger}`:\n{}", dev.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nats_servers_of(&data).len(), 1, "one nats-server");
    assert_eq!(mode(&data.join("nats.conf")), 0o600);
    assert_eq!(mode(&data.join("nats.password")), 0o600);
    assert!(data.join("nats").is_dir(), "the JetStream store");
    assert!(!data.join("ledger.redb").exists(), "no embedded ledger");
    // The password never appears on a worker's command line.
    let password = std::fs::read_to_string(data.join("nats.password")).unwrap();
    let pid = worker_pid(&data.join("worker-0")).expect("worker-0 runs");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(password.trim()),
        "the NATS password is on the command line"
    );

    let ep = dev.endpoint.clone();
    let id = deploy_erc20(&ep, &erc20, "1000000").await;
    let tx = run_json(
        &ep,
        &["tx", &id, "transfer", BOB, "2500", "--suri", "//Alice"],
    );
    assert_eq!(tx["decoded"], "Ok(Ok(()))", "{tx}");
    let seq = tx["receipt"]["seq"].as_u64().unwrap();

    let mut roots = Vec::new();
    for w in &dev.workers {
        roots.push(wait_seq(w, seq).await.state_root);
        let bob = run_json(w, &["query", &id, "balance_of", BOB]);
        assert_eq!(bob["decoded"], "Ok(2500)", "{w}: {bob}");
        let alice = run_json(w, &["query", &id, "balance_of", ALICE]);
        assert_eq!(alice["decoded"], "Ok(997500)", "{w}: {alice}");
    }
    assert_eq!(roots[0], roots[1], "state roots differ");

    assert!(dev.proc.terminate(), "phat dev did not exit cleanly");
    assert!(
        nats_servers_of(&data).is_empty(),
        "a nats-server of {} is left",
        data.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_left_by_a_killed_phat_dev_is_stopped_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = free_ports(3);
    let args = [
        "dev",
        "--ledger",
        "nats",
        "--workers",
        "1",
        "--data",
        data.to_str().unwrap(),
        "--port",
        &base.to_string(),
    ];
    let ready = |log: &Path| {
        let log = log.to_path_buf();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("(JetStream, R1)") {
                    return text;
                }
                assert!(
                    Instant::now() < deadline,
                    "phat dev did not come up:\n{text}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first_log = dir.path().join("first.log");
    let mut first = Proc::start("dev", &args, &first_log);
    ready(&first_log).await;
    let stale = nats_servers_of(&data);
    assert_eq!(stale.len(), 1);
    // SIGKILL: no time to stop anything. The worker follows its parent; the server stays.
    first.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker_pid(&data.join("worker-0")).is_some() {
        assert!(Instant::now() < deadline, "the worker outlived phat dev");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nats_servers_of(&data), stale, "the server outlives SIGKILL");
    // The next start stops it and serves with a server of its own.
    let second_log = dir.path().join("second.log");
    let mut second = Proc::start("dev", &args, &second_log);
    let text = ready(&second_log).await;
    assert!(text.contains("stopping the nats-server"), "{text}");
    let now = nats_servers_of(&data);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, stale);
    assert!(second.terminate(), "phat dev did not exit cleanly");
    assert!(nats_servers_of(&data).is_empty());
}
