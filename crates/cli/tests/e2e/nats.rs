//! `phat dev --ledger nats`: a real local `nats-server` (or three, `--nats-nodes 3`) with
//! JetStream orders the commands of two workers; `phat dev` stops them when it stops. The
//! 3-node cluster loses its stream leader and a worker under load and still applies every
//! command exactly once.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phat_client::primitives::Mode;
use phat_client::{Client, Signer};
use phat_testkit::*;
use phat_worker::ledger::{JetStreamConfig, JetStreamLedger, Ledger};

/// Pids of the `nats-server` processes started with config `conf` (zombies have no cmdline).
fn nats_servers_with(conf: &Path) -> Vec<i32> {
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

/// Pids of the single dev `nats-server` of `data`.
fn nats_servers_of(data: &Path) -> Vec<i32> {
    nats_servers_with(&data.join("nats.conf"))
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
    eventually(
        format!("`{ledger}` in the log of phat dev"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            let log = dev.log();
            if log.contains(&ledger) {
                Ok(())
            } else {
                Err(format!("\n{log}"))
            }
        },
    )
    .await;
    assert_eq!(nats_servers_of(&data).len(), 1, "one nats-server");
    assert_eq!(mode(&data.join("nats.conf")), 0o600);
    // Every write is on disk before NATS acknowledges it, where the server can be told so
    // (2.10 and later: scripts/setup installs 2.15.1).
    let conf = std::fs::read_to_string(data.join("nats.conf")).unwrap();
    let version = std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.contains("v2.9.") {
        assert!(conf.contains("sync_interval: always"), "{version}: {conf}");
    }
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
        roots.push(root_at(w, seq).await);
        let bob = run_json(w, &["query", &id, "balance_of", BOB]);
        assert_eq!(bob["decoded"], "Ok(2500)", "{w}: {bob}");
        let alice = run_json(w, &["query", &id, "balance_of", ALICE]);
        assert_eq!(alice["decoded"], "Ok(997500)", "{w}: {alice}");
    }
    assert_eq!(roots[0], roots[1], "state roots differ");
    // Logs keep the Transfer event, decoded.
    let out = run(&ep, &["logs", &id]);
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.lines()
            .any(|l| l.contains("Transfer") && l.contains("2500")),
        "{logs}"
    );

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
            eventually(
                "phat dev to come up",
                Duration::from_secs(60),
                Duration::from_millis(50),
                async || {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("(JetStream, R1)") {
                        Ok(text)
                    } else {
                        Err(format!("\n{text}"))
                    }
                },
            )
            .await
        }
    };
    let first_log = dir.path().join("first.log");
    let mut first = Proc::start("dev", &args, &first_log);
    ready(&first_log).await;
    let stale = nats_servers_of(&data);
    assert_eq!(stale.len(), 1);
    // SIGKILL: no time to stop anything. The worker follows its parent; the server stays.
    first.kill9();
    eventually(
        "the worker to follow phat dev",
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || worker_pid(&data.join("worker-0")).is_none(),
    )
    .await;
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

/// The pid of the dev NATS node whose server name is `name` (`phat-dev-<client port>`).
fn nats_node_pid(data: &Path, name: &str) -> i32 {
    for i in 0..3 {
        let conf = std::fs::read_to_string(data.join(format!("nats-{i}.conf"))).unwrap();
        if conf.contains(&format!("server_name: \"{name}\"")) {
            let pid = std::fs::read_to_string(data.join(format!("nats-{i}.pid"))).unwrap();
            return pid.trim().parse().unwrap();
        }
    }
    panic!("no dev NATS node is named {name}");
}

