//! The client's errors.

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint could not be reached or the connection failed.
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        message: String,
    },
    /// The worker answered with an error.
    #[error("{kind} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error name (`bad_signature`, `unknown_contract`, ...).
        kind: String,
        /// Detail.
        message: String,
    },
    /// The worker's answer could not be decoded.
    #[error("unexpected answer from the worker: {0}")]
    Decode(String),
    /// A secret URI or key was invalid.
    #[error(transparent)]
    Key(#[from] phat_crypto::CryptoError),
    /// Metadata could not be read or an argument could not be encoded/decoded.
    #[error("{0}")]
    Metadata(String),
    /// A bad argument to a client call.
    #[error("{0}")]
    Invalid(String),
    /// The worker's attestation report was refused, or its keys do not match it.
    #[error("the worker is not trusted: {0}")]
    Untrusted(String),
    /// A non-loopback worker presents a `dev` report and no dev root is pinned to check it by.
    #[error(
        "the worker is not trusted: {endpoint} presents a `dev` attestation report signed by a \
         key it names itself, and no dev root is pinned for this non-loopback endpoint (a \
         measurement pin cannot vouch for a dev report); pin the cluster's dev root with \
         --dev-root or PHAT_DEV_ROOT (Client::pin_dev_root)"
    )]
    Unpinned {
        /// The endpoint.
        endpoint: String,
    },
    /// The cluster does not encrypt and the client was not told to accept that.
    #[error(
        "refusing to talk to {endpoint} in the clear: its attested report says `encryption: \
         false` and this client expects encryption; pass --allow-unencrypted \
         (Client::allow_unencrypted) only to talk to a cluster made with \
         --insecure-no-encryption"
    )]
    Unencrypted {
        /// The endpoint.
        endpoint: String,
    },
}
