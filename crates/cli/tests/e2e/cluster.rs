//! End to end through `phat dev` and the CLI: deploy, transactions, queries on each worker,
//! the Phala conformance binaries, and bad input.

use phat_client::primitives::protocol::{Bytes, Call, RequestBody};
use phat_client::primitives::{AccountId, Mode};
use phat_client::{Client, ClientError, Signer};
use phat_testkit::*;

fn id_of(v: &serde_json::Value) -> String {
    v["contract"].as_str().expect("contract id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn erc20_through_the_cli_on_two_workers() {
    let erc20 = bundle("erc20");
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let id = deploy_erc20(&ep, &erc20, "1000000").await;

    let tx = run_json(
        &ep,
        &["tx", &id, "transfer", BOB, "2500", "--suri", "//Alice"],
    );
    let receipt = &tx["receipt"];
    assert!(receipt["gas_used"].as_u64().unwrap() > 0, "{tx}");
    assert_eq!(
        receipt["events"].as_array().unwrap().len(),
        1,
        "one Transfer event: {tx}"
    );
    assert_eq!(tx["decoded"], "Ok(Ok(()))", "{tx}");
    let seq = receipt["seq"].as_u64().unwrap();

    // Each worker answers directly, after it applied the transfer; both agree.
    let mut roots = Vec::new();
    for w in &dev.workers {
        roots.push(root_at(w, seq).await);
        let bob = run_json(w, &["query", &id, "balance_of", BOB]);
        assert_eq!(bob["decoded"], "Ok(2500)", "{w}: {bob}");
        let alice = run_json(w, &["query", &id, "balance_of", ALICE]);
        assert_eq!(alice["decoded"], "Ok(997500)", "{w}: {alice}");
    }
    assert_eq!(roots[0], roots[1], "state roots differ");
    assert_eq!(
        roots[0].to_hex(),
        receipt["state_root"].as_str().unwrap(),
        "the receipt's root is the worker's root"
    );

    // A transfer over the balance reverts: non-zero exit, nothing applied.
    let err = run_fail(
        &ep,
        &["tx", &id, "transfer", ALICE, "999999999", "--suri", "//Bob"],
    );
    assert!(err.contains("reverted"), "{err}");
    let bob = run_json(&ep, &["query", &id, "balance_of", BOB]);
    assert_eq!(bob["decoded"], "Ok(2500)");

    // Logs keep the Transfer events of the commands.
    let out = run(&ep, &["logs", &id]);
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.lines().any(|l| l.contains("\"event\"")), "{logs}");

    // Info of the contract names its code.
    let info = run_json(&ep, &["info", &id]);
    assert_eq!(info["name"], "erc20", "{info}");
}

