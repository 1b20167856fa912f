//! ink! 3 metadata (the `V1`/`V2`/`V3` wrappers and the un-versioned layout of ink! 3.0
//! release candidates), which `contract-transcode` 5 cannot read: values are encoded from
//! text and decoded to text by walking the type registry.

use std::str::FromStr;

use contract_transcode::AccountId32;
use parity_scale_codec::{Compact, Decode, Encode};

use super::registry::{Def, Field, Registry, MAX_DEPTH};
use super::text::{
    decode_primitive, encode_primitive, int_bits, parse_hex, parse_int, parse_list, take,
    take_array,
};

impl Registry {
    /// Encodes `text` as a value of type `id`, appending to `out`.
    pub(super) fn encode(
        &self,
        id: u32,
        text: &str,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), String> {
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
    pub(super) fn decode(
        &self,
        id: u32,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<String, String> {
        let t = self.ty(id)?;
        if depth > MAX_DEPTH {
            return Err("type nests too deep".into());
        }
        let name = t.path.last().map(String::as_str);
        Ok(match &t.def {
            Def::Primitive(p) => decode_primitive(p, input)?,
            Def::Composite(_) if self.is_account(t) => {
                AccountId32(take_array::<32>(input)?).to_ss58check()
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

    /// `len` items of type `elem` (bytes as hex).
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

#[cfg(test)]
mod tests {
    use super::super::testing::{message_error, pink, ALICE, ALICE_HEX};
    use super::*;
    use crate::contract::MessageKind;
    use serde_json::json;

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
}
