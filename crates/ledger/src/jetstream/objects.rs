//! The Object Store buckets: code blobs (named by their hash) and state snapshots.

use async_nats::jetstream::{object_store, stream};
use futures::StreamExt;
use phat_primitives::CodeHash;
use tokio::io::AsyncReadExt;

use super::{unavailable, Inner};
use crate::{check_snapshot_name, LedgerError};

/// A code hash as an object name: lower-case hex.
fn hex_hash(hash: &CodeHash) -> String {
    hex::encode(hash.0)
}

impl Inner {
    /// The whole object `name` of `store` (`None` when there is none).
    async fn read_object(
        &self,
        store: &object_store::ObjectStore,
        name: &str,
        what: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        let mut object = match store.get(name).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.failed(&format!("cannot fetch {what}"), e)),
        };
        let mut data = Vec::new();
        object
            .read_to_end(&mut data)
            .await
            .map_err(|e| self.failed(&format!("cannot read {what}"), e))?;
        Ok(Some(data))
    }

    /// See [`crate::Ledger::put_code`].
    pub(super) async fn put_code(&self, wasm: Vec<u8>) -> Result<CodeHash, LedgerError> {
        let inner = self;
        if wasm.len() > inner.limits.max_code {
            return Err(LedgerError::TooLarge {
                size: wasm.len(),
                max: inner.limits.max_code,
            });
        }
        let hash = CodeHash::of(&wasm);
        let name = hex_hash(&hash);
        match inner.code.info(&name).await {
            Ok(info) if !info.deleted && info.size == wasm.len() => return Ok(hash),
            Ok(_) => {}
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {}
            Err(e) => return Err(inner.failed("cannot look up code", e)),
        }
        inner
            .code
            .put(name.as_str(), &mut wasm.as_slice())
            .await
            .map_err(|e| inner.failed("cannot store code", e))?;
        Ok(hash)
    }

    /// See [`crate::Ledger::get_code`].
    pub(super) async fn get_code(&self, hash: &CodeHash) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = self;
        let Some(wasm) = inner
            .read_object(&inner.code, &hex_hash(hash), "code")
            .await?
        else {
            return Ok(None);
        };
        if CodeHash::of(&wasm) != *hash {
            return Err(LedgerError::Protocol(format!(
                "code stored under {} does not match its hash",
                hex_hash(hash)
            )));
        }
        Ok(Some(wasm))
    }

    /// See [`crate::Ledger::put_snapshot`].
    pub(super) async fn put_snapshot(&self, name: &str, data: Vec<u8>) -> Result<(), LedgerError> {
        let inner = self;
        check_snapshot_name(name)?;
        if data.len() > inner.limits.max_snapshot {
            return Err(LedgerError::TooLarge {
                size: data.len(),
                max: inner.limits.max_snapshot,
            });
        }
        inner
            .snapshots
            .put(name, &mut data.as_slice())
            .await
            .map_err(|e| inner.failed("cannot store a snapshot", e))?;
        Ok(())
    }

    /// See [`crate::Ledger::get_snapshot`].
    pub(super) async fn get_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let inner = self;
        check_snapshot_name(name)?;
        inner
            .read_object(&inner.snapshots, name, "a snapshot")
            .await
    }

    /// See [`crate::Ledger::snapshot_names`].
    pub(super) async fn snapshot_names(&self) -> Result<Vec<String>, LedgerError> {
        let inner = self;
        // The object records' subjects, then each one's last record: not the Object Store's
        // `list()`, whose consumer waits for an idle heartbeat (5 s) when another worker puts
        // or deletes a snapshot during the listing (its pending count goes stale).
        let mut subjects = inner
            .snapshot_stream
            .info_with_subjects(format!("{}>", inner.snapshot_meta))
            .await
            .map_err(|e| inner.failed("cannot list snapshots", e))?;
        let mut records = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| inner.failed("cannot list snapshots", e))?;
            records.push(subject);
        }
        let mut out = Vec::new();
        for subject in records {
            let last = tokio::time::timeout(
                inner.timeout,
                inner
                    .snapshot_stream
                    .get_last_raw_message_by_subject(&subject),
            )
            .await;
            match last {
                Ok(Ok(message)) => {
                    match serde_json::from_slice::<object_store::ObjectInfo>(&message.payload) {
                        Ok(info) if !info.deleted => out.push(info.name),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%subject, "an unreadable snapshot record: {e}"),
                    }
                }
                // Purged between the two calls.
                Ok(Err(e)) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
                Ok(Err(e)) => return Err(inner.failed("cannot list snapshots", e)),
                Err(_) => return Err(unavailable("timed out listing snapshots")),
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// See [`crate::Ledger::delete_snapshot`].
    pub(super) async fn delete_snapshot(&self, name: &str) -> Result<(), LedgerError> {
        let inner = self;
        check_snapshot_name(name)?;
        match inner.snapshots.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(inner.failed("cannot delete a snapshot", e)),
        }
    }
}
