//! How to reach a cluster's JetStream ledger: [`JetStreamConfig`], its defaults, and the
//! names of the stream and buckets it derives from the cluster name.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{LedgerConfig, LedgerError};

/// The default [`JetStreamConfig::ping_interval`]. async-nats pings every 60 s by default,
/// so a worker connected to a server that went silent (SIGSTOP, a partition: nothing resets
/// the TCP connection) kept waiting on it for three minutes; the chaos run found it
/// (docs/RELIABILITY.md).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);

/// How to reach a cluster's JetStream ledger.
#[derive(Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222,nats://10.0.0.2:4222`.
    pub url: String,
    /// User name (with [`password`](Self::password)).
    pub user: Option<String>,
    /// Password of [`user`](Self::user).
    pub password: Option<String>,
    /// A NATS credentials file (JWT + nkey seed), instead of user/password.
    pub creds_file: Option<PathBuf>,
    /// The cluster name: `[A-Za-z0-9_-]`, 1..=64 bytes; names the stream and buckets.
    pub cluster: String,
    /// Replicas of the stream and buckets: 1 on a dev box, 3 in production.
    pub replicas: usize,
    /// The log's duplicate window (`Nats-Msg-Id` dedupe); default 2 minutes.
    pub dedupe_window: Duration,
    /// Timeout of one request to the server (connect, ack, API call); default 5 s.
    pub request_timeout: Duration,
    /// How often the connection is pinged; a server that misses three pings in a row (a
    /// paused process, a partition that leaves TCP silent) is left for another. Default 1 s.
    pub ping_interval: Duration,
    /// Payload and code limits.
    pub limits: LedgerConfig,
}

impl JetStreamConfig {
    /// A config for `url` and `cluster` with the defaults (R1, no credentials).
    pub fn new(url: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            user: None,
            password: None,
            creds_file: None,
            cluster: cluster.into(),
            replicas: 1,
            dedupe_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            ping_interval: DEFAULT_PING_INTERVAL,
            limits: LedgerConfig::default(),
        }
    }

    pub(super) fn log_stream(&self) -> String {
        format!("PHAT_{}_LOG", self.cluster)
    }
    pub(super) fn log_subject(&self) -> String {
        format!("phat.{}.log", self.cluster)
    }
    pub(super) fn meta_bucket(&self) -> String {
        format!("phat_{}_meta", self.cluster)
    }
    pub(super) fn code_bucket(&self) -> String {
        format!("phat_{}_code", self.cluster)
    }
    pub(super) fn snapshot_bucket(&self) -> String {
        format!("phat_{}_snap", self.cluster)
    }
}

impl fmt::Debug for JetStreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("creds_file", &self.creds_file)
            .field("cluster", &self.cluster)
            .field("replicas", &self.replicas)
            .field("dedupe_window", &self.dedupe_window)
            .field("request_timeout", &self.request_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Checks a cluster name: 1..=64 bytes of `[A-Za-z0-9_-]` (it names streams and buckets).
pub(super) fn check_cluster(name: &str) -> Result<(), LedgerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Protocol(format!(
            "cluster name must be 1..=64 of [A-Za-z0-9_-], got {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_checked() {
        assert!(check_cluster("dev-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a>", &"x".repeat(65)] {
            assert!(check_cluster(bad).is_err(), "{bad}");
        }
    }
}
