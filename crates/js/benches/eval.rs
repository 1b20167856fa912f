//! Time of one `js_eval` (a fresh QuickJS runtime per call, as queries get): a trivial script
//! and a 10,000-iteration loop, next to the same loop in Rust; and a `pink.batchHttpRequest` of
//! 5 against a local server, next to the same 5 requests made through the same host from Rust
//! (what a Rust contract's `batch_http_request` costs, less its wasm call), as a table of
//! medians: `cargo bench -p phat-js --bench eval`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use phat_js::{
    eval, eval_with_host, HttpError, HttpRequest, HttpResponse, JsCode, JsHost, JsLimits, JsValue,
};

/// A local HTTP/1.0 server answering every request with a small JSON body; its address.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"price": "3421.55"}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

/// Plain blocking HTTP/1.0 GETs; a batch's requests run on threads of their own.
struct Blocking;

impl JsHost for Blocking {
    fn http_request(&self, req: HttpRequest, _: Duration) -> Result<HttpResponse, HttpError> {
        let rest = req.url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut conn = TcpStream::connect(host).map_err(|e| HttpError {
            kind: "NetworkError".into(),
            message: e.to_string(),
        })?;
        write!(conn, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        Ok(HttpResponse {
            status_code: 200,
            reason_phrase: "OK".into(),
            headers: Vec::new(),
            body: all[split + 4..].to_vec(),
        })
    }

    fn batch_http_request(
        &self,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> Vec<Result<HttpResponse, HttpError>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = reqs
                .into_iter()
                .map(|r| s.spawn(move || Blocking.http_request(r, timeout)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }
}

const LOOP: &str = "let s = 0; for (let i = 0; i < 10000; i++) { s = (s + i * i) % 1000003; } s";

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    median(samples)
}

fn main() {
    let runs: usize = std::env::var("PHAT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let js = |src: &str| {
        let out = eval(
            &[JsCode::Source(src.into())],
            &[],
            &JsLimits::with_time(Duration::from_secs(5)),
        );
        assert!(!matches!(out.value, JsValue::Exception(_)), "{out:?}");
        black_box(out);
    };
    let rust_loop = || {
        let mut s: u64 = 0;
        for i in 0..black_box(10_000u64) {
            s = (s + i * i) % 1_000_003;
        }
        black_box(s);
    };
    let base = server();
    let batch_js = format!(
        "pink.batchHttpRequest(Array(5).fill({{url: '{base}/price', returnTextBody: true}}), 2000) \
           .map(r => JSON.parse(r.body).price).join(',')"
    );
    let host: Rc<dyn JsHost> = Rc::new(Blocking);
    let js_batch = || {
        let out = eval_with_host(
            &[JsCode::Source(batch_js.clone())],
            &[],
            &JsLimits::with_time(Duration::from_secs(5)),
            Some(host.clone()),
        );
        assert_eq!(
            out.value,
            JsValue::String(["3421.55"; 5].join(",")),
            "{out:?}"
        );
    };
    let rust_batch = || {
        let reqs = vec![
            HttpRequest {
                url: format!("{base}/price"),
                method: "GET".into(),
                headers: Vec::new(),
                body: Vec::new(),
            };
            5
        ];
        let answers = Blocking.batch_http_request(reqs, Duration::from_secs(2));
        assert!(answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|r| r.body.len() == 20)));
        black_box(answers);
    };
    let http_runs = runs.min(100);
    println!("\n| what | runs | median | p99 |\n| --- | --- | --- | --- |");
    for (name, n, (m, p)) in [
        (
            "js: `1 + 1` (fresh runtime, Phala's API installed)",
            runs,
            time(runs, || js("1 + 1")),
        ),
        ("js: 10k-iteration loop", runs, time(runs, || js(LOOP))),
        ("rust: the same loop", runs, time(runs, rust_loop)),
        (
            "js: batchHttpRequest of 5 (local server)",
            http_runs,
            time(http_runs, js_batch),
        ),
        (
            "rust: the same 5 requests through the host",
            http_runs,
            time(http_runs, rust_batch),
        ),
    ] {
        println!("| {name} | {n} | {m:?} | {p:?} |");
    }
}
