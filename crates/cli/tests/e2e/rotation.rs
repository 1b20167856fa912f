//! Key rotation and worker revocation on a real 3-worker `phat dev`: the owner rotates the
//! cluster secret, then revokes one worker; the others keep applying with equal roots, old
//! state stays readable, and the revoked worker's own data directory opens the commands of
//! the epochs it held and none after.

use std::time::{Duration, Instant};

use phat_client::primitives::protocol::{Call, ClusterOp, LedgerCommand, RequestBody};
use phat_client::{Client, Signer};
use phat_testkit::*;
use phat_worker::ledger::http::{LedgerToken, RemoteLedger};
use phat_worker::ledger::Ledger;

/// Waits until every worker in `urls` reports key epoch `epoch`; returns their infos.
async fn wait_epoch(
    urls: &[String],
    epoch: u32,
) -> Vec<phat_client::primitives::protocol::WorkerInfo> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut infos = Vec::new();
    for url in urls {
        let c = Client::new(url).unwrap();
        infos.push(
            eventually(
                format!("{url} to reach key epoch {epoch}"),
                deadline.saturating_duration_since(Instant::now()),
                Duration::from_millis(50),
                async || c.info().await.ok().filter(|i| i.epoch >= epoch),
            )
            .await,
        );
    }
    infos
}

