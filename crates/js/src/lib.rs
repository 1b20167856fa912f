//! JavaScript for phat contracts and Phat Functions: what pink's `js_eval` (extension
//! function 24) and `phat fn run` run.
//!
//! Each call gets a fresh QuickJS runtime (through `rquickjs`) that nothing else shares, bounded
//! by [`JsLimits`]: a heap limit (an allocation past it throws), a stack limit (deep recursion
//! throws), a deadline (checked by QuickJS's interrupt handler, so a loop ends), and caps on
//! the result, on `console` output, on HTTP requests and on pending timers.
//!
//! Scripts see what Phala's engine gives them (`api`): `scriptArgs`, `console`, the `pink`
//! object (`httpRequest`, `batchHttpRequest`, `deriveSecret`, `jsCodeHash`, `hash`, hex,
//! base64 and UTF-8 codecs; HTTP and secrets only when the embedder gives a [`JsHost`]),
//! `TextEncoder`/`TextDecoder`, and `setTimeout`. After the scripts, promise jobs and due
//! timers run until none is left; the result is `scriptOutput` when the scripts set it, else
//! the last script's value, and a promise is replaced by what it settled to.
//!
//! Why QuickJS: a heap limit and an interrupt handler are part of its runtime, so a hostile
//! script is stopped by the engine itself; Boa (pure Rust) has loop and recursion limits but no
//! heap limit. Compiled bytecode is refused: QuickJS does not verify bytecode, and loading
//! untrusted bytecode can corrupt the worker's memory.

mod api;
mod timers;

pub use api::{code_hash, hash, MAX_BATCH};
pub use timers::MAX_TIMERS;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::function::Rest;
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime, TypedArray, Value};

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
    /// HTTP requests allowed per call, each request of a batch counted (later ones throw).
    pub max_http_requests: usize,
}

