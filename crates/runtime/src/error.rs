//! Typed errors of code preparation and contract execution.

use phat_primitives::{AccountId, CodeHash};

/// Why a code blob was refused at upload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The blob is larger than [`crate::Limits::max_code_size`].
    #[error("code is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The blob is not valid wasm, or uses a feature phat does not allow.
    #[error("invalid wasm: {0}")]
    Invalid(String),
    /// The module imports something the runtime does not provide.
    #[error("unsupported import: {0}")]
    UnsupportedImport(String),
    /// The module's memory is not acceptable.
    #[error("memory: {0}")]
    Memory(String),
    /// The module lacks the `call` or `deploy` export, or has a wrong signature.
    #[error("exports: {0}")]
    Exports(String),
    /// wasmtime failed to compile it.
    #[error("compilation failed: {0}")]
    Compile(String),
}

/// Why a call failed. A failed call changes nothing: its writes, events and transfers, nested
/// calls' included, are rolled back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// No code is stored under this hash.
    #[error("code {0} not found")]
    CodeNotFound(CodeHash),
    /// No contract lives at this address.
    #[error("contract {0} not found")]
    ContractNotFound(AccountId),
    /// The code was refused (upload, or compiling stored code).
    #[error("bad code: {0}")]
    Code(#[from] CodeError),
    /// The gas limit was reached.
    #[error("out of gas")]
    OutOfGas,
    /// A query ran longer than its wall-time limit.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The contract exhausted its native stack (deep recursion).
    #[error("stack overflow")]
    StackOverflow,
    /// More nested calls than [`crate::Limits::max_call_depth`].
    #[error("call depth limit of {0} reached")]
    MaxCallDepth(usize),
    /// A contract was re-entered without allowing it.
    #[error("reentrancy into {0} not allowed")]
    ReentranceDenied(AccountId),
    /// The contract panicked: a Rust `panic!`, a failed `assert!`, an `unwrap` of `None`
    /// (all compile to wasm's `unreachable`).
    #[error("{0}")]
    Panicked(Box<Panic>),
    /// The wasm code trapped for another reason (out-of-bounds memory access, division by
    /// zero, an indirect call of the wrong type, ...): a fault, not a deliberate panic.
    #[error("contract trapped: {0}")]
    Trapped(String),
    /// A per-call or per-contract resource bound was exceeded. The call's writes and events
    /// are rolled back, whatever frame hit the bound.
    #[error("{bound} limit exceeded: {used} > {limit}")]
    LimitExceeded {
        /// Which bound.
        bound: Bound,
        /// What the call would have reached.
        used: u64,
        /// The bound.
        limit: u64,
    },
    /// A host call pointed outside the contract's memory.
    #[error("host call `{0}` accessed memory out of bounds")]
    OutOfBounds(&'static str),
    /// The output buffer the contract supplied is too small for the data.
    #[error("output buffer too small for `{0}`")]
    OutputBufferTooSmall(&'static str),
    /// A size limit was exceeded.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large (return value, event, storage value, key, input).
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// An event had too many topics.
    #[error("event has {0} topics, more than allowed")]
    TooManyTopics(usize),
    /// Bytes passed by the contract could not be decoded.
    #[error("could not decode {0}")]
    Decode(&'static str),
    /// Invalid flags for `call`.
    #[error("invalid call flags {0:#x}")]
    InvalidCallFlags(u32),
    /// The input was already forwarded and is no longer available.
    #[error("input already forwarded")]
    InputForwarded,
    /// The contract called a chain-extension function that is not available.
    #[error("unsupported extension function: extension {extension}, function {function}")]
    UnsupportedExtension {
        /// Extension id (high 16 bits).
        extension: u16,
        /// Function id (low 16 bits).
        function: u16,
    },
    /// A chain-extension function failed.
    #[error("extension function {function} failed: {message}")]
    Extension {
        /// Function id.
        function: u16,
        /// What went wrong.
        message: String,
    },
    /// The caller's balance does not cover the value.
    #[error("transfer of {value} failed: balance too low")]
    TransferFailed {
        /// The value that could not be moved.
        value: u128,
    },
    /// A contract already exists at the derived address.
    #[error("a contract already exists at {0}")]
    DuplicateContract(AccountId),
    /// A contract tried to terminate while also lower on the call stack.
    #[error("contract {0} cannot terminate while re-entered")]
    TerminatedWhileReentrant(AccountId),
    /// The runtime has no free instance slot (too many concurrent calls).
    #[error("runtime busy: {0}")]
    Busy(String),
    /// The state backend failed.
    #[error("state backend: {0}")]
    Backend(String),
}

impl ExecError {
    /// A stable snake_case name for the error, for APIs and receipts.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecError::CodeNotFound(_) => "code_not_found",
            ExecError::ContractNotFound(_) => "contract_not_found",
            ExecError::Code(_) => "invalid_code",
            ExecError::OutOfGas => "out_of_gas",
            ExecError::Timeout(_) => "timeout",
            ExecError::StackOverflow => "stack_overflow",
            ExecError::MaxCallDepth(_) => "max_call_depth",
            ExecError::ReentranceDenied(_) => "reentrance_denied",
            ExecError::Panicked(_) => "panicked",
            ExecError::Trapped(_) => "trapped",
            ExecError::LimitExceeded { .. } => "limit_exceeded",
            ExecError::OutOfBounds(_) => "out_of_bounds",
            ExecError::OutputBufferTooSmall(_) => "output_buffer_too_small",
            ExecError::TooLarge { .. } => "too_large",
            ExecError::TooManyTopics(_) => "too_many_topics",
            ExecError::Decode(_) => "decode",
            ExecError::InvalidCallFlags(_) => "invalid_call_flags",
            ExecError::InputForwarded => "input_forwarded",
            ExecError::UnsupportedExtension { .. } => "unsupported_extension",
            ExecError::Extension { .. } => "extension_failed",
            ExecError::TransferFailed { .. } => "transfer_failed",
            ExecError::DuplicateContract(_) => "duplicate_contract",
            ExecError::TerminatedWhileReentrant(_) => "terminated_while_reentrant",
            ExecError::Busy(_) => "busy",
            ExecError::Backend(_) => "backend",
        }
    }

    /// Whether this error is deterministic (same on every worker for the same inputs). Only a
    /// query's wall-time limit and resource exhaustion are not.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            ExecError::Timeout(_) | ExecError::Busy(_) | ExecError::Backend(_)
        )
    }

    /// Whether a nested call failing with this error fails the whole top-level call instead
    /// of returning "callee trapped" to its caller: worker-dependent failures (a contract must
    /// never see, let alone store, something other workers would not see) and exceeded
    /// resource bounds (the call as a whole is over them).
    pub fn aborts_call(&self) -> bool {
        !self.is_deterministic() || matches!(self, ExecError::LimitExceeded { .. })
    }
}

