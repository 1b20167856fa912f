//! Connecting: the NATS connection with its credentials and event hooks, and opening (or
//! creating) the cluster's log stream, metadata bucket and object stores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, object_store, stream};

use super::clock::Clock;
use super::config::check_cluster;
use super::{unavailable, Inner, JetStreamConfig, JetStreamLedger};
use crate::LedgerError;

/// Room left for headers when a payload is checked against the server's `max_payload`.
const HEADER_ROOM: usize = 1024;

/// Maps a connect error to the ledger's kinds.
fn connect_error(e: async_nats::ConnectError) -> LedgerError {
    use async_nats::ConnectErrorKind as K;
    match e.kind() {
        K::AuthorizationViolation | K::Authentication => {
            LedgerError::Unauthorized(format!("NATS refused the credentials: {e}"))
        }
        K::ServerParse => LedgerError::Protocol(format!("bad NATS url: {e}")),
        _ => LedgerError::Unavailable(format!("cannot reach NATS: {e}")),
    }
}

/// Opens stream `config.name`, creating it when missing (a user without the permission to
/// create can still open an existing one).
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    replicas: usize,
) -> Result<stream::Stream, LedgerError> {
    let name = config.name.clone();
    let stream = match js.create_stream(config).await {
        Ok(stream) => stream,
        Err(create) => js.get_stream(&name).await.map_err(|get| {
            LedgerError::Unavailable(format!(
                "cannot create or open stream {name}: {create}; {get}"
            ))
        })?,
    };
    let have = stream.cached_info().config.num_replicas;
    if have != replicas {
        tracing::warn!(stream = %name, have, want = replicas, "stream exists with another replica count");
    }
    Ok(stream)
}

/// Creates (or opens) the Object Store `bucket` the way `create_object_store` would (which
/// fails on 2.9), with the config's replica count.
async fn ensure_object_store(
    js: &jetstream::Context,
    bucket: &str,
    what: &str,
    config: &JetStreamConfig,
) -> Result<(object_store::ObjectStore, stream::Stream), LedgerError> {
    let stream = ensure_stream(
        js,
        stream::Config {
            name: format!("OBJ_{bucket}"),
            description: Some(format!("phat cluster {}: {what}", config.cluster)),
            subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            ..Default::default()
        },
        config.replicas,
    )
    .await?;
    let store = js
        .get_object_store(bucket)
        .await
        .map_err(|e| unavailable(format!("cannot open Object Store bucket {bucket}: {e}")))?;
    Ok((store, stream))
}

impl JetStreamLedger {
    /// Connects, then opens the cluster's stream and buckets, creating any that are missing.
    #[allow(
        clippy::unwrap_used,
        reason = "the permission-violation lock is poisoned only if a holder panicked, and no code panics while holding it"
    )]
    pub async fn connect(config: JetStreamConfig) -> Result<Self, LedgerError> {
        check_cluster(&config.cluster)?;
        if config.replicas == 0 || config.replicas > 5 {
            return Err(LedgerError::Protocol(format!(
                "replicas must be 1..=5, got {}",
                config.replicas
            )));
        }
        let denied: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let connections = Arc::new(AtomicU64::new(0));
        let mut options = async_nats::ConnectOptions::new()
            .name("phat-ledger")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .ping_interval(config.ping_interval)
            .event_callback({
                let denied = denied.clone();
                let connections = connections.clone();
                move |event| {
                    let denied = denied.clone();
                    if matches!(event, async_nats::Event::Connected) {
                        connections.fetch_add(1, Ordering::AcqRel);
                    }
                    async move {
                        if let async_nats::Event::ServerError(async_nats::ServerError::Other(m)) =
                            &event
                        {
                            if m.to_ascii_lowercase().contains("permissions violation") {
                                *denied.lock().unwrap() = Some(m.clone());
                            }
                        }
                        tracing::debug!(%event, "nats event");
                    }
                }
            });
        match (&config.creds_file, &config.user, &config.password) {
            (Some(path), None, None) => {
                options = options.credentials_file(path).await.map_err(|e| {
                    LedgerError::Unauthorized(format!(
                        "cannot read NATS credentials {}: {e}",
                        path.display()
                    ))
                })?;
            }
            (None, Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None, None) => {}
            _ => {
                return Err(LedgerError::Protocol(
                    "give either a credentials file or a user and a password".into(),
                ))
            }
        }
        let urls: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(LedgerError::Protocol("no NATS url".into()));
        }
        let client = options.connect(urls).await.map_err(connect_error)?;
        let server_max = client.server_info().max_payload;
        let max_payload = config
            .limits
            .max_payload
            .min(server_max.saturating_sub(HEADER_ROOM));
        if max_payload < config.limits.max_payload {
            tracing::warn!(
                server_max,
                configured = config.limits.max_payload,
                "the NATS server's max_payload is below the ledger's payload limit"
            );
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);

        let replicas = config.replicas;
        let log = ensure_stream(
            &js,
            stream::Config {
                name: config.log_stream(),
                description: Some(format!("phat cluster {}: the command log", config.cluster)),
                subjects: vec![config.log_subject()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::New,
                duplicate_window: config.dedupe_window,
                max_message_size: i32::try_from(config.limits.max_payload + HEADER_ROOM)
                    .unwrap_or(i32::MAX),
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            },
            replicas,
        )
        .await?;

        // The KV bucket, as `create_key_value` would create it (which fails on 2.9).
        let meta = config.meta_bucket();
        ensure_stream(
            &js,
            stream::Config {
                name: format!("KV_{meta}"),
                description: Some(format!("phat cluster {}: metadata", config.cluster)),
                subjects: vec![format!("$KV.{meta}.>")],
                max_messages_per_subject: 1,
                max_message_size: i32::try_from(config.limits.max_payload + HEADER_ROOM)
                    .unwrap_or(i32::MAX),
                storage: stream::StorageType::File,
                num_replicas: replicas,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let kv = js
            .get_key_value(&meta)
            .await
            .map_err(|e| unavailable(format!("cannot open KV bucket {meta}: {e}")))?;

        let (code, _) =
            ensure_object_store(&js, &config.code_bucket(), "code blobs", &config).await?;
        let (snapshots, snapshot_stream) =
            ensure_object_store(&js, &config.snapshot_bucket(), "state snapshots", &config).await?;

        // Violations while probing (a user who may not create streams) are not the caller's.
        denied.lock().unwrap().take();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                log,
                subject: config.log_subject(),
                kv,
                code,
                snapshots,
                snapshot_stream,
                snapshot_meta: format!("$O.{}.M.", config.snapshot_bucket()),
                limits: config.limits,
                max_payload,
                timeout: config.request_timeout,
                denied,
                cursor: tokio::sync::Mutex::new(None),
                clock: tokio::sync::Mutex::new(Clock::new()),
                connections,
            }),
        })
    }

    /// The underlying NATS client (for snapshots, checkpoints and tests).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The name of the NATS server leading the log stream now (`None` on a single server).
    pub async fn log_leader(&self) -> Result<Option<String>, LedgerError> {
        let inner = &*self.inner;
        let mut log = inner.log.clone();
        let info = log
            .info()
            .await
            .map_err(|e| inner.failed("cannot read the log's state", e))?;
        Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
    }
}
