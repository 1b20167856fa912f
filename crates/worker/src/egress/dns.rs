//! Name resolution for egress: one lookup per request (the system resolver, or a test's),
//! and a resolver for the HTTP clients that refuses every name, so a client reaches only the
//! addresses that were checked.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

/// Resolves a host name at a port (the system resolver; tests substitute their own).
pub(super) type Lookup =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

pub(super) fn system_lookup() -> Lookup {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

/// The DNS resolver of egress clients: refuses every name, so a client only reaches the
/// checked addresses it was built with (`resolve_to_addrs` overrides sit on top of it).
pub(super) struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            Err(
                format!("{name} was not resolved by the egress checks; refusing to look it up")
                    .into(),
            )
        })
    }
}
