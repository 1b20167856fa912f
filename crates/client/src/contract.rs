//! A contract's ink! metadata: text arguments to call data, results and events back to text.
//!
//! ink! 4 and 5 metadata go through `contract-transcode`. The legacy ink! 3 formats (the
//! `V1`/`V2`/`V3` wrappers and the un-versioned `metadataVersion: "0.1.0"` layout of ink!
//! 3.0 release candidates), which `contract-transcode` 5 cannot read, use a small transcoder
//! of this module that walks the scale-info type registry itself.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use contract_transcode::ink_metadata::InkProject;
use contract_transcode::{AccountId32, ContractMessageTranscoder, Value};
use parity_scale_codec::{Compact, Decode, Encode};
use serde_json::{json, Map, Value as Json};

use crate::ClientError;

/// Whether a message changes state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A constructor: instantiates the contract.
    Constructor,
    /// A message that does not change state (`mutates: false`), run as a query.
    Query,
    /// A message that changes state, sent as a transaction.
    Mutating,
}

/// A contract's metadata (and wasm, when loaded from a bundle), used to encode calls given
/// as text and to decode results and events to text.
pub struct Contract {
    name: Option<String>,
    wasm: Option<Vec<u8>>,
    types: Registry,
    constructors: Vec<Spec>,
    messages: Vec<Spec>,
    events: Vec<EventSpec>,
    codec: Codec,
}

/// How values are encoded and decoded.
enum Codec {
    /// ink! 4/5 through `contract-transcode`.
    Ink {
        transcoder: Box<ContractMessageTranscoder>,
        version: u64,
    },
    /// ink! 3 through [`Registry`].
    Legacy,
}

/// Label prefix of the one-argument messages added to ink! 4/5 metadata (one per argument
/// type), so that each argument is encoded, and its errors reported, on its own.
const PROBE: &str = "phat-client probe #";

fn err(message: impl Into<String>) -> ClientError {
    ClientError::Metadata(message.into())
}

/// An error of `contract-transcode` (an anyhow chain, maybe multi-line) as one line.
fn one_line(e: impl fmt::Display) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Contract {
    /// Loads a `.contract` bundle (metadata + wasm) or a metadata `.json` (no wasm).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// Parses metadata JSON text (same formats as `load`).
    pub fn from_json(text: &str) -> Result<Self, ClientError> {
        let root: Json = serde_json::from_str(text)
            .map_err(|e| err(format!("metadata is not valid JSON: {e}")))?;
        let Json::Object(mut obj) = root else {
            return Err(err("metadata is not a JSON object"));
        };
        let name = obj
            .get("contract")
            .and_then(|c| c.get("name"))
            .and_then(Json::as_str)
            .map(str::to_owned);
        let wasm = match obj.get("source").and_then(|s| s.get("wasm")) {
            Some(Json::String(h)) => Some(
                hex::decode(h.trim_start_matches("0x"))
                    .map_err(|e| err(format!("source.wasm is not hex: {e}")))?,
            ),
            _ => None,
        };
        let version = match obj.get("version") {
            Some(Json::Number(n)) => n.as_u64(),
            Some(Json::String(s)) => s.parse().ok(),
            _ => None,
        };
        let (types, constructors, messages, events, codec) = match version {
            Some(version @ (4 | 5)) => {
                let (types, constructors, messages, events) = parse_parts(&obj)?;
                let transcoder = ink_transcoder(obj, version, &constructors, &messages)?;
                let codec = Codec::Ink {
                    transcoder: Box::new(transcoder),
                    version,
                };
                (types, constructors, messages, events, codec)
            }
            Some(v) => return Err(err(format!("unsupported ink! metadata version {v}"))),
            None => {
                let body = match ["V3", "V2", "V1"].into_iter().find_map(|k| obj.remove(k)) {
                    Some(Json::Object(inner)) => inner,
                    Some(_) => return Err(err("the versioned metadata is not an object")),
                    None => obj,
                };
                if !body.contains_key("spec") || !body.contains_key("types") {
                    return Err(err(
                        "unknown metadata format (expected ink! 3, 4 or 5 metadata)",
                    ));
                }
                let (types, constructors, messages, events) = parse_parts(&body)?;
                (types, constructors, messages, events, Codec::Legacy)
            }
        };
        Ok(Self {
            name,
            wasm,
            types,
            constructors,
            messages,
            events,
            codec,
        })
    }

    /// The contract's name from the metadata (`contract.name`), if present.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The wasm in the bundle, if any.
    pub fn wasm(&self) -> Option<&[u8]> {
        self.wasm.as_deref()
    }

    /// Constructor labels, in metadata order.
    pub fn constructors(&self) -> Vec<String> {
        self.constructors.iter().map(|s| s.label.clone()).collect()
    }

    /// Message labels, in metadata order.
    pub fn messages(&self) -> Vec<String> {
        self.messages.iter().map(|s| s.label.clone()).collect()
    }

    /// The constructor to use when none is named: the one marked `default`, else `new`, else
    /// the first.
    pub fn default_constructor(&self) -> Option<String> {
        let c = &self.constructors;
        c.iter()
            .find(|s| s.default)
            .or_else(|| c.iter().find(|s| s.label == "new"))
            .or_else(|| c.first())
            .map(|s| s.label.clone())
    }

    /// Kind of a constructor/message label; None if unknown.
    pub fn kind(&self, label: &str) -> Option<MessageKind> {
        self.constructors
            .iter()
            .chain(&self.messages)
            .find(|s| s.label == label)
            .map(|s| s.kind)
    }

    /// Selector + SCALE args for a constructor.
    pub fn encode_constructor<S: AsRef<str>>(
        &self,
        label: &str,
        args: &[S],
    ) -> Result<Vec<u8>, ClientError> {
        let spec = self.find(label, true)?;
        self.encode(spec, args)
    }

    /// Selector + SCALE args for a message.
    pub fn encode_message<S: AsRef<str>>(
        &self,
        label: &str,
        args: &[S],
    ) -> Result<Vec<u8>, ClientError> {
        let spec = self.find(label, false)?;
        self.encode(spec, args)
    }

    /// Decodes a message's return bytes to text (ink! 4/5: the `Result<T, LangError>`
    /// wrapper as the metadata describes it, e.g. `Ok(true)`).
    ///
    /// A constructor's label is accepted too.
    pub fn decode_return(&self, label: &str, data: &[u8]) -> Result<String, ClientError> {
        let spec = match self.constructors.iter().find(|s| s.label == label) {
            Some(spec) => spec,
            None => self.find(label, false)?,
        };
        let input = &mut &data[..];
        let failed = |e: String| err(format!("cannot decode the result of {label}: {e}"));
        match &self.codec {
            Codec::Ink { transcoder, .. } => {
                let value = if spec.kind == MessageKind::Constructor {
                    transcoder.decode_constructor_return(label, input)
                } else {
                    transcoder.decode_message_return(label, input)
                };
                value
                    .map(|v| self.types.show(&v, spec.ret))
                    .map_err(|e| failed(one_line(e)))
            }
            Codec::Legacy => match spec.ret {
                None => Ok("()".into()),
                Some(ty) => self.types.decode(ty, input, 0).map_err(failed),
            },
        }
    }

    /// Decodes an event from its topics and data to text, when the metadata knows it (None
    /// otherwise).
    ///
    /// ink! 5 events are found by their signature topic (the first topic); ink! 3 and 4
    /// events by the index of the event in the metadata, the first byte of the data.
    pub fn decode_event(&self, topics: &[[u8; 32]], data: &[u8]) -> Option<String> {
        let (event, mut input) = match &self.codec {
            Codec::Ink { version, .. } if *version >= 5 => {
                let first = topics.first()?;
                let event = self
                    .events
                    .iter()
                    .find(|e| e.topic.as_ref() == Some(first))?;
                (event, data)
            }
            _ => {
                let (index, rest) = data.split_first()?;
                (self.events.get(usize::from(*index))?, rest)
            }
        };
        let mut fields = Vec::with_capacity(event.args.len());
        for arg in &event.args {
            let value = match &self.codec {
                Codec::Ink { transcoder, .. } => {
                    let value = transcoder.decode(arg.ty, &mut input).ok()?;
                    self.types.show(&value, Some(arg.ty))
                }
                Codec::Legacy => self.types.decode(arg.ty, &mut input, 0).ok()?,
            };
            fields.push(format!("{}: {value}", arg.name));
        }
        if !input.is_empty() {
            return None;
        }
        Some(if fields.is_empty() {
            event.label.clone()
        } else {
            format!("{} {{ {} }}", event.label, fields.join(", "))
        })
    }

    /// The contract's name for messages.
    fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("the contract")
    }

    /// The constructor (or message) `label`, or an error listing the known ones.
    fn find(&self, label: &str, constructor: bool) -> Result<&Spec, ClientError> {
        let (what, list, other, other_what) = if constructor {
            ("constructor", &self.constructors, &self.messages, "message")
        } else {
            ("message", &self.messages, &self.constructors, "constructor")
        };
        if let Some(spec) = list.iter().find(|s| s.label == label) {
            return Ok(spec);
        }
        let known = if list.is_empty() {
            format!("it has no {what}s")
        } else {
            let labels: Vec<&str> = list.iter().map(|s| s.label.as_str()).collect();
            format!("{what}s: {}", labels.join(", "))
        };
        let hint = if other.iter().any(|s| s.label == label) {
            format!("; `{label}` is a {other_what}")
        } else {
            String::new()
        };
        Err(err(format!(
            "no {what} `{label}` in {} ({known}{hint})",
            self.display_name()
        )))
    }

    fn encode<S: AsRef<str>>(&self, spec: &Spec, args: &[S]) -> Result<Vec<u8>, ClientError> {
        if spec.args.len() != args.len() {
            let list: Vec<String> = spec
                .args
                .iter()
                .map(|a| format!("{}: {}", a.name, self.types.name(a.ty)))
                .collect();
            let takes = match list.len() {
                0 => "no arguments".to_string(),
                1 => format!("1 argument ({})", list[0]),
                n => format!("{n} arguments ({})", list.join(", ")),
            };
            return Err(err(format!(
                "{} takes {takes}, got {}",
                spec.label,
                args.len()
            )));
        }
        let mut out = spec.selector.to_vec();
        for (arg, text) in spec.args.iter().zip(args) {
            let text = text.as_ref();
            let bad = |message: String| {
                err(format!(
                    "bad argument `{}` of {} ({}): {message}",
                    arg.name,
                    spec.label,
                    self.types.name(arg.ty)
                ))
            };
            match &self.codec {
                Codec::Ink { transcoder, .. } => {
                    let text = match self.types.get(arg.ty).map(|t| &t.def) {
                        Some(Def::Primitive(p)) if p == "str" && !text.starts_with('"') => {
                            Json::from(text).to_string()
                        }
                        _ => text.to_string(),
                    };
                    let probe = format!("{PROBE}{}", arg.ty);
                    let encoded = transcoder
                        .encode(&probe, [text.as_str()])
                        .map_err(|e| bad(one_line(e)))?;
                    let encoded = encoded.get(4..).unwrap_or_default();
                    // contract-transcode does not check the length of hex for byte arrays.
                    match self.types.fixed_size(arg.ty, 0) {
                        Some(n) if n != encoded.len() => {
                            return Err(bad(format!("expected {n} bytes, got {}", encoded.len())))
                        }
                        _ => out.extend_from_slice(encoded),
                    }
                }
                Codec::Legacy => self.types.encode(arg.ty, text, &mut out, 0).map_err(bad)?,
            }
        }
        Ok(out)
    }
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .field("wasm_len", &self.wasm.as_ref().map(Vec::len))
            .field("constructors", &self.constructors())
            .field("messages", &self.messages())
            .finish()
    }
}

