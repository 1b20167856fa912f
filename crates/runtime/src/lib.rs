//! phat-runtime: runs ink! contracts on wasmtime, metered and sandboxed.
//!
//! The runtime implements the pallet-contracts host API that ink! 3, 4 and 5 contracts import
//! (`seal0`/`seal1`/`seal2`), so contracts run unmodified, and dispatches
//! `call_chain_extension` to an embedder-provided [`ChainExtension`] using pink's id layout
//! (pink's own extension is the `phat-pink` crate, which implements this seam).
//!
//! ```text
//! Runtime::new(config) ─ engine, linker, code cache (memory + disk), epoch ticker
//!   └─ session(state snapshot, context) ─ overlay of writes, events, debug output
//!        ├─ upload_code(wasm)            checked, rewritten, compiled once per code hash
//!        ├─ instantiate(origin, code, …) constructor frame
//!        ├─ call(origin, contract, …)    message frame, nested calls inside
//!        └─ into_changes()               sorted writes: commit (command) or drop (query)
//! ```
//!
//! Invariants:
//! - every call is atomic: a trap, an error or a revert at any depth rolls back that frame's
//!   writes, events and transfers, nested ones included;
//! - commands are deterministic: gas is wasmtime fuel plus a fixed host-call schedule, floats
//!   are NaN-canonicalized, non-deterministic wasm features are off, and no wall-clock limit
//!   applies (queries alone get one, via epoch interruption);
//! - nothing a contract does can crash or hang the host: memory, stack, call depth, gas, time
//!   and every size crossing the host boundary are bounded and fail with a typed [`ExecError`].

mod accounting;
mod code;
mod config;
pub mod crypto;
mod error;
mod exec;
mod extension;
mod host;
mod session;
mod state;

pub use code::{rewrite_memory, MEMORY_EXPORT};
pub use config::{Config, GasSchedule, Limits, WRITE_OVERHEAD};
pub use error::{Bound, CodeError, ExecError, Panic};
pub use exec::{ExecContext, Frame, Outcome, Runtime, RuntimeError, FLAG_REVERT};
pub use extension::{
    ChainExtension, ExtensionEnv, ExtensionError, ExtensionId, ExtensionOutput, ExtensionState,
    NoExtension,
};
pub use session::Session;
pub use state::{BackendError, ChangeSet, Checkpoint, MemoryState, Overlay, StateRead};
