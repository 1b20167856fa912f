//! In-process workers over one embedded ledger: determinism across batch sizes, the API's
//! documents (OpenAPI, metrics, health), and the cluster simulator (`simulator.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use phat_client::primitives::protocol::{
    Call, CallResult, MissedTicks, ScheduleDef, ScheduleOp, ScheduleSpec,
};
use phat_client::{Client, Contract, Signer};
use phat_worker::ledger::{EmbeddedLedger, Ledger, LedgerConfig};
use phat_worker::{Worker, WorkerConfig};

mod simulator;

fn erc20() -> Contract {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/erc20/Cargo.toml"
    );
    let a = phat_builder::build(&phat_builder::BuildOptions::new(manifest), |_| {}).unwrap();
    Contract::load(a.bundle.unwrap()).unwrap()
}

/// Uploads and instantiates erc20 with `supply` as //Alice; returns the contract.
async fn deploy_erc20(
    client: &Client,
    erc20: &Contract,
    supply: &str,
) -> phat_client::primitives::AccountId {
    let alice = Signer::from_suri("//Alice").unwrap();
    let code = client
        .upload_code(&alice, erc20.wasm().unwrap().to_vec())
        .await
        .unwrap();
    let data = erc20.encode_constructor("new", &[supply]).unwrap();
    let deploy = client
        .submit(&alice, phat_client::instantiate(code, data, vec![]), true)
        .await
        .unwrap();
    let CallResult::Ok(o) = deploy.receipt.unwrap().result else {
        panic!("deploy")
    };
    o.address.unwrap()
}

/// An embedded ledger in `dir`.
fn embedded_ledger(dir: &std::path::Path) -> Arc<dyn Ledger> {
    Arc::new(EmbeddedLedger::open(&dir.join("ledger.redb"), LedgerConfig::default()).unwrap())
}

/// Starts a worker on 127.0.0.1:0; returns its URL and a stop switch.
async fn start(
    name: &str,
    dir: &std::path::Path,
    ledger: Arc<dyn Ledger>,
    batch: usize,
) -> (Worker, String, tokio::sync::oneshot::Sender<()>) {
    start_with(name, dir, ledger, batch, |_| {}).await
}