/// Builds the `contract-transcode` transcoder of ink! 4/5 metadata (`obj` is the whole JSON,
/// `source`/`contract`/... included), with one probe message per argument type.
fn ink_transcoder(
    mut obj: Map<String, Json>,
    version: u64,
    constructors: &[Spec],
    messages: &[Spec],
) -> Result<ContractMessageTranscoder, ClientError> {
    for key in ["source", "contract", "image", "user"] {
        obj.remove(key);
    }
    obj.insert("version".into(), Json::from(version));
    // The storage layout plays no part in transcoding, and ink! 4 writes it in a shape
    // `ink_metadata` 5 cannot read.
    obj.insert(
        "storage".into(),
        json!({ "struct": { "name": "Storage", "fields": [] } }),
    );
    let mut ids: Vec<u32> = constructors
        .iter()
        .chain(messages)
        .flat_map(|s| s.args.iter().map(|a| a.ty))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let spec = obj
        .get_mut("spec")
        .and_then(Json::as_object_mut)
        .ok_or_else(|| err("metadata has no `spec`"))?;
    for list in ["constructors", "messages"] {
        for item in spec
            .get_mut(list)
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(item) = item.as_object_mut() {
                item.entry("default").or_insert(Json::Bool(false));
            }
        }
    }
    // ink! 4 metadata lacks a few fields `ink_metadata` 5 requires; their values do not
    // matter to encoding and decoding.
    if let Some(env) = spec.get_mut("environment").and_then(Json::as_object_mut) {
        env.entry("staticBufferSize").or_insert(Json::from(16384));
    }
    for event in spec
        .get_mut("events")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(event) = event.as_object_mut() {
            event.entry("module_path").or_insert(Json::from(""));
            event.entry("signature_topic").or_insert(Json::Null);
        }
    }
    let list = spec
        .get_mut("messages")
        .and_then(Json::as_array_mut)
        .ok_or_else(|| err("metadata has no `spec.messages`"))?;
    for id in ids {
        list.push(json!({
            "label": format!("{PROBE}{id}"),
            "selector": "0x00000000",
            "mutates": false,
            "payable": false,
            "args": [{ "label": "value", "type": { "type": id, "displayName": [] } }],
            "returnType": { "type": id, "displayName": [] },
            "docs": [],
            "default": false,
        }));
    }
    let project: InkProject = serde_json::from_value(Json::Object(obj))
        .map_err(|e| err(format!("invalid ink! {version} metadata: {e}")))?;
    Ok(ContractMessageTranscoder::new(project))
}