/// A resource bound of [`crate::Limits`] that a call can exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bound {
    /// [`crate::Limits::max_events_per_call`].
    EventsPerCall,
    /// [`crate::Limits::max_event_bytes_per_call`].
    EventBytesPerCall,
    /// [`crate::Limits::max_storage_written_per_call`].
    StorageWrittenPerCall,
    /// [`crate::Limits::max_contract_storage`].
    ContractStorage,
    /// The signer's balance does not cover [`crate::Limits::storage_deposit_per_byte`] for
    /// the bytes the call adds (`used`: bytes added, `limit`: bytes the balance pays for).
    StorageDeposit,
}

impl Bound {
    /// A stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Bound::EventsPerCall => "events_per_call",
            Bound::EventBytesPerCall => "event_bytes_per_call",
            Bound::StorageWrittenPerCall => "storage_written_per_call",
            Bound::ContractStorage => "contract_storage",
            Bound::StorageDeposit => "storage_deposit",
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and why a contract panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panic {
    /// The contract whose code panicked.
    pub contract: AccountId,
    /// Who called it.
    pub caller: AccountId,
    /// The selector of the message (or constructor) it was running, when the input had one.
    pub selector: Option<[u8; 4]>,
    /// The panic message the contract printed (ink! prints it as debug output when built with
    /// debug output; release builds abort without a message).
    pub message: Option<String>,
    /// The error of a nested call that failed just before (a panic is often an `unwrap` of it).
    pub after_callee: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the contract {} panicked", self.contract)?;
        if let Some(s) = self.selector {
            write!(f, " in message 0x{}", hex::encode(s))?;
        }
        write!(f, " called by {}", self.caller)?;
        match &self.message {
            Some(m) => write!(f, ": {m}")?,
            None => write!(
                f,
                " (no panic message: the contract was built without debug output)"
            )?,
        }
        if let Some(cause) = &self.after_callee {
            write!(f, " (after a callee failed: {cause})")?;
        }
        Ok(())
    }
}
