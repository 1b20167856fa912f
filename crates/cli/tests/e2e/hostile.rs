//! Hostile tenants against a real `phat dev` cluster (2 workers): contracts that amplify
//! through every host function, floods of queries, sessions, nonces and uploads, bad bodies,
//! egress aimed at the cluster's own ports. After each case the cluster must still serve a
//! normal erc20 transfer and query, both workers must agree on the root, no worker may have
//! restarted, and each worker's peak memory (VmHWM from `/proc`) must stay under 1 GiB.

use std::time::Duration;

use parity_scale_codec::Encode;
use phat_client::primitives::protocol::{Bytes, Call, CallResult, Receipt, RequestBody};
use phat_client::primitives::{AccountId, Mode};
use phat_client::{Client, ClientError, Signer};
use phat_testkit::*;

const MAX_GAS: u64 = u64::MAX;
const GIB: u64 = 1 << 30;

/// Peak resident memory of `pid` in bytes (`VmHWM`).
fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What a hostile case got, for the report.
struct Got {
    case: &'static str,
    outcome: String,
}

struct Suite {
    dev: Dev,
    ep: String,
    client: Client,
    alice: Signer,
    erc20: String,
    pids: Vec<i32>,
    amplify: AccountId,
    forward: AccountId,
    got: Vec<Got>,
    peak: Vec<u64>,
}

impl Suite {
    async fn submit(&self, call: Call) -> Receipt {
        self.client
            .submit(&self.alice, call, true)
            .await
            .expect("submitted")
            .receipt
            .expect("receipt")
    }

    async fn deploy_wasm(&self, wasm: Vec<u8>) -> AccountId {
        let code = self
            .client
            .upload_code(&self.alice, wasm)
            .await
            .expect("upload");
        let r = self
            .submit(phat_client::instantiate(code, vec![], rand_salt()))
            .await;
        match r.result {
            CallResult::Ok(o) => o.address.expect("address"),
            other => panic!("instantiate: {other:?}"),
        }
    }

    /// A command of `contract` with `input` and all the gas a call may have: the error kind
    /// and message of its receipt, or "ok".
    async fn command(&self, contract: AccountId, input: Vec<u8>) -> String {
        let r = self.submit(max_gas_call(contract, input)).await;
        outcome(&r.result)
    }

    /// A query of `contract` with `input` and all the gas a call may have.
    async fn query(&self, contract: AccountId, input: Vec<u8>) -> String {
        match self
            .client
            .query(&self.alice, max_gas_call(contract, input), None)
            .await
        {
            Ok(r) => outcome(&r.result),
            Err(ClientError::Api { kind, message, .. }) => format!("{kind}: {message}"),
            Err(e) => format!("client: {e}"),
        }
    }

    fn record(&mut self, case: &'static str, outcome: impl Into<String>) {
        let outcome = outcome.into();
        eprintln!("[hostile] {case}: {}", first_line(&outcome));
        self.got.push(Got { case, outcome });
    }