/// A constructor or message.
#[derive(Debug)]
struct Spec {
    label: String,
    selector: [u8; 4],
    args: Vec<Arg>,
    kind: MessageKind,
    ret: Option<u32>,
    default: bool,
}

/// An argument of a constructor, message or event.
#[derive(Debug)]
struct Arg {
    name: String,
    ty: u32,
}

/// An event.
#[derive(Debug)]
struct EventSpec {
    label: String,
    args: Vec<Arg>,
    topic: Option<[u8; 32]>,
}

type Parts = (Registry, Vec<Spec>, Vec<Spec>, Vec<EventSpec>);

/// The type registry, constructors, messages and events of a metadata object holding `spec`
/// and `types` (any format).
fn parse_parts(body: &Map<String, Json>) -> Result<Parts, ClientError> {
    let types = Registry::parse(body.get("types"))?;
    let spec = body
        .get("spec")
        .ok_or_else(|| err("metadata has no `spec`"))?;
    let list = |key: &str| {
        spec.get(key)
            .and_then(Json::as_array)
            .map_or(&[][..], |v| v)
    };
    let constructors = list("constructors")
        .iter()
        .map(|c| parse_spec(c, true))
        .collect::<Result<_, _>>()?;
    let messages = list("messages")
        .iter()
        .map(|m| parse_spec(m, false))
        .collect::<Result<_, _>>()?;
    let events = list("events")
        .iter()
        .map(|e| {
            let label = label_of(e).ok_or_else(|| err("an event has no label"))?;
            let topic = e
                .get("signature_topic")
                .or_else(|| e.get("signatureTopic"))
                .and_then(Json::as_str)
                .and_then(|t| hex::decode(t.trim_start_matches("0x")).ok())
                .and_then(|t| <[u8; 32]>::try_from(t).ok());
            Ok(EventSpec {
                args: parse_args(e, &label)?,
                label,
                topic,
            })
        })
        .collect::<Result<_, ClientError>>()?;
    Ok((types, constructors, messages, events))
}

/// `label` (ink! 3.x and later) or `name` (ink! 3.0), a string or a path of strings.
fn label_of(v: &Json) -> Option<String> {
    match v.get("label").or_else(|| v.get("name"))? {
        Json::String(s) => Some(s.clone()),
        Json::Array(parts) => Some(
            parts
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join("::"),
        ),
        _ => None,
    }
}

/// The type id of a `{"type": id, "displayName": ...}` object.
fn type_ref(v: &Json) -> Option<u32> {
    v.get("type")?.as_u64()?.try_into().ok()
}

fn parse_args(v: &Json, owner: &str) -> Result<Vec<Arg>, ClientError> {
    v.get("args")
        .and_then(Json::as_array)
        .map_or(&[][..], |a| a)
        .iter()
        .map(|a| {
            let name =
                label_of(a).ok_or_else(|| err(format!("an argument of {owner} has no name")))?;
            let ty = a
                .get("type")
                .and_then(type_ref)
                .ok_or_else(|| err(format!("argument `{name}` of {owner} has no type")))?;
            Ok(Arg { name, ty })
        })
        .collect()
}

fn parse_spec(v: &Json, constructor: bool) -> Result<Spec, ClientError> {
    let label = label_of(v).ok_or_else(|| err("a constructor or message has no label"))?;
    let selector = v
        .get("selector")
        .and_then(Json::as_str)
        .and_then(|s| hex::decode(s.trim_start_matches("0x")).ok())
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or_else(|| err(format!("{label} has no valid 4-byte selector")))?;
    let kind = if constructor {
        MessageKind::Constructor
    } else if v.get("mutates").and_then(Json::as_bool).unwrap_or(false) {
        MessageKind::Mutating
    } else {
        MessageKind::Query
    };
    Ok(Spec {
        args: parse_args(v, &label)?,
        selector,
        kind,
        ret: v.get("returnType").and_then(type_ref),
        default: v.get("default").and_then(Json::as_bool).unwrap_or(false),
        label,
    })
}

/// A field of a composite or a variant.
#[derive(Debug)]
struct Field {
    name: Option<String>,
    ty: u32,
}

/// A variant of an enum.
#[derive(Debug)]
struct Variant {
    name: String,
    index: u8,
    fields: Vec<Field>,
}

/// A type's definition.
#[derive(Debug)]
enum Def {
    Primitive(String),
    Composite(Vec<Field>),
    Variant(Vec<Variant>),
    Sequence(u32),
    Array(u32, u32),
    Tuple(Vec<u32>),
    Compact(u32),
    Other(String),
}

/// A type of the registry.
#[derive(Debug)]
struct Ty {
    path: Vec<String>,
    params: Vec<u32>,
    def: Def,
}

/// Deepest nesting of types walked (guards recursive types).
const MAX_DEPTH: usize = 32;

/// A scale-info type registry, as any ink! metadata version writes it: entries with an
/// `id` (ink! 3.x and later), or a plain list referenced by 1-based position (ink! 3.0).
#[derive(Debug, Default)]
struct Registry(HashMap<u32, Ty>);

