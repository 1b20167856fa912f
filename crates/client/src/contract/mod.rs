//! A contract's ink! metadata: text arguments to call data, results and events back to text.
//!
//! ink! 4 and 5 metadata go through `contract-transcode` (`v4v5`). The legacy ink! 3 formats
//! (the `V1`/`V2`/`V3` wrappers and the un-versioned `metadataVersion: "0.1.0"` layout of ink!
//! 3.0 release candidates), which `contract-transcode` 5 cannot read, use a small transcoder
//! (`v3`) that walks the scale-info type registry (`registry`) itself, with the text form of
//! primitive values of `text`. Every generation's constructors, messages and events are read
//! by `spec`; this module is the front end, [`Contract`].

mod registry;
mod spec;
mod text;
mod v3;
mod v4v5;

use std::fmt;
use std::path::Path;

use serde_json::Value as Json;

use crate::ClientError;
use registry::Registry;
use spec::{parse_parts, Arg, EventSpec, Spec};
use v4v5::InkCodec;

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
    Ink(InkCodec),
    /// ink! 3 through [`Registry`].
    Legacy,
}

impl Codec {
    /// Appends the encoding of `text` as the argument `arg` to `out`.
    fn encode_arg(
        &self,
        types: &Registry,
        arg: &Arg,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Codec::Ink(ink) => ink.encode_arg(types, arg.ty, text, out),
            Codec::Legacy => types.encode(arg.ty, text, out, 0),
        }
    }

    /// Decodes the return value of `spec` from `input` to text.
    fn decode_return(
        &self,
        types: &Registry,
        spec: &Spec,
        input: &mut &[u8],
    ) -> Result<String, String> {
        match self {
            Codec::Ink(ink) => ink.decode_return(types, spec, input),
            Codec::Legacy => match spec.ret {
                None => Ok("()".into()),
                Some(ty) => types.decode(ty, input, 0),
            },
        }
    }

    /// Decodes a value of type `ty` from `input` to text (None if it does not decode).
    fn decode_value(&self, types: &Registry, ty: u32, input: &mut &[u8]) -> Option<String> {
        match self {
            Codec::Ink(ink) => ink.decode_value(types, ty, input),
            Codec::Legacy => types.decode(ty, input, 0).ok(),
        }
    }
}

/// A metadata error (`ClientError::Metadata`) with `message`.
fn err(message: impl Into<String>) -> ClientError {
    ClientError::Metadata(message.into())
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
                let codec = Codec::Ink(InkCodec::new(obj, version, &constructors, &messages)?);
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

    /// The 4-byte selector of message `label`.
    pub fn message_selector(&self, label: &str) -> Result<[u8; 4], ClientError> {
        Ok(self.find(label, false)?.selector)
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
        self.codec
            .decode_return(&self.types, spec, input)
            .map_err(failed)
    }

    /// Decodes an event from its topics and data to text, when the metadata knows it (None
    /// otherwise).
    ///
    /// ink! 5 events are found by their signature topic (the first topic); ink! 3 and 4
    /// events by the index of the event in the metadata, the first byte of the data.
    pub fn decode_event(&self, topics: &[[u8; 32]], data: &[u8]) -> Option<String> {
        let (event, mut input) = match &self.codec {
            Codec::Ink(ink) if ink.version >= 5 => {
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
            let value = self.codec.decode_value(&self.types, arg.ty, &mut input)?;
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
            self.codec
                .encode_arg(&self.types, arg, text, &mut out)
                .map_err(bad)?;
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

#[cfg(test)]
mod testing {
    //! What the tests of the metadata generations share: fixtures and helpers.

    use super::Contract;

    pub(super) use phat_testkit::phala_path;
    pub(super) const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    pub(super) const ALICE_HEX: &str =
        "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

    /// One of Phala's prebuilt contracts (ink! 3 and 4 metadata), from the shared
    /// conformance files ([`phala_path`]).
    pub(super) fn pink(file: &str) -> Contract {
        Contract::load(phala_path(file)).unwrap()
    }

    /// The error of encoding `label(args)`.
    pub(super) fn message_error(c: &Contract, label: &str, args: &[&str]) -> String {
        c.encode_message(label, args).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
