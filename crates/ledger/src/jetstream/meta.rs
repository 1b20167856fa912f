//! The metadata KV bucket: keys escaped into the KV alphabet, writes, create-if-absent, and
//! listing by prefix.

use async_nats::jetstream::kv;
use futures::StreamExt;

use super::Inner;
use crate::{check_meta_key, LedgerError};

/// Escapes a metadata key into the KV key alphabet (see the module docs).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_key`]; `None` for a key phat did not write.
fn decode_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = key.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Inner {
    /// See [`crate::Ledger::put_meta`].
    pub(super) async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<(), LedgerError> {
        let inner = self;
        check_meta_key(key)?;
        if value.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: value.len(),
                max: inner.max_payload,
            });
        }
        inner
            .kv
            .put(encode_key(key), value.into())
            .await
            .map_err(|e| inner.failed("cannot write metadata", e))?;
        Ok(())
    }

    /// See [`crate::Ledger::get_meta`].
    pub(super) async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = self;
        check_meta_key(key)?;
        let value = inner
            .kv
            .get(encode_key(key))
            .await
            .map_err(|e| inner.failed("cannot read metadata", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    /// See [`crate::Ledger::create_meta`].
    pub(super) async fn create_meta(&self, key: &str, value: Vec<u8>) -> Result<bool, LedgerError> {
        let inner = self;
        check_meta_key(key)?;
        if value.len() > inner.max_payload {
            return Err(LedgerError::TooLarge {
                size: value.len(),
                max: inner.max_payload,
            });
        }
        // An update that expects no earlier revision, not `kv.create`: when two workers create
        // a key at once, the loser's `create` reads the key back to tell "exists" from other
        // failures, and that read may be served by a replica that has not seen the winner's
        // write yet: it failed with "wrong last sequence" (the chaos run's cluster start).
        // Keys are never deleted, so a wrong last revision means the key exists.
        match inner.kv.update(encode_key(key), value.into(), 0).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(inner.failed("cannot create metadata", e)),
        }
    }

    /// See [`crate::Ledger::meta_keys`].
    pub(super) async fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let inner = self;
        // The stream's subject list, not `kv.keys()`: a consumer's pending count goes stale
        // when a key is rewritten during the listing, and the listing then waits for an idle
        // heartbeat (5 s); workers rewrite their checkpoint records all the time.
        let kv_prefix = inner.kv.prefix.clone();
        let mut subjects = inner
            .kv
            .stream
            .info_with_subjects(format!("{kv_prefix}>"))
            .await
            .map_err(|e| inner.failed("cannot list metadata", e))?;
        let mut out = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| inner.failed("cannot list metadata", e))?;
            let Some(key) = subject.strip_prefix(&kv_prefix) else {
                continue;
            };
            if let Some(key) = decode_key(key) {
                if key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_kv_alphabet() {
        for key in ["cluster/name", "a b%c", ".", "..", "x=y.z", "ünï", "-_/"] {
            let encoded = encode_key(key);
            assert!(encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/=".contains(&b)));
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
        }
        // A prefix encodes to a prefix.
        assert!(encode_key("join/a b").starts_with(&encode_key("join/a")));
        assert_eq!(decode_key("bad=Z"), None);
    }
}
