//! The key space of the ledger's metadata, as [`crate::StateKey`] is the key space of state:
//! every record workers and tools keep there is a [`MetaKey`], spelled in one place.
//!
//! The metadata is writable by anyone holding ledger credentials, so a key read back from a
//! listing is parsed ([`MetaKey::parse`]); a key that does not parse is nobody's record.

use std::fmt;

use crate::{AccountId, CodeHash, Hash};

/// The key of the cluster's genesis.
pub const GENESIS: &str = "genesis";
/// The key of the cluster record.
pub const CLUSTER: &str = "cluster";

/// A record in the ledger's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// The cluster's genesis (SCALE), written before any worker starts.
    Genesis,
    /// The cluster record (cluster key and its creator's report), written once by the first
    /// worker.
    Cluster,
    /// A joining worker's attestation report, by its identity key.
    Join(Hash),
    /// The cluster secret sealed to a joining worker by a member (its handover).
    Handover(Hash),
    /// Why a joining worker's report was refused.
    JoinRefused(Hash),
    /// A worker's recent checkpoints, signed with its vote key, by its identity key.
    Checkpoint([u8; 32]),
    /// Marks code an account uploaded (its upload quota counts these).
    Uploaded(AccountId, CodeHash),
    /// Marks metadata an account published (its publishing quota counts these).
    Published(AccountId, CodeHash),
    /// The metadata document an account published for code.
    Metadata(CodeHash, AccountId),
    /// Metadata kept before it was signed (one per code, read only).
    LegacyMetadata(CodeHash),
}

/// A family of [`MetaKey`]s, listed together by prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaPrefix {
    /// Every [`MetaKey::Join`].
    Join,
    /// Every [`MetaKey::Handover`].
    Handover,
    /// Every [`MetaKey::Checkpoint`].
    Checkpoint,
    /// Every [`MetaKey::Uploaded`] of one account.
    Uploaded(AccountId),
    /// Every [`MetaKey::Published`] of one account.
    Published(AccountId),
}

impl fmt::Display for MetaPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaPrefix::Join => f.write_str("cluster-join/"),
            MetaPrefix::Handover => f.write_str("cluster-key/"),
            MetaPrefix::Checkpoint => f.write_str("checkpoint/"),
            MetaPrefix::Uploaded(who) => write!(f, "uploaded/{who}/"),
            MetaPrefix::Published(who) => write!(f, "published/{who}/"),
        }
    }
}

impl fmt::Display for MetaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaKey::Genesis => f.write_str(GENESIS),
            MetaKey::Cluster => f.write_str(CLUSTER),
            MetaKey::Join(w) => write!(f, "{}{w}", MetaPrefix::Join),
            MetaKey::Handover(w) => write!(f, "{}{w}", MetaPrefix::Handover),
            MetaKey::JoinRefused(w) => write!(f, "cluster-refused/{w}"),
            MetaKey::Checkpoint(w) => write!(f, "{}{}", MetaPrefix::Checkpoint, hex::encode(w)),
            MetaKey::Uploaded(who, code) => write!(f, "{}{code}", MetaPrefix::Uploaded(*who)),
            MetaKey::Published(who, code) => write!(f, "{}{code}", MetaPrefix::Published(*who)),
            MetaKey::Metadata(code, who) => write!(f, "metadata/{code}/{who}"),
            MetaKey::LegacyMetadata(code) => write!(f, "metadata/{code}"),
        }
    }
}

