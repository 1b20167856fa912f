//! The `phat dev` endpoint routes every sealed query to the worker it is sealed to, on the first
//! try: right after start, under concurrent load, and while a worker restarts.

use phat_client::primitives::protocol::CallResult;
use phat_testkit::*;

/// Deploys Phala's prebuilt flip contract; returns its id.
fn deploy_flip(ep: &str) -> String {
    let flip = run_json(
        ep,
        &[
            "deploy",
            phala("flip/flip.wasm").to_str().unwrap(),
            "--metadata",
            phala("flip/metadata.json").to_str().unwrap(),
            "--constructor",
            "new",
            "--args",
            "true",
        ],
    );
    flip["contract"].as_str().expect("contract id").to_string()
}

/// Runs `n` `phat query` processes at once (each a new client, so each opens a session with
/// whichever worker the endpoint's round-robin shows it); returns the failures' output.
async fn concurrent_queries(ep: &str, id: &str, n: usize) -> Vec<String> {
    let runs = (0..n).map(|_| {
        let (ep, id) = (ep.to_string(), id.to_string());
        tokio::task::spawn_blocking(move || run(&ep, &["query", &id, "get"]))
    });
    let mut failures = Vec::new();
    for out in futures::future::join_all(runs).await {
        let out = out.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("\"decoded\":\"true\"") {
            failures.push(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    failures
}

/// Like [`concurrent_queries`], of a contract that does not exist: each must reach a worker
/// that can open it (which then answers `unknown_contract`).
async fn concurrent_queries_of_nothing(ep: &str, n: usize) -> Vec<String> {
    let nobody = format!("0x{}", "42".repeat(32));
    let runs = (0..n).map(|_| {
        let (ep, nobody) = (ep.to_string(), nobody.clone());
        tokio::task::spawn_blocking(move || run(&ep, &["query", &nobody, "0x00"]))
    });
    let mut failures = Vec::new();
    for out in futures::future::join_all(runs).await {
        let out = out.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("unknown_contract") {
            failures.push(stderr.into_owned());
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread")]
async fn sealed_queries_reach_their_worker_first_time_and_after_a_restart() {
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    // Right after start, before anything else went through the endpoint.
    let failures = concurrent_queries_of_nothing(&ep, 24).await;
    assert!(
        failures.is_empty(),
        "{} of 24 failed right after start: {failures:#?}",
        failures.len()
    );
    let id = tokio::task::spawn_blocking({
        let ep = ep.clone();
        move || deploy_flip(&ep)
    })
    .await
    .unwrap();
    // The query must be applied on both workers before any may answer it.
    let head = phat_client::Client::new(&ep)
        .unwrap()
        .info()
        .await
        .unwrap()
        .ledger_head;
    for w in &dev.workers {
        wait_seq(w, head).await;
    }

    // Both workers' keys are in play: round-robin info hands out both.
    let cluster: serde_json::Value = reqwest::get(format!("{ep}/v1/cluster"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = cluster["worker_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{cluster}");
    assert!(keys.iter().all(|k| k.is_string()), "keys known: {cluster}");
    assert_ne!(keys[0], keys[1]);
    // And each worker's status, as the console shows it: both up, at the head, agreeing.
    let members = cluster["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{cluster}");
    for m in members {
        assert_eq!(m["up"], true, "{cluster}");
        assert!(m["seq"].as_u64().unwrap() >= head, "{cluster}");
    }
    // Workers answer dApps on other origins themselves, and serve the console.
    let http = reqwest::Client::new();
    for w in &dev.workers {
        let r = http
            .get(format!("{w}/v1/info"))
            .header("origin", "http://127.0.0.1:5173")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "http://127.0.0.1:5173"
        );
        // A site the user merely visits may not drive the cluster from their browser.
        let r = http
            .get(format!("{w}/v1/info"))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        let page = http.get(format!("{w}/console/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'"));
    }

    let failures = concurrent_queries(&ep, &id, 24).await;
    assert!(
        failures.is_empty(),
        "{} of 24 failed: {failures:#?}",
        failures.len()
    );

    // A client whose session is with worker-1 (the endpoint's round-robin hands out both).
    let w1_key = phat_client::Client::new(&dev.workers[1])
        .unwrap()
        .info()
        .await
        .unwrap()
        .worker_key;
    let mut with_w1 = None;
    for _ in 0..20 {
        let c = phat_client::Client::new(&ep).unwrap();
        if c.trusted_info().await.unwrap().worker_key == w1_key {
            with_w1 = Some(c);
            break;
        }
    }
    let with_w1 = with_w1.expect("the endpoint never showed worker-1");
    let alice = phat_client::Signer::from_suri("//Alice").unwrap();
    let flip: phat_client::primitives::AccountId = id.parse().unwrap();
    let get = || phat_client::call(flip, vec![0x2f, 0x86, 0x5b, 0xd9]);
    let answer = with_w1.query(&alice, get(), None).await.unwrap();
    assert!(matches!(answer.result, CallResult::Ok(_)), "{answer:?}");

    // Kill worker-1: `phat dev` restarts it (same data, same sealed key). A query sealed to it
    // meanwhile waits for it instead of landing on the other worker; its session died with
    // the process, so the client opens a new one.
    let dir = dev.data().join("worker-1");
    let pid = worker_pid(&dir).expect("worker-1 process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let answer = with_w1
        .query(&alice, get(), None)
        .await
        .unwrap_or_else(|e| panic!("query to the restarting worker: {e}\n{}", dev.log()));
    assert!(matches!(answer.result, CallResult::Ok(_)), "{answer:?}");
    let new_pid = worker_pid(&dir).expect("worker-1 restarted");
    assert_ne!(new_pid, pid);
    let failures = concurrent_queries(&ep, &id, 24).await;
    assert!(
        failures.is_empty(),
        "{} of 24 failed after a restart: {failures:#?}\n{}",
        failures.len(),
        dev.log()
    );

    // A query sealed to a key no worker has is refused, not sent to a random worker.
    let resp = reqwest::Client::new()
        .post(format!("{ep}/v1/query/sealed"))
        .json(&serde_json::json!({
            "worker": format!("0x{}", "11".repeat(32)),
            "session": format!("0x{}", "22".repeat(32)),
            "counter": 0,
            "ciphertext": "0x00",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "unknown_worker", "{body}");
}