impl Registry {
    fn parse(types: Option<&Json>) -> Result<Self, ClientError> {
        let list = types
            .and_then(Json::as_array)
            .ok_or_else(|| err("metadata has no `types` list"))?;
        let mut map = HashMap::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let (id, ty) = match entry.get("id").and_then(Json::as_u64) {
                Some(id) => (id, entry.get("type").unwrap_or(&Json::Null)),
                None => (i as u64 + 1, entry),
            };
            let id = u32::try_from(id).map_err(|_| err(format!("bad type id {id}")))?;
            map.insert(
                id,
                parse_type(ty).map_err(|e| err(format!("type {id}: {e}")))?,
            );
        }
        Ok(Self(map))
    }

    fn get(&self, id: u32) -> Option<&Ty> {
        self.0.get(&id)
    }

    fn ty(&self, id: u32) -> Result<&Ty, String> {
        self.get(id)
            .ok_or_else(|| format!("type {id} is not in the metadata"))
    }

    fn is_u8(&self, id: u32) -> bool {
        matches!(self.get(id).map(|t| &t.def), Some(Def::Primitive(p)) if p == "u8")
    }

    /// A readable name of a type, like `AccountId`, `u128`, `Vec<u8>`, `Option<AccountId>`.
    fn name(&self, id: u32) -> String {
        self.name_at(id, 0)
    }

    fn name_at(&self, id: u32, depth: usize) -> String {
        let Some(t) = self.get(id) else {
            return format!("<type {id}>");
        };
        if depth > 8 {
            return "..".into();
        }
        let names = |ids: &[u32]| {
            ids.iter()
                .map(|&i| self.name_at(i, depth + 1))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(last) = t.path.last() {
            return if t.params.is_empty() {
                last.clone()
            } else {
                format!("{last}<{}>", names(&t.params))
            };
        }
        match &t.def {
            Def::Primitive(p) if p == "str" => "String".into(),
            Def::Primitive(p) => p.clone(),
            Def::Tuple(ids) if ids.len() == 1 => format!("({},)", names(ids)),
            Def::Tuple(ids) => format!("({})", names(ids)),
            Def::Array(len, e) => format!("[{}; {len}]", self.name_at(*e, depth + 1)),
            Def::Sequence(e) => format!("Vec<{}>", self.name_at(*e, depth + 1)),
            Def::Compact(e) => format!("Compact<{}>", self.name_at(*e, depth + 1)),
            Def::Composite(_) => "struct".into(),
            Def::Variant(_) => "enum".into(),
            Def::Other(kind) => kind.clone(),
        }
    }

    /// The encoded size of a type, if all its values have the same size.
    fn fixed_size(&self, id: u32, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let sum = |ids: &mut dyn Iterator<Item = u32>| {
            ids.map(|i| self.fixed_size(i, depth + 1))
                .sum::<Option<usize>>()
        };
        match &self.get(id)?.def {
            Def::Primitive(p) => match p.as_str() {
                "bool" => Some(1),
                "char" => Some(4),
                "u256" | "i256" => Some(32),
                _ => Some(int_bits(p, 'u').or_else(|| int_bits(p, 'i'))? as usize / 8),
            },
            Def::Array(len, e) => Some(*len as usize * self.fixed_size(*e, depth + 1)?),
            Def::Tuple(ids) => sum(&mut ids.iter().copied()),
            Def::Composite(fields) => sum(&mut fields.iter().map(|f| f.ty)),
            _ => None,
        }
    }

    /// A value decoded by `contract-transcode` as text, in the style of [`Registry::decode`]:
    /// `ty`, its type if known, turns byte arrays into hex (`contract-transcode` lists their
    /// numbers), and unit tuples show as `()` (its `Display` writes `Ok(())` as `Ok()`).
    fn show(&self, value: &Value, ty: Option<u32>) -> String {
        let def = ty.and_then(|id| self.get(id)).map(|t| &t.def);
        // The types of the fields of a tuple, struct or enum variant `ident`.
        let fields = |ident: Option<&str>| -> Vec<u32> {
            match def {
                Some(Def::Tuple(ids)) => ids.clone(),
                Some(Def::Composite(f)) => f.iter().map(|f| f.ty).collect(),
                Some(Def::Variant(vs)) => vs
                    .iter()
                    .find(|v| Some(v.name.as_str()) == ident)
                    .map(|v| v.fields.iter().map(|f| f.ty).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        };
        let list = |values: &mut dyn Iterator<Item = &Value>, tys: &[u32]| {
            values
                .enumerate()
                .map(|(i, v)| self.show(v, tys.get(i).copied()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match value {
            Value::Bool(b) => b.to_string(),
            Value::Char(c) => format!("{c:?}"),
            Value::UInt(n) => n.to_string(),
            Value::Int(n) => n.to_string(),
            Value::String(s) | Value::Literal(s) => s.clone(),
            Value::Hex(h) => format!("{h:#x}"),
            Value::Unit => "()".into(),
            Value::Seq(seq) => {
                let elem = match def {
                    Some(Def::Array(_, e) | Def::Sequence(e)) => Some(*e),
                    _ => None,
                };
                if elem.is_some_and(|e| self.is_u8(e)) {
                    let bytes: Option<Vec<u8>> = seq
                        .elems()
                        .iter()
                        .map(|v| match v {
                            Value::UInt(n) => u8::try_from(*n).ok(),
                            _ => None,
                        })
                        .collect();
                    if let Some(bytes) = bytes {
                        return format!("0x{}", hex::encode(bytes));
                    }
                }
                let tys: Vec<u32> = elem.into_iter().cycle().take(seq.len()).collect();
                format!("[{}]", list(&mut seq.elems().iter(), &tys))
            }
            Value::Tuple(t) => {
                let ident = t.ident();
                let tys = fields(ident.as_deref());
                match (ident, t.values().count()) {
                    (Some(name), 0) => name,
                    (None, 1) => format!("({},)", list(&mut t.values(), &tys)),
                    (name, _) => {
                        format!(
                            "{}({})",
                            name.unwrap_or_default(),
                            list(&mut t.values(), &tys)
                        )
                    }
                }
            }
            Value::Map(m) => {
                let ident = m.ident();
                let tys = fields(ident.as_deref());
                let entries: Vec<String> = m
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        format!(
                            "{}: {}",
                            self.show(k, None),
                            self.show(v, tys.get(i).copied())
                        )
                    })
                    .collect();
                match ident {
                    Some(name) => format!("{name} {{ {} }}", entries.join(", ")),
                    None => format!("{{ {} }}", entries.join(", ")),
                }
            }
        }
    }

    /// Whether `t` is an account id: a 32-byte newtype named `AccountId` or `AccountId32`.
    fn is_account(&self, t: &Ty) -> bool {
        let named = matches!(
            t.path.last().map(String::as_str),
            Some("AccountId" | "AccountId32")
        );
        match &t.def {
            Def::Composite(f) if named && f.len() == 1 => matches!(
                self.get(f[0].ty).map(|t| &t.def),
                Some(Def::Array(32, e)) if self.is_u8(*e)
            ),
            _ => false,
        }
    }

    /// Encodes `text` as a value of type `id`, appending to `out`.
    fn encode(&self, id: u32, text: &str, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
        let t = self.ty(id)?;
        if depth > MAX_DEPTH {
            return Err("type nests too deep".into());
        }
        let unsupported = || Err(format!("unsupported argument type {}", self.name(id)));
        let trimmed = text.trim();
        match &t.def {
            Def::Primitive(p) => out.extend(encode_primitive(p, text)?),
            Def::Composite(fields) if fields.len() == 1 => {
                self.encode(fields[0].ty, text, out, depth + 1)?
            }
            Def::Array(len, e) if self.is_u8(*e) => {
                let bytes = if *len == 32 && !trimmed.starts_with("0x") {
                    AccountId32::from_str(trimmed)
                        .map(|a| a.0.to_vec())
                        .map_err(|e| {
                            format!(
                                "`{trimmed}` is neither 0x-prefixed hex nor an ss58 address ({e})"
                            )
                        })?
                } else {
                    parse_hex(trimmed)?
                };
                if bytes.len() != *len as usize {
                    return Err(format!("expected {len} bytes, got {}", bytes.len()));
                }
                out.extend(bytes);
            }
            Def::Sequence(e) if self.is_u8(*e) => parse_hex(trimmed)?.encode_to(out),
            Def::Array(len, e) => {
                let items = parse_list(trimmed)?;
                if items.len() != *len as usize {
                    return Err(format!("expected {len} items, got {}", items.len()));
                }
                for item in items {
                    self.encode(*e, item, out, depth + 1)?;
                }
            }
            Def::Sequence(e) => {
                let items = parse_list(trimmed)?;
                Compact(items.len() as u32).encode_to(out);
                for item in items {
                    self.encode(*e, item, out, depth + 1)?;
                }
            }
            Def::Compact(e) => {
                let n: u128 = parse_int(trimmed)?;
                let bits = match self.ty(*e)?.def {
                    Def::Primitive(ref p) => int_bits(p, 'u'),
                    _ => None,
                };
                match bits {
                    Some(bits) if bits == 128 || n >> bits == 0 => Compact(n).encode_to(out),
                    Some(_) => return Err(format!("{trimmed} is out of range")),
                    None => return unsupported(),
                }
            }
            Def::Variant(variants) => {
                let (name, inner) = match trimmed.split_once('(') {
                    Some((name, rest)) if rest.ends_with(')') => {
                        (name.trim(), Some(&rest[..rest.len() - 1]))
                    }
                    _ => (trimmed, None),
                };
                let is_option = t.path.last().map(String::as_str) == Some("Option");
                let variant = |n: &str| variants.iter().find(|v| v.name == n);
                match (variant(name), inner) {
                    (Some(v), None) if v.fields.is_empty() => out.push(v.index),
                    (Some(v), Some(inner)) if v.fields.len() == 1 => {
                        out.push(v.index);
                        self.encode(v.fields[0].ty, inner, out, depth + 1)?;
                    }
                    // `Option<T>` also takes a bare `T`.
                    _ if is_option => match variant("Some") {
                        Some(v) if v.fields.len() == 1 => {
                            out.push(v.index);
                            self.encode(v.fields[0].ty, text, out, depth + 1)?;
                        }
                        _ => return unsupported(),
                    },
                    _ => {
                        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                        return Err(format!(
                            "`{trimmed}` is not one of {} (variants with fields are not supported)",
                            names.join(", ")
                        ));
                    }
                }
            }
            _ => return unsupported(),
        }
        Ok(())
    }

    /// Decodes a value of type `id` from `input` to text.
    fn decode(&self, id: u32, input: &mut &[u8], depth: usize) -> Result<String, String> {
        let t = self.ty(id)?;
        if depth > MAX_DEPTH {
            return Err("type nests too deep".into());
        }
        let name = t.path.last().map(String::as_str);
        Ok(match &t.def {
            Def::Primitive(p) => decode_primitive(p, input)?,
            Def::Composite(_) if self.is_account(t) => {
                AccountId32(take(input, 32)?.try_into().expect("32 bytes")).to_ss58check()
            }
            Def::Composite(fields) => self.decode_fields(name, fields, input, depth)?,
            Def::Variant(variants) => {
                let index = take(input, 1)?[0];
                let v = variants
                    .iter()
                    .find(|v| v.index == index)
                    .ok_or_else(|| format!("no variant {index} in {}", self.name(id)))?;
                self.decode_fields(Some(&v.name), &v.fields, input, depth)?
            }
            Def::Sequence(e) => {
                let len = Compact::<u32>::decode(input).map_err(|e| e.to_string())?.0 as usize;
                if len > input.len() {
                    return Err(format!(
                        "a sequence of {len} items in {} bytes",
                        input.len()
                    ));
                }
                self.decode_items(*e, len, input, depth)?
            }
            Def::Array(len, e) => self.decode_items(*e, *len as usize, input, depth)?,
            Def::Tuple(ids) => {
                let items = ids
                    .iter()
                    .map(|&i| self.decode(i, input, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                match items.len() {
                    1 => format!("({},)", items[0]),
                    _ => format!("({})", items.join(", ")),
                }
            }
            Def::Compact(_) => Compact::<u128>::decode(input)
                .map_err(|e| e.to_string())?
                .0
                .to_string(),
            Def::Other(_) => return Err(format!("unsupported type {}", self.name(id))),
        })
    }

    fn decode_items(
        &self,
        elem: u32,
        len: usize,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<String, String> {
        if self.is_u8(elem) {
            return Ok(format!("0x{}", hex::encode(take(input, len)?)));
        }
        let items = (0..len)
            .map(|_| self.decode(elem, input, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("[{}]", items.join(", ")))
    }

    /// `Name { a: x }`, `Name(x, y)` or `Name` (or without a name: `{ a: x }`, `(x, y)`, `()`).
    fn decode_fields(
        &self,
        name: Option<&str>,
        fields: &[Field],
        input: &mut &[u8],
        depth: usize,
    ) -> Result<String, String> {
        let mut parts = Vec::with_capacity(fields.len());
        for f in fields {
            let value = self.decode(f.ty, input, depth + 1)?;
            parts.push(match &f.name {
                Some(n) => format!("{n}: {value}"),
                None => value,
            });
        }
        let name = name.unwrap_or("");
        Ok(if fields.is_empty() {
            if name.is_empty() {
                "()".into()
            } else {
                name.into()
            }
        } else if fields.iter().all(|f| f.name.is_some()) {
            format!("{name} {{ {} }}", parts.join(", "))
                .trim_start()
                .to_string()
        } else {
            format!("{name}({})", parts.join(", "))
        })
    }
}

fn parse_type(ty: &Json) -> Result<Ty, String> {
    let path = ty
        .get("path")
        .and_then(Json::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // `params` are type ids (ink! 3.0) or `{"name", "type"}` objects.
    let params = ty
        .get("params")
        .and_then(Json::as_array)
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_u64().or_else(|| p.get("type")?.as_u64()))
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    let def = ty
        .get("def")
        .and_then(Json::as_object)
        .and_then(|d| d.iter().next())
        .ok_or("no `def`")?;
    let id_in = |v: &Json, key: &str| -> Result<u32, String> {
        v.get(key)
            .and_then(Json::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("bad `{}` definition", def.0))
    };
    let fields = |v: &Json| -> Result<Vec<Field>, String> {
        v.get("fields")
            .and_then(Json::as_array)
            .map_or(&[][..], |f| f)
            .iter()
            .map(|f| {
                Ok(Field {
                    name: f.get("name").and_then(Json::as_str).map(str::to_owned),
                    ty: id_in(f, "type")?,
                })
            })
            .collect()
    };
    let def = match (def.0.as_str(), def.1) {
        ("primitive", Json::String(p)) => Def::Primitive(p.clone()),
        ("composite", v) => Def::Composite(fields(v)?),
        ("variant", v) => Def::Variant(
            v.get("variants")
                .and_then(Json::as_array)
                .map_or(&[][..], |v| v)
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let index = v
                        .get("index")
                        .or_else(|| v.get("discriminant"))
                        .and_then(Json::as_u64)
                        .unwrap_or(i as u64);
                    Ok(Variant {
                        name: v.get("name").and_then(Json::as_str).unwrap_or("?").into(),
                        index: u8::try_from(index).map_err(|_| "variant index over 255")?,
                        fields: fields(v)?,
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        ("sequence", v) => Def::Sequence(id_in(v, "type")?),
        ("array", v) => Def::Array(id_in(v, "len")?, id_in(v, "type")?),
        ("tuple", Json::Array(ids)) => Def::Tuple(
            ids.iter()
                .map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()))
                .collect::<Option<_>>()
                .ok_or("bad `tuple` definition")?,
        ),
        ("compact", v) => Def::Compact(id_in(v, "type")?),
        (other, _) => Def::Other(other.to_string()),
    };
    Ok(Ty { path, params, def })
}

/// The width of an integer primitive named `p` whose first letter is `sign` (`u` or `i`).
fn int_bits(p: &str, sign: char) -> Option<u32> {
    let bits = p.strip_prefix(sign)?.parse().ok()?;
    matches!(bits, 8 | 16 | 32 | 64 | 128).then_some(bits)
}

fn parse_int<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    text.replace('_', "")
        .parse()
        .map_err(|e| format!("`{text}` is not a valid integer ({e})"))
}

fn encode_primitive(p: &str, text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    if let Some(bits) = int_bits(p, 'u') {
        let n: u128 = parse_int(trimmed)?;
        if bits < 128 && n >> bits != 0 {
            return Err(format!("{trimmed} does not fit in {p}"));
        }
        return Ok(n.to_le_bytes()[..bits as usize / 8].to_vec());
    }
    if let Some(bits) = int_bits(p, 'i') {
        let n: i128 = parse_int(trimmed)?;
        if bits < 128 && (n >= 1 << (bits - 1) || n < -(1 << (bits - 1))) {
            return Err(format!("{trimmed} does not fit in {p}"));
        }
        return Ok(n.to_le_bytes()[..bits as usize / 8].to_vec());
    }
    match p {
        "bool" => match trimmed {
            "true" => Ok(vec![1]),
            "false" => Ok(vec![0]),
            _ => Err(format!("`{trimmed}` is not `true` or `false`")),
        },
        "str" => {
            let s = match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(inner) => inner,
                None => text,
            };
            Ok(s.encode())
        }
        "char" => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(u32::from(c).encode()),
                _ => Err(format!("`{text}` is not a single character")),
            }
        }
        _ => Err(format!("unsupported argument type {p}")),
    }
}

fn decode_primitive(p: &str, input: &mut &[u8]) -> Result<String, String> {
    if let Some(bits) = int_bits(p, 'u') {
        let mut buf = [0u8; 16];
        buf[..bits as usize / 8].copy_from_slice(take(input, bits as usize / 8)?);
        return Ok(u128::from_le_bytes(buf).to_string());
    }
    if let Some(bits) = int_bits(p, 'i') {
        let bytes = take(input, bits as usize / 8)?;
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Ok(i128::from_le_bytes(buf).to_string());
    }
    match p {
        "bool" => match take(input, 1)?[0] {
            0 => Ok("false".into()),
            1 => Ok("true".into()),
            b => Err(format!("{b} is not a bool")),
        },
        "str" => String::decode(input).map_err(|e| e.to_string()),
        "char" => {
            let n = u32::decode(input).map_err(|e| e.to_string())?;
            char::from_u32(n)
                .map(|c| format!("{c:?}"))
                .ok_or_else(|| format!("{n} is not a char"))
        }
        "u256" | "i256" => Ok(format!("0x{}", hex::encode(take(input, 32)?))),
        _ => Err(format!("unsupported type {p}")),
    }
}

/// The next `n` bytes of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("{n} bytes needed, {} left", input.len()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{text}` is not 0x-prefixed hex"))?;
    hex::decode(digits).map_err(|e| format!("`{text}` is not valid hex ({e})"))
}

/// `[a, b, c]` (or `a, b, c`) split at commas; items cannot hold commas.
fn parse_list(text: &str) -> Result<Vec<&str>, String> {
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{text}` lacks a closing `]`"))?,
        None => text,
    };
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(inner.split(',').map(str::trim).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINK: &str = "/work/shared/conformance/phala-pink";
    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    const ALICE_HEX: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const ERC20: &str = include_str!("../tests/fixtures/erc20.json");

    fn pink(file: &str) -> Contract {
        Contract::load(format!("{PINK}/{file}")).unwrap()
    }

    fn message_error(c: &Contract, label: &str, args: &[&str]) -> String {
        c.encode_message(label, args).unwrap_err().to_string()
    }

    #[test]
    fn flip_rc5_encodes_and_decodes() {
        let flip = pink("flip/metadata.json");
        assert_eq!(flip.name(), Some("flip"));
        assert_eq!(flip.wasm(), None);
        assert_eq!(flip.constructors(), ["new", "default"]);
        assert_eq!(flip.messages(), ["flip", "get", "echo"]);
        assert_eq!(flip.default_constructor().as_deref(), Some("new"));
        assert_eq!(
            hex::encode(flip.encode_constructor("new", &["true"]).unwrap()),
            "9bae9d5e01"
        );
        assert_eq!(
            hex::encode(flip.encode_message("get", &[] as &[&str]).unwrap()),
            "2f865bd9"
        );
        assert_eq!(flip.kind("flip"), Some(MessageKind::Mutating));
        assert_eq!(flip.kind("get"), Some(MessageKind::Query));
        assert_eq!(flip.kind("new"), Some(MessageKind::Constructor));
        assert_eq!(flip.kind("nope"), None);

        let echo = flip.encode_message("echo", &["42", "24"]).unwrap();
        let mut expected = hex::decode("f7dff04c").unwrap();
        (42u32, 24u128).encode_to(&mut expected);
        assert_eq!(echo, expected);

        assert_eq!(flip.decode_return("get", &[1]).unwrap(), "true");
        assert_eq!(flip.decode_return("get", &[0]).unwrap(), "false");
        assert!(flip.decode_return("get", &[7]).is_err());
        assert_eq!(flip.decode_return("flip", &[]).unwrap(), "()");
        let out = flip
            .decode_return("echo", &(42u32, 24u128).encode())
            .unwrap();
        assert_eq!(out, "(42, 24)");
    }

    #[test]
    fn flip_bundle_has_wasm() {
        let flip = pink("flip/flip.contract");
        assert!(flip.wasm().unwrap().starts_with(b"\0asm"));
        assert_eq!(flip.messages(), ["flip", "get", "echo"]);
    }

    #[test]
    fn legacy_errors_name_the_argument() {
        let flip = pink("flip/metadata.json");
        let e = flip
            .encode_message("echo", &["42", "-1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`bar`") && e.contains("echo") && e.contains("u128"),
            "{e}"
        );
        let e = flip
            .encode_message("echo", &["4294967296", "1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`foo`") && e.contains("does not fit in u32"),
            "{e}"
        );
        assert_eq!(
            flip.encode_constructor("new", &["yes"])
                .unwrap_err()
                .to_string(),
            "bad argument `init_value` of new (bool): `yes` is not `true` or `false`"
        );
        assert_eq!(
            message_error(&flip, "echo", &["1"]),
            "echo takes 2 arguments (foo: u32, bar: u128), got 1"
        );
        assert_eq!(
            message_error(&flip, "new", &[]),
            "no message `new` in flip (messages: flip, get, echo; `new` is a constructor)"
        );
    }

    #[test]
    fn cross_v3() {
        let cross = pink("cross/metadata.json");
        assert_eq!(cross.name(), Some("cross-contract"));
        assert_eq!(
            hex::encode(cross.encode_constructor("new", &[] as &[&str]).unwrap()),
            "9bae9d5e"
        );
        assert_eq!(
            hex::encode(
                cross
                    .encode_message("call_other_contract", &[] as &[&str])
                    .unwrap()
            ),
            "c3220014"
        );
        assert_eq!(cross.kind("call_other_contract"), Some(MessageKind::Query));
        assert_eq!(
            cross.decode_return("call_other_contract", &[1]).unwrap(),
            "true"
        );
        assert!(pink("cross/cross.contract").wasm().is_some());
    }

    #[test]
    fn legacy_account_id_from_ss58_and_hex() {
        // Type 0 of the cross metadata is `ink_env::types::AccountId`.
        let cross = pink("cross/metadata.json");
        for text in [ALICE.to_string(), format!("0x{ALICE_HEX}")] {
            let mut out = Vec::new();
            cross.types.encode(0, &text, &mut out, 0).unwrap();
            assert_eq!(hex::encode(&out), ALICE_HEX);
            assert_eq!(cross.types.decode(0, &mut &out[..], 0).unwrap(), ALICE);
        }
        let mut out = Vec::new();
        let mut bad = ALICE.to_string();
        bad.replace_range(47.., "R"); // breaks the checksum
        assert!(cross.types.encode(0, &bad, &mut out, 0).is_err());
        assert!(cross.types.encode(0, "0x1234", &mut out, 0).is_err());
        assert_eq!(cross.types.name(0), "AccountId");
    }

    #[test]
    fn legacy_types_round_trip() {
        // A small registry in the ink! 3.x format exercising the other definitions.
        let types = json!([
            {"id": 0, "type": {"def": {"primitive": "u8"}}},
            {"id": 1, "type": {"def": {"sequence": {"type": 0}}}},
            {"id": 2, "type": {"def": {"primitive": "str"}}},
            {"id": 3, "type": {"def": {"primitive": "i16"}}},
            {"id": 4, "type": {"path": ["Option"], "params": [{"name": "T", "type": 3}],
                "def": {"variant": {"variants": [{"name": "None", "index": 0},
                    {"name": "Some", "index": 1, "fields": [{"type": 3}]}]}}}},
            {"id": 5, "type": {"def": {"compact": {"type": 6}}}},
            {"id": 6, "type": {"def": {"primitive": "u64"}}},
            {"id": 7, "type": {"def": {"sequence": {"type": 6}}}},
            {"id": 8, "type": {"path": ["Point"], "def": {"composite": {"fields": [
                {"name": "x", "type": 3}, {"name": "y", "type": 3}]}}}},
            {"id": 9, "type": {"def": {"bitSequence": {}}}},
        ]);
        let reg = Registry::parse(Some(&types)).unwrap();
        let enc = |id, text: &str| {
            let mut out = Vec::new();
            reg.encode(id, text, &mut out, 0).map(|()| out)
        };
        let round = |id, text: &str| reg.decode(id, &mut &enc(id, text).unwrap()[..], 0).unwrap();
        assert_eq!(enc(1, "0x0102").unwrap(), vec![1u8, 2].encode());
        assert_eq!(round(1, "0x0102"), "0x0102");
        assert_eq!(enc(2, "hi there").unwrap(), "hi there".encode());
        assert_eq!(enc(2, "\"quoted\"").unwrap(), "quoted".encode());
        assert_eq!(enc(3, "-2").unwrap(), (-2i16).encode());
        assert_eq!(round(3, "-300"), "-300");
        assert!(enc(3, "40000").is_err());
        assert_eq!(enc(4, "None").unwrap(), [0]);
        assert_eq!(enc(4, "Some(-1)").unwrap(), Some(-1i16).encode());
        assert_eq!(enc(4, "7").unwrap(), Some(7i16).encode());
        assert_eq!(round(4, "7"), "Some(7)");
        assert_eq!(reg.name(4), "Option<i16>");
        assert_eq!(enc(5, "1000").unwrap(), Compact(1000u64).encode());
        assert_eq!(round(5, "1000"), "1000");
        assert_eq!(enc(7, "[1, 2]").unwrap(), vec![1u64, 2].encode());
        assert_eq!(round(7, "[1, 2]"), "[1, 2]");
        assert_eq!(reg.name(7), "Vec<u64>");
        let point = (1i16, -1i16).encode();
        assert_eq!(
            reg.decode(8, &mut &point[..], 0).unwrap(),
            "Point { x: 1, y: -1 }"
        );
        assert_eq!(enc(8, "1").unwrap_err(), "unsupported argument type Point");
        assert_eq!(
            enc(9, "1").unwrap_err(),
            "unsupported argument type bitSequence"
        );
        assert!(reg.decode(6, &mut &[1u8, 2][..], 0).is_err());
    }

    #[test]
    fn use_cache_ink4() {
        let c = pink("use_cache/use_cache.json");
        assert_eq!(c.default_constructor().as_deref(), Some("default"));
        assert_eq!(
            hex::encode(c.encode_constructor("default", &[] as &[&str]).unwrap()),
            "ed4b9d1b"
        );
        assert_eq!(
            hex::encode(c.encode_message("test", &[] as &[&str]).unwrap()),
            "928b2036"
        );
        assert_eq!(c.kind("test"), Some(MessageKind::Query));
        assert_eq!(c.kind("test_tx"), Some(MessageKind::Mutating));
        // The probe messages stay internal.
        assert_eq!(c.messages(), ["test", "test_tx"]);
        assert_eq!(
            message_error(&c, "nope", &[]),
            "no message `nope` in use_cache (messages: test, test_tx)"
        );
        assert_eq!(
            message_error(&c, "test", &["1"]),
            "test takes no arguments, got 1"
        );
        assert_eq!(c.decode_return("test", &[0]).unwrap(), "Ok(())");
        assert_eq!(
            c.decode_return("test", &[1, 1]).unwrap(),
            "Err(CouldNotReadInput)"
        );
        let bundle = pink("use_cache/use_cache.contract");
        assert!(bundle.wasm().unwrap().starts_with(b"\0asm"));
    }

    #[test]
    fn erc20_ink5() {
        let erc20 = Contract::from_json(ERC20).unwrap();
        assert_eq!(erc20.name(), Some("erc20"));
        assert_eq!(erc20.kind("transfer"), Some(MessageKind::Mutating));
        assert_eq!(erc20.kind("balance_of"), Some(MessageKind::Query));
        let mut expected = hex::decode(format!("84a15da1{ALICE_HEX}")).unwrap();
        100u128.encode_to(&mut expected);
        assert_eq!(
            erc20.encode_message("transfer", &[ALICE, "100"]).unwrap(),
            expected
        );
        let hex_alice = format!("0x{ALICE_HEX}");
        assert_eq!(
            erc20
                .encode_message("transfer", &[hex_alice.as_str(), "100"])
                .unwrap(),
            expected
        );
        assert_eq!(
            message_error(&erc20, "transfer", &[ALICE]),
            "transfer takes 2 arguments (to: AccountId, value: u128), got 1"
        );
        assert_eq!(
            message_error(&erc20, "foo", &[]),
            "no message `foo` in erc20 (messages: total_supply, balance_of, allowance, \
             transfer, approve, transfer_from)"
        );
        let e = message_error(&erc20, "transfer", &[ALICE, "lots"]);
        assert!(
            e.starts_with("bad argument `value` of transfer (u128): "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = message_error(&erc20, "transfer", &["5Grw", "1"]);
        assert!(
            e.starts_with("bad argument `to` of transfer (AccountId): "),
            "{e}"
        );

        let mut ret = vec![0u8];
        1000u128.encode_to(&mut ret);
        assert_eq!(
            erc20.decode_return("total_supply", &ret).unwrap(),
            "Ok(1000)"
        );
        assert!(erc20.decode_return("nope", &ret).is_err());
        assert_eq!(
            erc20.decode_return("transfer", &[0, 0]).unwrap(),
            "Ok(Ok(()))"
        );
        assert_eq!(
            erc20.decode_return("transfer", &[0, 1, 0]).unwrap(),
            "Ok(Err(InsufficientBalance))"
        );
    }

    #[test]
    fn erc20_events() {
        let erc20 = Contract::from_json(ERC20).unwrap();
        let sig: [u8; 32] =
            hex::decode("b5b61a3e6a21a16be4f044b517c28ac692492f73c5bfd3f60178ad98c767f4cb")
                .unwrap()
                .try_into()
                .unwrap();
        let alice: [u8; 32] = hex::decode(ALICE_HEX).unwrap().try_into().unwrap();
        let data = (None::<[u8; 32]>, Some(alice), 100u128).encode();
        assert_eq!(
            erc20.decode_event(&[sig], &data).as_deref(),
            Some(&*format!(
                "Transfer {{ from: None, to: Some({ALICE}), value: 100 }}"
            ))
        );
        assert_eq!(erc20.decode_event(&[[0; 32]], &data), None);
        assert_eq!(erc20.decode_event(&[], &data), None);
        assert_eq!(erc20.decode_event(&[sig], &data[..5]), None);
    }

    #[test]
    fn ink5_strings_and_byte_arrays() {
        // erc20 (types 0..=24) plus a message taking a `String`, a `Vec<u8>` and a `[u8; 32]` (type 3).
        let mut meta: Json = serde_json::from_str(ERC20).unwrap();
        let types = meta["types"].as_array_mut().unwrap();
        types.push(json!({"id": 25, "type": {"def": {"primitive": "str"}}}));
        types.push(json!({"id": 26, "type": {"def": {"sequence": {"type": 4}}}}));
        types.push(json!({"id": 27, "type": {"def": {"tuple": [25, 3]}}}));
        let arg =
            |label: &str, ty: u32| json!({"label": label, "type": {"type": ty, "displayName": []}});
        meta["spec"]["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "label": "poke", "selector": "0x01020304", "mutates": true, "payable": false,
                "args": [arg("name", 25), arg("blob", 26), arg("key", 3)],
                "returnType": {"type": 27, "displayName": []}, "docs": [], "default": false,
            }));
        let c = Contract::from_json(&meta.to_string()).unwrap();
        let alice: [u8; 32] = hex::decode(ALICE_HEX).unwrap().try_into().unwrap();
        let key = format!("0x{ALICE_HEX}");
        let call = |name: &str, blob: Vec<u8>| {
            let mut v = vec![1u8, 2, 3, 4];
            (name, blob, alice).encode_to(&mut v);
            v
        };
        // Bare text is a string; quoted text is taken as a (SCON) string literal.
        assert_eq!(
            c.encode_message("poke", &["hi \"there\"", "0xabcd", &key])
                .unwrap(),
            call("hi \"there\"", vec![0xab, 0xcd])
        );
        assert_eq!(
            c.encode_message("poke", &["\"hi\"", "0x00", &key]).unwrap(),
            call("hi", vec![0])
        );
        assert_eq!(
            c.encode_message("poke", &["a", "0x00", "0x00"])
                .unwrap_err()
                .to_string(),
            "bad argument `key` of poke ([u8; 32]): expected 32 bytes, got 1"
        );
        assert_eq!(
            message_error(&c, "poke", &[]),
            "poke takes 3 arguments (name: String, blob: Vec<u8>, key: [u8; 32]), got 0"
        );
        let ret = ("hi", [7u8; 32]).encode();
        assert_eq!(
            c.decode_return("poke", &ret).unwrap(),
            format!("(hi, 0x{})", "07".repeat(32))
        );
    }

    #[test]
    fn ink4_events_by_index() {
        // ink! 4 events carry the index of the event in the metadata as their first byte.
        let mut meta: Json = serde_json::from_str(
            &std::fs::read_to_string(format!("{PINK}/use_cache/use_cache.json")).unwrap(),
        )
        .unwrap();
        meta["spec"]["events"] = json!([
            {"label": "Hit", "docs": [], "args": [
                {"label": "value", "indexed": false, "docs": [], "type": {"type": 6, "displayName": []}}]},
            {"label": "Miss", "docs": [], "args": []},
        ]);
        let c = Contract::from_json(&meta.to_string()).unwrap();
        let mut hit = vec![0u8];
        5u128.encode_to(&mut hit);
        assert_eq!(
            c.decode_event(&[[9; 32]], &hit).as_deref(),
            Some("Hit { value: 5 }")
        );
        assert_eq!(c.decode_event(&[], &[1]).as_deref(), Some("Miss"));
        assert_eq!(c.decode_event(&[], &[1, 0]), None);
        assert_eq!(c.decode_event(&[], &[2]), None);
        assert_eq!(c.decode_event(&[], &[]), None);
    }

    #[test]
    fn phat_bundles_load_when_built() {
        let dir = std::env::var("HOME").map(|h| format!("{h}/.cache/phat-target/ink"));
        let Ok(path) = dir.map(|d| format!("{d}/erc20.contract")) else {
            return;
        };
        if !Path::new(&path).exists() {
            return;
        }
        let erc20 = Contract::load(&path).unwrap();
        assert!(erc20.wasm().unwrap().starts_with(b"\0asm"));
        assert!(erc20.messages().contains(&"transfer".to_string()));
    }

    #[test]
    fn bad_metadata_is_reported() {
        assert!(Contract::from_json("nope").is_err());
        assert!(Contract::from_json("{}")
            .unwrap_err()
            .to_string()
            .contains("unknown metadata"));
        assert!(Contract::from_json(r#"{"version": 9}"#)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        let e = Contract::load("/nonexistent/x.contract")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.contract"), "{e}");
    }
}
