//! Schedules on a real 2-worker `phat dev`, on the embedded ledger and on NATS JetStream:
//! every 1-second tick runs exactly once across the workers (a counter's value is the ticks
//! elapsed), also while a worker is killed with SIGKILL and restarted; with the whole cluster
//! stopped for a few ticks, `run_once` catches up in one run and `skip` drops them; runs are
//! called by the schedule caller; triggers appended by a stranger run nothing; a contract
//! that terminates takes its schedules with it and their deposit goes back to its deployer.

use std::time::{Duration, Instant};

use phat_client::primitives::protocol::{
    schedule_caller, CallResult, LedgerCommand, MissedTicks, Schedule, ScheduleDef, ScheduleOp,
    ScheduleSpec, TriggerEntry,
};
use phat_client::Client;
use phat_testkit::*;

/// The schedule of `counter` (it has one).
async fn schedule_of(client: &Client, counter: &Counter) -> Schedule {
    let mut list = client.schedules(&counter.id).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    list.remove(0)
}

/// Waits until `counter`'s schedule has run at least `runs` times; returns it.
async fn wait_runs(client: &Client, counter: &Counter, runs: u64) -> Schedule {
    eventually(
        format!("the schedule to reach {runs} runs"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            let list = client.schedules(&counter.id).await.ok()?;
            list.into_iter().find(|s| s.runs >= runs)
        },
    )
    .await
}

/// The counter's value at the state where its schedule has `s.runs` runs: read at the seq of
/// the schedule's last run, so value and table are of one state.
async fn value_and_schedule(client: &Client, counter: &Counter) -> (u64, Schedule) {
    // Two reads agree when no run happened in between.
    loop {
        let before = schedule_of(client, counter).await;
        let runs = client
            .triggers(
                &phat_client::Signer::from_suri("//Alice").unwrap(),
                &counter.id,
            )
            .await
            .unwrap();
        let last = runs.last().and_then(|r| r.record.seq).unwrap_or(0);
        let (value, _) = counter.get(client, Some(last)).await;
        let after = schedule_of(client, counter).await;
        if before == after {
            return (value, after);
        }
    }
}

/// N in a trigger log line `schedule 0 tick … (N what): ok`.
fn counted(message: &str, what: &str) -> Option<u64> {
    let inside = message.split_once('(')?.1.split_once(')')?.0;
    inside.strip_suffix(what)?.trim().parse().ok()
}

/// `(last_tick - since) / period`: the ticks a 1-second schedule has passed.
fn ticks(s: &Schedule) -> u64 {
    (s.last_tick - s.since) / 1_000
}