    /// The cluster still serves everyone else: an erc20 transfer and query, the same root
    /// on both workers, no worker restarted, peak memory under 1 GiB.
    async fn still_healthy(&mut self, case: &str) {
        let ep = self.ep.clone();
        let id = self.erc20.clone();
        let tx = tokio::task::spawn_blocking(move || {
            run_json(&ep, &["tx", &id, "transfer", BOB, "1", "--suri", "//Alice"])
        })
        .await
        .unwrap();
        assert_eq!(tx["decoded"], "Ok(Ok(()))", "{case}: transfer: {tx}");
        let seq = tx["receipt"]["seq"].as_u64().unwrap();
        let mut roots = Vec::new();
        for w in &self.dev.workers {
            roots.push(root_at(w, seq).await);
        }
        assert_eq!(roots[0], roots[1], "{case}: the workers' roots differ");
        let ep = self.ep.clone();
        let id = self.erc20.clone();
        let q =
            tokio::task::spawn_blocking(move || run_json(&ep, &["query", &id, "balance_of", BOB]))
                .await
                .unwrap();
        assert!(
            q["decoded"].as_str().is_some_and(|d| d.starts_with("Ok(")),
            "{case}: query: {q}"
        );
        for (i, pid) in self.pids.iter().enumerate() {
            let now = worker_pid(&self.dev.data().join(format!("worker-{i}")));
            assert_eq!(
                now,
                Some(*pid),
                "{case}: worker-{i} restarted\n{}",
                self.dev.log()
            );
            let peak = peak_rss(*pid);
            assert!(
                peak < GIB,
                "{case}: worker-{i} peaked at {} MiB",
                peak >> 20
            );
            self.peak[i] = self.peak[i].max(peak);
        }
        eprintln!(
            "[hostile] after {case}: peak worker memory {} MiB, {} MiB",
            self.peak[0] >> 20,
            self.peak[1] >> 20
        );
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn rand_salt() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

fn max_gas_call(dest: AccountId, data: Vec<u8>) -> Call {
    Call::Call {
        dest,
        value: 0,
        data: Bytes(data),
        gas_limit: MAX_GAS,
    }
}

fn outcome(r: &CallResult) -> String {
    match r {
        CallResult::Ok(o) if o.reverted => "reverted".into(),
        CallResult::Ok(_) => "ok".into(),
        CallResult::Err(e) => format!("{}: {}", e.kind, e.message),
        CallResult::Sealed(_) => "sealed".into(),
    }
}

/// Input of `amplify.wat`: attack `mode` with argument `arg`.
fn amplify(mode: u8, arg: u32) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(&arg.to_le_bytes());
    v
}

/// Input of `pink_forward.wat`: call pink function `func` `times` times with `args`.
fn forward(func: u32, times: u32, args: impl Encode) -> Vec<u8> {
    let mut v = func.to_le_bytes().to_vec();
    v.extend_from_slice(&times.to_le_bytes());
    args.encode_to(&mut v);
    v
}

/// pink's `HttpRequest` as SCALE: url, method, headers, body.
fn http_get(url: &str) -> impl Encode {
    (
        url.to_string(),
        "GET".to_string(),
        Vec::<(String, String)>::new(),
        Vec::<u8>::new(),
    )
}

/// An HTTP server on 127.0.0.1 answering every request with `size` bytes; returns its URL.
async fn huge_body_server(size: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move { vec![b'x'; size] });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/big")
}