/// Pids of the `nats-server` processes of a 3-node dev cluster in `data`.
fn nats_servers_of3(data: &Path) -> Vec<i32> {
    (0..3)
        .flat_map(|i| nats_servers_with(&data.join(format!("nats-{i}.conf"))))
        .collect()
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn three_nodes_lose_the_stream_leader_and_a_worker_under_load_and_apply_every_command_once(
    ) {
        let mut dev = Dev::start_with(2, &["--ledger", "nats", "--nats-nodes", "3"]).await;
        let data = dev.data();
        assert_eq!(nats_servers_of3(&data).len(), 3, "three nats-servers");
        let w0 = dev.workers[0].clone();
        let counter = Arc::new(deploy_counter(&Client::new(&w0).unwrap()).await);
        let ledger_url = dev
            .log()
            .lines()
            .find_map(|l| l.trim().strip_prefix("ledger    ").map(String::from))
            .and_then(|l| l.split_whitespace().next().map(String::from))
            .expect("the ledger line");
        let mut config = JetStreamConfig::new(&ledger_url, "phat");
        config.user = Some("phat".into());
        config.password = Some(
            std::fs::read_to_string(data.join("nats.password"))
                .unwrap()
                .trim()
                .into(),
        );
        config.replicas = 3;
        let ledger = JetStreamLedger::connect(config).await.unwrap();
        let leader = ledger
            .log_leader()
            .await
            .unwrap()
            .expect("an R3 stream has a leader");

        // Requests are signed up front: a submitter re-sends the same request until one attempt
        // is acknowledged, so each is applied exactly once (a second copy, appended after an
        // ambiguous failure, is refused as a replay when applied).
        const SUBMITTERS: usize = 32;
        const EACH: usize = 15;
        let cluster = Client::new(&w0).unwrap().info().await.unwrap().cluster_key;
        let alice = Signer::from_suri("//Alice").unwrap();
        let errors: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let mut tasks = Vec::new();
        for t in 0..SUBMITTERS {
            let reqs: Vec<_> = (0..EACH)
                .map(|_| phat_client::sign(&alice, &cluster, Mode::Command, counter.inc()))
                .collect();
            let (workers, errors) = (dev.workers.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let clients: Vec<Client> =
                    workers.iter().map(|w| Client::new(w).unwrap()).collect();
                let mut which = t;
                for req in reqs {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let client = &clients[which % clients.len()];
                        match client.submit_signed(&req, false).await {
                            Ok(_) => break,
                            // An earlier attempt was acknowledged but its answer was lost.
                            Err(phat_client::ClientError::Api { kind, .. })
                                if kind == "replayed" =>
                            {
                                *errors.lock().unwrap().entry(kind).or_default() += 1;
                                break;
                            }
                            Err(e) => {
                                let kind = match &e {
                                    phat_client::ClientError::Api { kind, .. } => kind.clone(),
                                    _ => "transport".into(),
                                };
                                *errors.lock().unwrap().entry(kind).or_default() += 1;
                                assert!(Instant::now() < deadline, "never acknowledged: {e}");
                                // Try the other worker.
                                which += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            }));
        }
        // Mid-load: kill -9 the stream leader's nats-server (phat dev restarts it), then a worker.
        let head = Client::new(&w0).unwrap();
        let start = head.info().await.unwrap().ledger_head;
        while head.info().await.unwrap().ledger_head < start + 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = nats_node_pid(&data, &leader);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let worker = worker_pid(&data.join("worker-1")).expect("worker-1 runs");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(worker),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let errors = errors.lock().unwrap().clone();
        eprintln!("retried submissions by error kind: {errors:?}");

        // Every request applied exactly once, on both workers, with equal roots.
        let total = (SUBMITTERS * EACH) as u64;
        // The test's own connection may meet the election the kill started: it asks again.
        let last = eventually(
            "the log's head",
            Duration::from_secs(30),
            Duration::from_millis(200),
            async || {
                let head = ledger.head().await;
                if let Err(e) = &head {
                    eprintln!("the log's head, again: {e}");
                }
                head
            },
        )
        .await;
        let mut roots = Vec::new();
        for w in &dev.workers {
            roots.push(root_at(w, last).await);
            let (value, _) = counter.get(&Client::new(w).unwrap(), Some(last)).await;
            assert_eq!(value, total, "{w}: the counter");
        }
        assert_eq!(roots[0], roots[1], "state roots differ");
        assert!(
            ledger.log_leader().await.unwrap().is_some(),
            "the stream has a leader"
        );
        assert_ne!(
            nats_node_pid(&data, &leader),
            pid,
            "the killed node was restarted"
        );
        let log = dev.log();
        assert!(
            log.contains("nats-server node"),
            "phat dev restarted the node:\n{log}"
        );
        assert!(
            log.contains("worker-1 exited"),
            "phat dev restarted worker-1:\n{log}"
        );
        assert_eq!(nats_servers_of3(&data).len(), 3, "the killed node is back");

        // A user's command right after the stream leader dies, one attempt each, no retry of
        // the test's own: it is not failed while a new leader is elected (the worker waits out
        // the election, also for reading back the time of what it appended).
        let leader = eventually(
            "a stream leader",
            Duration::from_secs(30),
            Duration::from_millis(200),
            async || match ledger.log_leader().await {
                Ok(Some(leader)) => Ok(leader),
                other => Err(format!("{other:?}")),
            },
        )
        .await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(nats_node_pid(&data, &leader)),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let client = Client::new(&dev.endpoint).unwrap();
        for i in 0..3 {
            let started = Instant::now();
            let sub = client.submit(&alice, counter.inc(), true).await;
            let sub = sub.unwrap_or_else(|e| panic!("command {i} after the leader died: {e}"));
            assert!(matches!(
                sub.receipt.unwrap().result,
                phat_client::primitives::protocol::CallResult::Ok(_)
            ));
            eprintln!("command {i} after the leader died: {:?}", started.elapsed());
        }

        assert!(dev.proc.terminate(), "phat dev did not exit cleanly");
        assert!(nats_servers_of3(&data).is_empty(), "a nats-server is left");
    }
}
