//! The result of a command, identical on every worker: its output or error, and its events.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Event, Gas, Hash, Timestamp};

use super::{Bytes, Seq};

/// An event in JSON-friendly form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct EventRecord {
    /// The contract that emitted it.
    pub contract: AccountId,
    /// Indexed topics.
    pub topics: Vec<Hash>,
    /// SCALE-encoded event data.
    pub data: Bytes,
}

impl From<Event> for EventRecord {
    fn from(e: Event) -> Self {
        Self {
            contract: e.contract,
            topics: e.topics,
            data: Bytes(e.data),
        }
    }
}

/// What a call produced when it ran to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CallOutput {
    /// The bytes the contract returned.
    pub data: Bytes,
    /// The contract reverted: its writes were dropped.
    pub reverted: bool,
    /// The new contract (instantiation only).
    pub address: Option<AccountId>,
}

/// Why a call did not run to completion. `kind` is a stable machine-readable name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CallError {
    /// Stable name such as `out_of_gas`, `trapped`, `bad_signature`, `replayed`.
    pub kind: String,
    /// Human-readable detail.
    pub message: String,
}

/// The outcome of a call: output or a typed error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// The call ran to completion (possibly reverting).
    Ok(CallOutput),
    /// The call failed; nothing was applied.
    Err(CallError),
    /// The result encrypted to the caller (the reply key of the command's envelope; counter
    /// 0, SCALE-encoded `CallResult` inside). Clients open it and show the plain result.
    #[codec(index = 2)]
    Sealed(Bytes),
}

impl CallResult {
    /// True when the call completed without reverting.
    pub fn is_success(&self) -> bool {
        matches!(self, CallResult::Ok(o) if !o.reverted)
    }
}

/// The result of a command, identical on every worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Receipt {
    /// The command's position in the ledger.
    pub seq: Seq,
    /// The command's [`SignedRequest::hash`](super::SignedRequest::hash) (zero when the entry
    /// did not decode).
    pub request: Hash,
    /// The signer (zero when the entry did not decode).
    pub caller: AccountId,
    /// Ledger time of the command.
    pub timestamp: Timestamp,
    /// Output or error.
    pub result: CallResult,
    /// Events emitted.
    pub events: Vec<EventRecord>,
    /// Gas used.
    pub gas_used: Gas,
    /// State root after the command.
    pub state_root: Hash,
}