#[tokio::test(flavor = "multi_thread")]
async fn phala_flip_and_cross_deploy_and_answer_through_the_cli() {
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let flip_wasm = phala("flip/flip.wasm");
    let flip_meta = phala("flip/metadata.json");
    let flip = run_json(
        &ep,
        &[
            "deploy",
            flip_wasm.to_str().unwrap(),
            "--metadata",
            flip_meta.to_str().unwrap(),
            "--constructor",
            "new",
            "--args",
            "true",
        ],
    );
    let flip = id_of(&flip);
    assert_eq!(run_json(&ep, &["query", &flip, "get"])["decoded"], "true");
    run_json(&ep, &["tx", &flip, "flip"]);
    for w in &dev.workers {
        let seq = Client::new(&ep).unwrap().info().await.unwrap().ledger_head;
        wait_seq(w, seq).await;
        assert_eq!(
            run_json(w, &["query", &flip, "get"])["decoded"],
            "false",
            "{w}"
        );
    }
    let echo = run_json(&ep, &["query", &flip, "echo", "42", "24"]);
    let text = echo["decoded"].as_str().unwrap();
    assert!(text.contains("42") && text.contains("24"), "{echo}");

    // cross instantiates the flip code (already uploaded above) and calls it.
    let cross_wasm = phala("cross/cross.wasm");
    let cross_meta = phala("cross/metadata.json");
    let cross = run_json(
        &ep,
        &[
            "deploy",
            cross_wasm.to_str().unwrap(),
            "--metadata",
            cross_meta.to_str().unwrap(),
            "--constructor",
            "new",
            "--value",
            "10000000000000000",
        ],
    );
    let cross = id_of(&cross);
    let r = run_json(&ep, &["query", &cross, "call_other_contract"]);
    assert_eq!(r["decoded"], "true", "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_applies_nothing() {
    let flipper = bundle("flipper");
    let dev = Dev::start(1).await;
    let ep = dev.endpoint.clone();
    let w = dev.workers[0].clone();
    let id = id_of(&run_json(
        &ep,
        &["deploy", flipper.to_str().unwrap(), "--args", "false"],
    ));
    let before = Client::new(&w).unwrap().info().await.unwrap();
    let http = reqwest::Client::new();

    // Malformed JSON.
    let r = http
        .post(format!("{w}/v1/commands"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "malformed", "{body}");

    // Oversized body.
    let big = format!("{{\"body\":\"0x{}\"}}", "00".repeat(2 << 20));
    let sent = http
        .post(format!("{w}/v1/query"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status(), 413),
        // The worker may answer 413 from the declared length and close the connection
        // before the client has written the whole body: the refusal then shows up as a
        // failed body write on the client side.
        Err(e) => assert!(e.is_request() && !e.is_connect(), "{e:?}"),
    }

    // Unknown contract, through the CLI: non-zero exit and a one-line reason.
    let unknown = format!("0x{}", "11".repeat(32));
    let err = run_fail(&ep, &["query", &unknown, "get"]);
    assert!(err.contains("unknown_contract"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Wrong argument types and counts.
    let err = run_fail(&ep, &["tx", &id, "flip", "extra"]);
    assert!(err.contains("argument"), "{err}");
    let err = run_fail(&ep, &["query", &id, "no_such_message"]);
    assert!(err.contains("no_such_message"), "{err}");

    // A bad signature, and a replay of a good one.
    let client = Client::new(&w).unwrap();
    let cluster = client.trusted_info().await.unwrap().cluster_key;
    let alice = Signer::from_suri("//Alice").unwrap();
    let dest: AccountId = id.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = RequestBody {
        mode: Mode::Command,
        call: Call::Call {
            dest,
            value: 0,
            data: Bytes(vec![0x63, 0x3a, 0xa5, 0x51]),
            gas_limit: 1_000_000_000,
        },
        nonce: 42,
        expires_at: now + 60_000,
        certificate: None,
    };
    let mut forged = alice.sign_request(&cluster, &body);
    forged.signer = Signer::from_suri("//Bob").unwrap().account();
    match client.submit_signed(&forged, true).await {
        Err(ClientError::Api {
            status: 401, kind, ..
        }) => assert_eq!(kind, "bad_signature"),
        other => panic!("forged signature: {other:?}"),
    }
    // A query signature is not a command signature.
    let as_query = alice.sign_request(
        &cluster,
        &RequestBody {
            mode: Mode::Query,
            ..body.clone()
        },
    );
    match client.submit_signed(&as_query, true).await {
        Err(ClientError::Api {
            status: 400, kind, ..
        }) => assert_eq!(kind, "wrong_mode"),
        other => panic!("query as command: {other:?}"),
    }
    // Expired.
    let expired = alice.sign_request(
        &cluster,
        &RequestBody {
            expires_at: now - 1,
            ..body.clone()
        },
    );
    match client.submit_signed(&expired, true).await {
        Err(ClientError::Api {
            status: 400, kind, ..
        }) => assert_eq!(kind, "expired"),
        other => panic!("expired: {other:?}"),
    }
    let good = alice.sign_request(&cluster, &body);
    let first = client
        .submit_signed(&good, true)
        .await
        .expect("first submission");
    assert!(first.receipt.unwrap().result.is_success());
    match client.submit_signed(&good, true).await {
        Err(ClientError::Api {
            status: 409, kind, ..
        }) => assert_eq!(kind, "replayed"),
        other => panic!("replay: {other:?}"),
    }
    // The replay reaches no ledger: only the one good command was applied.
    let after = Client::new(&w).unwrap().info().await.unwrap();
    assert_eq!(after.seq, before.seq + 1);
    // A replay that goes around the checks (straight into the ledger) is refused when applied.
    let ledger = format!(
        "http://127.0.0.1:{}",
        ep.rsplit(':').next().unwrap().parse::<u16>().unwrap() + 1
    );
    let r = http
        .post(format!("{ledger}/ledger/v1/append"))
        .header("authorization", ledger_bearer(&dev.ledger_token_file()))
        .header("content-type", "application/octet-stream")
        .body(client.ledger_payload(&good).await.unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let appended: serde_json::Value = r.json().await.unwrap();
    let seq = appended["seq"].as_u64().unwrap();
    wait_seq(&w, seq).await;
    let receipt = client.receipt(seq).await.unwrap();
    match receipt.result {
        phat_client::primitives::protocol::CallResult::Err(e) => assert_eq!(e.kind, "replayed"),
        other => panic!("replayed entry applied: {other:?}"),
    }
    // flip ran once: false -> true.
    assert_eq!(run_json(&w, &["query", &id, "get"])["decoded"], "Ok(true)");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_resumes_from_its_data_directory() {
    let flipper = bundle("flipper");
    let mut dev = Dev::start(1).await;
    let ep = dev.endpoint.clone();
    let id = id_of(&run_json(
        &ep,
        &["deploy", flipper.to_str().unwrap(), "--args", "false"],
    ));
    run_json(&ep, &["tx", &id, "flip"]);
    let before = Client::new(&dev.workers[0]).unwrap().info().await.unwrap();
    assert!(dev.proc.terminate(), "phat dev did not stop cleanly");
    let (dir, workers) = (&dev.dir, dev.workers.clone());
    // Same data directory and ports: the state is still there.
    let base: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
    let data = dir.path().join("data");
    let _again = Proc::start(
        "dev",
        &[
            "dev",
            "--workers",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--port",
            &base.to_string(),
        ],
        &dir.path().join("dev2.log"),
    );
    wait_up(&workers[0]).await;
    let after = Client::new(&workers[0]).unwrap().info().await.unwrap();
    assert_eq!(after.seq, before.seq);
    assert_eq!(after.state_root, before.state_root);
    assert_eq!(run_json(&ep, &["query", &id, "get"])["decoded"], "Ok(true)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_project_builds_deploys_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-counter");
    let out = phat()
        .args(["new", "my-counter", "--path", project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Share the examples' target directory so ink! and core are not rebuilt.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/target").to_string()
    });
    let out = phat()
        .args(["build", project.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "phat build of the new project failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = std::path::Path::new(&target).join("ink/my-counter.contract");
    assert!(bundle.exists(), "no bundle at {}", bundle.display());
    // `new` refuses to overwrite, and bad names get a reason.
    let again = phat()
        .args(["new", "x", "--path", project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let bad = phat().args(["new", "9lives"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid contract name"));

    let dev = Dev::start(1).await;
    let ep = dev.endpoint.clone();
    let id = id_of(&run_json(
        &ep,
        &[
            "deploy",
            bundle.to_str().unwrap(),
            "--constructor",
            "new",
            "--args",
            "5",
        ],
    ));
    let tx = run_json(&ep, &["tx", &id, "increment", "3"]);
    assert_eq!(tx["decoded"], "Ok(8)", "{tx}");
    assert_eq!(run_json(&ep, &["query", &id, "get"])["decoded"], "Ok(8)");
    let event = tx["events_decoded"][0].as_str().expect("a decoded event");
    // The caller as ink! metadata shows an AccountId: SS58 (//Alice's).
    assert_eq!(
        event,
        "Incremented { by: 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY, value: 8 }"
    );

    // `phat logs` decodes the event as `phat tx` does, with the metadata stored at deploy.
    let out = phat()
        .args(["logs", &id, "--endpoint", &ep])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(" event: "))
        .unwrap_or_else(|| panic!("no event line: {text}"));
    assert!(line.ends_with(&format!("event: {event}")), "{text}");
    assert!(!line.contains("topics="), "{text}");
    // The time is one a person reads: RFC 3339 UTC with milliseconds.
    let at = line.split(' ').next().unwrap();
    assert!(
        at.len() == 24 && at.as_bytes()[10] == b'T' && at.ends_with('Z'),
        "{line}"
    );
    // With --output json, each event record has the decoded text and the raw topics and data.
    let out = run(&ep, &["logs", &id]);
    assert!(out.status.success(), "{out:?}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["level"] == "event").collect();
    assert_eq!(events.len(), 1, "{records:?}");
    let e = events[0];
    assert_eq!(e["decoded"], event, "{e}");
    assert_eq!(e["event"]["contract"], id.as_str(), "{e}");
    let topics = e["event"]["topics"].as_array().unwrap();
    assert!(!topics.is_empty(), "{e}");
    assert!(
        topics.iter().all(|t| t.as_str().unwrap().len() == 66),
        "{e}"
    );
    let data = e["event"]["data"].as_str().unwrap();
    assert_eq!(data, tx["receipt"]["events"][0]["data"], "{e}");
    assert_eq!(
        topics,
        tx["receipt"]["events"][0]["topics"].as_array().unwrap(),
        "{e}"
    );
    // The SCALE data ends with the value, 8 as a little-endian u64.
    assert!(data.ends_with("0800000000000000"), "{e}");
    assert!(e["message"].as_str().unwrap().contains(&data[2..]), "{e}");
    // Only the owner resets.
    let err = run_fail(&ep, &["tx", &id, "reset", "--suri", "//Bob"]);
    assert!(err.contains("reverted"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn phala_pink_contracts_use_the_extension_on_a_cluster() {
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let path = |rel: &str| phala(rel).to_str().unwrap().to_string();

    // logging.wasm has no metadata: raw constructor and message selectors.
    let logging = id_of(&run_json(
        &ep,
        &[
            "deploy",
            &path("logging.wasm"),
            "--constructor",
            "0xed4b9d1b",
        ],
    ));
    let tx = run_json(&ep, &["tx", &logging, "0x928b2036"]);
    let seq = tx["receipt"]["seq"].as_u64().unwrap();
    for w in &dev.workers {
        wait_seq(w, seq).await;
        let out = run(w, &["logs", &logging]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("a test message received") && text.contains("\"info\""),
            "{w}: {text}"
        );
    }

    // use_cache (ink! 4): the cache in a query and in a command.
    let cache = id_of(&run_json(
        &ep,
        &[
            "deploy",
            &path("use_cache/use_cache.wasm"),
            "--metadata",
            &path("use_cache/use_cache.json"),
            "--constructor",
            "default",
        ],
    ));
    assert_eq!(
        run_json(&ep, &["query", &cache, "test"])["decoded"],
        "Ok(())"
    );
    let tx = run_json(&ep, &["tx", &cache, "test_tx"]);
    assert_eq!(tx["decoded"], "Ok(())", "{tx}");

    // signing: contract keys, sr25519/ed25519/ecdsa sign and verify inside a query; it panics
    // (and the query fails) on any mismatch.
    let signing = id_of(&run_json(
        &ep,
        &[
            "deploy",
            &path("signing/signing.wasm"),
            "--constructor",
            "0xed4b9d1b",
        ],
    ));
    for w in &dev.workers {
        let r = run_json(w, &["query", &signing, "0x928b2036"]);
        assert_eq!(r["decoded"], "0x", "{w}: {r}");
    }

    // The same commands gave the same state on both workers.
    let head = Client::new(&ep).unwrap().info().await.unwrap().ledger_head;
    // At one seq (records of failed queries may be ordered after it, at different moments).
    assert_eq!(
        root_at(&dev.workers[0], head).await,
        root_at(&dev.workers[1], head).await
    );
}

/// Money and permissions on an owner-only `phat dev`: a funded stranger may not deploy until
/// the owner allows it; the faucet funds a fresh account, which sends some back, and may not
/// send more than it holds; a transaction without `--gas-limit` is sent with the estimate.
#[tokio::test(flavor = "multi_thread")]
async fn an_owner_only_cluster_its_deployers_transfers_and_estimates() {
    let flipper = bundle("flipper");
    let flipper = flipper.to_str().unwrap();
    let dev = Dev::start_with(1, &["--deploy", "owner-only"]).await;
    let ep = dev.endpoint.clone();
    let client = Client::new(&ep).unwrap();
    let output = |out: std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // Bob holds a balance but is not the owner.
    let refused = output(run(
        &ep,
        &["deploy", flipper, "--args", "true", "--suri", "//Bob"],
    ));
    assert!(refused.contains("deploy_not_allowed"), "{refused}");
    // A command instantiating code the owner uploaded is refused the same way.
    let code = client
        .upload_code(
            &Signer::from_suri("//Alice").unwrap(),
            phat_client::Contract::load(bundle("flipper"))
                .unwrap()
                .wasm()
                .unwrap()
                .to_vec(),
        )
        .await
        .unwrap();
    let bob = Signer::from_suri("//Bob").unwrap();
    let sub = client
        .submit(
            &bob,
            phat_client::instantiate(code, vec![0x9b, 0xae, 0x9d, 0x5e, 1], vec![]),
            true,
        )
        .await
        .unwrap();
    match sub.receipt.unwrap().result {
        phat_client::primitives::protocol::CallResult::Err(e) => {
            assert_eq!(e.kind, "deploy_not_allowed")
        }
        other => panic!("bob instantiated on an owner-only cluster: {other:?}"),
    }
    // Only the owner names deployers.
    let not_owner = output(run(
        &ep,
        &["cluster", "deployers", "//Bob", "--suri", "//Bob"],
    ));
    assert!(not_owner.contains("not_owner"), "{not_owner}");
    run_json(&ep, &["cluster", "deployers", "//Bob"]);
    let id = id_of(&run_json(
        &ep,
        &["deploy", flipper, "--args", "true", "--suri", "//Bob"],
    ));

    // The faucet funds a fresh account; it sends some on, and not more than it holds.
    let info = client.info().await.unwrap();
    let system = info.system_contract.unwrap().to_string();
    let zed = Signer::from_suri("//Zed").unwrap().account().to_string();
    let sent = run_json(&ep, &["faucet", "//Zed", "--amount", "1000"]);
    let at = sent["seq"].as_u64().unwrap();
    assert_eq!(free_balance(&dev.workers[0], &system, &zed, at).await, 1000);
    let back = run_json(&ep, &["transfer", BOB, "400", "--suri", "//Zed"]);
    let at = back["seq"].as_u64().unwrap();
    assert_eq!(free_balance(&dev.workers[0], &system, &zed, at).await, 600);
    let over = output(run(&ep, &["transfer", BOB, "601", "--suri", "//Zed"]));
    assert!(over.contains("insufficient_balance"), "{over}");

    // An estimate: the gas a query of the call used and a margin; `tx` sends it with that.
    let flip = phat_client::call(
        id.parse().unwrap(),
        phat_client::Contract::load(bundle("flipper"))
            .unwrap()
            .encode_message::<&str>("flip", &[])
            .unwrap(),
    );
    let estimate = client.estimate(&bob, flip).await.unwrap();
    assert!(estimate.gas_used > 0, "{estimate:?}");
    assert!(estimate.gas_limit > estimate.gas_used);
    let tx = run_json(&ep, &["tx", &id, "flip", "--suri", "//Bob"]);
    let used = tx["receipt"]["gas_used"].as_u64().unwrap();
    assert!(used <= estimate.gas_limit, "{used} > {estimate:?}");
}
