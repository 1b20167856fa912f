//! The scale-info type registry of a contract's metadata, as every ink! metadata generation
//! writes it: type definitions, readable type names and fixed encoded sizes.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::err;
use super::text::int_bits;
use crate::ClientError;

/// A field of a composite or a variant.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: Option<String>,
    pub(super) ty: u32,
}

/// A variant of an enum.
#[derive(Debug)]
pub(super) struct Variant {
    pub(super) name: String,
    pub(super) index: u8,
    pub(super) fields: Vec<Field>,
}

/// A type's definition.
#[derive(Debug)]
pub(super) enum Def {
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
pub(super) struct Ty {
    pub(super) path: Vec<String>,
    pub(super) params: Vec<u32>,
    pub(super) def: Def,
}

/// Deepest nesting of types walked (guards recursive types).
pub(super) const MAX_DEPTH: usize = 32;

/// A scale-info type registry, as any ink! metadata version writes it: entries with an
/// `id` (ink! 3.x and later), or a plain list referenced by 1-based position (ink! 3.0).
#[derive(Debug, Default)]
pub(super) struct Registry(HashMap<u32, Ty>);

impl Registry {
    /// Reads the `types` list of a metadata.
    pub(super) fn parse(types: Option<&Json>) -> Result<Self, ClientError> {
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

    /// The type `id`, if the registry has it.
    pub(super) fn get(&self, id: u32) -> Option<&Ty> {
        self.0.get(&id)
    }

    /// The type `id`, or an error naming it.
    pub(super) fn ty(&self, id: u32) -> Result<&Ty, String> {
        self.get(id)
            .ok_or_else(|| format!("type {id} is not in the metadata"))
    }

    /// Whether type `id` is `u8`.
    pub(super) fn is_u8(&self, id: u32) -> bool {
        matches!(self.get(id).map(|t| &t.def), Some(Def::Primitive(p)) if p == "u8")
    }

    /// A readable name of a type, like `AccountId`, `u128`, `Vec<u8>`, `Option<AccountId>`.
    pub(super) fn name(&self, id: u32) -> String {
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
    pub(super) fn fixed_size(&self, id: u32, depth: usize) -> Option<usize> {
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

    /// Whether `t` is an account id: a 32-byte newtype named `AccountId` or `AccountId32`.
    pub(super) fn is_account(&self, t: &Ty) -> bool {
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
}

/// A type of the registry from its JSON (`path`, `params`, `def`).
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
