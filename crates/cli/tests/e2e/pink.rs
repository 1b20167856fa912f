//! The off-chain powers end to end: the `price-oracle` example (built on `phat-ink`) fetching
//! from a local HTTP server through a `phat dev` cluster, and the documented errors.

use std::time::Duration;

use axum::routing::get;
use phat_client::primitives::protocol::CallResult;
use phat_client::{Client, Contract, Signer};
use phat_testkit::*;

/// A local API: `/price`, `/slow` (30 s), `/big` (3 MiB); anything else is a 404.
async fn api() -> String {
    let app = axum::Router::new()
        .route("/price", get(|| async { r#"{"usd": 42.5}"# }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 3 << 20] }));
    serve(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn price_oracle_fetches_caches_and_reports_errors() {
    let oracle_bundle = bundle("price-oracle");
    let api = api().await;
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let w0 = dev.workers[0].clone();
    let id = run_json(&ep, &["deploy", oracle_bundle.to_str().unwrap()])["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let price = format!("{api}/price");

    // A query fetches, parses and caches on the worker that ran it.
    let r = run_json(&w0, &["query", &id, "fetch", &price]);
    assert_eq!(r["decoded"], "Ok(Ok(4250))", "{r}");
    assert_eq!(
        run_json(&w0, &["query", &id, "cached"])["decoded"],
        "Ok(Some(4250))"
    );
    // The cache is worker-local: the other worker has nothing until it fetches itself.
    let w1 = dev.workers[1].clone();
    assert_eq!(
        run_json(&w1, &["query", &id, "cached"])["decoded"],
        "Ok(None)"
    );

    // A 404 comes back as a value the contract handles.
    let r = run_json(&w0, &["query", &id, "fetch", &format!("{api}/missing")]);
    assert_eq!(r["decoded"], "Ok(Err(HttpStatus(404)))", "{r}");
    // More requests in a batch than the worker allows.
    let many: Vec<String> = (0..6).map(|i| format!("{api}/price?{i}")).collect();
    let list = format!(
        "[{}]",
        many.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = run_json(&w0, &["query", &id, "statuses", &list]);
    assert_eq!(r["decoded"], "Ok(Err(Batch(TooManyRequests)))", "{r}");
    let two = format!("[\"{price}\", \"{api}/missing\"]");
    assert_eq!(
        run_json(&w0, &["query", &id, "statuses", &two])["decoded"],
        "Ok(Ok([200, 404]))"
    );
    // An oversized body is Phala's 524 (the contract's own fallback runs); a timeout makes
    // `http_request` fail: the query fails with the reason.
    assert_eq!(
        run_json(&w0, &["query", &id, "fetch", &format!("{api}/big")])["decoded"],
        "Ok(Err(HttpStatus(524)))"
    );
    let err = run_fail(&w0, &["query", &id, "fetch", &format!("{api}/slow")]);
    let e = err.to_lowercase();
    assert!(e.contains("timeout") || e.contains("timed out"), "{err}");

    // A worker whose allow-list does not hold the API's host refuses it.
    let dir = tempfile::tempdir().unwrap();
    let base: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
    let port = free_ports(1);
    let strict = Proc::start(
        "strict",
        &[
            "worker",
            "--ledger",
            &format!("http://127.0.0.1:{}", base + 1),
            "--ledger-token-file",
            dev.ledger_token_file().to_str().unwrap(),
            "--data",
            dir.path().join("strict").to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--allow-private-egress",
            "--allow-host",
            "api.example",
            // A worker of this cluster: attested by the cluster's dev root.
            "--dev-attestation-root",
            dev.data()
                .join("dev-attestation-root.key")
                .to_str()
                .unwrap(),
        ],
        &dir.path().join("strict.log"),
    );
    let strict_url = format!("http://127.0.0.1:{port}");
    wait_up(&strict_url).await;
    // Refused by the egress rules: unreachable, 523, as Phala answers a server it cannot reach.
    assert_eq!(
        run_json(&strict_url, &["query", &id, "fetch", &price])["decoded"],
        "Ok(Err(HttpStatus(523)))"
    );
    drop(strict);

    // In a command, HTTP answers Phala's fixed 523 on every worker: the contract's fallback
    // runs (here it reverts with `HttpStatus(523)`), never a request.
    let contract = Contract::load(&oracle_bundle).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let data = contract
        .encode_message("fetch", std::slice::from_ref(&price))
        .unwrap();
    let sub = Client::new(&ep)
        .unwrap()
        .submit(&alice, phat_client::call(id.parse().unwrap(), data), true)
        .await
        .unwrap();
    let receipt = sub.receipt.unwrap();
    match &receipt.result {
        CallResult::Ok(out) => {
            assert!(out.reverted, "{out:?}");
            assert!(
                out.data.windows(2).any(|w| w == 523u16.to_le_bytes()),
                "{out:?}"
            );
        }
        other => panic!("HTTP in a command: {other:?}"),
    }
    // Both workers hold the same receipt, its result sealed to the sender (identical
    // ciphertext: the envelope's reply key is the same on every worker).
    let mut stored = Vec::new();
    for w in &dev.workers {
        wait_seq(w, receipt.seq).await;
        stored.push(Client::new(w).unwrap().receipt(receipt.seq).await.unwrap());
    }
    assert_eq!(stored[0], stored[1]);
    assert!(matches!(stored[0].result, CallResult::Sealed(_)));
    assert_eq!(stored[0].state_root, receipt.state_root);

    // What every worker's cache holds once it applied `seq`.
    let cached_everywhere = |seq: u64| {
        let (workers, id) = (dev.workers.clone(), id.clone());
        async move {
            let mut all = Vec::new();
            for w in &workers {
                wait_seq(w, seq).await;
                all.push(run_json(w, &["query", &id, "cached"])["decoded"].clone());
            }
            all
        }
    };
    // A cache write made by a command lands in every worker's cache.
    let tx = run_json(&ep, &["tx", &id, "remember", "777"]);
    let seq = tx["receipt"]["seq"].as_u64().unwrap();
    assert_eq!(cached_everywhere(seq).await, ["Ok(Some(777))"; 2]);
    // A command that reverts takes its cache writes back with its state.
    let out = run(&ep, &["tx", &id, "remember_then_refuse", "888"]);
    assert!(!out.status.success(), "a reverted call fails `phat tx`");
    let text = String::from_utf8_lossy(&out.stdout);
    let tx: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(tx["decoded"], "Ok(Err(Refused))", "{tx}");
    let seq = tx["receipt"]["seq"].as_u64().unwrap();
    assert_eq!(
        cached_everywhere(seq).await,
        ["Ok(Some(777))"; 2],
        "a reverted command's cache write stayed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contract_built_with_pink_extension_runs_unmodified() {
    let bundle = bundle("phala/pink-compat");
    let api = api().await;
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let id = run_json(&ep, &["deploy", bundle.to_str().unwrap()])["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let r = run_json(&ep, &["query", &id, "get", &format!("{api}/price")]);
    let text = r["decoded"].as_str().unwrap();
    assert!(text.starts_with("Ok((200,"), "{r}");
    let r = run_json(&ep, &["query", &id, "cache_round_trip", "0x6b", "0x0102"]);
    assert_eq!(r["decoded"], "Ok(Some(0x0102))", "{r}");
    // The contract's derived key is the same on every worker.
    let keys: Vec<String> = dev
        .workers
        .iter()
        .map(|w| {
            run_json(w, &["query", &id, "sign_and_verify", "0x68656c6c6f"])["decoded"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(keys[0].starts_with("Ok(0x"), "{keys:?}");
    assert_eq!(keys[0], keys[1]);

    // JavaScript (`js_eval`) in queries: values, bytes, scriptArgs, exceptions; a loop ends at
    // the query's deadline and a memory bomb at the heap limit, and the worker keeps serving.
    let js = |script: &str, args: &[&str]| {
        let mut all = vec!["query", &id, "js", script];
        let list = format!(
            "[{}]",
            args.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        all.push(&list);
        // Decoded as contract-transcode prints it (strings without quotes).
        run_json(&ep, &all)["decoded"]
            .as_str()
            .unwrap()
            .replace('"', "")
    };
    assert_eq!(js("6 * 7", &[]), "Ok(Other(42))");
    assert_eq!(js("'ab'.toUpperCase()", &[]), "Ok(String(AB))");
    assert_eq!(js("new Uint8Array([1, 2])", &[]), "Ok(Bytes(0x0102))");
    assert_eq!(js("scriptArgs.join('+')", &["a", "b"]), "Ok(String(a+b))");
    assert_eq!(
        js("throw new Error('boom')", &[]),
        "Ok(Exception(Error: boom))"
    );
    let endless = js("while (true) {}", &[]);
    assert!(endless.contains("interrupted"), "{endless}");
    let bomb = js(
        "let a = []; while (true) a.push(new Array(1e5).fill(1))",
        &[],
    );
    assert!(bomb.contains("out of memory"), "{bomb}");
    assert_eq!(js("1 + 1", &[]), "Ok(Other(2))", "the worker serves on");
    // Scripts fetch with the contract's egress rules: the local API answers; the worker's own
    // API is refused (523 Unreachable, as Phala answers a server it cannot reach).
    let price = format!("{api}/price");
    assert_eq!(
        js(
            "pink.httpRequest({url: scriptArgs[0], returnTextBody: true}).body",
            &[&price]
        ),
        "Ok(String({usd: 42.5}))"
    );
    let inward = js(
        "pink.httpRequest({url: scriptArgs[0]}).statusCode",
        &[&format!("{}/v1/info", dev.workers[0])],
    );
    assert_eq!(
        inward, "Ok(Other(523))",
        "refused by the egress rules: unreachable"
    );
    // console.log reaches the contract's log, which its deployer follows on another worker
    // than the one that ran the query.
    let w0 = dev.workers[0].clone();
    let alice = phat_client::Signer::from_suri("//Alice").unwrap();
    let client = Client::new(dev.workers.last().unwrap()).unwrap();
    let contract: phat_client::primitives::AccountId = id.parse().unwrap();
    let mut live = Box::pin(client.follow_logs(&alice, contract, Default::default()));
    run_json(
        &w0,
        &[
            "query",
            &id,
            "js",
            "console.log('hello from js', 42); 0",
            "[]",
        ],
    );
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let entry = futures::StreamExt::next(&mut live).await.unwrap().unwrap();
            if entry.record.message.contains("hello from js") {
                return entry.record;
            }
        }
    })
    .await
    .expect("the console line did not reach the log stream");
    assert_eq!(line.message, "js: hello from js 42");
    // In a command every worker answers Phala's fixed exception (JavaScript is not
    // deterministic), so the contract goes on and the roots agree.
    let tx = run_json(&dev.endpoint, &["tx", &id, "js_command", "1"]);
    let decoded = tx["decoded"].as_str().unwrap_or_default();
    assert!(
        decoded.contains("Exception") && decoded.contains("not available in a transaction"),
        "{tx}"
    );
    let seq = tx["receipt"]["seq"].as_u64().unwrap();
    // At that seq: the records of the queries above are ordered after it, at their own pace.
    assert_eq!(
        root_at(&dev.workers[0], seq).await,
        root_at(&dev.workers[1], seq).await
    );
}

/// Runs `tx args`, which must fail with `expected` in its error; both workers reach its seq
/// with the same state root. Returns their infos.
async fn fails_alike(
    dev: &Dev,
    args: &[&str],
    expected: &str,
) -> (
    phat_client::primitives::protocol::WorkerInfo,
    phat_client::primitives::protocol::WorkerInfo,
) {
    let mut all = vec!["tx"];
    all.extend_from_slice(args);
    let out = run(&dev.endpoint, &all);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(expected), "{text}");
    let seq: u64 = text
        .split("seq ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let a = wait_seq(&dev.workers[0], seq).await;
    let b = wait_seq(&dev.workers[1], seq).await;
    assert_eq!(
        root_at(&dev.workers[0], seq).await,
        root_at(&dev.workers[1], seq).await
    );
    (a, b)
}

/// The hex form of `wasm`'s code hash.
fn code_id(wasm: &[u8]) -> String {
    phat_client::primitives::CodeHash::of(wasm).to_string()
}

/// An account id (0x hex) as decoded results print it: SS58.
fn ss58(hex: &str) -> String {
    let id: phat_client::primitives::AccountId = hex.parse().unwrap();
    contract_transcode::AccountId32(id.0).to_ss58check()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_contract_answers_systemref_and_runs_phat_js() {
    let bundle = bundle("phala/pink-compat");
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    // The two workers' `Join` entries are the only commands yet: no user's command is needed
    // for the genesis, and so the system contract, to be applied.
    let info = wait_seq(&dev.workers[0], 2).await;
    let system = info.system_contract.expect("a system contract").to_string();
    assert_eq!(
        run_json(&ep, &["query", &system, "System::version"])["decoded"],
        "Ok((1, 0, 0))",
        "the system contract answers on a fresh cluster"
    );
    let id = run_json(&ep, &["deploy", bundle.to_str().unwrap()])["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let query = |args: &[&str]| -> String {
        let mut all = vec!["query"];
        all.extend_from_slice(args);
        run_json(&ep, &all)["decoded"]
            .as_str()
            .unwrap()
            .replace('"', "")
    };
    // A command's decoded result, also when it reverted (ink! reverts on `Err`).
    let tx = |args: &[&str]| -> String {
        let mut all = vec!["tx"];
        all.extend_from_slice(args);
        let out = run(&ep, &all);
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("phat {all:?}: {e}: {text}"));
        v["decoded"].as_str().unwrap().replace('"', "")
    };

    // `SystemRef::instance()` finds the genesis's system contract.
    assert_eq!(
        query(&[&id, "system"]),
        format!("Ok(({}, (1, 0, 0)))", ss58(&system))
    );
    // The JavaScript delegate is registered at genesis by its code hash.
    let js = ss58(&code_id(phat_system::JS_DELEGATE_WASM));
    assert_eq!(
        query(&[&id, "driver", "JsDelegate2"]),
        format!("Ok((Some({js}), Some([(0, {js})])))")
    );
    assert_eq!(query(&[&id, "driver", "Nope"]), "Ok((None, None))");
    // `phat_js::eval`: get_driver, then a delegate call into that code, then js_eval.
    assert_eq!(
        query(&[
            &id,
            "js_driver",
            "scriptArgs[0] + scriptArgs[1]",
            r#"["foo","bar"]"#
        ]),
        "Ok(Ok(String(foobar)))"
    );
    assert_eq!(
        query(&[&id, "js_driver", "new Uint8Array([7])", "[]"]),
        "Ok(Ok(Bytes(0x07)))"
    );
    assert_eq!(
        query(&[&id, "js_driver", "throw new Error('no')", "[]"]),
        "Ok(Err(Error: no))"
    );
    // Balances and code lookups through the system contract.
    let alice = phat_client::Signer::from_suri("//Alice")
        .unwrap()
        .account()
        .to_string();
    let balances = query(&[&id, "balances", &alice]);
    let (total, free) = balances
        .trim_start_matches("Ok((")
        .trim_end_matches("))")
        .split_once(", ")
        .unwrap();
    assert_eq!(total, free, "{balances}");
    assert!(total.parse::<u128>().unwrap() > 0, "{balances}");
    let system_code = code_id(phat_system::SYSTEM_WASM);
    assert_eq!(
        query(&[&id, "code", &system_code, &system]),
        format!("Ok((true, false, Some({system_code})))")
    );
    assert_eq!(
        query(&[&id, "code", &format!("0x{}", "00".repeat(32)), &alice]),
        "Ok((false, false, None))"
    );

    // Drivers: a contract that is not an administrator is refused; the owner (//Alice, the
    // genesis owner of `phat dev`) grants it, then it may register; strangers may not grant.
    assert_eq!(
        tx(&[&id, "register_as", "Mine"]),
        "Ok(Err(PermisionDenied))"
    );
    assert_eq!(
        tx(&[&system, "System::grant_admin", &id, "--suri", "//Bob"]),
        "Ok(Err(PermisionDenied))"
    );
    let granted = run_json(&ep, &["tx", &system, "System::grant_admin", &id]);
    assert_eq!(granted["decoded"], "Ok(Ok(()))", "{granted}");
    // Phala's event: `AdministratorAdded { user }`, the contract's second event, with only its
    // signature as a topic; a client decoding Phala's system events decodes it.
    let events = granted["events_decoded"].to_string();
    assert!(events.contains("AdministratorAdded"), "{events}");
    let event = &granted["receipt"]["events"][0];
    assert_eq!(
        event["data"].as_str().unwrap().trim_start_matches("0x"),
        format!("01{}", id.trim_start_matches("0x")),
        "{event}"
    );
    assert_eq!(event["topics"].as_array().unwrap().len(), 1, "{event}");
    assert_eq!(query(&[&system, "System::is_admin", &id]), "Ok(true)");
    assert_eq!(tx(&[&id, "register_as", "Mine"]), "Ok(Ok(()))");
    let driver = query(&[&id, "driver", "Mine"]);
    assert!(
        driver.starts_with(&format!("Ok((Some({}), Some([(", ss58(&id))),
        "{driver}"
    );
    // What phat does not do answers an error, not a trap.
    assert_eq!(tx(&[&id, "sidevm"]), "Ok(Err(ConditionNotMet))");
    assert_eq!(
        query(&[&system, "System::upgrade_runtime", "(1, 1)"]),
        "Ok(Err(ConditionNotMet))"
    );
    // The upgrade path: only the owner sets the system contract's code, to uploaded code;
    // Phala's `upgrade_system_contract` has no chain storage to import from.
    assert_eq!(
        tx(&[&system, "set_code", &system_code, "--suri", "//Bob"]),
        "Ok(Err(PermisionDenied))"
    );
    assert_eq!(
        tx(&[&system, "set_code", &format!("0x{}", "11".repeat(32))]),
        "Ok(Err(CodeNotFound))"
    );
    assert_eq!(
        tx(&[&system, "System::upgrade_system_contract"]),
        "Ok(Err(CodeNotFound))"
    );
    let upgraded = run_json(&ep, &["tx", &system, "set_code", &system_code]);
    assert_eq!(upgraded["decoded"], "Ok(Ok(()))", "{upgraded}");
    let events = upgraded["events_decoded"].to_string();
    assert!(events.contains("CodeUpgraded"), "{events}");
    assert_eq!(
        query(&[&system, "System::version"]),
        "Ok((1, 0, 0))",
        "the system contract still answers"
    );
    // The function Phala reserves for the system contract traps in any other contract, the
    // same way on both workers.
    let (a, b) = fails_alike(
        &dev,
        &[&id, "import_system_code"],
        "reserved for the system contract",
    )
    .await;
    assert_eq!(a.system_contract, b.system_contract);
}
