//! `phat fn run`: a script run locally in the worker's JavaScript engine, with the same API
//! and limits as a worker's query, real HTTP (any address: this is your machine), and a local
//! key for `pink.deriveSecret` (not the deployed function's).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use phat_js::{HttpError, HttpRequest, HttpResponse, JsCode, JsHost, JsLimits, JsValue};

use crate::commands::Ctx;
use crate::Output;

/// Largest response body a script gets (the worker's egress bound).
const MAX_BODY: usize = 2 << 20;

/// `phat fn run`.
#[derive(Args)]
pub struct RunArgs {
    /// The built script (`phat fn build`, or Phala's `@phala/fn build`).
    script: PathBuf,
    /// The script's arguments (`scriptArgs`), in order: for a function, the request (hex)
    /// then its secrets.
    #[arg(short = 'a', long = "arg", value_name = "ARG")]
    args: Vec<String>,
    /// How long the script may run, in milliseconds (a worker gives a query 10 s).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// Real HTTP through reqwest, on a runtime of its own.
struct LocalHost {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

fn failure(kind: &str, message: impl Into<String>) -> HttpError {
    HttpError {
        kind: kind.into(),
        message: message.into(),
    }
}

impl LocalHost {
    async fn send(
        http: reqwest::Client,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| failure("InvalidMethod", e.to_string()))?;
        let url =
            reqwest::Url::parse(&req.url).map_err(|e| failure("InvalidUrl", e.to_string()))?;
        let mut rb = http.request(method, url).timeout(timeout).body(req.body);
        for (name, value) in req.headers {
            rb = rb.header(name, value);
        }
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                failure("Timeout", e.to_string())
            } else if e.is_builder() {
                failure("InvalidHeaderValue", e.to_string())
            } else {
                failure("NetworkError", e.to_string())
            }
        })?;
        let status_code = resp.status().as_u16();
        let reason_phrase = resp.status().canonical_reason().unwrap_or("").to_string();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failure("NetworkError", e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(failure(
                    "ResponseTooLarge",
                    format!("the body is over {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status_code,
            reason_phrase,
            headers,
            body,
        })
    }
}

impl JsHost for LocalHost {
    fn http_request(&self, req: HttpRequest, timeout: Duration) -> Result<HttpResponse, HttpError> {
        self.rt
            .block_on(Self::send(self.http.clone(), req, timeout))
    }

    fn batch_http_request(
        &self,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> Vec<Result<HttpResponse, HttpError>> {
        let http = self.http.clone();
        self.rt.block_on(futures::future::join_all(
            reqs.into_iter()
                .map(|r| Self::send(http.clone(), r, timeout)),
        ))
    }

    fn derive_secret(&self, material: &[u8]) -> Option<[u8; 64]> {
        // A fixed local seed: `phat fn run` has no cluster; a deployed function derives
        // from its own key.
        let seed = phat_primitives::blake2_256(b"phat fn run: a local key");
        let local = phat_primitives::AccountId([0; 32]);
        Some(phat_pink::derive_sr25519_secret(&seed, &local, material))
    }
}

/// The script's output as JSON: a string as is, bytes as `0x` hex, other values as the JSON
/// they are.
fn output_json(v: &JsValue) -> serde_json::Value {
    match v {
        JsValue::Undefined | JsValue::Null | JsValue::Exception(_) => serde_json::Value::Null,
        JsValue::String(s) => serde_json::Value::String(s.clone()),
        JsValue::Bytes(b) => serde_json::Value::String(format!("0x{}", hex::encode(b))),
        JsValue::Other(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone()))
        }
    }
}

/// Runs `phat fn run`.
pub fn run(args: RunArgs, ctx: &Ctx) -> Result<()> {
    let source = std::fs::read_to_string(&args.script)
        .with_context(|| format!("reading the script {}", args.script.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()?;
    let host = Rc::new(LocalHost { rt, http });
    let out = phat_js::eval_with_host(
        &[JsCode::Source(source)],
        &args.args,
        &JsLimits::with_time(Duration::from_millis(args.timeout_ms)),
        Some(host),
    );
    let logs: Vec<String> = out
        .logs
        .iter()
        .map(|(level, line)| format!("[{}] {line}", format!("{level:?}").to_lowercase()))
        .collect();
    match ctx.output {
        Output::Json => {
            let mut doc = serde_json::json!({"output": output_json(&out.value), "logs": logs});
            if let JsValue::Exception(m) = &out.value {
                doc["error"] = serde_json::Value::String(m.clone());
            }
            println!("{doc}");
        }
        Output::Human => {
            for line in &logs {
                eprintln!("{line}");
            }
            if out.dropped_logs > 0 {
                eprintln!("({} more console lines dropped)", out.dropped_logs);
            }
            if !matches!(out.value, JsValue::Exception(_)) {
                println!("{}", serde_json::json!({"output": output_json(&out.value)}));
            }
        }
    }
    if let JsValue::Exception(m) = out.value {
        bail!("the script failed: {m}");
    }
    Ok(())
}
