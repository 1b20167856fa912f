//! `js_eval` semantics and bounds: values in and out, exceptions, and hostile scripts (an
//! endless loop, a memory bomb, deep recursion, a flood of output) stopped by the limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use phat_js::{eval, JsCode, JsLimits, JsValue, LogLevel};

fn js(source: &str) -> JsValue {
    eval(
        &[JsCode::Source(source.into())],
        &[],
        &JsLimits::with_time(Duration::from_secs(5)),
    )
    .value
}

fn exception(v: JsValue) -> String {
    match v {
        JsValue::Exception(m) => m,
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn values_come_back_as_pink_defines_them() {
    assert_eq!(js("1 + 2"), JsValue::Other("3".into()));
    assert_eq!(js("'ab'.repeat(2) + 'c'"), JsValue::String("ababc".into()));
    assert_eq!(js("undefined"), JsValue::Undefined);
    assert_eq!(js("null"), JsValue::Null);
    assert_eq!(
        js("({a: [1, 'x']})"),
        JsValue::Other(r#"{"a":[1,"x"]}"#.into())
    );
    assert_eq!(
        js("new Uint8Array([1, 2, 255])"),
        JsValue::Bytes(vec![1, 2, 255])
    );
    assert_eq!(js("'é'"), JsValue::String("é".into()));
    // Several scripts share the runtime; the last one's value is the result.
    let two = eval(
        &[
            JsCode::Source("var x = 40;".into()),
            JsCode::Source("x + scriptArgs.length".into()),
        ],
        &["a".into(), "b".into()],
        &JsLimits::with_time(Duration::from_secs(5)),
    );
    assert_eq!(two.value, JsValue::Other("42".into()));
    let args = eval(
        &[JsCode::Source("scriptArgs.join('|')".into())],
        &["x".into(), "y z".into()],
        &JsLimits::with_time(Duration::from_secs(5)),
    );
    assert_eq!(args.value, JsValue::String("x|y z".into()));
}

#[test]
fn exceptions_are_values() {
    assert_eq!(exception(js("throw new Error('boom')")), "Error: boom");
    assert_eq!(exception(js("throw new TypeError('no')")), "TypeError: no");
    assert_eq!(exception(js("throw 'plain'")), "plain");
    assert!(exception(js("let = ;")).starts_with("SyntaxError"));
    assert!(exception(js("nope()")).contains("nope"));
    let bytecode = eval(
        &[JsCode::Bytecode(vec![1, 2, 3])],
        &[],
        &JsLimits::with_time(Duration::from_secs(5)),
    );
    assert!(exception(bytecode.value).contains("bytecode"));
}

#[test]
fn console_lines_are_kept_up_to_the_limit() {
    let out = eval(
        &[JsCode::Source(
            "console.log('hi', 1, {a: 1}); console.error('bad'); \
             for (let i = 0; i < 500; i++) console.info('x'.repeat(5000)); 7"
                .into(),
        )],
        &[],
        &JsLimits::with_time(Duration::from_secs(5)),
    );
    assert_eq!(out.value, JsValue::Other("7".into()));
    assert_eq!(out.logs[0], (LogLevel::Info, "hi 1 [object Object]".into()));
    assert_eq!(out.logs[1], (LogLevel::Error, "bad".into()));
    assert_eq!(out.logs.len(), 100);
    assert_eq!(out.dropped_logs, 402);
    assert!(out.logs[2].1.len() <= 1024 + '…'.len_utf8());
}

#[test]
fn hostile_scripts_are_stopped_by_the_limits() {
    // An endless loop ends at the deadline.
    let started = Instant::now();
    let out = eval(
        &[JsCode::Source("while (true) {}".into())],
        &[],
        &JsLimits::with_time(Duration::from_millis(300)),
    );
    let m = exception(out.value);
    assert!(
        m.contains("interrupted") && m.contains("time ran out"),
        "{m}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A memory bomb ends at the heap limit.
    let m = exception(js(
        "let a = []; while (true) a.push(new Array(100000).fill(1.5));",
    ));
    assert!(m.contains("out of memory"), "{m}");
    let m = exception(js("'x'.repeat(1 << 30)"));
    assert!(m.contains("memory") || m.contains("length"), "{m}");
    // Deep recursion ends at the stack limit.
    let m = exception(js("function f(n) { return f(n + 1) + 1; } f(0)"));
    assert!(m.contains("stack"), "{m}");
    // A result over the output cap is refused.
    let m = exception(js("'y'.repeat(100000)"));
    assert!(m.contains("over 65536"), "{m}");
    // No time left: nothing runs.
    let spent = JsLimits {
        deadline: Instant::now(),
        ..JsLimits::with_time(Duration::ZERO)
    };
    assert!(exception(eval(&[JsCode::Source("1".into())], &[], &spent).value).contains("no time"));
    // The engine is fine afterwards.
    assert_eq!(js("6 * 7"), JsValue::Other("42".into()));
}

/// A host answering every request with its own description, or failing on `/fail` (a
/// timeout), `/down` (unreachable) and `/huge` (too large); deriving secrets as the blake2b256
/// of the material, twice, and remembering the material.
struct Echo {
    seen: std::cell::RefCell<Vec<(phat_js::HttpRequest, Duration)>>,
    derived: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl phat_js::JsHost for Echo {
    fn http_request(
        &self,
        req: phat_js::HttpRequest,
        timeout: Duration,
    ) -> Result<phat_js::HttpResponse, phat_js::HttpError> {
        self.seen.borrow_mut().push((req.clone(), timeout));
        let fail = |kind: &str, message: &str| {
            Err(phat_js::HttpError {
                kind: kind.into(),
                message: message.into(),
            })
        };
        if req.url.ends_with("/fail") {
            return fail("Timeout", "no answer");
        }
        if req.url.ends_with("/down") {
            return fail("NetworkError", "connection refused");
        }
        if req.url.ends_with("/huge") {
            return fail("ResponseTooLarge", "over 2 MiB");
        }
        Ok(phat_js::HttpResponse {
            status_code: 201,
            reason_phrase: "Created".into(),
            headers: vec![("x-method".into(), req.method.clone())],
            body: format!("{} {} bytes", req.url, req.body.len()).into_bytes(),
        })
    }

    fn derive_secret(&self, material: &[u8]) -> Option<[u8; 64]> {
        self.derived.borrow_mut().push(material.to_vec());
        let h = phat_js::hash("blake2b256", material).unwrap();
        Some([h.clone(), h].concat().try_into().unwrap())
    }
}

fn with_http(source: &str, time: Duration) -> (JsValue, Vec<(phat_js::HttpRequest, Duration)>) {
    let host = std::rc::Rc::new(Echo {
        seen: Default::default(),
        derived: Default::default(),
    });
    let out = phat_js::eval_with_host(
        &[JsCode::Source(source.into())],
        &[],
        &JsLimits::with_time(time),
        Some(host.clone()),
    );
    (out.value, host.seen.take())
}

#[test]
fn scripts_make_http_requests_through_the_host() {
    let second = Duration::from_secs(5);
    let (v, seen) = with_http(
        "const r = pink.httpRequest({url: 'http://api/x', returnTextBody: true}); \
         [r.statusCode, r.reasonPhrase, r.headers[0][0], r.headers[0][1], r.body].join('|')",
        second,
    );
    assert_eq!(
        v,
        JsValue::String("201|Created|x-method|GET|http://api/x 0 bytes".into())
    );
    assert_eq!(seen.len(), 1);
    assert!(seen[0].1 <= second && seen[0].1 > Duration::from_secs(4));
    // A body, a method and headers go out as given; the answer's body is bytes by default.
    let (v, seen) = with_http(
        "const r = pink.httpRequest({url: 'http://api/y', method: 'POST', \
           headers: {'content-type': 'text/plain', n: 7}, body: new Uint8Array([1, 2, 3])}); \
         r.body instanceof Uint8Array ? r.body.length : -1",
        second,
    );
    assert_eq!(v, JsValue::Other("20".into()));
    let req = &seen[0].0;
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, vec![1, 2, 3]);
    assert_eq!(
        req.headers,
        vec![
            ("content-type".to_string(), "text/plain".to_string()),
            ("n".to_string(), "7".to_string())
        ]
    );
    // As on Phala: an unreachable server is a 523 answer, a failure after connecting 524;
    // timeouts and bad arguments throw, and the script may catch them.
    let (v, _) = with_http(
        "[pink.httpRequest({url: 'http://api/down', returnTextBody: true}),           pink.httpRequest({url: 'http://api/huge', returnTextBody: true})]            .map(r => r.statusCode + ' ' + r.reasonPhrase + ' ' + r.body).join('|')",
        second,
    );
    assert_eq!(
        v,
        JsValue::String("523 Unreachable connection refused|524 IO Error over 2 MiB".into())
    );
    let (v, _) = with_http(
        "try { pink.httpRequest({url: 'http://api/fail'}) } catch (e) { 'caught: ' + e.message }",
        second,
    );
    assert_eq!(
        v,
        JsValue::String("caught: http request failed: Timeout: no answer".into())
    );
    // A `0x` string body is hex, as Phala decodes it; headers may be pairs; `textBody`.
    let (_, seen) = with_http(
        "pink.httpRequest({url: 'http://api/h', method: 'POST', body: '0x01ff',            headers: [['a', 'b']]}); pink.httpRequest({url: 'http://api/t', textBody: 'hi'})",
        second,
    );
    assert_eq!(seen[0].0.body, vec![1, 255]);
    assert_eq!(seen[0].0.headers, vec![("a".to_string(), "b".to_string())]);
    assert_eq!(seen[1].0.body, b"hi".to_vec());
    assert!(
        exception(with_http("pink.httpRequest({url: 'u', body: '0xzz'})", second).0)
            .contains("invalid hex")
    );
    assert!(exception(with_http("pink.httpRequest({})", second).0).contains("`url`"));
    assert!(
        exception(with_http("pink.httpRequest({url: 'u', body: 5})", second).0)
            .contains("string or a Uint8Array")
    );
}

#[test]
fn http_requests_are_bounded_per_call_and_absent_without_a_host() {
    let (v, seen) = with_http(
        "for (let i = 0; i < 100; i++) pink.httpRequest({url: 'http://api/' + i})",
        Duration::from_secs(5),
    );
    assert!(exception(v).contains("at most 20 HTTP requests"));
    assert_eq!(seen.len(), 20, "the 21st was never sent");
    assert_eq!(
        js("[typeof pink.httpRequest, typeof pink.batchHttpRequest, typeof pink.deriveSecret]"),
        JsValue::Other(r#"["undefined","undefined","undefined"]"#.into())
    );
}

#[test]
fn batches_run_every_request_and_answer_each() {
    let second = Duration::from_secs(5);
    let (v, seen) = with_http(
        "JSON.stringify(pink.batchHttpRequest([{url: 'http://api/a', returnTextBody: true}, \
           {url: 'http://api/fail'}, {url: 'http://api/down'}], 2000) \
           .map(r => r.error ?? (r.statusCode + ' ' + r.body)))",
        second,
    );
    assert_eq!(
        v,
        JsValue::String(r#"["201 http://api/a 0 bytes","Timeout","NetworkError"]"#.into())
    );
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(_, t)| *t <= Duration::from_secs(2)));
    // More than five at once: thrown, as Phala's `TooManyRequests`; nothing is sent.
    let (v, seen) = with_http(
        "pink.batchHttpRequest(Array(6).fill({url: 'http://api/x'}))",
        second,
    );
    assert!(exception(v).contains("TooManyRequests"));
    assert!(seen.is_empty());
    // Batches count against the call's budget too.
    let (v, seen) = with_http(
        "for (let i = 0; i < 10; i++) pink.batchHttpRequest(Array(5).fill({url: 'http://api/x'}))",
        second,
    );
    assert!(exception(v).contains("at most 20"));
    assert_eq!(seen.len(), 20);
    assert_eq!(
        with_http("pink.batchHttpRequest([]).length", second).0,
        JsValue::Other("0".into())
    );
}

#[test]
fn secrets_derive_from_the_code_and_the_salt() {
    let host = std::rc::Rc::new(Echo {
        seen: Default::default(),
        derived: Default::default(),
    });
    let codes = [
        JsCode::Source("const salt = 'k';".into()),
        JsCode::Source(
            "const s = pink.deriveSecret(salt); \
             [s.length, pink.hexEncode(pink.jsCodeHash(), true)].join(' ')"
                .into(),
        ),
    ];
    let out = phat_js::eval_with_host(
        &codes,
        &[],
        &JsLimits::with_time(Duration::from_secs(5)),
        Some(host.clone()),
    );
    let hash = phat_js::code_hash(codes.iter().map(|c| match c {
        JsCode::Source(s) => s.as_bytes(),
        JsCode::Bytecode(b) => b.as_slice(),
    }));
    assert_eq!(out.value, JsValue::String(format!("64 0x{}", hex(&hash))));
    let material = host.derived.borrow()[0].clone();
    assert_eq!(material, [b"JavaScript:".as_slice(), &hash, b"k"].concat());
    // Without a host key: thrown.
    assert!(exception(js("pink.deriveSecret('k')")).contains("not a function"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn hashes_and_codecs_match_their_standards() {
    let h = |alg: &str, msg: &str| js(&format!("pink.hexEncode(pink.hash('{alg}', {msg}))"));
    let s = |v: &str| JsValue::String(v.into());
    assert_eq!(
        h("sha256", "'abc'"),
        s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        h("keccak256", "''"),
        s("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    );
    assert_eq!(
        h("blake2b256", "new Uint8Array()"),
        s("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
    );
    assert_eq!(h("blake2b128", "''"), s("cae66941d9efbd404e4d88758ea67670"));
    assert!(exception(js("pink.hash('md5', 'x')")).contains("Unsupported hash algorithm: md5"));
    assert_eq!(
        js(
            "[pink.hexEncode([1, 255], true), pink.hexEncode(pink.hexDecode('0x01FF')), \
             pink.base64Encode(pink.utf8Encode('hi?')), pink.base64Encode('hi', false), \
             pink.utf8Decode(pink.base64Decode('aGk/')), \
             Pink.utf8Decode(new TextEncoder().encode('héllo')), \
             new TextDecoder().decode(new Uint8Array([0xe2, 0x82, 0xac]))].join(' ')"
        ),
        s("0x01ff 01ff aGk/ aGk hi? héllo €")
    );
    let into = js(
        "const d = new Uint8Array(4); const r = new TextEncoder().encodeInto('a€b', d); \
                   [r.read, r.written, d[0], d[1]].join(' ')",
    );
    assert_eq!(into, s("2 4 97 226"));
    assert!(exception(js("pink.hexDecode('0xz')")).contains("invalid hex"));
    assert!(exception(js("new TextDecoder('latin1')")).contains("utf-8 only"));
}

#[test]
fn script_output_and_promises_decide_the_result() {
    // `scriptOutput` wins over the last expression (Phala's rule).
    assert_eq!(js("scriptOutput = 42; 1"), JsValue::Other("42".into()));
    assert_eq!(
        js("scriptOutput = undefined; 'last'"),
        JsValue::String("last".into())
    );
    // What `@phala/fn build` wraps a function in, with an async `main`: awaited.
    let wrapped = eval(
        &[JsCode::Source(
            "async function main(request, secrets) { \
               await null; return request + '/' + secrets; } \
             globalThis.scriptOutput = main.apply(null, globalThis.scriptArgs);"
                .into(),
        )],
        &["0x01".into(), "key".into()],
        &JsLimits::with_time(Duration::from_secs(5)),
    );
    assert_eq!(wrapped.value, JsValue::String("0x01/key".into()));
    assert_eq!(
        js("Promise.resolve(7).then(x => x * 6)"),
        JsValue::Other("42".into())
    );
    assert!(exception(js("Promise.reject(new Error('no'))")).contains("Error: no"));
    assert!(exception(js("new Promise(() => {})")).contains("never settled"));
    // `.then` callbacks run before the result is read.
    assert_eq!(
        js(
            "let x = 1; Promise.resolve().then(() => { x = 2; }); scriptOutput = 'x'; \
            Promise.resolve().then(() => { scriptOutput = 'x=' + x; }); 0"
        ),
        JsValue::String("x=2".into())
    );
}

#[test]
fn timers_run_in_order_within_the_deadline() {
    let started = Instant::now();
    assert_eq!(
        js(
            "let s = ''; setTimeout(() => s += 'b', 30); setTimeout(() => s += 'a', 0); \
            const gone = setTimeout(() => s += 'x', 10); clearTimeout(gone); \
            new Promise(r => setTimeout(() => r(s + 'c'), 60))"
        ),
        JsValue::String("abc".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(60));
    // Arguments reach the callback; a throwing timer is the call's exception.
    assert_eq!(
        js("new Promise(r => setTimeout((a, b) => r(a + b), 1, 40, 2))"),
        JsValue::Other("42".into())
    );
    assert!(exception(js("setTimeout(() => { throw new Error('boom') }, 1); 0")).contains("boom"));
    // A timer due after the deadline is not waited for; an endless chain of timers stops at
    // the deadline; too many pending timers throw.
    let short = |src: &str| {
        eval(
            &[JsCode::Source(src.into())],
            &[],
            &JsLimits::with_time(Duration::from_millis(300)),
        )
        .value
    };
    let started = Instant::now();
    assert!(exception(short("setTimeout(() => {}, 60000); 0")).contains("time runs out"));
    assert!(started.elapsed() < Duration::from_secs(2));
    let m = exception(short(
        "function again() { setTimeout(again, 1); } again(); 0",
    ));
    assert!(
        m.contains("time runs out") || m.contains("interrupted"),
        "{m}"
    );
    assert!(exception(js(
        "for (let i = 0; i < 2000; i++) setTimeout(() => {}, 1); 0"
    ))
    .contains("at most 1000 timers"));
}
