//! JavaScript for phat contracts: what pink's `js_eval` (extension function 24) runs.
//!
//! Each call gets a fresh QuickJS runtime (through `rquickjs`) that nothing else shares, bounded
//! by [`JsLimits`]: a heap limit (an allocation past it throws), a stack limit (deep recursion
//! throws), a deadline (checked by QuickJS's interrupt handler, so a loop ends), and caps on
//! the result and on `console` output. The scripts see `scriptArgs` (the call's string
//! arguments), `console.log/info/warn/error` and, when the embedder gives a [`JsHost`],
//! `pink.httpRequest` (synchronous, as in Phala's engine; at most
//! [`JsLimits::max_http_requests`] per call, each bounded by the time left). No timers,
//! modules or files.
//!
//! Why QuickJS: a heap limit and an interrupt handler are part of its runtime, so a hostile
//! script is stopped by the engine itself; Boa (pure Rust) has loop and recursion limits but no
//! heap limit. Compiled bytecode is refused: QuickJS does not verify bytecode, and loading
//! untrusted bytecode can corrupt the worker's memory.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::function::Rest;
use rquickjs::{Context, Ctx, Function, Object, Runtime, TypedArray, Value};

/// What a script may use.
#[derive(Clone, Debug)]
pub struct JsLimits {
    /// Heap bytes of the runtime.
    pub memory: usize,
    /// Stack bytes of the runtime.
    pub stack: usize,
    /// When the call is stopped.
    pub deadline: Instant,
    /// Bytes of the result (a string's UTF-8, bytes, or the printed value).
    pub max_output: usize,
    /// `console` lines kept (later ones are counted, not kept).
    pub max_log_lines: usize,
    /// Bytes of one `console` line (longer ones are cut).
    pub max_log_line: usize,
    /// `pink.httpRequest` calls allowed (later ones throw).
    pub max_http_requests: usize,
}

impl JsLimits {
    /// The defaults with `time` to run: 16 MiB of heap, 256 KiB of stack, 64 KiB of
    /// result, 100 log lines of at most 1 KiB, 5 HTTP requests.
    pub fn with_time(time: Duration) -> Self {
        Self {
            memory: 16 << 20,
            stack: 256 << 10,
            deadline: Instant::now() + time,
            max_output: 64 << 10,
            max_log_lines: 100,
            max_log_line: 1 << 10,
            max_http_requests: 5,
        }
    }
}

/// A script to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsCode {
    /// Source text.
    Source(String),
    /// QuickJS bytecode (refused, see the crate docs).
    Bytecode(Vec<u8>),
}

/// What a call returns: pink's `JsValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsValue {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A string.
    String(String),
    /// A `Uint8Array`'s bytes.
    Bytes(Vec<u8>),
    /// Any other value, as JSON where it has one, else as text.
    Other(String),
    /// The script threw, ran out of time or memory, or could not run: why.
    Exception(String),
}

/// The result and what the scripts printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsOutcome {
    /// The last script's value.
    pub value: JsValue,
    /// `console` lines, in order (level and text).
    pub logs: Vec<(LogLevel, String)>,
    /// `console` lines dropped past [`JsLimits::max_log_lines`].
    pub dropped_logs: usize,
}

/// A `console` method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// `console.error`.
    Error,
    /// `console.warn`.
    Warn,
    /// `console.log`, `console.info`.
    Info,
}

/// An HTTP request a script made (`pink.httpRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Absolute URL.
    pub url: String,
    /// Method (`GET` when the script names none).
    pub method: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body (a string's UTF-8, or a `Uint8Array`'s bytes).
    pub body: Vec<u8>,
}

/// The answer to an [`HttpRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status_code: u16,
    /// Reason phrase.
    pub reason_phrase: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What scripts reach outside the engine, provided by the embedder (the worker's egress).
pub trait JsHost {
    /// Sends `req`, waiting at most `timeout` (already bounded by the call's deadline); the
    /// error is thrown to the script as it is.
    fn http_request(&self, req: HttpRequest, timeout: Duration) -> Result<HttpResponse, String>;
}

/// Runs `codes` in order in one fresh runtime with `scriptArgs` = `args`; the value of the
/// last is the result. Scripts get no `pink.httpRequest`.
pub fn eval(codes: &[JsCode], args: &[String], limits: &JsLimits) -> JsOutcome {
    eval_with_host(codes, args, limits, None)
}

/// [`eval`], with `pink.httpRequest` served by `host` when it is given.
pub fn eval_with_host(
    codes: &[JsCode],
    args: &[String],
    limits: &JsLimits,
    host: Option<Rc<dyn JsHost>>,
) -> JsOutcome {
    let logs = Rc::new(RefCell::new(Logs::default()));
    let value = run(codes, args, limits, &logs, host);
    let logs = Rc::try_unwrap(logs)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| shared.borrow().clone());
    JsOutcome {
        value,
        logs: logs.lines,
        dropped_logs: logs.dropped,
    }
}

