//! The constructors, messages and events of a metadata's `spec`, read the same way for
//! every ink! metadata generation (3.0 to 5).

use serde_json::{Map, Value as Json};

use super::registry::Registry;
use super::{err, MessageKind};
use crate::ClientError;

/// A constructor or message.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) label: String,
    pub(super) selector: [u8; 4],
    pub(super) args: Vec<Arg>,
    pub(super) kind: MessageKind,
    pub(super) ret: Option<u32>,
    pub(super) default: bool,
}

/// An argument of a constructor, message or event.
#[derive(Debug)]
pub(super) struct Arg {
    pub(super) name: String,
    pub(super) ty: u32,
}

/// An event.
#[derive(Debug)]
pub(super) struct EventSpec {
    pub(super) label: String,
    pub(super) args: Vec<Arg>,
    pub(super) topic: Option<[u8; 32]>,
}

/// What [`parse_parts`] reads: the types, constructors, messages and events.
pub(super) type Parts = (Registry, Vec<Spec>, Vec<Spec>, Vec<EventSpec>);

/// The type registry, constructors, messages and events of a metadata object holding `spec`
/// and `types` (any format).
pub(super) fn parse_parts(body: &Map<String, Json>) -> Result<Parts, ClientError> {
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

/// The `args` of a constructor, message or event named `owner`.
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

/// A constructor (`constructor`) or a message.
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