impl JsLimits {
    /// The defaults with `time` to run: 16 MiB of heap, 256 KiB of stack, 64 KiB of
    /// result, 100 log lines of at most 1 KiB, 20 HTTP requests.
    pub fn with_time(time: Duration) -> Self {
        Self {
            memory: 16 << 20,
            stack: 256 << 10,
            deadline: Instant::now() + time,
            max_output: 64 << 10,
            max_log_lines: 100,
            max_log_line: 1 << 10,
            max_http_requests: 20,
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

/// Why an HTTP request failed: Phala's `HttpRequestError` name (`NetworkError`,
/// `NotAllowed`, `InvalidUrl`, `Timeout`, …) and what happened. `NetworkError` and
/// `NotAllowed` answer the script 523, `ResponseTooLarge` 524 (as Phala does); the others throw
/// from `httpRequest` and are `{error: kind}` in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// Phala's name for the failure.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What scripts reach outside the engine, provided by the embedder (the worker's egress and
/// the contract's keys, or `phat fn run`'s network).
pub trait JsHost {
    /// Sends `req`, waiting at most `timeout` (already bounded by the call's deadline).
    fn http_request(&self, req: HttpRequest, timeout: Duration) -> Result<HttpResponse, HttpError>;

    /// Sends `reqs` (at most [`MAX_BATCH`]) together, waiting at most `timeout` in all; one
    /// answer per request, in order. By default one after another.
    fn batch_http_request(
        &self,
        reqs: Vec<HttpRequest>,
        timeout: Duration,
    ) -> Vec<Result<HttpResponse, HttpError>> {
        let deadline = Instant::now() + timeout;
        reqs.into_iter()
            .map(|r| {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(HttpError {
                        kind: "Timeout".into(),
                        message: "the batch's time ran out".into(),
                    });
                }
                self.http_request(r, left)
            })
            .collect()
    }

    /// The 64-byte secret the contract's key derives for `material` (`pink.deriveSecret`:
    /// `"JavaScript:" ‖ jsCodeHash ‖ salt`), or `None` when the host holds no key.
    fn derive_secret(&self, material: &[u8]) -> Option<[u8; 64]> {
        let _ = material;
        None
    }
}

/// Runs `codes` in order in one fresh runtime with `scriptArgs` = `args` (see the crate docs
/// for the result). Scripts get no HTTP and no secrets.
pub fn eval(codes: &[JsCode], args: &[String], limits: &JsLimits) -> JsOutcome {
    eval_with_host(codes, args, limits, None)
}

/// [`eval`], with HTTP and secrets served by `host` when it is given.
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
    let mut sources = Vec::with_capacity(codes.len());
    for code in codes {
        match code {
            JsCode::Source(s) => sources.push(s),
            JsCode::Bytecode(_) => {
                return JsValue::Exception(
                    "compiled bytecode is not accepted (phat runs JavaScript source only)".into(),
                )
            }
        }
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
    let api = Rc::new(api::Api {
        host,
        deadline,
        requests_left: Rc::new(Cell::new(limits.max_http_requests)),
        code_hash: code_hash(sources.iter().map(|s| s.as_bytes())),
    });
    let timers = Rc::new(RefCell::new(timers::Timers::default()));
    let value = evaluate(
        &runtime, &context, &sources, args, limits, logs, api, &timers,
    );
    // Timers hold the runtime's values: they go before it does.
    timers.borrow_mut().clear();
    value
}

/// Sets up the globals, runs the scripts, then their jobs and timers; the result.
#[allow(clippy::too_many_arguments, reason = "one call's parts, passed once")]
fn evaluate(
    runtime: &Runtime,
    context: &Context,
    sources: &[&String],
    args: &[String],
    limits: &JsLimits,
    logs: &Rc<RefCell<Logs>>,
    api: Rc<api::Api>,
    timers: &Rc<RefCell<timers::Timers>>,
) -> JsValue {
    let deadline = limits.deadline;
    let last = context.with(|ctx| {
        let installed = install_globals(&ctx, args, limits, logs)
            .and_then(|()| api::install(&ctx, api, limits))
            .and_then(|()| timers::install(&ctx, timers.clone()));
        if let Err(e) = installed {
            if let rquickjs::Error::Exception = e {
                let thrown = ctx.catch();
                return Err(format!(
                    "cannot set up the script's globals: {}",
                    describe(&ctx, thrown, deadline)
                ));
            }
            return Err(format!("cannot set up the script's globals: {e}"));
        }
        let mut last = Value::new_undefined(ctx.clone());
        for source in sources {
            // Sloppy global code, as Phala's engine runs it (`x = 1` makes a global).
            let mut options = rquickjs::context::EvalOptions::default();
            options.strict = false;
            match ctx.eval_with_options::<Value, _>(source.as_bytes().to_vec(), options) {
                Ok(v) => last = v,
                Err(rquickjs::Error::Exception) => {
                    let thrown = ctx.catch();
                    return Err(describe(&ctx, thrown, deadline));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(Persistent::save(&ctx, last))
    });
    let last = match last {
        Ok(v) => v,
        Err(m) => return JsValue::Exception(m),
    };
    let driven = timers::drive(runtime, context, timers, deadline);
    context.with(|ctx| {
        let last = last.restore(&ctx);
        if let Err(m) = driven {
            return JsValue::Exception(m);
        }
        let output: Value = ctx
            .globals()
            .get("scriptOutput")
            .unwrap_or_else(|_| Value::new_undefined(ctx.clone()));
        let value = if output.is_undefined() {
            match last {
                Ok(v) => v,
                Err(e) => return JsValue::Exception(e.to_string()),
            }
        } else {
            output
        };
        let value = match value.as_promise() {
            None => value,
            Some(p) => match p.result::<Value>() {
                None => {
                    return JsValue::Exception(
                        "the script's promise never settled (nothing was left to run)".into(),
                    )
                }
                Some(Ok(v)) => v,
                Some(Err(_)) => {
                    let thrown = ctx.catch();
                    return JsValue::Exception(describe(&ctx, thrown, deadline));
                }
            },
        };
        convert(&ctx, value, limits.max_output)
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
pub(crate) fn describe<'js>(ctx: &Ctx<'js>, thrown: Value<'js>, deadline: Instant) -> String {
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
