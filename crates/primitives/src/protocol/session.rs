//! Encrypted query sessions: the sealed query and reply, and the plaintexts inside them.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::Hash;

use super::{Bytes, Call, CallError, QueryResponse, Seq, SignedRequest};

/// An encrypted query: the first message of a session (`counter` 0, `session` is the
/// client's ephemeral key, the plaintext a SCALE [`QueryOpen`]) or a later one (the
/// plaintext a SCALE [`SessionQuery`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedQuery {
    /// The worker key the session is with (the `phat dev` gateway routes by it).
    pub worker: Hash,
    /// The session id: the client's ephemeral X25519 public key.
    pub session: Hash,
    /// The message number in the session (each used once).
    pub counter: u64,
    /// The ciphertext.
    pub ciphertext: Bytes,
}

/// What a [`SealedReply`] carries: the query's answer, or the API error it met (sealed too,
/// so an error does not reveal what the query was about).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealedAnswer {
    /// The query ran.
    Ok(QueryResponse),
    /// The query was refused or failed (the HTTP status it would have had, and the error).
    Err {
        /// The HTTP status of the error.
        status: u16,
        /// The error.
        error: CallError,
    },
}

/// A worker's encrypted answer to a [`SealedQuery`]: a JSON [`SealedAnswer`] under the
/// session's reply key with the same counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedReply {
    /// The counter of the query answered.
    pub counter: u64,
    /// The ciphertext.
    pub ciphertext: Bytes,
    /// In the answer to a session's opening (counter 0) only: the worker's fresh random salt
    /// that the session's reply key is bound to (`SessionKeys::with_reply_salt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Hash>,
}

/// The plaintext of a session's first message: a signed query (whose signer becomes the
/// session's caller, and whose expiry ends the session).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueryOpen {
    /// The signed query.
    pub request: SignedRequest,
    /// Answer only once this seq is applied.
    pub min_seq: Option<Seq>,
}

/// The plaintext of a later session message: a call made by the session's caller.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionQuery {
    /// The call.
    pub call: Call,
    /// Answer only once this seq is applied.
    pub min_seq: Option<Seq>,
}