/// `got` starts with `kinds` (or with one of its `|`-separated alternatives).
fn assert_kind(case: &str, got: &str, kinds: &str) {
    assert!(
        kinds.split('|').any(|k| got.starts_with(k)),
        "{case}: expected `{kinds}`, got `{got}`"
    );
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cluster_survives_hostile_tenants() {
        let erc20_bundle = bundle("erc20");
        // A smaller per-contract storage quota keeps the state-growth case short.
        let dev = Dev::start_with(2, &["--limit", "max_contract_storage=4194304"]).await;
        let ep = dev.endpoint.clone();
        let erc20 = deploy_erc20(&ep, &erc20_bundle, "1000000000").await;
        let pids = (0..2)
            .map(|i| worker_pid(&dev.data().join(format!("worker-{i}"))).expect("worker pid"))
            .collect();
        let client = Client::new(&ep).unwrap();
        let alice = Signer::from_suri("//Alice").unwrap();
        let mut s = Suite {
            ep: ep.clone(),
            client,
            alice,
            erc20,
            pids,
            amplify: AccountId::default(),
            forward: AccountId::default(),
            got: Vec::new(),
            peak: vec![0; 2],
            dev,
        };
        s.amplify = s.deploy_wasm(hostile_wasm("amplify")).await;
        s.forward = s.deploy_wasm(hostile_wasm("pink_forward")).await;
        s.still_healthy("setup").await;
        let (amp, fwd) = (s.amplify, s.forward);

        // --- contracts amplifying through host functions (commands: every worker runs them) ---
        let got = s.command(amp, amplify(0, 0)).await;
        assert_kind(
            "storage overwrite flood",
            &got,
            "limit_exceeded: storage_written_per_call",
        );
        s.record("storage overwrite flood (command)", got);
        s.still_healthy("storage overwrite flood").await;

        let got = s.command(amp, amplify(1, 0)).await;
        assert_kind("event flood", &got, "limit_exceeded: event_bytes_per_call");
        s.record("16 KiB event flood (command)", got);
        s.still_healthy("event flood").await;

        let got = s.command(amp, amplify(2, 0)).await;
        assert_kind("empty event flood", &got, "limit_exceeded: events_per_call");
        s.record("empty event flood (command)", got);
        s.still_healthy("empty event flood").await;

        let got = s.command(amp, amplify(4, 0)).await;
        assert_kind("nested bound", &got, "limit_exceeded: event_bytes_per_call");
        s.record(
            "bound hit in a nested call, failure ignored by the caller",
            got,
        );
        s.still_healthy("nested bound").await;

        // State growth is paid for: an account without balance cannot add a byte.
        let nobody = Signer::from_suri("//Nobody").unwrap();
        let r = s
            .client
            .submit(&nobody, max_gas_call(amp, amplify(3, 1000)), true)
            .await
            .unwrap()
            .receipt
            .unwrap();
        let got = outcome(&r.result);
        assert_kind("unfunded growth", &got, "limit_exceeded: storage_deposit");
        s.record("state growth by an account without balance", got);

        let mut growth = String::new();
        for call in 0..20 {
            growth = s.command(amp, amplify(3, call)).await;
            if growth != "ok" {
                break;
            }
        }
        assert_kind("state growth", &growth, "limit_exceeded: contract_storage");
        s.record("state growth over many commands (768 KiB each)", growth);
        s.still_healthy("state growth").await;

        let got = s.command(amp, amplify(7, 0)).await;
        assert_kind("debug flood", &got, "out_of_gas");
        s.record("16 KiB debug message flood (command)", got);
        s.still_healthy("debug flood").await;

        let got = s.command(amp, amplify(5, 0)).await;
        assert_kind("panic", &got, "panicked");
        assert!(got.contains("balance too low"), "{got}");
        s.record("panic with a message", got);

        // The same floods as queries (one worker runs them; their writes are dropped).
        let got = s.query(amp, amplify(0, 0)).await;
        assert_kind("query storage flood", &got, "limit_exceeded");
        s.record("storage overwrite flood (query)", got);
        let got = s.query(amp, amplify(1, 0)).await;
        assert_kind("query event flood", &got, "limit_exceeded");
        s.record("16 KiB event flood (query)", got);
        s.still_healthy("query floods").await;

        // The older hostile modules, through the whole cluster.
        for (name, kind, query) in [
            // 5e9 gas runs out before the 5-second query limit on most machines.
            ("infinite_loop", "out_of_gas|timeout", true),
            ("memory_grow", "ok", false),
            ("recursion", "stack_overflow", false),
            ("huge_return", "too_large", false),
            ("self_call", "panicked", false),
        ] {
            let id = s.deploy_wasm(hostile_wasm(name)).await;
            let got = if query {
                s.query(id, vec![]).await
            } else {
                s.command(id, vec![]).await
            };
            assert_kind(name, &got, kind);
            s.record(name, got);
        }
        let looped = s.deploy_wasm(hostile_wasm("infinite_loop")).await;
        let got = s.command(looped, vec![]).await;
        assert_kind("infinite loop command", &got, "out_of_gas");
        s.record("infinite loop (command, all the gas a call may have)", got);
        s.still_healthy("older hostile modules").await;

        // --- the pink extension ---
        let got = s
            .command(fwd, forward(10, 20_000, (2u8, "y".repeat(60_000))))
            .await;
        s.record("pink log flood: 20k lines of 60 KB (command)", got);
        s.still_healthy("log flood").await;
        let got = s
            .query(fwd, forward(6, 2_000, (b"k".to_vec(), vec![7u8; 60_000])))
            .await;
        s.record("pink cache flood: 2k sets of 60 KB (query)", got);
        let mut cache_keys = String::new();
        for round in 0..3u8 {
            cache_keys = s
                .query(fwd, forward(6, 1, (vec![round; 200], vec![round; 60_000])))
                .await;
        }
        s.record("pink cache: many keys (query)", cache_keys);
        s.still_healthy("cache flood").await;

        let big = huge_body_server(50 << 20).await;
        let got = s.query(fwd, forward(1, 3, http_get(&big))).await;
        s.record("pink HTTP: 50 MB response bodies (query)", got);
        s.still_healthy("huge HTTP body").await;

        // Egress aimed at the cluster itself: the workers, the endpoint, the ledger.
        let ledger = s.dev.ledger();
        for (what, url) in [
            ("worker API", format!("{}/v1/info", s.dev.workers[0])),
            (
                "other worker's API",
                format!("{}/v1/info", s.dev.workers[1]),
            ),
            ("endpoint", format!("{}/v1/cluster", s.ep)),
            ("ledger", format!("{ledger}/ledger/v1/head")),
        ] {
            let reply = s.query(fwd, forward(1, 1, http_get(&url))).await;
            // The reply is pink's `Result<HttpResponse, _>` status; a refused request never
            // carries the target's body.
            assert!(
                !reply.contains("ledger_head") && !reply.contains("worker_key"),
                "egress to the {what} answered: {reply}"
            );
            s.record(
                "pink HTTP to the cluster's own ports",
                format!("{what}: {reply}"),
            );
        }
        let got = s.command(fwd, forward(1, 1, http_get(&big))).await;
        s.record("pink HTTP in a command", got);
        s.still_healthy("egress inward").await;

        // --- hostile callers ---
        // 64 concurrent queries that each burn their whole time limit.
        let floods = (0..64).map(|_| {
            let (c, a) = (
                Client::new(&s.ep).unwrap(),
                Signer::from_suri("//Eve").unwrap(),
            );
            async move { c.query(&a, max_gas_call(looped, vec![]), None).await }
        });
        let (results, ()) = tokio::join!(futures::future::join_all(floods), async {
            // Commands keep applying meanwhile.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let refused = results.iter().filter(|r| r.is_err()).count();
        s.record(
            "64 concurrent 5-second queries",
            format!("{refused} refused or timed out"),
        );
        s.still_healthy("query flood").await;

        // Many sessions: every new client opens one with its worker.
        let mut opened = 0;
        for chunk in 0..10 {
            let opens = (0..100).map(|i| {
                let c = Client::new(&s.ep).unwrap();
                let who = Signer::from_suri(&format!("//flood/{chunk}/{i}")).unwrap();
                let id = s.erc20.parse::<AccountId>().unwrap();
                async move {
                    c.query(&who, phat_client::call(id, vec![0, 0, 0, 0]), None)
                        .await
                }
            });
            opened += futures::future::join_all(opens)
                .await
                .iter()
                .filter(|r| r.is_ok())
                .count();
        }
        s.record(
            "1,000 query sessions from 1,000 accounts",
            format!("{opened} answered"),
        );
        s.still_healthy("session flood").await;

        // The same signed command twice.
        let cluster = s.client.trusted_info().await.unwrap().cluster_key;
        let req = phat_client::sign(
            &s.alice,
            &cluster,
            Mode::Command,
            phat_client::call(amp, amplify(6, 0)),
        );
        let first = s.client.submit_signed(&req, true).await.unwrap();
        assert_eq!(outcome(&first.receipt.unwrap().result), "ok");
        let again = match s.client.submit_signed(&req, true).await {
            Ok(r) => outcome(&r.receipt.unwrap().result),
            Err(e) => e.to_string(),
        };
        assert!(again.contains("replayed"), "{again}");
        s.record("replayed command", again);

        // A command whose signature does not match its body.
        let mut forged = phat_client::sign(
            &s.alice,
            &cluster,
            Mode::Command,
            phat_client::call(amp, amplify(6, 0)),
        );
        forged.signature.0[0] ^= 1;
        let got = match s.client.submit_signed(&forged, true).await {
            Ok(r) => outcome(&r.receipt.unwrap().result),
            Err(e) => e.to_string(),
        };
        assert!(got.contains("signature"), "{got}");
        s.record("forged signature", got);

        // An expired command.
        let body = RequestBody {
            mode: Mode::Command,
            call: phat_client::call(amp, amplify(6, 0)),
            nonce: 7,
            expires_at: 1,
            certificate: None,
        };
        let expired = s.alice.sign_request(&cluster, &body);
        let got = match s.client.submit_signed(&expired, true).await {
            Ok(r) => outcome(&r.receipt.unwrap().result),
            Err(e) => e.to_string(),
        };
        assert!(got.contains("expired"), "{got}");
        s.record("expired command", got);
        s.still_healthy("bad commands").await;

        // Uploads: 100 distinct modules at once (the signer's upload rate stops most), then one
        // over the size limit, then one unsigned.
        // (The client waits out short `Retry-After`s by itself, a few times: sent one after the
        // other, every upload would get through, slowly; sent at once, most run out of retries.)
        let (mut accepted, mut limited) = (0, 0);
        let uploads = (0..100u32).map(|i| {
            let wasm = wat::parse_str(format!(
                r#"(module (import "env" "memory" (memory 1 16)) (data (i32.const 0) "{i}")
                 (func (export "deploy")) (func (export "call")))"#
            ))
            .unwrap();
            let (client, alice) = (&s.client, &s.alice);
            async move { (i, client.upload_code(alice, wasm).await) }
        });
        for (i, r) in futures::future::join_all(uploads).await {
            match r {
                Ok(_) => accepted += 1,
                Err(ClientError::Api { status: 429, .. }) => limited += 1,
                Err(e) => panic!("upload {i}: {e}"),
            }
        }
        assert!(
            limited > 0 && accepted > 0,
            "{accepted} accepted, {limited} limited"
        );
        s.record(
            "100 uploads at once from one signer",
            format!("{accepted} accepted, {limited} refused with 429"),
        );
        let too_big = s
            .client
            .upload_code(&Signer::from_suri("//Bob").unwrap(), vec![0u8; 3 << 20])
            .await
            .unwrap_err();
        s.record("a 3 MiB upload", too_big.to_string());
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/code", s.ep))
            .body(hostile_wasm("memory_grow"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        s.record("an unsigned upload", resp.text().await.unwrap_or_default());
        let nobody = Signer::from_suri("//Nobody").unwrap();
        let got = s
            .client
            .upload_code(&nobody, hostile_wasm("memory_grow"))
            .await
            .unwrap_err();
        assert!(got.to_string().contains("unfunded"), "{got}");
        s.record("an upload signed by an unfunded account", got.to_string());
        s.still_healthy("uploads").await;

        // Bodies: oversized, garbage. No pooled connections: the endpoint may close one that sent
        // an oversized body before it was read.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let resp = http
            .post(format!("{}/v1/query", s.ep))
            .header("content-type", "application/json")
            .body(vec![b' '; 5 << 20])
            .send()
            .await;
        let status = resp.map(|r| r.status().as_u16()).unwrap_or(413);
        assert_eq!(status, 413);
        s.record("5 MiB query body", "413");
        let resp = http
            .post(format!("{}/v1/commands", s.ep))
            .header("content-type", "application/json")
            .body(r#"{"signer": 12, "body": [1, 2, 3"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        s.record(
            "malformed JSON command",
            resp.text().await.unwrap_or_default(),
        );
        s.still_healthy("bodies").await;

        // Metadata of someone else's code cannot be swapped.
        let view = s.client.contract(&s.erc20.parse().unwrap()).await.unwrap();
        let resp = http
            .post(format!("{}/v1/code/{}/metadata", s.ep, view.code_hash))
            .json(&serde_json::json!({"spec": {"messages": []}}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(status >= 400, "metadata swap accepted: {status} {text}");
        s.record(
            "unsigned metadata swap of another's code",
            format!("{status} {text}"),
        );
        // Signed by another funded account, it is stored under that account only: the
        // contract's calls still decode with what its deployer published.
        let bob = Signer::from_suri("//Bob").unwrap();
        let bogus = serde_json::json!({"spec": {"messages": []}, "contract": {"name": "evil"}});
        s.client
            .put_metadata(&bob, &view.code_hash, &bogus)
            .await
            .unwrap();
        let meta = s
            .client
            .contract_metadata(&s.erc20.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(meta["contract"]["name"], "erc20", "{meta}");
        s.record(
            "signed metadata swap by another account",
            "stored under that account; the contract keeps its deployer's ABI",
        );
        s.still_healthy("metadata swap").await;

        eprintln!("\n| hostile case | what it got |\n| --- | --- |");
        for g in &s.got {
            eprintln!(
                "| {} | {} |",
                g.case,
                first_line(&g.outcome).replace('|', "/")
            );
        }
        eprintln!(
            "\n{} cases; peak worker memory: {} MiB, {} MiB",
            s.got.len(),
            s.peak[0] >> 20,
            s.peak[1] >> 20
        );
        assert!(s.got.len() >= 25, "only {} cases", s.got.len());
    }
}
