//! The `pink` object Phala's JavaScript engine gives scripts (also named `Pink`), with the same
//! names and behaviour: HTTP (`httpRequest`, `batchHttpRequest`), the contract's secrets
//! (`deriveSecret`, `jsCodeHash`), hashes, and byte codecs; plus `TextEncoder`/`TextDecoder`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rquickjs::{Array, Ctx, Exception, Function, Object, TypedArray, Value};

use crate::{HttpError, HttpRequest, HttpResponse, JsHost, JsLimits};

/// Most requests in one `batchHttpRequest` (Phala's `MAX_CONCURRENT_REQUESTS`).
pub const MAX_BATCH: usize = 5;
/// A batch's timeout when the script names none (Phala's default), before the time left.
const DEFAULT_BATCH_TIMEOUT_MS: u64 = 60_000;

/// What the `pink` functions need from the call.
pub(crate) struct Api {
    /// The embedder's network and keys (no HTTP and no secrets without it).
    pub host: Option<Rc<dyn JsHost>>,
    /// When the call stops.
    pub deadline: Instant,
    /// HTTP requests the call may still make (each request of a batch counts).
    pub requests_left: Rc<Cell<usize>>,
    /// `blake2_256(blake2_256(code 1) ‖ …)`: what `deriveSecret` binds a secret to.
    pub code_hash: [u8; 32],
}

fn throw<T>(ctx: &Ctx<'_>, message: impl AsRef<str>) -> rquickjs::Result<T> {
    Err(Exception::throw_message(ctx, message.as_ref()))
}

/// Bytes of `v`: a `Uint8Array` (or other typed array's bytes), an `ArrayBuffer`, an array of
/// numbers, or a string as UTF-8; `hex_strings` also takes a `0x` string as hex (Phala's HTTP
/// bodies).
fn bytes_of<'js>(ctx: &Ctx<'js>, v: &Value<'js>, hex_strings: bool) -> rquickjs::Result<Vec<u8>> {
    if let Some(s) = v.as_string() {
        let s = s.to_string()?;
        if hex_strings {
            if let Some(digits) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                return match hex::decode(digits) {
                    Ok(b) => Ok(b),
                    Err(e) => throw(ctx, format!("invalid hex body: {e}")),
                };
            }
        }
        return Ok(s.into_bytes());
    }
    if let Ok(bytes) = TypedArray::<u8>::from_value(v.clone()) {
        let b: &[u8] = bytes.as_ref();
        return Ok(b.to_vec());
    }
    if let Some(obj) = v.as_object() {
        if let Some(buf) = obj.as_array_buffer() {
            return Ok(buf.as_bytes().map(<[u8]>::to_vec).unwrap_or_default());
        }
        if let Some(arr) = obj.as_array() {
            let mut out = Vec::with_capacity(arr.len());
            for item in arr.iter::<i32>() {
                out.push(u8::try_from(item?).map_err(|_| {
                    Exception::throw_range(ctx, "an array of bytes holds numbers 0 to 255")
                })?);
            }
            return Ok(out);
        }
    }
    throw(
        ctx,
        "expected bytes: a Uint8Array, an ArrayBuffer, an array or a string",
    )
}

