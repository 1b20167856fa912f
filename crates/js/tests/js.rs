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

/// A host answering every request with its own description, or failing on `/fail`.
struct Echo {
    seen: std::cell::RefCell<Vec<(phat_js::HttpRequest, Duration)>>,
}

impl phat_js::JsHost for Echo {
    fn http_request(
        &self,
        req: phat_js::HttpRequest,
        timeout: Duration,
    ) -> Result<phat_js::HttpResponse, String> {
        self.seen.borrow_mut().push((req.clone(), timeout));
        if req.url.ends_with("/fail") {
            return Err("Timeout: no answer".into());
        }
        Ok(phat_js::HttpResponse {
            status_code: 201,
            reason_phrase: "Created".into(),
            headers: vec![("x-method".into(), req.method.clone())],
            body: format!("{} {} bytes", req.url, req.body.len()).into_bytes(),
        })
    }
}

fn with_http(source: &str, time: Duration) -> (JsValue, Vec<(phat_js::HttpRequest, Duration)>) {
    let host = std::rc::Rc::new(Echo {
        seen: Default::default(),
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
         [r.statusCode, r.reasonPhrase, r.headers['x-method'], r.body].join('|')",
        second,
    );
    assert_eq!(
        v,
        JsValue::String("201|Created|GET|http://api/x 0 bytes".into())
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
    // Failures and bad arguments throw; the script may catch them.
    let (v, _) = with_http(
        "try { pink.httpRequest({url: 'http://api/fail'}) } catch (e) { 'caught: ' + e.message }",
        second,
    );
    assert_eq!(
        v,
        JsValue::String("caught: http request failed: Timeout: no answer".into())
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
    assert!(exception(v).contains("at most 5 HTTP requests"));
    assert_eq!(seen.len(), 5, "the sixth was never sent");
    assert_eq!(js("typeof pink"), JsValue::String("undefined".into()));
}