async fn schedules_run_once_per_tick(extra: &[&str]) {
    let mut dev = Dev::start_with(2, extra).await;
    let ep = dev.endpoint.clone();
    let client = Client::new(&ep).unwrap();
    let catch_up = deploy_counter_salted(&client, b"run-once").await;
    let skip = deploy_counter_salted(&client, b"skip").await;
    let (a, b) = (catch_up.id.to_string(), skip.id.to_string());
    let meta = bundle("counter");
    let meta = meta.to_str().unwrap();
    // `phat schedule add --metadata META CONTRACT REST…`.
    let add = |contract: &str, rest: &[&str]| -> Vec<String> {
        ["schedule", "add", "--metadata", meta, contract]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let ok =
        |args: Vec<String>| run_json(&ep, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let refused =
        |args: Vec<String>| run_fail(&ep, &args.iter().map(String::as_str).collect::<Vec<_>>());
    // `inc(by: u64)`: run_once fills `by` with the ticks each run stands for; skip adds 1.
    let added = ok(add(&a, &["inc", "--every", "1s", "--missed", "run-once"]));
    assert!(added["schedule"].is_u64(), "{added}");
    ok(add(&b, &["inc", "1", "--every", "1s"]));
    // Bad definitions are refused with the reason; only the deployer may add.
    let fast = refused(add(&b, &["inc", "1", "--every", "200ms"]));
    assert!(
        fast.contains("bad_schedule") && fast.contains("minimum"),
        "{fast}"
    );
    let cron = refused(add(&b, &["inc", "1", "--cron", "every minute"]));
    assert!(cron.contains("not a cron expression"), "{cron}");
    let bob = refused(add(&b, &["inc", "1", "--every", "1s", "--suri", "//Bob"]));
    assert!(bob.contains("not_deployer"), "{bob}");
    let arity = refused(add(&b, &["get", "--every", "1s", "--missed", "run-once"]));
    assert!(arity.contains("ticks: u64"), "{arity}");

    // Three ticks, then worker-1 is killed (`phat dev` restarts it), then three more.
    wait_runs(&client, &catch_up, 3).await;
    dev.kill_worker(1);
    let s = wait_runs(&client, &catch_up, 6).await;
    let (value, s2) = value_and_schedule(&client, &catch_up).await;
    assert!(s2.runs >= s.runs);
    assert_eq!(value, ticks(&s2), "every tick ran exactly once: {s2:?}");
    let (value_b, sb) = value_and_schedule(&client, &skip).await;
    assert_eq!(value_b, sb.runs, "skip: one increment per run");

    // The whole cluster stops for a few ticks, then starts again from its data.
    dev.stop();
    let stopped = Instant::now();
    // Time passing is what is tested here: ticks fall due while nobody runs.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    dev.restart().await;
    let down = stopped.elapsed();
    let before = schedule_of(&client, &catch_up).await;
    wait_runs(&client, &catch_up, before.runs + 2).await;
    wait_runs(&client, &skip, schedule_of(&client, &skip).await.runs + 2).await;
    let (value, s) = value_and_schedule(&client, &catch_up).await;
    assert_eq!(value, ticks(&s), "run_once counted the missed ticks: {s:?}");
    let (value_b, sb) = value_and_schedule(&client, &skip).await;
    assert_eq!(value_b, sb.runs);
    assert!(
        ticks(&sb) - sb.runs >= 2,
        "skip dropped the ticks missed in {down:?}: {sb:?}"
    );
    // The logs say so: one run stood for several ticks, another skipped some.
    let runs = client
        .triggers(
            &phat_client::Signer::from_suri("//Alice").unwrap(),
            &catch_up.id,
        )
        .await
        .unwrap();
    let most = |logs: &[phat_client::primitives::protocol::LogEntry], what: &str| {
        logs.iter()
            .filter_map(|r| counted(&r.record.message, what))
            .max()
            .unwrap_or(0)
    };
    assert!(most(&runs, "ticks") >= 3, "{runs:#?}");
    let skipped = client
        .triggers(
            &phat_client::Signer::from_suri("//Alice").unwrap(),
            &skip.id,
        )
        .await
        .unwrap();
    assert!(most(&skipped, "skipped") >= 2, "{skipped:#?}");
    // One run per seq, ticks increasing, all started by the schedule caller.
    let mut last_seq = 0;
    for r in runs.iter().rev().take(3) {
        let seq = r.record.seq.unwrap();
        assert_ne!(seq, last_seq);
        last_seq = seq;
        let receipt = client.receipt(seq).await.unwrap();
        assert_eq!(receipt.caller, schedule_caller());
        assert!(matches!(receipt.result, CallResult::Ok(_)), "{receipt:?}");
    }
    let listed = run(&ep, &["triggers", &a]);
    assert!(listed.status.success());
    // Latency, tick due → ordered by the ledger (the run's ledger time), over the on-time runs.
    let mut late: Vec<i64> = runs
        .iter()
        .filter(|r| counted(&r.record.message, "ticks") == Some(1))
        .filter_map(|r| {
            let tick = r.record.message.split(' ').nth(3)?;
            let tick = chrono::DateTime::parse_from_rfc3339(tick).ok()?;
            Some(r.record.timestamp as i64 - tick.timestamp_millis())
        })
        .collect();
    late.sort();
    assert!(!late.is_empty());
    eprintln!(
        "tick due -> ordered ({} runs, {extra:?}): p50 {} ms, p99 {} ms, max {} ms",
        late.len(),
        late[late.len() / 2],
        late[(late.len() * 99 / 100).min(late.len() - 1)],
        late[late.len() - 1]
    );
    // Proposals of one tick by both workers mostly collapse: a duplicate is refused, once.
    let duplicates = {
        let head = Client::new(&dev.workers[0])
            .unwrap()
            .info()
            .await
            .unwrap()
            .seq;
        let mut n = 0;
        for seq in 1..=head {
            if let Ok(r) = client.receipt(seq).await {
                if matches!(&r.result, CallResult::Err(e) if e.kind == "already_run") {
                    n += 1;
                }
            }
        }
        n
    };
    eprintln!(
        "duplicate proposals refused: {duplicates} for {} runs",
        runs.len()
    );

    // A stranger appends triggers straight to the ledger: a tick already run and a tick not
    // due yet run nothing.
    if !extra.contains(&"nats") {
        let token =
            phat_worker::ledger::http::LedgerToken::read(&ledger_token_file(&dev.data())).unwrap();
        let ledger =
            phat_worker::ledger::http::RemoteLedger::with_token(&dev.ledger(), &token).unwrap();
        let s = schedule_of(&client, &catch_up).await;
        for (tick, kind) in [
            (s.last_tick, "already_run"),
            (s.last_tick + 3_600_000, "not_due"),
        ] {
            let entry = LedgerCommand::Trigger(TriggerEntry {
                contract: catch_up.id,
                schedule: s.id,
                tick,
            });
            let appended = phat_worker::ledger::Ledger::append(
                &ledger,
                parity_scale_codec::Encode::encode(&entry),
            )
            .await
            .unwrap();
            // Asked of the worker that was waited for (the endpoint may pick the other).
            wait_seq(&dev.workers[0], appended.seq).await;
            let receipt = Client::new(&dev.workers[0])
                .unwrap()
                .receipt(appended.seq)
                .await
                .unwrap();
            match receipt.result {
                CallResult::Err(e) => assert_eq!(e.kind, kind, "{e:?}"),
                other => panic!("a forged trigger ran: {other:?}"),
            }
        }
    }
    // Removing the schedule stops it.
    let id = schedule_of(&client, &skip).await.id.to_string();
    let removed = run_json(&ep, &["schedule", "rm", &b, &id]);
    client.read_after(removed["seq"].as_u64().unwrap());
    assert!(client.schedules(&skip.id).await.unwrap().is_empty());

    // A contract gets at most 8 schedules; the ninth is refused and changes nothing.
    let many = deploy_counter_salted(&client, b"many").await;
    let alice = phat_client::Signer::from_suri("//Alice").unwrap();
    let def = ScheduleDef {
        spec: ScheduleSpec::Cron {
            expr: "0 0 0 1 1 *".into(),
        },
        data: many.get_call_data().into(),
        gas_limit: 1_000_000_000,
        missed: MissedTicks::Skip,
    };
    // Alice's schedule change, applied: its receipt.
    let change = |op: ScheduleOp| {
        let (client, alice) = (&client, &alice);
        async move {
            let submitted = client.change_schedule(alice, op).await.unwrap();
            submitted.receipt.unwrap()
        }
    };
    let add = || ScheduleOp::Add {
        contract: many.id,
        def: def.clone(),
    };
    let mut last_seq = 0;
    for i in 0..9 {
        let receipt = change(add()).await;
        last_seq = receipt.seq;
        match (i, receipt.result) {
            (0..8, CallResult::Ok(_)) => {}
            (8, CallResult::Err(e)) => assert_eq!(e.kind, "too_many_schedules", "{e:?}"),
            (i, other) => panic!("schedule {i}: {other:?}"),
        }
    }
    assert_eq!(client.schedules(&many.id).await.unwrap().len(), 8);

    // Each schedule holds a storage deposit: removing one gives it back to the deployer,
    // adding one takes the same again (read through the system contract).
    let system = client
        .info()
        .await
        .unwrap()
        .system_contract
        .unwrap()
        .to_string();
    let alice_hex = alice.account().to_string();
    // Read on one worker once it applied `seq` (the endpoint may route to the other); only
    // Alice's own commands change her balance here.
    let w0 = &dev.workers[0];
    let (system, alice_hex) = (&system, &alice_hex);
    let balance = |seq: u64| free_balance(w0, system, alice_hex, seq);
    let first = client.schedules(&many.id).await.unwrap()[0].clone();
    let size = parity_scale_codec::Encode::encoded_size(&first) as u128;
    let price = 10_000_000_000_000u128; // phat dev's storage_deposit_per_byte
    let before = balance(last_seq).await;
    let r = change(ScheduleOp::Remove {
        contract: many.id,
        id: first.id,
    })
    .await;
    assert!(matches!(r.result, CallResult::Ok(_)), "{:?}", r.result);
    let refunded = balance(r.seq).await;
    assert_eq!(refunded - before, size * price, "the deposit comes back");
    let r = change(add()).await;
    assert!(matches!(r.result, CallResult::Ok(_)), "{:?}", r.result);
    let taken = refunded - balance(r.seq).await;
    assert_eq!(taken, size * price, "the deposit is taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_contract_takes_its_schedules_and_returns_their_deposit() {
    let dev = Dev::start(2).await;
    let client = Client::new(&dev.endpoint).unwrap();
    let alice = phat_client::Signer::from_suri("//Alice").unwrap();
    // `terminator.wat`: message 0 reads a cell, message 1 terminates in favour of the caller.
    let wasm = wat::parse_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/hostile/terminator.wat"
    ))
    .unwrap();
    let code = client.upload_code(&alice, wasm).await.unwrap();
    let deploy = |salt: u8| {
        let (client, alice) = (&client, &alice);
        async move {
            let deployed = client
                .submit(
                    alice,
                    phat_client::instantiate(code, vec![], vec![salt]),
                    true,
                )
                .await
                .unwrap();
            match deployed.receipt.unwrap().result {
                CallResult::Ok(o) => o.address.unwrap(),
                other => panic!("deploy: {other:?}"),
            }
        }
    };
    // Twins: `id` gets two schedules, `plain` none (what terminating gives back by itself).
    let (id, plain) = (deploy(7).await, deploy(8).await);
    for ms in [1000, 3_600_000] {
        let def = ScheduleDef {
            spec: ScheduleSpec::Every { ms },
            data: vec![0, 0, 0, 0].into(),
            gas_limit: 1_000_000_000,
            missed: MissedTicks::Skip,
        };
        let op = ScheduleOp::Add { contract: id, def };
        let r = client.change_schedule(&alice, op).await.unwrap();
        let result = r.receipt.unwrap().result;
        assert!(matches!(result, CallResult::Ok(_)), "{result:?}");
    }
    let deposits: u128 = client
        .schedules(&id)
        .await
        .unwrap()
        .iter()
        .map(|s| parity_scale_codec::Encode::encoded_size(s) as u128 * 10_000_000_000_000)
        .sum();
    // The 1-second schedule runs.
    eventually(
        "the schedule to run",
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || client.schedules(&id).await.unwrap()[0].runs > 0,
    )
    .await;

    let info = client.info().await.unwrap();
    let system = info.system_contract.unwrap().to_string();
    let (w0, alice_hex) = (&dev.workers[0], alice.account().to_string());
    // What Alice (deployer and beneficiary) gains when `contract` terminates.
    let terminate = |contract| {
        let (client, alice, system, alice_hex) = (&client, &alice, &system, &alice_hex);
        async move {
            let head = client.info().await.unwrap().ledger_head;
            let before = free_balance(w0, system, alice_hex, head).await;
            let gone = client
                .submit(alice, phat_client::call(contract, vec![1]), true)
                .await
                .unwrap()
                .receipt
                .unwrap();
            assert!(
                matches!(gone.result, CallResult::Ok(_)),
                "{:?}",
                gone.result
            );
            free_balance(w0, system, alice_hex, gone.seq).await - before
        }
    };
    let by_itself = terminate(plain).await;
    let with_schedules = terminate(id).await;
    assert_eq!(
        with_schedules - by_itself,
        deposits,
        "the schedules' deposit comes back"
    );
    // No worker proposes the removed schedules' ticks any more: the ledger stands still (a
    // schedule left behind would be proposed and refused every second).
    let head = client.info().await.unwrap().ledger_head;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        client.info().await.unwrap().ledger_head,
        head,
        "ticks were proposed"
    );
    // And both workers agree on the state that says so.
    let roots: Vec<_> = futures::future::join_all(dev.workers.iter().map(|w| wait_seq(w, head)))
        .await
        .into_iter()
        .map(|i| (i.seq, i.state_root))
        .collect();
    assert_eq!(roots[0], roots[1]);
}