impl MetaKey {
    /// The key as the ledger stores it.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The record a stored key names, if it names one (`None` for anything a metadata writer
    /// planted that is no key of this space).
    pub fn parse(key: &str) -> Option<Self> {
        let (family, rest) = match key {
            GENESIS => return Some(MetaKey::Genesis),
            CLUSTER => return Some(MetaKey::Cluster),
            _ => key.split_once('/')?,
        };
        let parsed = match family {
            "cluster-join" => MetaKey::Join(rest.parse().ok()?),
            "cluster-key" => MetaKey::Handover(rest.parse().ok()?),
            "cluster-refused" => MetaKey::JoinRefused(rest.parse().ok()?),
            "checkpoint" => {
                MetaKey::Checkpoint(<[u8; 32]>::try_from(hex::decode(rest).ok()?.as_slice()).ok()?)
            }
            "uploaded" | "published" => {
                let (who, code) = rest.split_once('/')?;
                let (who, code) = (who.parse().ok()?, code.parse().ok()?);
                if family == "uploaded" {
                    MetaKey::Uploaded(who, code)
                } else {
                    MetaKey::Published(who, code)
                }
            }
            "metadata" => match rest.split_once('/') {
                Some((code, who)) => MetaKey::Metadata(code.parse().ok()?, who.parse().ok()?),
                None => MetaKey::LegacyMetadata(rest.parse().ok()?),
            },
            _ => return None,
        };
        // One spelling per record: a key that parses but is spelled otherwise is not it.
        (parsed.key() == key).then_some(parsed)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use super::*;

    fn all() -> Vec<MetaKey> {
        let (w, a, c) = (Hash([1; 32]), AccountId([2; 32]), CodeHash([3; 32]));
        vec![
            MetaKey::Genesis,
            MetaKey::Cluster,
            MetaKey::Join(w),
            MetaKey::Handover(w),
            MetaKey::JoinRefused(w),
            MetaKey::Checkpoint([4; 32]),
            MetaKey::Uploaded(a, c),
            MetaKey::Published(a, c),
            MetaKey::Metadata(c, a),
            MetaKey::LegacyMetadata(c),
        ]
    }

    #[test]
    fn keys_are_spelled_as_ledgers_already_hold_them() {
        let keys: Vec<String> = all().iter().map(MetaKey::key).collect();
        let (w, a, c) = (
            format!("0x{}", "01".repeat(32)),
            format!("0x{}", "02".repeat(32)),
            format!("0x{}", "03".repeat(32)),
        );
        assert_eq!(
            keys,
            vec![
                "genesis".to_string(),
                "cluster".into(),
                format!("cluster-join/{w}"),
                format!("cluster-key/{w}"),
                format!("cluster-refused/{w}"),
                format!("checkpoint/{}", "04".repeat(32)),
                format!("uploaded/{a}/{c}"),
                format!("published/{a}/{c}"),
                format!("metadata/{c}/{a}"),
                format!("metadata/{c}"),
            ]
        );
    }

    #[test]
    fn every_key_parses_back_and_lives_under_its_prefix() {
        for key in all() {
            assert_eq!(MetaKey::parse(&key.key()), Some(key), "{key}");
        }
        let a = AccountId([2; 32]);
        let under = |k: MetaKey, p: MetaPrefix| k.key().starts_with(&p.to_string());
        assert!(under(MetaKey::Join(Hash([1; 32])), MetaPrefix::Join));
        assert!(under(
            MetaKey::Handover(Hash([1; 32])),
            MetaPrefix::Handover
        ));
        assert!(under(MetaKey::Checkpoint([4; 32]), MetaPrefix::Checkpoint));
        assert!(under(
            MetaKey::Uploaded(a, CodeHash([3; 32])),
            MetaPrefix::Uploaded(a)
        ));
        assert!(under(
            MetaKey::Published(a, CodeHash([3; 32])),
            MetaPrefix::Published(a)
        ));
        assert!(!under(
            MetaKey::JoinRefused(Hash([1; 32])),
            MetaPrefix::Join
        ));
    }

    #[test]
    fn planted_keys_name_no_record() {
        let w = "01".repeat(32);
        for junk in [
            "",
            "genesis/",
            "cluster-join/",
            "cluster-join/not-a-key",
            &format!("cluster-join/{w}"), // without 0x: another spelling
            &format!("cluster-join/0x{w}/extra"),
            "checkpoint/zz",
            &format!("checkpoint/0x{w}"),
            "uploaded/0x00",
            "nobody/knows",
        ] {
            assert_eq!(MetaKey::parse(junk), None, "{junk:?}");
        }
    }
}