/// `phat cluster ARGS` as //Alice (the owner `phat dev` names); its JSON answer.
fn cluster(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    run_json(endpoint, &all)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_rotates_the_key_and_a_revoked_worker_reads_nothing_new() {
    let dev = Dev::start(3).await;
    let ep = dev.endpoint.clone();
    let client = Client::new(&ep).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let counter = deploy_counter(&client).await;
    for _ in 0..3 {
        client.submit(&alice, counter.inc(), true).await.unwrap();
    }

    // Only the owner may change the cluster: the refusal is a receipt like any other.
    let bob = run_fail(&ep, &["cluster", "rotate-key", "--suri", "//Bob"]);
    assert!(bob.contains("not_owner"), "{bob}");
    let w = &dev.workers;
    let before = wait_epoch(w, 0).await;
    assert!(before
        .iter()
        .all(|i| i.epoch == 0 && i.envelope_key.is_none()));

    // Rotation: every worker takes epoch 1, the same new key; the cluster's id stays.
    let started = Instant::now();
    let rotated = cluster(&ep, &["rotate-key"]);
    assert_eq!(rotated["epoch"], 1, "{rotated}");
    let ordered = started.elapsed();
    let epoch1 = wait_epoch(w, 1).await;
    eprintln!(
        "rotation: receipt after {ordered:?} (the CLI process included), all 3 workers at the \
         new epoch after {:?}",
        started.elapsed()
    );
    let key1 = epoch1[0].envelope_key.unwrap();
    for i in &epoch1 {
        assert_eq!(i.envelope_key, Some(key1), "{}", i.name);
        assert_eq!(
            i.cluster_key, before[0].cluster_key,
            "the cluster id never changes"
        );
        assert_eq!(
            i.attestation.cluster_key,
            Some(key1),
            "the report covers the new key"
        );
    }
    assert_ne!(key1, before[0].cluster_key);
    // A client that read the old key is told to seal again, and does so by itself.
    let sub = client.submit(&alice, counter.inc(), true).await.unwrap();
    let (value, _) = counter.get(&client, Some(sub.seq)).await;
    assert_eq!(value, 4, "state written under epoch 0 is still read");

    // Revocation of worker-2: the others take epoch 2 without it.
    let victim = epoch1[2].worker_key;
    let revoked = cluster(&ep, &["revoke", &victim.to_string()]);
    assert_eq!(revoked["epoch"], 2, "{revoked}");
    let revoked_at = revoked["seq"].as_u64().unwrap();
    let again = run_fail(&ep, &["cluster", "revoke", &victim.to_string()]);
    assert!(again.contains("already_revoked"), "{again}");
    let epoch2 = wait_epoch(&w[..2], 2).await;
    let key2 = epoch2[0].envelope_key.unwrap();
    assert_eq!(epoch2[1].envelope_key, Some(key2));
    // The revoked worker says so and serves nothing of the cluster's state.
    wait_revoked(&w[2], revoked_at).await;
    let direct = Client::new(&w[2]).unwrap();
    let refused = direct.info().await.unwrap();
    assert_eq!(refused.epoch, 1, "the revoked worker never got epoch 2");
    let err = err_of(&direct, counter.get_call()).await;
    assert!(err.contains("revoked"), "{err}");

    // The others keep applying, with equal roots; the endpoint goes around worker-2.
    let mut last = 0;
    for _ in 0..5 {
        last = client
            .submit(&alice, counter.inc(), true)
            .await
            .unwrap()
            .seq;
    }
    let a = wait_seq(&w[0], last).await;
    let b = wait_seq(&w[1], last).await;
    assert_eq!((a.seq, a.state_root), (b.seq, b.state_root));
    let (value, _) = counter.get(&client, Some(last)).await;
    assert_eq!(value, 9);
    let stuck = direct.info().await.unwrap();
    assert_eq!(
        stuck.seq, revoked_at,
        "worker-2 applies nothing after its revocation"
    );

    // The proof from worker-2's own data directory and keys: the ledger's commands of epochs
    // 0 and 1 open with them, none of epoch 2 does; worker-0's directory opens all.
    let data = dev.data();
    let token = LedgerToken::read(&ledger_token_file(&data)).unwrap();
    let ledger = RemoteLedger::with_token(&dev.ledger(), &token).unwrap();
    let entries = ledger
        .read(1, 10_000, Duration::from_secs(5))
        .await
        .unwrap();
    let (mut opened, mut refused_by_revoked) = ([0usize; 3], 0);
    for e in &entries {
        let epoch = match parity_scale_codec::Decode::decode(&mut &e.payload[..]).unwrap() {
            // The workers' requests to be members carry only their reports; a deal's shares
            // are sealed to each member's own key (checked below).
            LedgerCommand::Join(_) | LedgerCommand::DealEpoch(_) => continue,
            // Query log records are sealed with the entry key of the epoch they name.
            LedgerCommand::QueryLogs(q) => {
                assert!(!q.records.0.is_empty());
                continue;
            }
            LedgerCommand::Sealed(_) => 0usize,
            LedgerCommand::SealedAt { epoch, .. } | LedgerCommand::Forwarded { epoch, .. } => {
                epoch as usize
            }
            LedgerCommand::Plain(_)
            | LedgerCommand::Trigger(_)
            | LedgerCommand::EthLog(_)
            | LedgerCommand::JobResult(_) => {
                panic!("seq {}: not a sealed command", e.seq)
            }
        };
        let honest = phat_worker::open_with_data_dir(&data.join("worker-0"), &e.payload)
            .unwrap_or_else(|err| panic!("worker-0 cannot open seq {}: {err}", e.seq));
        match phat_worker::open_with_data_dir(&data.join("worker-2"), &e.payload) {
            Ok(req) => {
                assert!(epoch < 2, "worker-2 opened seq {} of epoch {epoch}", e.seq);
                assert_eq!(req, honest);
                opened[epoch] += 1;
            }
            Err(err) => {
                assert_eq!(epoch, 2, "worker-2 cannot open seq {}: {err}", e.seq);
                assert!(
                    err.to_string().contains("no secret of key epoch 2"),
                    "{err}"
                );
                refused_by_revoked += 1;
            }
        }
        if e.seq == revoked_at {
            let body: RequestBody =
                parity_scale_codec::Decode::decode(&mut &honest.body.0[..]).unwrap();
            assert!(matches!(
                body.call,
                Call::Cluster {
                    op: ClusterOp::RevokeWorker { .. }
                }
            ));
        }
    }
    assert!(opened[0] >= 5 && opened[1] >= 2, "{opened:?}");
    assert!(
        refused_by_revoked >= 5,
        "{refused_by_revoked} epoch-2 commands"
    );

    // A worker joining now gets every epoch's secret and replays all three epochs to the
    // same root.
    let port = free_ports(1);
    let late = dev.start_worker("late", port, &[]);
    let url = format!("http://127.0.0.1:{port}");
    up_or_log(&dev, "late", &url).await;
    let joined = wait_seq(&url, last).await;
    assert_eq!(root_at(&url, last).await, root_at(&w[0], last).await);
    assert_eq!(root_at(&w[0], last).await, a.state_root);
    assert_eq!((joined.epoch, joined.envelope_key), (2, Some(key2)));
    drop(late);

    // The revoked identity started again from a fresh directory gets nothing newer than it
    // held: refused outright (when it was the cluster's creator, it had no handover to find
    // again), or back to the epochs of its old handover and shares: stopping at its
    // revocation, or (when it dealt epoch 1 itself, so nobody shared it that epoch) waiting
    // at the rotation for a share that never comes. No share of epoch 2 exists for it.
    let port = free_ports(1);
    let again = dev.dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(
        data.join("worker-2/identity.sealed"),
        again.join("identity.sealed"),
    )
    .unwrap();
    let mut rejoin = dev.start_worker_in("again", port, &again, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let probe = Client::new(&url).unwrap();
    // `Some(exit status)` once it stopped, `None` once it came up.
    let stopped = eventually(
        "the revoked identity to stop or come up",
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || match rejoin.child.try_wait().unwrap() {
            Some(status) => Some(Some(status)),
            None => probe.info().await.is_ok().then_some(None),
        },
    )
    .await;
    match stopped {
        Some(status) => {
            assert!(!status.success());
            let log = std::fs::read_to_string(dev.dir.path().join("again.log")).unwrap();
            assert!(
                log.contains("the cluster refused this worker") && log.contains("revoked"),
                "{log}"
            );
        }
        None => {
            // It was a member when epoch 1 was dealt, so the deal holds its share: it takes
            // epoch 1 again and stops at its revocation.
            wait_revoked(&url, revoked_at).await;
            let info = probe.info().await.unwrap();
            assert_eq!((info.seq, info.epoch), (revoked_at, 1));
        }
    }
    // Every deal of epoch 2 sealed its secret to the two honest workers and not to the
    // revoked one (the late joiner, admitted after, got epoch 2 in its handover).
    let deals = deals_of(&ledger, 2, revoked_at).await;
    assert!(!deals.is_empty(), "no deal of epoch 2 in the log");
    for d in &deals {
        let mut to: Vec<_> = d.shares.iter().map(|s| s.member).collect();
        to.sort();
        let mut honest = vec![epoch2[0].worker_key, epoch2[1].worker_key];
        honest.sort();
        assert_eq!(to, honest, "a deal of epoch 2 by {}", d.dealer);
    }
}

/// The `DealEpoch` entries of `epoch` after seq `after` in the ledger, in order.
async fn deals_of(
    ledger: &RemoteLedger,
    epoch: u32,
    after: u64,
) -> Vec<phat_client::primitives::protocol::EpochDeal> {
    let entries = ledger
        .read(after + 1, 100_000, Duration::from_secs(5))
        .await
        .unwrap();
    entries
        .iter()
        .filter_map(
            |e| match parity_scale_codec::Decode::decode(&mut &e.payload[..]) {
                Ok(LedgerCommand::DealEpoch(d)) if d.epoch == epoch => Some(d),
                _ => None,
            },
        )
        .collect()
}

/// Waits until the worker `name` at `url` answers; panics with its log if it does not.
async fn up_or_log(dev: &Dev, name: &str, url: &str) {
    if !try_wait_up(url).await {
        let log = std::fs::read_to_string(dev.dir.path().join(format!("{name}.log")));
        panic!("{name} did not come up:\n{}", log.unwrap_or_default());
    }
}

/// Waits until the worker at `url` reports itself revoked at `seq` on `/healthz`.
async fn wait_revoked(url: &str, seq: u64) {
    let body = eventually(
        format!("{url} to report itself revoked"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            let r = reqwest::get(format!("{url}/healthz")).await.unwrap();
            let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
            if status == 503 && body.contains("revoked") {
                Ok(body)
            } else {
                Err(body)
            }
        },
    )
    .await;
    assert!(body.contains(&format!("seq {seq}")), "{body}");
}

/// The error a query through `client` meets, as text.
async fn err_of(client: &Client, call: Call) -> String {
    let alice = Signer::from_suri("//Alice").unwrap();
    match client.query(&alice, call, None).await {
        Ok(r) => panic!("the revoked worker answered: {r:?}"),
        Err(e) => e.to_string(),
    }
}

/// Finding 1 of the security review, performed: anyone holding the ledger's credentials (here
/// the HTTP ledger's token, which every worker, a revoked one too, holds) names its own key
/// under `cluster-key/`, with and without a join report of its own making, and appends a
/// `Join` entry with that report and one replaying a member's genuine report. Neither joins
/// the member table. It fills every metadata name epoch dealing once used with junk, and
/// appends a deal before any epoch is pending and replays the winning one after: refused
/// everywhere. The rotation completes, no deal seals the new epoch's secret to a planted
/// key, and the workers keep applying with equal roots.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_planted_in_ledger_metadata_gets_no_epoch_secret() {
    use phat_client::crypto::{Attestation, Claims, DevAttestation, EnvelopeSecret, Secret32};
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let client = Client::new(&ep).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let counter = deploy_counter(&client).await;
    let ledger = dev_ledger(&dev);
    // Two planted keys: one bare name, one with a join report signed by a root of its own.
    let bare = EnvelopeSecret::generate();
    let reported = EnvelopeSecret::generate();
    let info = client.info().await.unwrap();
    let own_root = DevAttestation::new(&Secret32::random());
    let forged = own_root
        .report(
            &Claims {
                measurement: info.attestation.measurement.0,
                worker_key: reported.public(),
                cluster_key: None,
                encryption: true,
                signing_key: Some(reported.public()),
            },
            now_ms(),
        )
        .unwrap();
    for key in [&bare, &reported] {
        let name = phat_client::primitives::Hash(key.public());
        ledger
            .put_meta(&format!("cluster-key/{name}"), b"planted".to_vec())
            .await
            .unwrap();
    }
    let name = phat_client::primitives::Hash(reported.public());
    ledger
        .put_meta(
            &format!("cluster-join/{name}"),
            parity_scale_codec::Encode::encode(&forged),
        )
        .await
        .unwrap();

    // Membership is decided at apply, the same way on every worker.
    use phat_client::primitives::protocol::{EpochDeal, JoinEntry};
    refused_everywhere(
        &dev,
        &ledger,
        LedgerCommand::Join(JoinEntry { report: forged }),
        "not_attested",
    )
    .await;
    let genuine = Client::new(&dev.workers[1])
        .unwrap()
        .info()
        .await
        .unwrap()
        .attestation;
    refused_everywhere(
        &dev,
        &ledger,
        LedgerCommand::Join(JoinEntry { report: genuine }),
        "already_member",
    )
    .await;

    // The old stall: junk under every metadata name epoch dealing once used. Nothing reads
    // them now; and deals appended while no epoch is pending, or forged, are refused.
    let mut keys = Vec::new();
    for w in &dev.workers {
        keys.push(Client::new(w).unwrap().info().await.unwrap().worker_key);
    }
    for n in 0..16 {
        ledger
            .put_meta(&format!("epoch/1/{n}"), b"junk".to_vec())
            .await
            .unwrap();
    }
    for k in &keys {
        ledger
            .put_meta(&format!("epoch-key/1/{k}"), b"junk".to_vec())
            .await
            .unwrap();
    }
    let early = EpochDeal {
        epoch: 1,
        key: phat_client::primitives::Hash(reported.public()),
        dealer: keys[0],
        shares: Vec::new(),
        signature: vec![0; 64].into(),
    };
    refused_everywhere(
        &dev,
        &ledger,
        LedgerCommand::DealEpoch(early),
        "no_pending_epoch",
    )
    .await;

    let rotated = cluster(&ep, &["rotate-key"]);
    assert_eq!(rotated["epoch"], 1, "{rotated}");
    let infos = wait_epoch(&dev.workers, 1).await;
    // Every deal of epoch 1 sealed its secret to the two members, never to a planted key;
    // the one that keyed it is the first, replayed it is refused.
    let rotated_at = rotated["seq"].as_u64().unwrap();
    let deals = deals_of(&ledger, 1, rotated_at).await;
    assert!(!deals.is_empty(), "no deal of epoch 1 at all");
    let mut members = keys.clone();
    members.sort();
    for d in &deals {
        let mut to: Vec<_> = d.shares.iter().map(|s| s.member).collect();
        to.sort();
        assert_eq!(to, members, "a deal of epoch 1 by {}", d.dealer);
    }
    assert_eq!(infos[0].envelope_key, Some(deals[0].key));
    refused_everywhere(
        &dev,
        &ledger,
        LedgerCommand::DealEpoch(deals[0].clone()),
        "no_pending_epoch",
    )
    .await;
    // The cluster goes on, agreeing.
    let last = client
        .submit(&alice, counter.inc(), true)
        .await
        .unwrap()
        .seq;
    let a = wait_seq(&dev.workers[0], last).await;
    let b = wait_seq(&dev.workers[1], last).await;
    assert_eq!((a.seq, a.state_root), (b.seq, b.state_root));
    assert_eq!(infos[0].envelope_key, infos[1].envelope_key);
}
