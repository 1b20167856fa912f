//! `phat fn build` and `phat fn run`: a TypeScript function bundled by esbuild with Phala's
//! wrapper, and scripts (ours, and one shaped as `@phala/fn build` writes them) run locally
//! with real HTTP against a local API.

use std::path::{Path, PathBuf};

use axum::routing::{get, post};
use phat_testkit::anvil::word;
use phat_testkit::*;

/// A local API: `/price` answers JSON, `/echo` echoes the body's length, `/slow` takes 3 s.
async fn api() -> String {
    let app = axum::Router::new()
        .route("/price", get(|| async { r#"{"usd": 42.5}"# }))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                "late"
            }),
        );
    serve(app).await
}

/// `phat fn ARGS --output json`: its JSON answer and whether it succeeded.
fn fn_json(args: &[&str]) -> (serde_json::Value, bool, String) {
    let out = phat()
        .args([&["fn"], args, &["--output", "json"]].concat())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (json, out.status.success(), stderr)
}

/// The esbuild `./scripts/setup` installs (for the console and the SDK).
fn esbuild() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["console", "sdk"] {
        let p = root.join(dir).join("node_modules/.bin/esbuild");
        if p.is_file() {
            return p;
        }
    }
    panic!("no esbuild under console/ or sdk/node_modules: run ./scripts/setup (npm install)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_shaped_as_phala_builds_it_runs_with_real_http() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    // What `@phala/fn build` emits: a webpack IIFE around the module, then Phala's wrapper
    // assigning `scriptOutput`; the function is async and uses Phala's API.
    let script = dir.path().join("index.js");
    std::fs::write(
        &script,
        r#"(()=>{"use strict";var e={};(()=>{
async function main(request, secrets) {
  const [price, echo] = pink.batchHttpRequest([
    {url: secrets + "/price", method: "GET", returnTextBody: true},
    {url: secrets + "/echo", method: "POST", body: "0x010203", returnTextBody: true},
  ], 2000);
  const usd = JSON.parse(price.body).usd;
  console.log("price", usd, "echo", echo.body);
  const digest = pink.hash("keccak256", new TextEncoder().encode(request));
  const secret = pink.deriveSecret("salt");
  await new Promise(r => setTimeout(r, 10));
  return "0x" + pink.hexEncode(new Uint8Array([Math.round(usd * 100) >> 8, Math.round(usd * 100) & 255]))
    + ":" + digest.length + ":" + secret.length + ":" + echo.body;
}
e.default = main;
})();var o=e.default;globalThis.scriptOutput=o.apply(null,globalThis.scriptArgs)})();"#,
    )
    .unwrap();
    let (json, ok, stderr) = fn_json(&["run", script.to_str().unwrap(), "-a", "0x01", "-a", &api]);
    assert!(ok, "{stderr} {json}");
    assert_eq!(json["output"], "0x109a:32:64:3 bytes", "{json}");
    assert_eq!(json["logs"][0], "[info] price 42.5 echo 3 bytes", "{json}");

    // A script that throws fails the command with its message; an unreachable API is
    // Phala's 523 answer the script sees; a request past the time throws.
    std::fs::write(&script, "throw new Error('bad request')").unwrap();
    let (json, ok, _) = fn_json(&["run", script.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        json["error"].as_str().unwrap().contains("bad request"),
        "{json}"
    );
    std::fs::write(
        &script,
        "scriptOutput = pink.httpRequest({url: 'http://127.0.0.1:9/x'}).statusCode",
    )
    .unwrap();
    let (json, ok, stderr) = fn_json(&["run", script.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(json["output"], 523);
    std::fs::write(
        &script,
        "scriptOutput = pink.httpRequest({url: scriptArgs[0] + '/slow'}).statusCode",
    )
    .unwrap();
    let (json, ok, _) = fn_json(&[
        "run",
        script.to_str().unwrap(),
        "-a",
        &api,
        "--timeout-ms",
        "500",
    ]);
    assert!(!ok);
    assert!(
        json["error"].as_str().unwrap().contains("Timeout"),
        "{json}"
    );
    let (_, ok, stderr) = fn_json(&["run", "/nonexistent/index.js"]);
    assert!(!ok && stderr.contains("reading the script"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fn_build_bundles_a_typescript_function_with_phalas_wrapper() {
    let api = api().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("price.ts"),
        "export function cents(body: string): number { return Math.round(JSON.parse(body).usd * 100); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("index.ts"),
        r#"import { cents } from "./price";
type Hex = `0x${string}`;
export default function main(request: Hex, secrets: string): Hex {
  const r = pink.httpRequest({ url: secrets + "/price", returnTextBody: true });
  const value: number = cents(r.body as string);
  return `0x${value.toString(16).padStart(8, "0")}` as Hex;
}
declare const pink: any;
"#,
    )
    .unwrap();
    let out = dir.path().join("dist/index.js");
    let esbuild = esbuild();
    let build = |entry: &Path, out: &Path| {
        fn_json(&[
            "build",
            entry.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--esbuild",
            esbuild.to_str().unwrap(),
        ])
    };
    let (json, ok, stderr) = build(&src.join("index.ts"), &out);
    assert!(ok, "{stderr}");
    let bytes = json["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < 2_000, "{json}");
    let script = std::fs::read_to_string(&out).unwrap();
    assert!(script.contains("scriptOutput"), "{script}");
    let (json, ok, stderr) = fn_json(&["run", out.to_str().unwrap(), "-a", "0x", "-a", &api]);
    assert!(ok, "{stderr}");
    assert_eq!(json["output"], "0x0000109a", "{json}");

    // Over the 400 KiB limit: refused, and nothing is left behind.
    std::fs::write(
        src.join("big.ts"),
        format!(
            "export default function main(): string {{ return \"{}\"; }}\n",
            "ab".repeat(250_000)
        ),
    )
    .unwrap();
    let big = dir.path().join("dist/big.js");
    let (_, ok, stderr) = build(&src.join("big.ts"), &big);
    assert!(
        !ok && stderr.contains("over the 409600-byte limit"),
        "{stderr}"
    );
    assert!(!big.exists());
    // A missing esbuild is named, with how to get it.
    let (_, ok, stderr) = fn_json(&[
        "build",
        src.join("index.ts").to_str().unwrap(),
        "--esbuild",
        "/nonexistent/esbuild",
    ]);
    assert!(
        !ok && stderr.contains("npm install --save-dev esbuild"),
        "{stderr}"
    );
}

/// The consumer on anvil (`tools/eth/FunctionConsumer.sol`), with its compiled selectors.
struct Consumer<'a> {
    anvil: &'a phat_testkit::anvil::Anvil,
    address: String,
    methods: serde_json::Value,
}

impl Consumer<'_> {
    fn data(&self, signature: &str, args: &str) -> String {
        format!("0x{}{args}", self.methods[signature].as_str().unwrap())
    }

    /// A view function's answer as a number.
    async fn read(&self, signature: &str, args: &str) -> u128 {
        let tx = serde_json::json!({"to": self.address, "data": self.data(signature, args)});
        phat_testkit::anvil::quantity(
            &self
                .anvil
                .rpc("eth_call", serde_json::json!([tx, "latest"]))
                .await,
        )
    }

    async fn send(&self, signature: &str, args: &str) -> serde_json::Value {
        self.anvil
            .transact(serde_json::json!({"to": self.address, "data": self.data(signature, args)}))
            .await
    }

    /// Queues a request for `pair`; its id.
    async fn request(&self, pair: &str) -> u128 {
        let id = self.read("nextRequest()", "").await;
        self.send("request(string)", &phat_testkit::anvil::abi_string(pair))
            .await;
        id
    }

    /// Waits until request `id` has `n` answers (panics after `secs`); how long it took.
    async fn answered(&self, id: u128, n: u128, secs: u64) -> std::time::Duration {
        let started = std::time::Instant::now();
        eventually(
            format!("request {id} to be answered"),
            std::time::Duration::from_secs(secs),
            std::time::Duration::from_millis(50),
            async || self.read("answersTo(uint256)", &word(id)).await >= n,
        )
        .await;
        started.elapsed()
    }
}

/// `phat fn status ID --output json` through `ep`.
fn fn_status(ep: &str, id: &str) -> serde_json::Value {
    run_json(ep, &["fn", "status", id])
}

/// Waits until `phat fn status` satisfies `ok` (panics with the last status after `secs`).
async fn status_until(
    ep: &str,
    id: &str,
    secs: u64,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(
        "the status to get there",
        std::time::Duration::from_secs(secs),
        std::time::Duration::from_millis(200),
        async || {
            let s = fn_status(ep, id);
            if ok(&s) {
                Ok(s)
            } else {
                Err(s)
            }
        },
    )
    .await
}

/// The price API of the end-to-end test: `GET /price?pair=ETH/USD` → `{"price": "3421.55"}`.
async fn price_api() -> String {
    let app = axum::Router::new().route(
        "/price",
        get(
            |q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let price = match q.get("pair").map(String::as_str) {
                    Some("ETH/USD") => "3421.55",
                    Some("BTC/USD") => "97000.5",
                    _ => return (axum::http::StatusCode::NOT_FOUND, String::new()),
                };
                (
                    axum::http::StatusCode::OK,
                    format!(r#"{{"price": "{price}"}}"#),
                )
            },
        ),
    );
    format!("{}/price", serve(app).await)
}

/// The tests over about 20 s: `cargo test --test e2e -- --skip slow::` leaves them out.
mod slow {
    use super::*;

    /// A function from `phat fn new`, built with `phat fn build`, deployed with `phat fn deploy` to
    /// a 3-worker `phat dev`, answers the queue of an anchor-compatible consumer on anvil: refused
    /// while its attestor has no role and no funds (reported in `status`), then each request
    /// exactly once and in order, through a killed worker, a malformed request, an API that is
    /// down and a script that throws (the request waits, then a fixed script answers it).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_function_answers_an_anchor_queue_on_anvil_exactly_once_in_order() {
        use phat_testkit::anvil::{compile, Anvil};
        const CHAIN_ID: u64 = 31_337;
        let tmp = tempfile::tempdir().unwrap();
        let anvil = Anvil::start(&tmp.path().join("anvil.log"), CHAIN_ID).await;
        let api = price_api().await;
        let dev = Dev::start(3).await;
        let ep = dev.endpoint.clone();

        // The project, as a user makes it.
        let project = tmp.path().join("price-fn");
        let out = run_json(
            &ep,
            &["fn", "new", "price-fn", "--path", project.to_str().unwrap()],
        );
        assert_eq!(out["path"], project.to_str().unwrap());
        let esbuild = esbuild();
        let script = project.join("dist/index.js");
        let built = run_json(
            &ep,
            &[
                "fn",
                "build",
                project.join("src/index.ts").to_str().unwrap(),
                "-o",
                script.to_str().unwrap(),
                "--esbuild",
                esbuild.to_str().unwrap(),
            ],
        );
        assert!(built["bytes"].as_u64().unwrap() > 500, "{built}");

        // The consumer, owned by anvil's first account.
        let artifact = compile("FunctionConsumer", tmp.path());
        let receipt = anvil
            .transact(serde_json::json!({"data": artifact["bytecode"]}))
            .await;
        let consumer = Consumer {
            anvil: &anvil,
            address: receipt["contractAddress"].as_str().unwrap().to_string(),
            methods: artifact["methods"].clone(),
        };

        let deployed = run_json(
            &ep,
            &[
                "fn",
                "deploy",
                script.to_str().unwrap(),
                "--anchor",
                &consumer.address,
                "--rpc",
                &anvil.url,
                "--chain-id",
                &CHAIN_ID.to_string(),
                "--secrets",
                &api,
                "--every",
                "1s",
            ],
        );
        let id = deployed["contract"].as_str().unwrap().to_string();
        let attestor = deployed["attestor"].as_str().unwrap().to_string();
        assert_eq!(attestor.len(), 42, "{deployed}");

        // Not an attestor yet: the anchor refuses (the node's estimate reverts), nothing is sent,
        // and `status` says so.
        let first = consumer.request("ETH/USD").await;
        let s = status_until(&ep, &id, 30, |s| s["failures"].as_u64() >= Some(1)).await;
        assert_eq!(s["queue"]["head"], 0, "{s}");
        assert_eq!(s["queue"]["tail"], 1, "{s}");
        assert!(
            s["last_error"]["error"]
                .as_str()
                .unwrap()
                .contains("revert"),
            "{s}"
        );
        // The role, but no funds: the node refuses the transaction; `status` shows the balance.
        let addr_word = format!("{:0>64}", attestor.trim_start_matches("0x"));
        consumer
            .send(
                "setAttestor(address,bool)",
                &format!("{addr_word}{}", word(1)),
            )
            .await;
        run_json(&ep, &["fn", "update", &id, "--secrets", &api]);
        let s = status_until(&ep, &id, 30, |s| {
            s["last_error"]["error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains("insufficient funds"))
        })
        .await;
        assert_eq!(s["attestor_balance_wei"], "0", "{s}");
        // Funded: the first request is answered, once.
        anvil
            .rpc(
                "anvil_setBalance",
                serde_json::json!([attestor, "0x8ac7230489e80000"]),
            )
            .await;
        run_json(&ep, &["fn", "update", &id, "--secrets", &api]);
        consumer.answered(first, 1, 30).await;
        assert_eq!(
            consumer.read("prices(uint256)", &word(first)).await,
            342_155_000_000
        );

        // Twenty requests, one after another, a worker killed half-way (`phat dev` restarts it).
        let mut latencies = Vec::new();
        let mut ids = vec![first];
        for i in 0..20 {
            if i == 10 {
                dev.kill_worker(1);
            }
            let pair = if i % 2 == 0 { "BTC/USD" } else { "ETH/USD" };
            let started = std::time::Instant::now();
            let rid = consumer.request(pair).await;
            consumer.answered(rid, 1, 60).await;
            latencies.push(started.elapsed());
            ids.push(rid);
        }
        latencies.sort();
        eprintln!(
            "request → answer on chain (20 requests, 1 s job period): p50 {:?}, max {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );

        // A malformed request: the script answers it (error code 2), the queue moves on.
        let raw = "deadbeef";
        consumer
            .send(
                "requestRaw(bytes)",
                &format!("{}{}{:0<64}", word(32), word(4), raw),
            )
            .await;
        let head_before = consumer.read("queueHead()", "").await;
        eventually(
            "the malformed request to be answered",
            std::time::Duration::from_secs(30),
            std::time::Duration::from_millis(100),
            async || consumer.read("queueHead()", "").await != head_before,
        )
        .await;
        assert_eq!(
            consumer
                .read("errorCodes(uint256)", &word(0xdeadbeef))
                .await,
            2
        );

        // The API is down: answered with its error (523, unreachable).
        run_json(
            &ep,
            &["fn", "update", &id, "--secrets", "http://127.0.0.1:9/price"],
        );
        let down = consumer.request("ETH/USD").await;
        consumer.answered(down, 1, 30).await;
        assert_eq!(consumer.read("errorCodes(uint256)", &word(down)).await, 523);
        run_json(&ep, &["fn", "update", &id, "--secrets", &api]);

        // A script that throws: the request waits (reported), then a fixed script answers it.
        let throws = tmp.path().join("throws.js");
        std::fs::write(
            &throws,
            "globalThis.scriptOutput = (() => { throw new Error('boom') })();",
        )
        .unwrap();
        let updated = run_json(
            &ep,
            &["fn", "update", &id, "--script", throws.to_str().unwrap()],
        );
        assert_eq!(updated["script_version"], 2, "{updated}");
        let stuck = consumer.request("BTC/USD").await;
        let s = status_until(&ep, &id, 30, |s| {
            s["last_error"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("boom"))
        })
        .await;
        assert_eq!(
            consumer.read("answersTo(uint256)", &word(stuck)).await,
            0,
            "{s}"
        );
        assert!(
            s["queue"]["head"].as_u64() < s["queue"]["tail"].as_u64(),
            "{s}"
        );
        run_json(
            &ep,
            &["fn", "update", &id, "--script", script.to_str().unwrap()],
        );
        consumer.answered(stuck, 1, 30).await;
        ids.push(down);
        ids.push(stuck);

        // Exactly once, in order: every request one answer, the queue empty, as many replies as
        // requests (the malformed one included); answers came in request order.
        for rid in &ids {
            assert_eq!(
                consumer.read("answersTo(uint256)", &word(*rid)).await,
                1,
                "request {rid}"
            );
        }
        let replies = consumer.read("replies()", "").await;
        assert_eq!(replies, ids.len() as u128 + 1);
        assert_eq!(
            consumer.read("queueHead()", "").await,
            consumer.read("queueTail()", "").await
        );
        let topic = anvil
            .rpc(
                "web3_sha3",
                serde_json::json!([format!(
                    "0x{}",
                    hex::encode("ResponseReceived(uint256,string,uint256)")
                )]),
            )
            .await;
        let logs = anvil
        .rpc(
            "eth_getLogs",
            serde_json::json!([{"address": consumer.address, "fromBlock": "0x0", "topics": [topic]}]),
        )
        .await;
        let answered: Vec<u128> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| u128::from_str_radix(&l["data"].as_str().unwrap()[2..66], 16).unwrap())
            .collect();
        let mut sorted = answered.clone();
        sorted.sort();
        assert_eq!(answered, sorted, "answers out of request order");

        let s = fn_status(&ep, &id);
        assert_eq!(s["queue"]["head"], s["queue"]["tail"], "{s}");
        assert_eq!(s["answered"], s["queue"]["head"], "{s}");
        assert!(s["recorded_answers"].as_u64().unwrap() >= 1, "{s}");
        // The function's log shows its answers, decoded.
        let logs = run(&ep, &["fn", "logs", &id]);
        assert!(
            String::from_utf8_lossy(&logs.stdout).contains("Answered"),
            "{logs:?}"
        );
        // The workers agree.
        let info = wait_seq(&dev.workers[0], 1).await;
        for w in &dev.workers[1..] {
            wait_seq(w, info.seq).await;
            assert_eq!(
                root_at(w, info.seq).await,
                root_at(&dev.workers[0], info.seq).await
            );
        }
    }
}
