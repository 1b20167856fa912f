//! The wire protocol between clients, workers and the ledger: signed requests, ledger entries,
//! receipts and query results.
//!
//! A client signs a [`RequestBody`] (SCALE-encoded, with a domain tag) with its sr25519 key and
//! sends the [`SignedRequest`] to a worker. Queries are answered at once; commands are appended
//! to the ledger as [`SignedRequest`] bytes and applied in order by every worker, each producing
//! the same [`Receipt`]. The encryption layer (envelopes) wraps these types without changing them.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

mod api;
mod cluster;
mod command;
mod logs;
mod receipt;
mod request;
mod session;
mod triggers;

pub use api::*;
pub use cluster::*;
pub use command::*;
pub use logs::*;
pub use receipt::*;
pub use request::*;
pub use session::*;
pub use triggers::*;

/// A command's position in the ledger; the first command is 1.
pub type Seq = u64;

/// Bytes shown as `0x`-prefixed hex in JSON.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

// Hex in JSON (`0x…`), through `const-hex`: every sealed query, reply and command crosses
// HTTP this way, and `hex`'s char-at-a-time encoder showed in the query path's profile.
impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&const_hex::encode_prefixed(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("0x-prefixed hex bytes")
            }
            // Borrowed from the input when it can be: no copy of the text first.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Bytes, E> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                // `const_hex` would strip a second prefix; one spelling only, as before.
                if s.starts_with("0x") {
                    return Err(E::custom("expected 0x-prefixed hex bytes"));
                }
                const_hex::decode(s)
                    .map(Bytes)
                    .map_err(|_| E::custom("expected 0x-prefixed hex bytes"))
            }
        }
        d.deserialize_str(HexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_serialize_as_hex_and_back() {
        let b = Bytes(vec![0xde, 0xad]);
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, "\"0xdead\"");
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"0xzz\"").is_err());
        // Upper case and no prefix read too; odd lengths and a doubled prefix do not.
        assert_eq!(serde_json::from_str::<Bytes>("\"DEAD\"").unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"0xdea\"").is_err());
        assert!(serde_json::from_str::<Bytes>("\"0x0xdead\"").is_err());
        // An escaped string (not borrowable from the input) reads the same.
        assert_eq!(
            serde_json::from_str::<Bytes>("\"0x\\u0064ead\"").unwrap(),
            b
        );
        let long = Bytes((0..=255).collect());
        let j = serde_json::to_string(&long).unwrap();
        assert_eq!(j.trim_matches('"'), format!("0x{}", hex::encode(&long.0)));
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), long);
    }
}