#[derive(Clone, Default)]
struct Logs {
    lines: Vec<(LogLevel, String)>,
    dropped: usize,
}

fn run(
    codes: &[JsCode],
    args: &[String],
    limits: &JsLimits,
    logs: &Rc<RefCell<Logs>>,
    host: Option<Rc<dyn JsHost>>,
) -> JsValue {
    if codes.iter().any(|c| matches!(c, JsCode::Bytecode(_))) {
        return JsValue::Exception(
            "compiled bytecode is not accepted (phat runs JavaScript source only)".into(),
        );
    }
    if Instant::now() >= limits.deadline {
        return JsValue::Exception("the query has no time left".into());
    }
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => return JsValue::Exception(format!("cannot start the engine: {e}")),
    };
    runtime.set_memory_limit(limits.memory);
    runtime.set_max_stack_size(limits.stack);
    let deadline = limits.deadline;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() >= deadline)));
    let context = match Context::full(&runtime) {
        Ok(c) => c,
        Err(e) => return JsValue::Exception(format!("cannot start the engine: {e}")),
    };
    context.with(|ctx| {
        let installed = install_globals(&ctx, args, limits, logs).and_then(|()| match host {
            Some(host) => install_http(&ctx, host, limits),
            None => Ok(()),
        });
        if let Err(e) = installed {
            return JsValue::Exception(format!("cannot set up the script's globals: {e}"));
        }
        let mut last = JsValue::Undefined;
        for code in codes {
            let JsCode::Source(source) = code else {
                continue;
            };
            match ctx.eval::<Value, _>(source.as_bytes().to_vec()) {
                Ok(v) => last = convert(&ctx, v, limits.max_output),
                Err(rquickjs::Error::Exception) => {
                    let thrown = ctx.catch();
                    return JsValue::Exception(describe(&ctx, thrown, deadline));
                }
                Err(e) => return JsValue::Exception(e.to_string()),
            }
        }
        last
    })
}

fn install_globals<'js>(
    ctx: &Ctx<'js>,
    args: &[String],
    limits: &JsLimits,
    logs: &Rc<RefCell<Logs>>,
) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    globals.set("scriptArgs", args.to_vec())?;
    let console = Object::new(ctx.clone())?;
    for (name, level) in [
        ("log", LogLevel::Info),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let (logs, max_lines, max_line) = (logs.clone(), limits.max_log_lines, limits.max_log_line);
        let f = Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, parts: Rest<Value<'js>>| {
                let mut logs = logs.borrow_mut();
                if logs.lines.len() >= max_lines {
                    logs.dropped += 1;
                    return;
                }
                let mut line = parts
                    .0
                    .into_iter()
                    .map(|v| text(&ctx, v))
                    .collect::<Vec<_>>()
                    .join(" ");
                truncate(&mut line, max_line);
                logs.lines.push((level, line));
            },
        )?;
        console.set(name, f)?;
    }
    globals.set("console", console)
}

