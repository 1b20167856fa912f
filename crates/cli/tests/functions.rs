//! `phat fn build` and `phat fn run`: a TypeScript function bundled by esbuild with Phala's
//! wrapper, and scripts (ours, and one shaped as `@phala/fn build` writes them) run locally
//! with real HTTP against a local API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::path::{Path, PathBuf};

use axum::routing::{get, post};
use support::*;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
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
    let (json, ok, stderr) = fn_json(&[
        "build",
        src.join("index.ts").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--esbuild",
        esbuild.to_str().unwrap(),
    ]);
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
    let (_, ok, stderr) = fn_json(&[
        "build",
        src.join("big.ts").to_str().unwrap(),
        "-o",
        big.to_str().unwrap(),
        "--esbuild",
        esbuild.to_str().unwrap(),
    ]);
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
