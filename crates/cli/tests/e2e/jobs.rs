//! Off-chain jobs on a real 3-worker `phat dev`: every 2 s one worker runs `price-feed`'s
//! `fetch` in query mode against a local HTTP API and the handler records the answer, once
//! per tick. While the worker first in some ticks' order is frozen (SIGSTOP), the next one in
//! the order answers those ticks; no tick is answered twice. A result with a bad MAC, and a
//! genuine one appended again, are refused on every worker; the workers agree on the state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parity_scale_codec::Encode;
use phat_client::primitives::protocol::{Job, LedgerCommand};
use phat_client::primitives::{blake2_256, AccountId};
use phat_client::Client;
use phat_testkit::*;

const PRICE: &str = "42.17";

/// A price API on 127.0.0.1 counting its requests.
async fn price_api() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/price",
        axum::routing::get({
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                PRICE
            }
        }),
    );
    (format!("{}/price", serve(app).await), hits)
}

/// The ticks `price-feed` recorded, as one worker answers, each with its body.
fn prices(worker: &str, feed: &str) -> Vec<(u64, String)> {
    let r = run_json(worker, &["query", feed, "prices"]);
    let text = r["decoded"].as_str().unwrap_or_default().to_string();
    text.match_indices("tick: ")
        .map(|(i, _)| {
            let rest = &text[i + 6..];
            let tick = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let body = rest
                .split("body: ")
                .nth(1)
                .and_then(|b| b.split([' ', '}']).next())
                .unwrap_or_default()
                .to_string();
            (tick, body)
        })
        .collect()
}

/// The job of `feed` (it has one), as the endpoint answers.
async fn job_of(client: &Client, feed: &AccountId) -> Job {
    let mut jobs = client.jobs(feed).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs.remove(0)
}

/// Which worker key answered each tick, from the `trigger` log lines.
async fn answered_by(client: &Client, feed: &AccountId) -> Vec<(String, String)> {
    answers(client, feed)
        .await
        .into_iter()
        .map(|(tick, by, _)| (tick, by))
        .collect()
}

/// Each answered tick, who answered it, and the ledger time of the answer.
async fn answers(client: &Client, feed: &AccountId) -> Vec<(String, String, u64)> {
    client
        .triggers(&phat_client::Signer::from_suri("//Alice").unwrap(), feed)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| {
            let (m, at) = (l.record.message, l.record.timestamp);
            let tick = m
                .strip_prefix("job 0 tick ")?
                .split(' ')
                .next()?
                .to_string();
            let by = m
                .split("answered by ")
                .nth(1)?
                .split(' ')
                .next()?
                .to_string();
            Some((tick, by, at))
        })
        .collect()
}

/// A worker's place in a tick's order, as the runner computes it (`worker/src/jobs.rs`).
fn rank_fraction(job: &Job, tick: u64, worker: &[u8; 32]) -> u64 {
    let h = blake2_256(&(job.contract, job.id, tick, worker).encode());
    u64::from_le_bytes(h[..8].try_into().unwrap())
}