/// `pink.httpRequest({url, method, headers, body, returnTextBody})`: Phala's synchronous
/// request, answered `{statusCode, reasonPhrase, headers, body}` (`body` a string when
/// `returnTextBody`, else a `Uint8Array`); a failed request throws.
fn install_http<'js>(
    ctx: &Ctx<'js>,
    host: Rc<dyn JsHost>,
    limits: &JsLimits,
) -> rquickjs::Result<()> {
    let (deadline, max) = (limits.deadline, limits.max_http_requests);
    let sent = Rc::new(std::cell::Cell::new(0usize));
    let f = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, opts: Object<'js>| -> rquickjs::Result<Object<'js>> {
            let throw = |m: String| Err(rquickjs::Exception::throw_message(&ctx, &m));
            if sent.get() >= max {
                return throw(format!("at most {max} HTTP requests per call"));
            }
            sent.set(sent.get() + 1);
            let Some(url) = opts.get::<_, Option<String>>("url")? else {
                return throw("httpRequest needs a `url` string".into());
            };
            let method = opts
                .get::<_, Option<String>>("method")?
                .unwrap_or_else(|| "GET".into());
            let mut headers = Vec::new();
            if let Some(h) = opts.get::<_, Option<Object<'js>>>("headers")? {
                for pair in h.props::<String, rquickjs::convert::Coerced<String>>() {
                    let (name, value) = pair?;
                    headers.push((name, value.0));
                }
            }
            let body: Value<'js> = opts.get("body")?;
            let body = if body.is_undefined() || body.is_null() {
                Vec::new()
            } else if let Some(s) = body.as_string() {
                s.to_string()?.into_bytes()
            } else if let Ok(bytes) = TypedArray::<u8>::from_value(body) {
                let b: &[u8] = bytes.as_ref();
                b.to_vec()
            } else {
                return throw("httpRequest's `body` is a string or a Uint8Array".into());
            };
            let text = opts
                .get::<_, Option<bool>>("returnTextBody")?
                .unwrap_or(false);
            let timeout = deadline.saturating_duration_since(Instant::now());
            if timeout.is_zero() {
                return throw("the query has no time left".into());
            }
            let request = HttpRequest {
                url,
                method,
                headers,
                body,
            };
            let response = match host.http_request(request, timeout) {
                Ok(r) => r,
                Err(m) => return throw(format!("http request failed: {m}")),
            };
            let out = Object::new(ctx.clone())?;
            out.set("statusCode", response.status_code)?;
            out.set("reasonPhrase", response.reason_phrase)?;
            let headers = Object::new(ctx.clone())?;
            for (name, value) in response.headers {
                headers.set(name, value)?;
            }
            out.set("headers", headers)?;
            if text {
                out.set("body", String::from_utf8_lossy(&response.body).into_owned())?;
            } else {
                out.set("body", TypedArray::<u8>::new(ctx.clone(), response.body)?)?;
            }
            Ok(out)
        },
    )?;
    let pink = Object::new(ctx.clone())?;
    pink.set("httpRequest", f)?;
    ctx.globals().set("pink", pink)
}

/// `v` as `String(v)` would print it.
fn text<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        return s.to_string().unwrap_or_default();
    }
    <rquickjs::convert::Coerced<String> as rquickjs::FromJs>::from_js(ctx, v)
        .map(|c| c.0)
        .unwrap_or_else(|_| "<unprintable>".into())
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

fn convert<'js>(ctx: &Ctx<'js>, v: Value<'js>, max: usize) -> JsValue {
    let too_big = |n: usize| JsValue::Exception(format!("the result is {n} bytes, over {max}"));
    if v.is_undefined() {
        return JsValue::Undefined;
    }
    if v.is_null() {
        return JsValue::Null;
    }
    if let Some(s) = v.as_string() {
        let s = s.to_string().unwrap_or_default();
        return if s.len() > max {
            too_big(s.len())
        } else {
            JsValue::String(s)
        };
    }
    if let Ok(bytes) = TypedArray::<u8>::from_value(v.clone()) {
        let b: &[u8] = bytes.as_ref();
        return if b.len() > max {
            too_big(b.len())
        } else {
            JsValue::Bytes(b.to_vec())
        };
    }
    let printed = ctx
        .json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| text(ctx, v));
    if printed.len() > max {
        too_big(printed.len())
    } else {
        JsValue::Other(printed)
    }
}

/// What a thrown value says, and why the engine stopped when it was the limits.
fn describe<'js>(ctx: &Ctx<'js>, thrown: Value<'js>, deadline: Instant) -> String {
    let message = match thrown.as_exception() {
        Some(e) => {
            let name: Option<String> = e.get("name").ok();
            let text = e.message().unwrap_or_default();
            match name {
                Some(n) if !n.is_empty() => format!("{n}: {text}"),
                _ => text,
            }
        }
        None => text(ctx, thrown),
    };
    if Instant::now() >= deadline && message.contains("interrupted") {
        return format!("{message} (the query's time ran out)");
    }
    message
}