/// A request object (`{url, method, headers, body, textBody}`) as the host takes it.
fn request_of<'js>(ctx: &Ctx<'js>, opts: &Value<'js>) -> rquickjs::Result<HttpRequest> {
    let Some(opts) = opts.as_object() else {
        return throw(
            ctx,
            "an HTTP request is an object: {url, method, headers, body}",
        );
    };
    let Some(url) = opts.get::<_, Option<String>>("url")? else {
        return throw(ctx, "httpRequest needs a `url` string");
    };
    let method = opts
        .get::<_, Option<String>>("method")?
        .unwrap_or_else(|| "GET".into());
    let mut headers = Vec::new();
    let given: Value<'js> = opts.get("headers")?;
    if let Some(pairs) = given.as_array() {
        // Phala also takes `[[name, value], …]`.
        for pair in pairs.iter::<Array<'js>>() {
            let pair = pair?;
            let name: rquickjs::convert::Coerced<String> = pair.get(0)?;
            let value: rquickjs::convert::Coerced<String> = pair.get(1)?;
            headers.push((name.0, value.0));
        }
    } else if let Some(h) = given.as_object() {
        for pair in h.props::<String, rquickjs::convert::Coerced<String>>() {
            let (name, value) = pair?;
            headers.push((name, value.0));
        }
    }
    let body: Value<'js> = opts.get("body")?;
    let mut body = if body.is_undefined() || body.is_null() {
        Vec::new()
    } else if body.is_string() || body.is_object() {
        bytes_of(ctx, &body, true)?
    } else {
        return throw(ctx, "httpRequest's `body` is a string or a Uint8Array");
    };
    if body.is_empty() {
        if let Some(text) = opts.get::<_, Option<String>>("textBody")? {
            body = text.into_bytes();
        }
    }
    Ok(HttpRequest {
        url,
        method,
        headers,
        body,
    })
}

/// Whether a request object asks for its body as text (`returnTextBody`, default false).
fn wants_text(opts: &Value<'_>) -> rquickjs::Result<bool> {
    Ok(opts
        .as_object()
        .map(|o| o.get::<_, Option<bool>>("returnTextBody"))
        .transpose()?
        .flatten()
        .unwrap_or(false))
}

/// Phala's response object: `{statusCode, reasonPhrase, headers: [[name, value], …], body}`.
fn response_object<'js>(
    ctx: &Ctx<'js>,
    r: HttpResponse,
    text: bool,
) -> rquickjs::Result<Object<'js>> {
    let out = Object::new(ctx.clone())?;
    out.set("statusCode", r.status_code)?;
    out.set("reasonPhrase", r.reason_phrase)?;
    let headers = Array::new(ctx.clone())?;
    for (i, (name, value)) in r.headers.into_iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, name)?;
        pair.set(1, value)?;
        headers.set(i, pair)?;
    }
    out.set("headers", headers)?;
    if text {
        out.set("body", String::from_utf8_lossy(&r.body).into_owned())?;
    } else {
        out.set("body", TypedArray::<u8>::new(ctx.clone(), r.body)?)?;
    }
    Ok(out)
}

/// What Phala answers for a request that failed: 523 when the server was not reached, 524
/// when the exchange failed after; `None` for failures that are thrown.
fn failure_response(e: &HttpError) -> Option<HttpResponse> {
    let (status_code, reason) = match e.kind.as_str() {
        "NetworkError" | "NotAllowed" => (523, "Unreachable"),
        "ResponseTooLarge" => (524, "IO Error"),
        _ => return None,
    };
    Some(HttpResponse {
        status_code,
        reason_phrase: reason.into(),
        headers: Vec::new(),
        body: e.message.clone().into_bytes(),
    })
}

impl Api {
    /// Takes `n` requests from the call's budget, or says why not.
    fn spend(&self, n: usize, max: usize) -> Result<(), String> {
        let left = self.requests_left.get();
        if n > left {
            return Err(format!("at most {max} HTTP requests per call"));
        }
        self.requests_left.set(left - n);
        Ok(())
    }

    fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Installs `pink` (and `Pink`), `TextEncoder` and `TextDecoder`.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    api: Rc<Api>,
    limits: &JsLimits,
) -> rquickjs::Result<()> {
    let pink = Object::new(ctx.clone())?;
    let max = limits.max_http_requests;
    if let Some(host) = api.host.clone() {
        let a = api.clone();
        let h = host.clone();
        pink.set(
            "httpRequest",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, opts: Value<'js>| -> rquickjs::Result<Object<'js>> {
                    let req = request_of(&ctx, &opts)?;
                    let text = wants_text(&opts)?;
                    if let Err(m) = a.spend(1, max) {
                        return throw(&ctx, m);
                    }
                    let timeout = a.time_left();
                    if timeout.is_zero() {
                        return throw(&ctx, "the query has no time left");
                    }
                    match h.http_request(req, timeout) {
                        Ok(r) => response_object(&ctx, r, text),
                        Err(e) => match failure_response(&e) {
                            Some(r) => response_object(&ctx, r, text),
                            None => throw(&ctx, format!("http request failed: {e}")),
                        },
                    }
                },
            )?,
        )?;
        let a = api.clone();
        let h = host.clone();
        pink.set(
            "batchHttpRequest",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>,
                      reqs: Array<'js>,
                      timeout_ms: rquickjs::function::Opt<f64>|
                      -> rquickjs::Result<Array<'js>> {
                    if reqs.len() > MAX_BATCH {
                        return throw(&ctx, "Failed to call batch_http_request: TooManyRequests");
                    }
                    let mut parsed = Vec::with_capacity(reqs.len());
                    let mut text = Vec::with_capacity(reqs.len());
                    for r in reqs.iter::<Value<'js>>() {
                        let r = r?;
                        parsed.push(request_of(&ctx, &r)?);
                        text.push(wants_text(&r)?);
                    }
                    if let Err(m) = a.spend(parsed.len(), max) {
                        return throw(&ctx, m);
                    }
                    let wanted = timeout_ms
                        .0
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .map_or(DEFAULT_BATCH_TIMEOUT_MS, |t| t as u64);
                    let timeout = Duration::from_millis(wanted).min(a.time_left());
                    if timeout.is_zero() {
                        return throw(&ctx, "Failed to call batch_http_request: Timeout");
                    }
                    let n = parsed.len();
                    let answers = if n == 0 {
                        Vec::new()
                    } else {
                        h.batch_http_request(parsed, timeout)
                    };
                    if answers.len() != n {
                        return throw(&ctx, "the host answered a batch with the wrong count");
                    }
                    let out = Array::new(ctx.clone())?;
                    for (i, (answer, text)) in answers.into_iter().zip(text).enumerate() {
                        match answer {
                            Ok(r) => out.set(i, response_object(&ctx, r, text)?)?,
                            Err(e) => {
                                let err = Object::new(ctx.clone())?;
                                err.set("error", e.kind)?;
                                out.set(i, err)?;
                            }
                        }
                    }
                    Ok(out)
                },
            )?,
        )?;
        let a = api.clone();
        pink.set(
            "deriveSecret",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, salt: Value<'js>| -> rquickjs::Result<TypedArray<'js, u8>> {
                    let salt = bytes_of(&ctx, &salt, false)?;
                    let material = [b"JavaScript:".as_slice(), &a.code_hash, &salt].concat();
                    match host.derive_secret(&material) {
                        Some(secret) => TypedArray::new(ctx.clone(), secret.to_vec()),
                        None => throw(&ctx, "this engine holds no contract key to derive from"),
                    }
                },
            )?,
        )?;
    }
    let code_hash = api.code_hash;
    pink.set(
        "jsCodeHash",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
            TypedArray::<u8>::new(ctx, code_hash.to_vec())
        })?,
    )?;
    pink.set(
        "hash",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, algorithm: String, message: Value<'js>| {
                let message = bytes_of(&ctx, &message, false)?;
                match hash(&algorithm, &message) {
                    Some(digest) => TypedArray::<u8>::new(ctx, digest),
                    None => throw(&ctx, format!("Unsupported hash algorithm: {algorithm}")),
                }
            },
        )?,
    )?;
    pink.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, s: String| {
            TypedArray::<u8>::new(ctx, s.into_bytes())
        })?,
    )?;
    pink.set(
        "utf8Decode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, b: Value<'js>| {
            let bytes = bytes_of(&ctx, &b, false)?;
            Ok::<_, rquickjs::Error>(String::from_utf8_lossy(&bytes).into_owned())
        })?,
    )?;
    pink.set(
        "hexEncode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, b: Value<'js>, prefix: rquickjs::function::Opt<bool>| {
                let bytes = bytes_of(&ctx, &b, false)?;
                let prefix = if prefix.0.unwrap_or(false) { "0x" } else { "" };
                Ok::<_, rquickjs::Error>(format!("{prefix}{}", hex::encode(bytes)))
            },
        )?,
    )?;
    pink.set(
        "hexDecode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, s: String| {
            let digits = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(&s);
            match hex::decode(digits) {
                Ok(b) => TypedArray::<u8>::new(ctx, b),
                Err(e) => throw(&ctx, format!("invalid hex: {e}")),
            }
        })?,
    )?;
    pink.set(
        "base64Encode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, b: Value<'js>, pad: rquickjs::function::Opt<bool>| {
                let bytes = bytes_of(&ctx, &b, false)?;
                Ok::<_, rquickjs::Error>(if pad.0.unwrap_or(true) {
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                } else {
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
                })
            },
        )?,
    )?;
    pink.set(
        "base64Decode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, s: String| {
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            match engine.decode(s.trim()) {
                Ok(b) => TypedArray::<u8>::new(ctx, b),
                Err(e) => throw(&ctx, format!("invalid base64: {e}")),
            }
        })?,
    )?;
    let globals = ctx.globals();
    globals.set("pink", pink.clone())?;
    globals.set("Pink", pink)?;
    ctx.eval::<(), _>(PRELUDE)
}