/// A tick as the `trigger` log lines print it (RFC 3339, UTC, milliseconds).
fn phat_worker_tick(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_runs_off_chain_once_per_tick_with_failover() {
        let (api, hits) = price_api().await;
        let dev = Dev::start(3).await;
        let ep = dev.endpoint.clone();
        let client = Client::new(&ep).unwrap();
        let feed = deploy_new(&ep, "price-feed");
        let feed_id: AccountId = feed.parse().unwrap();
        let add = |extra: &[&str]| {
            let mut args = vec![
                "job",
                "add",
                &feed,
                "fetch",
                &api,
                "--handler",
                "on_price",
                "--every",
                "2s",
            ];
            args.extend_from_slice(extra);
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        let bob = run_fail(&ep, &strs(&add(&["--timeout", "1s", "--suri", "//Bob"])));
        assert!(bob.contains("not_deployer"), "{bob}");
        let fast = run_fail(&ep, &strs(&add(&["--timeout", "10ms"])));
        assert!(
            fast.contains("bad_job") && fast.contains("timeout"),
            "{fast}"
        );
        let added = run_json(&ep, &strs(&add(&["--timeout", "1s"])));
        assert_eq!(added["job"], 0, "{added}");
        // Added through another process: this client's reads wait for it on any worker.
        client.read_after(added["seq"].as_u64().unwrap());

        // Three ticks answered, each once, with the API's answer.
        let w0 = dev.workers[0].clone();
        let wait_runs = |n: u64| {
            let (client, feed_id) = (&client, &feed_id);
            async move {
                eventually(
                    format!("{n} runs"),
                    Duration::from_secs(40),
                    Duration::from_millis(100),
                    async || {
                        let j = job_of(client, feed_id).await;
                        if j.runs >= n {
                            Ok(j)
                        } else {
                            Err(format!("{j:?}"))
                        }
                    },
                )
                .await
            }
        };
        let job = wait_runs(3).await;
        wait_seq(&w0, client.info().await.unwrap().ledger_head).await;
        let recorded = prices(&w0, &feed);
        assert!(recorded.len() as u64 >= 3, "{recorded:?}");
        assert!(
            recorded.iter().all(|(_, body)| body.contains("0x3432")),
            "{recorded:?}"
        );
        let ticks: Vec<u64> = recorded.iter().map(|(t, _)| *t).collect();
        assert!(ticks.windows(2).all(|w| w[1] > w[0]), "{ticks:?}");

        // Freeze the worker that is first in the coming ticks' order most often; the others
        // answer every tick meanwhile (after the frozen one's turn), each once.
        let keys: Vec<[u8; 32]> = {
            let mut keys = Vec::new();
            for w in &dev.workers {
                keys.push(Client::new(w).unwrap().info().await.unwrap().worker_key.0);
            }
            keys
        };
        // The six ticks after the next one (the next may be under way as we freeze).
        let now = job_of(&client, &feed_id).await;
        let next: Vec<u64> = (2..=7).map(|k| now.last_tick + k * 2_000).collect();
        let first = |tick: u64| {
            (0..3)
                .min_by_key(|&i| rank_fraction(&job, tick, &keys[i]))
                .unwrap()
        };
        // Six ticks over three workers: one of them is first in at least two.
        let frozen = (0..3)
            .max_by_key(|&i| next.iter().filter(|&&t| first(t) == i).count())
            .unwrap();
        let pid = worker_pid(&dev.data().join(format!("worker-{frozen}"))).expect("worker process");
        let pid = nix::unistd::Pid::from_raw(pid);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let alive = if frozen == 0 {
            &dev.workers[1]
        } else {
            &dev.workers[0]
        };
        let alive_client = Client::new(alive).unwrap();
        let last = *next.last().unwrap();
        eventually(
            "the ticks to be answered while a worker is frozen",
            Duration::from_secs(40),
            Duration::from_millis(100),
            async || alive_client.jobs(&feed_id).await.unwrap()[0].last_tick >= last,
        )
        .await;
        let during = answered_by(&alive_client, &feed_id).await;
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        let frozen_key = format!("0x{}", hex::encode(keys[frozen]));
        let mut taken_over = 0;
        for &t in &next {
            let shown = phat_worker_tick(t);
            let by: Vec<&String> = during
                .iter()
                .filter(|(tick, _)| *tick == shown)
                .map(|(_, by)| by)
                .collect();
            assert_eq!(by.len(), 1, "tick {shown} answered {} times", by.len());
            assert_ne!(
                by[0], &frozen_key,
                "the frozen worker answered tick {shown}"
            );
            if first(t) == frozen {
                taken_over += 1;
            }
        }
        assert!(taken_over >= 2, "{taken_over}");
        eprintln!("frozen worker-{frozen}: the next in order answered the {taken_over} ticks it was first for");

        // Tick due -> answer ordered (ledger time), for ticks answered by the first in order and
        // for those the next one took over.
        let mut normal = Vec::new();
        let mut failover = Vec::new();
        for (tick, _, at) in answers(&alive_client, &feed_id).await {
            let ms = chrono::DateTime::parse_from_rfc3339(&tick)
                .unwrap()
                .timestamp_millis() as u64;
            let latency = at.saturating_sub(ms);
            if next.contains(&ms) && first(ms) == frozen {
                failover.push(latency);
            } else {
                normal.push(latency);
            }
        }
        normal.sort();
        failover.sort();
        eprintln!(
        "tick due -> result ordered: p50 {} ms (max {} ms) over {} ticks; taken over: p50 {} ms over {}",
        normal[normal.len() / 2],
        normal.last().unwrap(),
        normal.len(),
        failover[failover.len() / 2],
        failover.len()
    );

        // A result with a bad signature, and a genuine one appended again, are refused everywhere.
        let ledger = dev_ledger(&dev);
        let commands = ledger_commands(&ledger).await;
        let genuine = commands
            .into_iter()
            .rev()
            .find_map(|c| match c {
                LedgerCommand::JobResult(r) => Some(r),
                _ => None,
            })
            .expect("a job result in the ledger");
        // The cluster encrypts: the ledger does not read what the API answered.
        assert!(
            !genuine
                .output
                .0
                .windows(PRICE.len())
                .any(|w| w == PRICE.as_bytes()),
            "a job's output in the clear on the ledger"
        );
        let mut forged = genuine.clone();
        forged.tick += 2_000 * 1_000;
        forged.output = b"1000000".to_vec().into();
        for (entry, kind) in [(genuine, "already_answered"), (forged, "bad_signature")] {
            refused_everywhere(&dev, &ledger, LedgerCommand::JobResult(entry), kind).await;
        }

        // Removing the job stops it.
        let removed = run_json(&ep, &["job", "rm", &feed, "0"]);
        client.read_after(removed["seq"].as_u64().unwrap());
        assert!(client.jobs(&feed_id).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Exactly once: as many recorded prices as answered ticks, distinct ticks 2 s apart, on
        // every worker, with the same state root (the job is removed: the ledger stands still).
        let head = client.info().await.unwrap().ledger_head;
        let mut roots = Vec::new();
        let mut all = Vec::new();
        for w in &dev.workers {
            let info = wait_seq(w, head).await;
            roots.push((info.seq, info.state_root));
            all.push(prices(w, &feed));
        }
        assert!(roots.windows(2).all(|p| p[0] == p[1]), "{roots:?}");
        assert!(all.windows(2).all(|p| p[0] == p[1]));
        let answered = answers(&Client::new(&dev.workers[0]).unwrap(), &feed_id).await;
        let ticks: Vec<u64> = all[0].iter().map(|(t, _)| *t).collect();
        assert_eq!(ticks.len(), answered.len(), "{ticks:?}");
        assert!(ticks
            .windows(2)
            .all(|w| w[1] > w[0] && (w[1] - w[0]) % 2_000 == 0));
        // The API was asked about once per tick (a second worker only when the first was late).
        let (asked, runs) = (hits.load(Ordering::SeqCst), ticks.len());
        assert!(
            asked >= runs && asked <= runs * 3,
            "{asked} requests for {runs} ticks"
        );
    }
}
