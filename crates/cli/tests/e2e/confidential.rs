//! Confidentiality end to end: nothing readable outside the workers, the cluster secret handed
//! to a joining worker through the ledger, contract keys, and every kind of bad envelope.

use std::path::Path;
use std::time::Duration;

use parity_scale_codec::Encode;
use phat_client::crypto::{self, Purpose};
use phat_client::primitives::protocol::{
    Bytes, Call, CallResult, LedgerCommand, QueryOpen, RequestBody, SealedAnswer, SealedQuery,
    SealedReply, SessionQuery, WorkerInfo,
};
use phat_client::primitives::{Hash, Mode};
use phat_client::{Client, ClientError, Signer};
use phat_testkit::*;

const MARKER: &str = "MARKER-zq7Kp2-confidential";

/// Every file under `dir` whose bytes contain `needle` (plain or hex-encoded).
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let hex = hex::encode(needle);
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let found = |n: &[u8]| bytes.windows(n.len()).any(|w| w == n);
                if found(needle.as_bytes()) || found(hex.as_bytes()) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

/// Deploys `notes`, stores the marker by a command and reads it back by queries on every
/// worker; returns the contract id.
fn use_marker(dev: &Dev) -> String {
    use_marker_with(dev, &[])
}

/// [`use_marker`] with global `phat` flags (`--allow-unencrypted`) before every command.
fn use_marker_with(dev: &Dev, flags: &[&str]) -> String {
    let run_json = |ep: &str, args: &[&str]| phat_testkit::run_json(ep, &[flags, args].concat());
    let notes = bundle("notes");
    let ep = &dev.endpoint;
    let id = run_json(ep, &["deploy", notes.to_str().unwrap()])["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let tx = run_json(ep, &["tx", &id, "set", MARKER]);
    assert_eq!(tx["decoded"], "Ok(())", "{tx}");
    for w in &dev.workers {
        let q = run_json(w, &["query", &id, "mine"]);
        assert_eq!(q["decoded"], format!("Ok(Some({MARKER}))"), "{q}");
        let q = run_json(w, &["query", &id, "is", MARKER]);
        assert_eq!(q["decoded"], "Ok(true)", "{q}");
    }
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_outside_the_workers_and_the_scan_finds_it_without_encryption() {
    let dev = Dev::start(2).await;
    use_marker(&dev);
    // Everything the cluster wrote: the ledger, each worker's data directory and log, the
    // `phat dev` log.
    let hits = files_containing(dev.dir.path(), MARKER);
    assert!(hits.is_empty(), "the marker is readable in {hits:?}");
    drop(dev);

    // The same with encryption off: the scan does find it (so it can find it).
    let dev = Dev::start_with(2, &["--insecure-no-encryption"]).await;
    // A client talks to it only when told to, and says why otherwise.
    let err = run_fail(&dev.endpoint, &["info"]);
    assert!(err.contains("encryption: false"), "{err}");
    use_marker_with(&dev, &["--allow-unencrypted"]);
    let hits = files_containing(dev.dir.path(), MARKER);
    assert!(
        hits.iter().any(|h| h.ends_with("ledger.redb")),
        "the scan should find the marker in the plaintext ledger: {hits:?}"
    );
    assert!(
        hits.iter()
            .any(|h| h.contains("worker-0") && h.ends_with("state.redb")),
        "and in the plaintext state: {hits:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_worker_joins_through_the_ledger_and_serves_the_same_state_and_keys() {
    let dev = Dev::start(2).await;
    let id = use_marker(&dev);
    let other = use_marker(&dev);
    let head = run_json(&dev.workers[0], &["info"])["worker"]["seq"]
        .as_u64()
        .unwrap();

    // A third worker process, same dev attestation root: it publishes its report, a running
    // worker hands it the cluster secret, it catches up.
    let port = free_ports(1);
    let dir = dev.dir.path().join("joiner");
    let root = dev.data().join("dev-attestation-root.key");
    let _joiner = Proc::start(
        "joiner",
        &[
            "worker",
            "--ledger",
            &dev.ledger(),
            "--ledger-token-file",
            dev.ledger_token_file().to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--dev-attestation-root",
            root.to_str().unwrap(),
        ],
        &dev.dir.path().join("joiner.log"),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_up(&url).await;
    let joined = wait_seq(&url, head).await;
    let first = wait_seq(&dev.workers[0], head).await;
    assert_eq!(joined.state_root, first.state_root);
    assert_eq!(joined.cluster_key, first.cluster_key);
    assert_ne!(joined.worker_key, first.worker_key);
    let q = run_json(&url, &["query", &id, "mine"]);
    assert_eq!(q["decoded"], format!("Ok(Some({MARKER}))"), "{q}");

    // Contract keys: the same on all three workers, different per contract.
    let keys = |w: &str, c: &str| run_json(w, &["info", c])["contract"]["keys"].clone();
    let k = keys(&url, &id);
    assert_eq!(k, keys(&dev.workers[0], &id));
    assert_eq!(k, keys(&dev.workers[1], &id));
    let o = keys(&url, &other);
    for field in ["sr25519", "ed25519", "secp256k1", "ethereum_address"] {
        assert_ne!(k[field], o[field], "{field}");
    }
    let eth = k["ethereum_address"].as_str().unwrap();
    assert!(eth.starts_with("0x") && eth.len() == 42, "{eth}");
    let text = String::from_utf8(run(&url, &["info", &id]).stdout).unwrap();
    assert!(text.contains(eth), "{text}");

    // A worker whose report is signed by another root is refused, and says so (it refuses
    // itself, before asking, when it sees the genesis pins another root).
    let port = free_ports(1);
    let mut intruder = Proc::start(
        "intruder",
        &[
            "worker",
            "--ledger",
            &dev.ledger(),
            "--ledger-token-file",
            dev.ledger_token_file().to_str().unwrap(),
            "--data",
            dev.dir.path().join("intruder").to_str().unwrap(),
            "--port",
            &port.to_string(),
        ],
        &dev.dir.path().join("intruder.log"),
    );
    let status = eventually(
        "the intruder to stop",
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || intruder.child.try_wait().unwrap(),
    )
    .await;
    assert!(!status.success());
    let log = std::fs::read_to_string(dev.dir.path().join("intruder.log")).unwrap();
    assert!(log.contains("refus"), "{log}");
    assert!(log.contains("dev root"), "{log}");
}

/// A signed flip of `dest` with `nonce`, `expires_at`.
fn flip(
    signer: &Signer,
    cluster: &Hash,
    dest: &str,
    nonce: u64,
    expires_at: u64,
    mode: Mode,
) -> Vec<u8> {
    signer
        .sign_request(
            cluster,
            &RequestBody {
                mode,
                call: Call::Call {
                    dest: dest.parse().unwrap(),
                    value: 0,
                    data: Bytes(vec![0x63, 0x3a, 0xa5, 0x51]),
                    gas_limit: 1_000_000_000,
                },
                nonce,
                expires_at,
                certificate: None,
            },
        )
        .encode()
}

async fn post(url: &str, body: &impl serde::Serialize) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_foreign_replayed_expired_envelopes_and_forged_reports_are_refused() {
    let flipper = bundle("flipper");
    let dev = Dev::start(2).await;
    let w = dev.workers[0].clone();
    let id = run_json(
        &dev.endpoint,
        &["deploy", flipper.to_str().unwrap(), "--args", "false"],
    )["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let info: WorkerInfo = Client::new(&w).unwrap().trusted_info().await.unwrap();
    let before = info.seq;
    let alice = Signer::from_suri("//Alice").unwrap();
    let cmd = format!("{w}/v1/commands/sealed?wait=true");
    let seal_cmd = |req: &[u8]| {
        crypto::seal(&info.cluster_key.0, Purpose::Command, req)
            .unwrap()
            .0
    };

    // Tampered ciphertext.
    let mut tampered = seal_cmd(&flip(
        &alice,
        &info.cluster_key,
        &id,
        1,
        now_ms() + 60_000,
        Mode::Command,
    ));
    tampered.ciphertext.0[3] ^= 0x40;
    let (status, body) = post(&cmd, &tampered).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("bad_envelope")),
        "{body}"
    );
    // Sealed to a key that is not the cluster's.
    let stranger = crypto::EnvelopeSecret::generate().public();
    let (foreign, _) = crypto::seal(
        &stranger,
        Purpose::Command,
        &flip(
            &alice,
            &info.cluster_key,
            &id,
            2,
            now_ms() + 60_000,
            Mode::Command,
        ),
    )
    .unwrap();
    let (status, body) = post(&cmd, &foreign).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("bad_envelope")),
        "{body}"
    );
    // Expired inside a good envelope.
    let expired = seal_cmd(&flip(
        &alice,
        &info.cluster_key,
        &id,
        3,
        now_ms() - 1,
        Mode::Command,
    ));
    let (status, body) = post(&cmd, &expired).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("expired")),
        "{body}"
    );
    // A plaintext command on an encrypted cluster.
    let plain: serde_json::Value = serde_json::json!({"body": "0x00", "signer": format!("0x{}", "00".repeat(32)), "signature": "0x00"});
    let (status, body) = post(&format!("{w}/v1/commands"), &plain).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("encryption_required")),
        "{body}"
    );
    // Nothing of that reached the ledger.
    assert_eq!(Client::new(&w).unwrap().info().await.unwrap().seq, before);
    // A good one applies; the same envelope again is a replay.
    let good = seal_cmd(&flip(
        &alice,
        &info.cluster_key,
        &id,
        4,
        now_ms() + 60_000,
        Mode::Command,
    ));
    let (status, body) = post(&cmd, &good).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["receipt"]["result"]["sealed"].is_string(),
        "result sealed: {body}"
    );
    let good_seq = body["seq"].as_u64().unwrap();
    let (status, body) = post(&cmd, &good).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("replayed")),
        "{body}"
    );
    // The worker forwarded the good command under the epoch's entry key: the ledger holds
    // neither its request nor its reply key.
    let token = phat_worker::ledger::http::LedgerToken::read(&dev.ledger_token_file()).unwrap();
    let remote =
        phat_worker::ledger::http::RemoteLedger::with_token(&dev.ledger(), &token).unwrap();
    let forwarded = phat_worker::Ledger::read(&remote, good_seq, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0)
        .payload;
    let LedgerCommand::Forwarded { epoch, data } =
        parity_scale_codec::Decode::decode(&mut &forwarded[..]).unwrap()
    else {
        panic!("seq {good_seq} is not a forwarded command");
    };
    let mut altered = data.0.clone();
    altered[30] ^= 1;
    // Straight into the ledger: a tampered envelope, a plaintext command, the forwarded
    // command again, altered, and under an epoch the cluster never started become failure
    // receipts on both workers, and change nothing.
    let ledger = dev.ledger();
    let mut seqs = Vec::new();
    for payload in [
        forwarded.clone(),
        LedgerCommand::Forwarded {
            epoch,
            data: altered.clone().into(),
        }
        .encode(),
        LedgerCommand::Forwarded {
            epoch: epoch + 7,
            data: data.clone(),
        }
        .encode(),
        LedgerCommand::Sealed(tampered.clone()).encode(),
        LedgerCommand::Plain(
            parity_scale_codec::Decode::decode(
                &mut &flip(
                    &alice,
                    &info.cluster_key,
                    &id,
                    5,
                    now_ms() + 60_000,
                    Mode::Command,
                )[..],
            )
            .unwrap(),
        )
        .encode(),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{ledger}/ledger/v1/append"))
            .header("authorization", ledger_bearer(&dev.ledger_token_file()))
            .header("content-type", "application/octet-stream")
            .body(payload)
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        seqs.push(v["seq"].as_u64().unwrap());
    }
    let kinds = [
        "replayed",
        "bad_envelope",
        "unknown_epoch",
        "bad_envelope",
        "encryption_required",
    ];
    let mut roots = Vec::new();
    for url in &dev.workers {
        wait_seq(url, seqs[4]).await;
        let c = Client::new(url).unwrap();
        roots.push(c.receipt(seqs[4]).await.unwrap().state_root);
        for (seq, kind) in seqs.iter().zip(kinds) {
            match c.receipt(*seq).await.unwrap().result {
                CallResult::Err(e) => assert_eq!(e.kind, kind),
                other => panic!("seq {seq}: {other:?}"),
            }
        }
    }
    assert!(roots.windows(2).all(|r| r[0] == r[1]), "{roots:?}");
    // flip ran once.
    assert_eq!(run_json(&w, &["query", &id, "get"])["decoded"], "Ok(true)");

    // Queries: open a session by hand, then replay and tamper with its messages.
    let q = format!("{w}/v1/query/sealed");
    let open = QueryOpen {
        request: parity_scale_codec::Decode::decode(
            &mut &flip(
                &alice,
                &info.cluster_key,
                &id,
                6,
                now_ms() + 60_000,
                Mode::Query,
            )[..],
        )
        .unwrap(),
        min_seq: None,
    };
    let (sealed, keys) = crypto::seal(&info.worker_key.0, Purpose::Query, &open.encode()).unwrap();
    let first = SealedQuery {
        worker: info.worker_key,
        session: sealed.ephemeral,
        counter: 0,
        ciphertext: sealed.ciphertext.clone(),
    };
    let (status, body) = post(&q, &first).await;
    assert_eq!(status, 200, "{body}");
    // The worker's answer to the opening salts the session's reply key.
    let salt: Hash = body["salt"].as_str().unwrap().parse().unwrap();
    let keys = keys.with_reply_salt(&salt.0);
    let (status, body) = post(&q, &first).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("replayed")),
        "{body}"
    );
    let next = |counter: u64| SealedQuery {
        worker: info.worker_key,
        session: sealed.ephemeral,
        counter,
        ciphertext: Bytes(
            keys.seal_request(
                counter,
                &SessionQuery {
                    call: Call::Call {
                        dest: id.parse().unwrap(),
                        value: 0,
                        data: Bytes(vec![0x2f, 0x86, 0x5b, 0xd9]),
                        gas_limit: 1_000_000_000,
                    },
                    min_seq: None,
                }
                .encode(),
            ),
        ),
    };
    let (status, body) = post(&q, &next(1)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&q, &next(1)).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("replayed")),
        "{body}"
    );
    let mut bad = next(2);
    bad.ciphertext.0[0] ^= 1;
    let (status, body) = post(&q, &bad).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("bad_envelope")),
        "{body}"
    );
    // Message 2 was not consumed by the tampered attempt.
    assert_eq!(post(&q, &next(2)).await.0, 200);
    // An error met by a session query is sealed too: nothing in the clear says which contract
    // the query was for.
    let nowhere = Hash([0x5a; 32]);
    let lost = SealedQuery {
        counter: 3,
        ciphertext: Bytes(
            keys.seal_request(
                3,
                &SessionQuery {
                    call: Call::Call {
                        dest: nowhere.0.into(),
                        value: 0,
                        data: Bytes(vec![0x2f, 0x86, 0x5b, 0xd9]),
                        gas_limit: 1_000_000_000,
                    },
                    min_seq: None,
                }
                .encode(),
            ),
        ),
        ..next(3)
    };
    let raw = reqwest::Client::new()
        .post(&q)
        .json(&lost)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 200);
    let reply: SealedReply = raw.json().await.unwrap();
    assert!(!serde_json::to_string(&reply)
        .unwrap()
        .contains(&hex::encode(nowhere.0)));
    let answer: SealedAnswer =
        serde_json::from_slice(&keys.open_reply(3, &reply.ciphertext).unwrap()).unwrap();
    match answer {
        SealedAnswer::Err { status, error } => {
            assert_eq!((status, error.kind.as_str()), (404, "unknown_contract"))
        }
        other => panic!("{other:?}"),
    }
    let mut elsewhere = next(4);
    elsewhere.worker = Hash(stranger);
    let (status, body) = post(&q, &elsewhere).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("wrong_worker")),
        "{body}"
    );
    let mut unknown = next(4);
    unknown.session = Hash(crypto::EnvelopeSecret::generate().public());
    let (status, body) = post(&q, &unknown).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("unknown_session")),
        "{body}"
    );
    // Commands in the same session: AEAD only, forwarded like any sealed command, the result
    // sealed under the session's key for that message.
    let cs = format!("{w}/v1/commands/session?wait=true");
    let command_in = |counter: u64, signed: &[u8]| SealedQuery {
        worker: info.worker_key,
        session: sealed.ephemeral,
        counter,
        ciphertext: Bytes(keys.seal_request(counter, signed)),
    };
    let flip_cmd = flip(
        &alice,
        &info.cluster_key,
        &id,
        8,
        now_ms() + 60_000,
        Mode::Command,
    );
    let (status, body) = post(&cs, &command_in(4, &flip_cmd)).await;
    assert_eq!(status, 200, "{body}");
    let in_session = body["seq"].as_u64().unwrap();
    let sealed_result: Bytes =
        serde_json::from_value(body["receipt"]["result"]["sealed"].clone()).unwrap();
    let opened = keys
        .command_reply_key(4)
        .open_reply(0, &sealed_result.0)
        .unwrap();
    let result: CallResult = parity_scale_codec::DecodeAll::decode_all(&mut &opened[..]).unwrap();
    assert!(matches!(result, CallResult::Ok(_)), "{result:?}");
    // Only that message's key opens it.
    assert!(keys.open_reply(4, &sealed_result.0).is_err());
    assert!(keys.open_reply(0, &sealed_result.0).is_err());
    // Both workers applied it alike (the other one from the forwarded entry).
    let mut roots = Vec::new();
    for url in &dev.workers {
        wait_seq(url, in_session).await;
        let r = Client::new(url).unwrap().receipt(in_session).await.unwrap();
        assert!(matches!(r.result, CallResult::Sealed(_)), "{:?}", r.result);
        roots.push(r.state_root);
    }
    assert!(roots.windows(2).all(|r| r[0] == r[1]), "{roots:?}");
    // The same message again, and the same command in another message: replayed.
    let (status, body) = post(&cs, &command_in(4, &flip_cmd)).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("replayed")),
        "{body}"
    );
    let (status, body) = post(&cs, &command_in(5, &flip_cmd)).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("replayed")),
        "{body}"
    );
    // Another account's command in alice's session, message 0 (a session opens with a
    // query), a query's plaintext as a command, tampered bytes: refused.
    let bob = Signer::from_suri("//Bob").unwrap();
    let bobs = flip(
        &bob,
        &info.cluster_key,
        &id,
        1,
        now_ms() + 60_000,
        Mode::Command,
    );
    for (msg, want) in [
        (command_in(6, &bobs), (403, "not_session_caller")),
        (command_in(0, &flip_cmd), (400, "malformed")),
        (next(6), (400, "malformed")),
        (
            SealedQuery {
                ciphertext: Bytes(vec![0; 40]),
                ..command_in(6, &flip_cmd)
            },
            (400, "bad_envelope"),
        ),
    ] {
        let (status, body) = post(&cs, &msg).await;
        assert_eq!(
            (status, body["error"]["kind"].as_str()),
            (want.0, Some(want.1)),
            "{body}"
        );
    }

    // An expired signed query cannot open a session.
    let stale = QueryOpen {
        request: parity_scale_codec::Decode::decode(
            &mut &flip(&alice, &info.cluster_key, &id, 7, now_ms() - 1, Mode::Query)[..],
        )
        .unwrap(),
        min_seq: None,
    };
    let (sealed, _) = crypto::seal(&info.worker_key.0, Purpose::Query, &stale.encode()).unwrap();
    let (status, body) = post(
        &q,
        &SealedQuery {
            worker: info.worker_key,
            session: sealed.ephemeral,
            counter: 0,
            ciphertext: sealed.ciphertext,
        },
    )
    .await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("expired")),
        "{body}"
    );

    // The client refuses a forged report, and a dev report where dev is not accepted.
    let forged = forged_info_server(&w, |info: &mut serde_json::Value| {
        let fake = format!(
            "0x{}",
            hex::encode(crypto::EnvelopeSecret::generate().public())
        );
        info["worker_key"] = fake.clone().into();
        info["attestation"]["worker_key"] = fake.into();
    })
    .await;
    match Client::new(&forged)
        .unwrap()
        .query(
            &alice,
            phat_client::call(id.parse().unwrap(), vec![0x2f, 0x86, 0x5b, 0xd9]),
            None,
        )
        .await
    {
        Err(ClientError::Untrusted(m)) => assert!(m.contains("signature"), "{m}"),
        other => panic!("forged report accepted: {other:?}"),
    }
    match Client::new(&w)
        .unwrap()
        .accept_dev_attestation(false)
        .trusted_info()
        .await
    {
        Err(ClientError::Untrusted(m)) => assert!(m.contains("insecure"), "{m}"),
        other => panic!("dev report accepted: {other:?}"),
    }
    let err = run_fail(&forged, &["info"]);
    assert!(err.contains("not trusted"), "{err}");
    // A man in the middle cannot talk the client into plaintext: the flag is attested.
    let downgrade = forged_info_server(&w, |info: &mut serde_json::Value| {
        info["encryption"] = false.into()
    })
    .await;
    match Client::new(&downgrade).unwrap().trusted_info().await {
        Err(ClientError::Untrusted(m)) => assert!(m.contains("attests"), "{m}"),
        other => panic!("downgrade accepted: {other:?}"),
    }
}

/// A server that answers `/v1/info` with `worker`'s info as altered by `alter`.
async fn forged_info_server(worker: &str, alter: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut info: serde_json::Value = reqwest::get(format!("{worker}/v1/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alter(&mut info);
    let app = axum::Router::new().route(
        "/v1/info",
        axum::routing::get(move || {
            let info = info.clone();
            async move { axum::Json(info) }
        }),
    );
    serve(app).await
}
