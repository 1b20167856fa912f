//! The chain-extension interface: how contracts reach off-chain powers.
//!
//! `call_chain_extension(id, input) -> (status, output)` is dispatched to a [`ChainExtension`]
//! the embedder provides. The id uses pink's layout: the extension id in the high 16 bits and
//! the function id in the low 16 bits (pink's functions are extension 0). The runtime knows
//! nothing of HTTP, caches or keys: the embedder implements the trait (or uses the `phat-pink`
//! crate's `PinkExtension`, which decodes pink's calls and leaves the outside effects to a
//! `PinkHost`). An extension reads chain state only through [`ExtensionState`].

use std::time::Instant;

use phat_primitives::{AccountId, Balance, BlockNumber, CodeHash, Gas, Mode, Timestamp};

/// A chain-extension call id split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtensionId {
    /// Which extension (high 16 bits); pink's is 0.
    pub extension: u16,
    /// Which function of it (low 16 bits).
    pub function: u16,
}

impl From<u32> for ExtensionId {
    fn from(id: u32) -> Self {
        Self {
            extension: (id >> 16) as u16,
            function: (id & 0xffff) as u16,
        }
    }
}

/// What an extension function can see of the call it serves.
#[derive(Clone, Debug)]
pub struct ExtensionEnv {
    /// Query or command: non-deterministic powers must fail cleanly in commands.
    pub mode: Mode,
    /// The contract calling the extension.
    pub address: AccountId,
    /// The contract's caller.
    pub caller: AccountId,
    /// The account that signed the top-level call.
    pub origin: AccountId,
    /// Block number of the execution context.
    pub block_number: BlockNumber,
    /// Timestamp of the execution context.
    pub timestamp: Timestamp,
    /// Gas left for the contract when it called (after the base cost of the call).
    pub gas_left: Gas,
    /// Wall-clock deadline of the query (`None` in commands, which have no time limit).
    pub deadline: Option<Instant>,
}

/// The chain state an extension function may read: the calling session's view, its own
/// uncommitted writes included.
pub trait ExtensionState {
    /// The native balance of `who`.
    fn balance(&self, who: &AccountId) -> Result<Balance, ExtensionError>;
    /// Whether the code `hash` has been uploaded.
    fn code_exists(&self, hash: &CodeHash) -> Result<bool, ExtensionError>;
}

/// The result of an extension function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionOutput {
    /// Status returned to the contract as the host call's return value.
    pub status: u32,
    /// Bytes written to the contract's output buffer (SCALE-encoded result).
    pub output: Vec<u8>,
    /// Gas to charge on top of the base extension cost.
    pub gas: Gas,
}

/// Why an extension function did not produce an output; the contract traps with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// No such function.
    #[error("unsupported extension function")]
    Unsupported,
    /// The function failed.
    #[error("{0}")]
    Failed(String),
    /// Reading the state failed (the contract traps with [`crate::ExecError::Backend`]).
    #[error("state backend: {0}")]
    Backend(String),
}

/// The embedder's implementation of the chain extension.
pub trait ChainExtension: Send + Sync {
    /// Runs function `id` with SCALE-encoded `input`, reading chain state through `state`.
    fn call(
        &self,
        env: &ExtensionEnv,
        state: &dyn ExtensionState,
        id: ExtensionId,
        input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError>;
}

/// An extension with no functions: every call fails with "unsupported extension function".
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExtension;

impl ChainExtension for NoExtension {
    fn call(
        &self,
        _env: &ExtensionEnv,
        _state: &dyn ExtensionState,
        _id: ExtensionId,
        _input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError> {
        Err(ExtensionError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_layout_matches_pink() {
        // pink: extension 0 in the high half, function id in the low half.
        let id = ExtensionId::from(0x0000_000a);
        assert_eq!((id.extension, id.function), (0, 10));
        let id = ExtensionId::from(0x0003_0016);
        assert_eq!((id.extension, id.function), (3, 22));
    }
}