/// `TextEncoder` and `TextDecoder` (UTF-8 only, as in Phala's engine), over `pink`'s codecs.
const PRELUDE: &str = r#"(() => {
  const p = globalThis.pink;
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s = "") { return p.utf8Encode(String(s)); }
    encodeInto(s, dest) {
      let read = 0, written = 0;
      for (const ch of String(s)) {
        const b = p.utf8Encode(ch);
        if (written + b.length > dest.length) break;
        dest.set(b, written);
        written += b.length;
        read += ch.length;
      }
      return { read, written };
    }
  }
  class TextDecoder {
    constructor(label = "utf-8") {
      if (!/^utf-?8$/i.test(String(label))) throw new RangeError("TextDecoder supports utf-8 only");
    }
    get encoding() { return "utf-8"; }
    decode(b) {
      if (b === undefined) return "";
      if (ArrayBuffer.isView(b)) b = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      return p.utf8Decode(b);
    }
  }
  globalThis.TextEncoder = TextEncoder;
  globalThis.TextDecoder = TextDecoder;
})();"#;

/// `message` hashed with one of Phala's algorithms.
pub fn hash(algorithm: &str, message: &[u8]) -> Option<Vec<u8>> {
    use blake2::digest::{Digest, Update, VariableOutput};
    Some(match algorithm {
        "blake2b128" => {
            let mut h = blake2::Blake2bVar::new(16).ok()?;
            h.update(message);
            let mut out = vec![0; 16];
            h.finalize_variable(&mut out).ok()?;
            out
        }
        "blake2b256" => blake2::Blake2b::<blake2::digest::consts::U32>::digest(message).to_vec(),
        "sha256" => sha2::Sha256::digest(message).to_vec(),
        "keccak256" => sha3::Keccak256::digest(message).to_vec(),
        _ => return None,
    })
}

/// `blake2_256(blake2_256(code 1) ‖ blake2_256(code 2) ‖ …)`: Phala's `jsCodeHash`.
pub fn code_hash<'a>(codes: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut all = Vec::new();
    for code in codes {
        all.extend_from_slice(&blake2_256(code));
    }
    blake2_256(&all)
}

fn blake2_256(data: &[u8]) -> [u8; 32] {
    use blake2::digest::Digest;
    blake2::Blake2b::<blake2::digest::consts::U32>::digest(data).into()
}