/// [`start`], with `tweak` applied to the worker's configuration.
async fn start_with(
    name: &str,
    dir: &std::path::Path,
    ledger: Arc<dyn Ledger>,
    batch: usize,
    tweak: impl FnOnce(&mut WorkerConfig),
) -> (Worker, String, tokio::sync::oneshot::Sender<()>) {
    let (worker, listener) = open_worker(name, dir, ledger, batch, tweak).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let w = worker.clone();
    tokio::spawn(async move {
        w.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (worker, format!("http://{addr}"), tx)
}

/// Opens the worker `name` of the cluster in `dir` (its data in `dir/name`), writing the
/// cluster's genesis to the ledger first if none is there; returns it and a listener on
/// 127.0.0.1 for [`Worker::serve`].
async fn open_worker(
    name: &str,
    dir: &std::path::Path,
    ledger: Arc<dyn Ledger>,
    batch: usize,
    tweak: impl FnOnce(&mut WorkerConfig),
) -> Result<(Worker, tokio::net::TcpListener), phat_worker::WorkerError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = WorkerConfig::new(name, dir.join(name), addr);
    config.apply_batch = batch;
    tweak(&mut config);
    // Every worker of the cluster signs its attestation with the same dev root.
    let root = dir.join("dev-root.key");
    let genesis = phat_worker::Genesis {
        // Uploads need a funded signer.
        balances: vec![(Signer::from_suri("//Alice").unwrap().account(), 1 << 60)],
        encryption: true,
        dev_root: Some(phat_worker::dev_root_public(&root).unwrap()),
        limits: None,
        tee_policy: None,
        owner: Some(Signer::from_suri("//Alice").unwrap().account()),
        system: Some(phat_worker::SystemSetup::bundled()),
        deploy: Default::default(),
    };
    ledger
        .create_meta(
            phat_worker::GENESIS_KEY,
            parity_scale_codec::Encode::encode(&genesis),
        )
        .await
        .unwrap();
    config.dev_attestation_root = Some(root);
    let worker = Worker::open(config, ledger).await?;
    Ok((worker, listener))
}

/// One shutdown path: once `serve` returns, every task of the worker has ended, so nothing
/// holds its store and the same data directory opens again at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_leaves_nothing_running_and_reopens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (worker, listener) = open_worker("a", dir.path(), ledger.clone(), 64, |_| {})
        .await
        .unwrap();
    let served = tokio::spawn({
        let w = worker.clone();
        async move { w.serve(listener, std::future::pending()).await }
    });
    // Its background tasks are at work: the first applies its own join.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.applied_seq() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the join was not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shut_down();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("serve did not return after the shutdown")
        .unwrap()
        .unwrap();
    drop(worker);
    let (again, _) = open_worker("a", dir.path(), ledger, 64, |_| {})
        .await
        .expect("the data directory is still held");
    assert!(again.applied_seq() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn state_roots_do_not_depend_on_batching_or_timing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let erc20 = erc20();
    // Worker A applies one entry per commit and follows live; B starts late with big batches.
    let (a, url_a, stop_a) = start("a", dir.path(), ledger.clone(), 1).await;
    let client = Client::new(&url_a).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let id = deploy_erc20(&client, &erc20, "1000000").await;
    let mut last = 0;
    for i in 0..200u32 {
        let to = Signer::from_suri(&format!("//user{}", i % 7))
            .unwrap()
            .account();
        let data = erc20
            .encode_message("transfer", &[to.to_hex(), format!("{}", i + 1)])
            .unwrap();
        last = client
            .submit(&alice, phat_client::call(id, data), false)
            .await
            .unwrap()
            .seq;
    }
    // One command that fails and one that reverts are part of the history too.
    let bob = Signer::from_suri("//Bob").unwrap();
    let data = erc20
        .encode_message("transfer", &[alice.account().to_hex(), "999999999".into()])
        .unwrap();
    last = last.max(
        client
            .submit(&bob, phat_client::call(id, data), true)
            .await
            .unwrap()
            .seq,
    );
    // A contract instantiated and given a schedule by consecutive commands: A applies them in
    // two commits, B (below) in one batch; the schedule must see the new contract in both.
    let code = phat_client::primitives::CodeHash::of(erc20.wasm().unwrap());
    let ctor = erc20.encode_constructor("new", &["5"]).unwrap();
    let salt = b"batched".to_vec();
    let second = phat_client::primitives::contract_address(&alice.account(), &code, &ctor, &salt);
    client
        .submit(&alice, phat_client::instantiate(code, ctor, salt), true)
        .await
        .unwrap();
    let def = ScheduleDef {
        spec: ScheduleSpec::Cron {
            expr: "0 0 0 1 1 *".into(),
        },
        data: erc20
            .encode_message("total_supply", &[] as &[&str])
            .unwrap()
            .into(),
        gas_limit: 1_000_000_000,
        missed: MissedTicks::Skip,
    };
    let added = client
        .submit(
            &alice,
            Call::Schedule {
                op: ScheduleOp::Add {
                    contract: second,
                    def,
                },
            },
            true,
        )
        .await
        .unwrap();
    assert!(
        matches!(added.receipt.as_ref().unwrap().result, CallResult::Ok(_)),
        "{added:?}"
    );
    last = last.max(added.seq);
    let (b, url_b, stop_b) = start("b", dir.path(), ledger.clone(), 4096).await;
    for w in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while w.applied_seq() < last {
            assert!(std::time::Instant::now() < deadline, "worker stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ia = Client::new(&url_a).unwrap().info().await.unwrap();
    let ib = Client::new(&url_b).unwrap().info().await.unwrap();
    assert_eq!(ia.seq, ib.seq);
    assert_eq!(ia.state_root, ib.state_root);
    let cb = Client::new(&url_b).unwrap();
    for seq in 1..=last {
        assert_eq!(
            client.receipt(seq).await.unwrap(),
            cb.receipt(seq).await.unwrap()
        );
    }
    let _ = stop_a.send(());
    let _ = stop_b.send(());
}

/// Waits until every worker in `workers` has applied `seq`.
async fn applied(workers: &[&Worker], seq: u64) {
    for w in workers {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while w.applied_seq() < seq {
            assert!(std::time::Instant::now() < deadline, "worker stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The recipe of a tenant splitting the cluster: a nonce used by a command that then expired
/// is used again. The verdict on the reuse must not depend on where a worker's batches end
/// (A commits every entry on its own, B applies the whole history in one batch).
#[tokio::test(flavor = "multi_thread")]
async fn a_nonce_reused_after_it_expired_gets_one_verdict_on_every_worker() {
    use phat_client::primitives::protocol::RequestBody;
    use phat_client::primitives::Mode;
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let erc20 = erc20();
    let (a, url_a, stop_a) = start("a", dir.path(), ledger.clone(), 1).await;
    let client = Client::new(&url_a).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let bob = Signer::from_suri("//Bob").unwrap().account();
    let id = deploy_erc20(&client, &erc20, "1000").await;
    let cluster = client.info().await.unwrap().cluster_key;
    let transfer = |amount: u32| {
        phat_client::call(
            id,
            erc20
                .encode_message("transfer", &[bob.to_hex(), amount.to_string()])
                .unwrap(),
        )
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let nonce = 0x5eed_u64;
    let signed = |amount: u32, ttl_ms: u64| {
        alice.sign_request(
            &cluster,
            &RequestBody {
                mode: Mode::Command,
                call: transfer(amount),
                nonce,
                expires_at: now() + ttl_ms,
                certificate: None,
            },
        )
    };
    let kind = |s: &phat_client::primitives::protocol::Submitted| match &s
        .receipt
        .as_ref()
        .unwrap()
        .result
    {
        CallResult::Ok(o) if !o.reverted => "ok".to_string(),
        CallResult::Ok(_) => "reverted".to_string(),
        CallResult::Err(e) => e.kind.clone(),
        other => format!("{other:?}"),
    };
    // R1 uses the nonce for one second.
    let r1 = client.submit_signed(&signed(1, 1_000), true).await.unwrap();
    assert_eq!(kind(&r1), "ok");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Any later command: A commits it on its own, and prunes R1's expired nonce.
    client.submit(&alice, transfer(0), true).await.unwrap();
    // R2 uses the same nonce, valid for an hour: R1 cannot be applied any more, so this is
    // no replay.
    let r2 = client
        .submit_signed(&signed(2, 3_600_000), true)
        .await
        .unwrap();
    assert_eq!(kind(&r2), "ok", "{r2:?}");
    // R3 reuses it while R2 still holds it: a replay, on every worker.
    let r3 = client.submit_signed(&signed(3, 3_600_000), true).await;
    match r3 {
        Err(phat_client::ClientError::Api { kind, .. }) => assert_eq!(kind, "replayed"),
        other => panic!("a live nonce was accepted again: {other:?}"),
    }
    let last = r2.seq;
    let (b, url_b, stop_b) = start("b", dir.path(), ledger.clone(), 4096).await;
    applied(&[&a, &b], last).await;
    let cb = Client::new(&url_b).unwrap();
    for seq in 1..=last {
        assert_eq!(
            client.receipt(seq).await.unwrap(),
            cb.receipt(seq).await.unwrap(),
            "the workers disagree on the receipt of seq {seq}"
        );
    }
    let (ia, ib) = (client.info().await.unwrap(), cb.info().await.unwrap());
    assert_eq!((ia.seq, ia.state_root), (ib.seq, ib.state_root));
    let _ = stop_a.send(());
    let _ = stop_b.send(());
}

/// A ledger writer appends a command sealed to a key epoch the cluster has not started. The
/// workers applying it live hold no such key; a worker replaying it later may hold the key
/// already (its data directory kept the later epochs while its state was rebuilt). Both must
/// give it the same receipt, or the roots split.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_sealed_to_a_future_epoch_is_refused_by_every_worker() {
    use phat_client::primitives::protocol::{ClusterOp, LedgerCommand};
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (a, url_a, stop_a) = start("a", dir.path(), ledger.clone(), 1).await;
    let client = Client::new(&url_a).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    // Junk sealed to no one, labelled with epoch 1 while the cluster is at epoch 0.
    let (junk, _) = phat_client::crypto::seal(
        &phat_client::crypto::EnvelopeSecret::generate().public(),
        phat_client::crypto::Purpose::Command,
        b"not a request",
    )
    .unwrap();
    let planted = LedgerCommand::SealedAt {
        epoch: 1,
        sealed: junk,
    };
    let planted_at = ledger
        .append(parity_scale_codec::Encode::encode(&planted))
        .await
        .unwrap()
        .seq;
    let rotated = client
        .change_cluster(&alice, ClusterOp::RotateKey)
        .await
        .unwrap();
    assert!(rotated.seq > planted_at);
    let last = client
        .submit(
            &alice,
            Call::Cluster {
                op: ClusterOp::RotateKey,
            },
            true,
        )
        .await
        .unwrap()
        .seq;
    applied(&[&a], last).await;
    let receipts: Vec<_> = {
        let mut out = Vec::new();
        for seq in 1..=last {
            out.push(client.receipt(seq).await.unwrap());
        }
        out
    };
    let CallResult::Err(e) = &receipts[planted_at as usize - 1].result else {
        panic!(
            "the planted entry was not refused: {:?}",
            receipts[planted_at as usize - 1]
        );
    };
    assert_eq!(e.kind, "unknown_epoch");
    let root = client.receipt(last).await.unwrap().state_root;
    let _ = stop_a.send(());
    // Worker A's keys (identity, cluster secret, epochs 1 and 2) without its state: it
    // replays from seq 1 holding the key of epoch 1 from the start.
    let keys_only = dir.path().join("c");
    std::fs::create_dir_all(&keys_only).unwrap();
    for f in std::fs::read_dir(dir.path().join("a")).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_string_lossy().ends_with(".sealed") {
            std::fs::copy(f.path(), keys_only.join(f.file_name())).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (c, url_c, stop_c) = start("c", dir.path(), ledger.clone(), 4096).await;
    applied(&[&c], last).await;
    let cc = Client::new(&url_c).unwrap();
    for seq in 1..=last {
        assert_eq!(
            receipts[seq as usize - 1],
            cc.receipt(seq).await.unwrap(),
            "the replaying worker disagrees on seq {seq}"
        );
    }
    assert_eq!(cc.receipt(last).await.unwrap().state_root, root);
    let _ = stop_c.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (_w, url, stop) = start("w", dir.path(), ledger, 64).await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let doc: serde_json::Value = http
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Every documented worker path is served (not the router's empty 404).
    for (path, ops) in paths {
        if path == "/v1/cluster" {
            continue; // the `phat dev` endpoint's
        }
        let concrete = path
            .replace("{seq}", "1")
            .replace("{id}", &format!("0x{}", "00".repeat(32)))
            .replace("{hash}", &format!("0x{}", "00".repeat(32)));
        for method in ops.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => http.get(format!("{url}{concrete}")),
                "post" => http
                    .post(format!("{url}{concrete}"))
                    .header("content-type", "application/json")
                    .body("{}"),
                other => panic!("undocumented method {other}"),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert!(
                !(status == 404 && body.is_empty()) && status != 405,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }

    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "phat_queries",
        "phat_commands_applied_total",
        "phat_applied_seq",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_is_the_deployers_and_holds_commands_and_queries() {
    use futures::StreamExt;
    use phat_client::primitives::protocol::{LogFilter, LogKind};
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (_w, url, stop) = start("w", dir.path(), ledger.clone(), 64).await;
    let client = Client::new(&url).unwrap();
    let erc20 = erc20();
    let alice = Signer::from_suri("//Alice").unwrap();
    let bob = Signer::from_suri("//Bob").unwrap();
    let id = deploy_erc20(&client, &erc20, "100").await;
    // The constructor's Transfer event is history by now.
    let history = client.logs(&alice, &id).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].record.level, "event");
    assert_eq!(history[0].index, Some(0));
    // Clients get the event itself next to its text summary.
    let event = history[0].event.as_ref().expect("the structured event");
    assert_eq!(event.contract, id);
    assert!(
        !event.topics.is_empty() && !event.data.0.is_empty(),
        "{event:?}"
    );

    // Nobody but the deployer reads it, until the deployer allows them.
    match client.logs(&bob, &id).await {
        Err(phat_client::ClientError::Api { kind, .. }) => assert_eq!(kind, "not_log_reader"),
        other => panic!("bob read alice's log: {other:?}"),
    }

    let mut stream = Box::pin(client.follow_logs(&alice, id, LogFilter::default()));
    async fn next(
        s: &mut (impl futures::Stream<
            Item = Result<phat_client::primitives::protocol::LogEntry, phat_client::ClientError>,
        > + Unpin),
    ) -> phat_client::primitives::protocol::LogEntry {
        tokio::time::timeout(Duration::from_secs(15), s.next())
            .await
            .expect("a record in time")
            .expect("the stream goes on")
            .expect("a record, not an error")
    }
    let first = next(&mut stream).await;
    assert_eq!(first, history[0]);
    let data = erc20
        .encode_message("transfer", &[bob.account().to_hex(), "7".into()])
        .unwrap();
    let sub = client
        .submit(&alice, phat_client::call(id, data), true)
        .await
        .unwrap();
    let live = next(&mut stream).await;
    assert_eq!(live.record.seq, Some(sub.seq));
    assert_eq!(live.record.level, "event");
    assert_eq!(live.index, Some(1));
    let receipt = sub.receipt.expect("receipt");
    assert_eq!(live.event.as_ref(), receipt.events.first());

    // A query that fails leaves who asked, a digest of its input and how it ended, on
    // every worker once ordered; the input itself stays with the caller.
    let bad = vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3];
    let answer = client
        .query(&bob, phat_client::call(id, bad.clone()), None)
        .await
        .unwrap();
    assert!(
        !matches!(answer.result, phat_client::primitives::protocol::CallResult::Ok(ref o) if !o.reverted),
        "{answer:?}"
    );
    let query = next(&mut stream).await;
    assert_eq!(query.record.level, "query");
    assert_eq!(query.record.origin, phat_client::primitives::Mode::Query);
    assert_eq!(query.record.seq, None);
    assert!(
        query.record.message.contains(&bob.account().to_string()),
        "{query:?}"
    );
    let digest = hex::encode(phat_client::primitives::blake2_256(&bad));
    assert!(query.record.message.contains(&digest), "{query:?}");
    assert!(!query.record.message.contains("deadbeef"), "{query:?}");
    let output = next(&mut stream).await;
    assert_eq!(output.record.level, "output");
    assert_eq!(output.index, Some(query.index.unwrap() + 1));

    // A query that succeeds quietly leaves nothing.
    let balance = erc20
        .encode_message("balance_of", &[bob.account().to_hex()])
        .unwrap();
    client
        .query(&bob, phat_client::call(id, balance), None)
        .await
        .unwrap();

    // Filters: kinds, the last N, since a time.
    let kinds = LogFilter {
        kinds: vec![LogKind::Event],
        ..LogFilter::default()
    };
    let (events, next_index) = client.read_logs(&alice, &id, kinds).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(next_index, 4);
    let tail = LogFilter {
        limit: 2,
        tail: true,
        ..LogFilter::default()
    };
    let (last, _) = client.read_logs(&alice, &id, tail).await.unwrap();
    let levels: Vec<_> = last.iter().map(|e| e.record.level.as_str()).collect();
    assert_eq!(levels, ["query", "output"]);
    let since = LogFilter {
        since: Some(query.record.timestamp),
        ..LogFilter::default()
    };
    let (recent, _) = client.read_logs(&alice, &id, since).await.unwrap();
    assert!(recent
        .iter()
        .all(|e| e.record.timestamp >= query.record.timestamp));
    assert_eq!(recent.first().map(|e| e.index), Some(query.index));

    // The deployer allows bob; then bob reads. Only the deployer sets the readers.
    let refused = client
        .set_log_readers(&bob, &id, vec![bob.account()])
        .await
        .unwrap();
    match refused.receipt.unwrap().result {
        phat_client::primitives::protocol::CallResult::Err(e) => assert_eq!(e.kind, "not_deployer"),
        other => panic!("bob set alice's readers: {other:?}"),
    }
    client
        .set_log_readers(&alice, &id, vec![bob.account()])
        .await
        .unwrap();
    assert_eq!(client.logs(&bob, &id).await.unwrap().len(), 4);

    // Whoever writes to the ledger can append the worker's entry again, or one of their own:
    // neither reaches the log.
    use parity_scale_codec::{Decode, Encode};
    use phat_client::primitives::protocol::{Bytes, LedgerCommand, QueryLogsEntry, Receipt};
    let entries = ledger.read(1, 1_000, Duration::from_secs(1)).await.unwrap();
    let shipped = entries
        .iter()
        .find(|e| {
            matches!(
                LedgerCommand::decode(&mut &e.payload[..]),
                Ok(LedgerCommand::QueryLogs(_))
            )
        })
        .expect("the worker's query log entry");
    let receipt_of = |seq| {
        let client = &client;
        async move {
            loop {
                match client.receipt(seq).await {
                    Ok(r) => return r,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    };
    let refusal = |r: Receipt| match r.result {
        phat_client::primitives::protocol::CallResult::Err(e) => e.kind,
        other => panic!("applied: {other:?}"),
    };
    let replay = ledger.append(shipped.payload.clone()).await.unwrap();
    assert_eq!(refusal(receipt_of(replay.seq).await), "replayed");
    let LedgerCommand::QueryLogs(real) = LedgerCommand::decode(&mut &shipped.payload[..]).unwrap()
    else {
        unreachable!()
    };
    let forged_records = vec![phat_client::primitives::protocol::LogRecord {
        contract: id,
        level: "error".into(),
        origin: phat_client::primitives::Mode::Query,
        seq: None,
        timestamp: 1,
        message: "forged".into(),
    }]
    .encode();
    // Another worker's key, and the real worker's with a signature that is not its own.
    for forged in [
        QueryLogsEntry {
            worker: phat_client::primitives::Hash([9; 32]),
            nonce: 1,
            records: Bytes(forged_records.clone()),
            ..real.clone()
        },
        QueryLogsEntry {
            nonce: 2,
            records: Bytes(forged_records.clone()),
            ..real.clone()
        },
    ] {
        let seq = ledger
            .append(LedgerCommand::QueryLogs(forged).encode())
            .await
            .unwrap()
            .seq;
        let kind = refusal(receipt_of(seq).await);
        assert!(kind == "not_a_member" || kind == "bad_signature", "{kind}");
    }
    let after = client.logs(&alice, &id).await.unwrap();
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.iter().all(|e| e.record.message != "forged"));
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_refuses_to_start_under_a_changed_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (worker, _url, stop) = start("a", dir.path(), ledger.clone(), 16).await;
    let _ = stop.send(());
    drop(worker);
    // Someone with write access to the ledger's metadata pins their own dev root (which
    // would let their self-signed worker receive the cluster secret).
    let raw = ledger
        .get_meta(phat_worker::GENESIS_KEY)
        .await
        .unwrap()
        .unwrap();
    let mut genesis =
        <phat_worker::Genesis as parity_scale_codec::Decode>::decode(&mut &raw[..]).unwrap();
    genesis.dev_root = Some([7; 32]);
    ledger
        .put_meta(
            phat_worker::GENESIS_KEY,
            parity_scale_codec::Encode::encode(&genesis),
        )
        .await
        .unwrap();
    let mut config = WorkerConfig::new("a", dir.path().join("a"), "127.0.0.1:0".parse().unwrap());
    config.dev_attestation_root = Some(dir.path().join("dev-root.key"));
    // The store may still be closing: retry while it is locked.
    let mut result = Worker::open(config.clone(), ledger.clone()).await;
    for _ in 0..50 {
        match &result {
            Err(phat_worker::WorkerError::Store(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                result = Worker::open(config.clone(), ledger.clone()).await;
            }
            _ => break,
        }
    }
    match result {
        Err(e) => assert!(e.to_string().contains("genesis"), "{e}"),
        Ok(_) => panic!("the worker started under a changed genesis"),
    }
}

/// A new worker given the cluster's genesis digest refuses any other genesis a ledger writer
/// put there, and a worker configured with a dev root refuses a genesis that pins another:
/// its genuine report would otherwise vouch for someone else's cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_worker_refuses_a_genesis_it_was_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (worker, _url, stop) = start("a", dir.path(), ledger.clone(), 16).await;
    let _ = stop.send(());
    drop(worker);
    let raw = ledger
        .get_meta(phat_worker::GENESIS_KEY)
        .await
        .unwrap()
        .unwrap();
    let genesis = phat_worker::Genesis::decode_stored(&raw).unwrap();
    let open = |name: &str, pin: Option<[u8; 32]>, root: &str| {
        let mut config =
            WorkerConfig::new(name, dir.path().join(name), "127.0.0.1:0".parse().unwrap());
        config.dev_attestation_root = Some(dir.path().join(root));
        config.genesis_pin = pin;
        Worker::open(config, ledger.clone())
    };
    let mut wrong = genesis.digest();
    wrong[0] ^= 1;
    match open("pinned-wrong", Some(wrong), "dev-root.key").await {
        Err(e) => assert!(e.to_string().contains("not the pinned"), "{e}"),
        Ok(_) => panic!("a worker started under a genesis it was not pinned to"),
    }
    phat_worker::read_or_create_root(&dir.path().join("another-root.key")).unwrap();
    match open("other-root", None, "another-root.key").await {
        Err(e) => assert!(e.to_string().contains("pins dev root"), "{e}"),
        Ok(_) => panic!("a worker started under a genesis pinning another dev root"),
    }
    // The right pin passes: the worker goes on to wait for its handover (nobody serves it
    // here, worker a is stopped), which is past every genesis check.
    match tokio::time::timeout(
        Duration::from_secs(3),
        open("pinned-right", Some(genesis.digest()), "dev-root.key"),
    )
    .await
    {
        Err(_) | Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("the right pin was refused: {e}"),
    }
}

/// A session's opening captured on the wire and replayed to the worker after it restarted
/// (it remembers neither the session nor the request's nonce then) is answered under another
/// reply key: the worker salts each opening's reply key with fresh randomness, so no two
/// answers are ever sealed under the same key and counter (which would give away the XOR of
/// the two answers).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_opening_replayed_after_a_restart_gets_a_fresh_reply_key() {
    use parity_scale_codec::Encode;
    use phat_client::crypto::Purpose;
    use phat_client::primitives::protocol::{QueryOpen, SealedQuery, SealedReply};
    use phat_client::primitives::Mode;
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (worker, url, stop) = start("a", dir.path(), ledger.clone(), 16).await;
    let info = Client::new(&url).unwrap().info().await.unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let system = info.system_contract.expect("a system contract");
    let request = phat_client::sign(
        &alice,
        &info.cluster_key,
        Mode::Query,
        phat_client::call(system, vec![0; 4]),
    );
    let open = QueryOpen {
        request,
        min_seq: None,
    };
    let (sealed, keys) =
        phat_client::crypto::seal(&info.worker_key.0, Purpose::Query, &open.encode()).unwrap();
    let opening = SealedQuery {
        worker: info.worker_key,
        session: sealed.ephemeral,
        counter: 0,
        ciphertext: sealed.ciphertext,
    };
    let send = |url: String, q: SealedQuery| async move {
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/query/sealed"))
            .json(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<SealedReply>().await.unwrap()
    };
    let first = send(url.clone(), opening.clone()).await;
    let _ = stop.send(());
    drop(worker);
    // The same data directory, a new process: the opening is new to it.
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let config = WorkerConfig::new("a", dir.path().join("a"), "127.0.0.1:0".parse().unwrap());
        let mut config = config;
        config.dev_attestation_root = Some(dir.path().join("dev-root.key"));
        if let Ok(w) = Worker::open(config, ledger.clone()).await {
            again = Some(w);
            break;
        }
    }
    let worker = again.expect("the worker starts again");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let w = worker.clone();
    tokio::spawn(async move {
        w.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    let second = send(url, opening).await;
    let (s1, s2) = (first.salt.unwrap(), second.salt.unwrap());
    assert_ne!(s1, s2, "the same reply key for a replayed opening");
    // Each answer opens only under its own salt.
    let k1 = keys.with_reply_salt(&s1.0);
    let k2 = keys.with_reply_salt(&s2.0);
    assert!(k1.open_reply(0, &first.ciphertext.0).is_ok());
    assert!(k2.open_reply(0, &second.ciphertext.0).is_ok());
    assert!(k1.open_reply(0, &second.ciphertext.0).is_err());
    assert!(keys.open_reply(0, &first.ciphertext.0).is_err());
    let _ = tx.send(());
}

/// A funded account may put only so many code blobs and metadata documents into the ledger
/// (each is kept for good, and nobody pays for it); the same one again costs nothing new.
#[tokio::test(flavor = "multi_thread")]
async fn uploads_and_metadata_are_capped_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (_w, url, stop) = start_with("a", dir.path(), ledger.clone(), 16, |c| {
        c.account_quota = 2;
    })
    .await;
    let client = Client::new(&url).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    // Three different valid modules: erc20 with a custom section of one byte each.
    let base = erc20().wasm().unwrap().to_vec();
    let variant = |i: u8| [base.clone(), vec![0x00, 0x03, 0x01, b'x', i]].concat();
    let quota_refused = |r: Result<_, phat_client::ClientError>| match r {
        Err(phat_client::ClientError::Api { status, kind, .. }) => {
            assert_eq!((status, kind.as_str()), (403, "quota_exceeded"))
        }
        other => panic!("over the quota: {other:?}"),
    };
    let one = client.upload_code(&alice, variant(1)).await.unwrap();
    let two = client.upload_code(&alice, variant(2)).await.unwrap();
    quota_refused(client.upload_code(&alice, variant(3)).await.map(|_| ()));
    assert_eq!(client.upload_code(&alice, variant(1)).await.unwrap(), one);
    let doc = serde_json::json!({"source": {"hash": "0x00"}});
    client.put_metadata(&alice, &one, &doc).await.unwrap();
    client.put_metadata(&alice, &two, &doc).await.unwrap();
    client.put_metadata(&alice, &one, &doc).await.unwrap();
    // A third document, for code already in the ledger (erc20 itself, uploaded by nobody
    // counted here: the ledger is content-addressed), is one too many.
    let third = phat_client::primitives::CodeHash::of(&base);
    ledger.put_code(base.clone()).await.unwrap();
    quota_refused(client.put_metadata(&alice, &third, &doc).await);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_table_read_waits_for_its_min_seq() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = embedded_ledger(dir.path());
    let (_w, url, stop) = start("w", dir.path(), ledger, 64).await;
    let client = Client::new(&url).unwrap();
    let erc20 = erc20();
    let id = deploy_erc20(&client, &erc20, "1000").await;
    let head = client.info().await.unwrap().ledger_head;
    let http = reqwest::Client::new();
    let jobs = |query: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(format!("{url}/v1/contracts/{id}/jobs{query}"))
                .send()
                .await
                .unwrap()
        }
    };
    // A seq already applied answers at once; a seq not ordered yet is waited for.
    assert_eq!(jobs(format!("?min_seq={head}")).await.status(), 200);
    let waiting = tokio::spawn(jobs(format!("?min_seq={}", head + 1)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "answered before seq {} existed",
        head + 1
    );
    let alice = Signer::from_suri("//Alice").unwrap();
    let data = erc20
        .encode_message("transfer", &[alice.account().to_hex(), "1".into()])
        .unwrap();
    let seq = client
        .submit(&alice, phat_client::call(id, data), true)
        .await
        .unwrap()
        .seq;
    assert_eq!(seq, head + 1);
    let answer = waiting.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "[]");
    // A min_seq that is not a number is bad input.
    assert_eq!(jobs("?min_seq=soon".into()).await.status(), 400);
    let _ = stop.send(());
}