/// A contract schedules itself through the extension (`price-oracle`'s `start_ticking`): the
/// cluster calls its `tick` as the contract, once per tick, the deposit taken from the
/// contract's balance and given back when it clears the schedule; a stranger's `tick` is
/// refused; a contract without the deposit fails the command that asks; and Phala's
/// `System::set_hook`, sent by an administrator, sets the same kind of schedule.
#[tokio::test(flavor = "multi_thread")]
async fn a_contract_schedules_itself_and_pays_for_it() {
    use phat_client::primitives::protocol::ScheduleOrigin;
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let client = Client::new(&ep).unwrap();
    let oracle = bundle("price-oracle");
    let oracle = oracle.to_str().unwrap();
    let deploy = |value: &str, salt: &str| {
        run_json(&ep, &["deploy", oracle, "--value", value, "--salt", salt])["contract"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let funded = deploy("100000000000000000", "funded");
    let id: phat_client::primitives::AccountId = funded.parse().unwrap();
    let system = client
        .info()
        .await
        .unwrap()
        .system_contract
        .unwrap()
        .to_string();
    let w0 = dev.workers[0].clone();
    let balance = |seq| {
        let (w0, system, funded) = (w0.clone(), system.clone(), funded.clone());
        async move { free_balance(&w0, &system, &funded, seq).await }
    };
    let start = balance(0).await;

    let r = run_json(&ep, &["tx", &funded, "start_ticking", "1000"]);
    assert_eq!(r["decoded"], "Ok(Ok(()))", "{r}");
    let set_at = r["receipt"]["seq"].as_u64().unwrap();
    let schedules = client.schedules(&id).await.unwrap();
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    assert_eq!(schedules[0].origin, ScheduleOrigin::Contract);
    let deposit =
        parity_scale_codec::Encode::encoded_size(&schedules[0]) as u128 * 10_000_000_000_000;
    assert_eq!(balance(set_at).await, start - deposit, "the contract paid");

    // Its ticks run, called by the contract itself; a stranger's call is refused.
    eventually(
        "the contract's schedule to tick",
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let n = run_json(&w0, &["query", &funded, "ticks"])["decoded"].clone();
            let ticked = n.as_str().is_some_and(|t| {
                t.trim_start_matches("Ok(")
                    .trim_end_matches(')')
                    .parse::<u64>()
                    .unwrap_or(0)
                    >= 2
            });
            if ticked {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;
    let output = |out: std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let stranger = output(run(&ep, &["tx", &funded, "tick"]));
    assert!(stranger.contains("NotScheduled"), "{stranger}");
    // Setting it again replaces it: still one schedule.
    run_json(&ep, &["tx", &funded, "start_ticking", "2000"]);
    let again = client.schedules(&id).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].def.spec, ScheduleSpec::Every { ms: 2000 });

    // Clearing gives the deposit back and the ticks stop.
    let r = run_json(&ep, &["tx", &funded, "stop_ticking"]);
    assert_eq!(r["decoded"], "Ok(Ok(()))", "{r}");
    let cleared_at = r["receipt"]["seq"].as_u64().unwrap();
    assert!(client.schedules(&id).await.unwrap().is_empty());
    assert_eq!(balance(cleared_at).await, start, "the deposit came back");
    let log = client
        .triggers(&phat_client::Signer::from_suri("//Alice").unwrap(), &id)
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|l| l.record.message.contains("set by the contract")),
        "{log:?}"
    );

    // Without a balance for the deposit the command fails, its writes with it.
    let poor = deploy("0", "poor");
    let text = output(run(&ep, &["tx", &poor, "start_ticking", "1000"]));
    assert!(text.contains("schedule_refused"), "{text}");
    assert!(client
        .schedules(&poor.parse().unwrap())
        .await
        .unwrap()
        .is_empty());

    // Phala's way: the owner (an administrator) hooks the oracle's `tick` to block ends.
    let tick = u32::from_be_bytes(
        phat_client::primitives::blake2_256(b"tick")[..4]
            .try_into()
            .unwrap(),
    );
    let r = run_json(
        &ep,
        &[
            "tx",
            &system,
            "System::set_hook",
            "OnBlockEnd",
            &funded,
            &tick.to_string(),
            "1000000000",
        ],
    );
    assert_eq!(r["decoded"], "Ok(Ok(()))", "{r}");
    let hooked = client.schedules(&id).await.unwrap();
    assert_eq!(hooked.len(), 1, "{hooked:?}");
    assert_eq!(hooked[0].origin, ScheduleOrigin::Contract);
    assert_eq!(hooked[0].def.spec, ScheduleSpec::Every { ms: 12_000 });
    // A stranger may not hook another contract.
    let refused = output(run(
        &ep,
        &[
            "tx",
            &system,
            "System::set_hook",
            "OnBlockEnd",
            &funded,
            &tick.to_string(),
            "1000000000",
            "--suri",
            "//Bob",
        ],
    ));
    assert!(refused.contains("PermisionDenied"), "{refused}");
    // Both workers applied all of it to the same state.
    let head = client.info().await.unwrap().ledger_head;
    let roots: Vec<_> =
        futures::future::join_all(dev.workers.iter().map(|w| root_at(w, head))).await;
    assert_eq!(roots[0], roots[1]);
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn schedules_run_once_per_tick_on_the_embedded_ledger() {
        schedules_run_once_per_tick(&[]).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn schedules_run_once_per_tick_on_nats() {
        schedules_run_once_per_tick(&["--ledger", "nats"]).await;
    }
}
