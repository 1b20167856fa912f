//! ink! 4 and 5 metadata, through `contract-transcode`: each argument is encoded by a probe
//! message of its type, results and events are decoded by it and shown as text.

use std::fmt;

use contract_transcode::ink_metadata::InkProject;
use contract_transcode::{ContractMessageTranscoder, Value};
use serde_json::{json, Map, Value as Json};

use super::registry::{Def, Registry};
use super::spec::Spec;
use super::{err, MessageKind};
use crate::ClientError;

/// Label prefix of the one-argument messages added to ink! 4/5 metadata (one per argument
/// type), so that each argument is encoded, and its errors reported, on its own.
const PROBE: &str = "phat-client probe #";

/// An error of `contract-transcode` (an anyhow chain, maybe multi-line) as one line.
fn one_line(e: impl fmt::Display) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `contract-transcode` transcoder of a contract's ink! 4/5 metadata.
pub(super) struct InkCodec {
    transcoder: Box<ContractMessageTranscoder>,
    /// The metadata version (4 or 5).
    pub(super) version: u64,
}

impl InkCodec {
    /// Builds the `contract-transcode` transcoder of ink! 4/5 metadata (`obj` is the whole JSON,
    /// `source`/`contract`/... included), with one probe message per argument type.
    pub(super) fn new(
        mut obj: Map<String, Json>,
        version: u64,
        constructors: &[Spec],
        messages: &[Spec],
    ) -> Result<Self, ClientError> {
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
        let any_type = obj
            .get("types")
            .and_then(Json::as_array)
            .and_then(|t| t.first())
            .and_then(|t| t.get("id"))
            .cloned()
            .unwrap_or(Json::from(0));
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
        // matter to encoding and decoding. ink! before 4.3 wrote no `environment` at all
        // (Phala's prebuilt QuickJS contract, ink! 4.0.1): one is made up, its types pointing
        // at any type of the registry, which nothing resolves.
        if !spec.contains_key("environment") {
            let any = json!({ "type": any_type, "displayName": [] });
            spec.insert(
                "environment".into(),
                json!({
                    "accountId": any, "balance": any, "hash": any, "timestamp": any,
                    "blockNumber": any, "chainExtension": any, "maxEventTopics": 4,
                }),
            );
        }
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
        Ok(Self {
            transcoder: Box::new(ContractMessageTranscoder::new(project)),
            version,
        })
    }

    /// Appends the encoding of `text` as a value of type `ty` to `out`.
    pub(super) fn encode_arg(
        &self,
        types: &Registry,
        ty: u32,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let text = match types.get(ty).map(|t| &t.def) {
            Some(Def::Primitive(p)) if p == "str" && !text.starts_with('"') => {
                Json::from(text).to_string()
            }
            _ => text.to_string(),
        };
        let probe = format!("{PROBE}{ty}");
        let encoded = self
            .transcoder
            .encode(&probe, [text.as_str()])
            .map_err(one_line)?;
        let encoded = encoded.get(4..).unwrap_or_default();
        // contract-transcode does not check the length of hex for byte arrays.
        match types.fixed_size(ty, 0) {
            Some(n) if n != encoded.len() => {
                Err(format!("expected {n} bytes, got {}", encoded.len()))
            }
            _ => {
                out.extend_from_slice(encoded);
                Ok(())
            }
        }
    }

    /// Decodes the return value of the constructor or message `spec` to text.
    pub(super) fn decode_return(
        &self,
        types: &Registry,
        spec: &Spec,
        input: &mut &[u8],
    ) -> Result<String, String> {
        let value = if spec.kind == MessageKind::Constructor {
            self.transcoder
                .decode_constructor_return(&spec.label, input)
        } else {
            self.transcoder.decode_message_return(&spec.label, input)
        };
        value.map(|v| types.show(&v, spec.ret)).map_err(one_line)
    }

    /// Decodes a value of type `ty` from `input` to text.
    pub(super) fn decode_value(
        &self,
        types: &Registry,
        ty: u32,
        input: &mut &[u8],
    ) -> Option<String> {
        let value = self.transcoder.decode(ty, input).ok()?;
        Some(types.show(&value, Some(ty)))
    }
}

impl Registry {
    /// A value decoded by `contract-transcode` as text, in the style of [`Registry::decode`]:
    /// `ty`, its type if known, turns byte arrays into hex (`contract-transcode` lists their
    /// numbers), and unit tuples show as `()` (its `Display` writes `Ok(())` as `Ok()`).
    pub(super) fn show(&self, value: &Value, ty: Option<u32>) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{message_error, phala_path, pink, ALICE, ALICE_HEX};
    use super::*;
    use crate::contract::Contract;
    use parity_scale_codec::Encode;

    const ERC20: &str = include_str!("../../tests/fixtures/erc20.json");

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
    fn ink4_metadata_without_an_environment_is_read() {
        // ink! before 4.3 wrote no `spec.environment` (Phala's prebuilt QuickJS contract,
        // ink! 4.0.1, is such); the same contract reads the same without it.
        let text = std::fs::read_to_string(phala_path("use_cache/use_cache.json")).unwrap();
        let mut json: Json = serde_json::from_str(&text).unwrap();
        let removed = json["spec"].as_object_mut().unwrap().remove("environment");
        assert!(
            removed.is_some(),
            "the fixture has an environment to remove"
        );
        let c = Contract::from_json(&json.to_string()).unwrap();
        let with = pink("use_cache/use_cache.json");
        assert_eq!(
            c.encode_message("test", &[] as &[&str]).unwrap(),
            with.encode_message("test", &[] as &[&str]).unwrap()
        );
        assert_eq!(c.decode_return("test", &[0]).unwrap(), "Ok(())");
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
            &std::fs::read_to_string(phala_path("use_cache/use_cache.json")).unwrap(),
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
}
