//! Runtime configuration: resource limits and the gas schedule.
//!
//! Every limit here is part of the determinism contract of the command path: two workers with
//! different limits may disagree on a command's outcome, so a cluster runs one configuration.

use std::path::PathBuf;
use std::time::Duration;

use phat_primitives::Gas;

/// Hard limits on what a contract may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted code blob (original wasm), in bytes.
    pub max_code_size: usize,
    /// Largest linear memory a contract may have, in 64 KiB pages.
    pub max_memory_pages: u64,
    /// Native stack available to wasm frames of one contract call, in bytes.
    pub max_wasm_stack: usize,
    /// Most contract frames on the call stack at once, the top-level call included.
    pub max_call_depth: usize,
    /// Longest storage key, in bytes.
    pub max_storage_key_len: u32,
    /// Largest storage value, in bytes.
    pub max_storage_value_len: u32,
    /// Largest return value (and call input), in bytes.
    pub max_output_len: u32,
    /// Largest event payload, in bytes.
    pub max_event_len: u32,
    /// Most topics per event.
    pub max_event_topics: u32,
    /// Bytes of debug messages kept per top-level call (the rest is dropped).
    pub max_debug_buffer_len: usize,
    /// Most events one top-level call may deposit, nested calls included.
    pub max_events_per_call: u32,
    /// Most event bytes (data plus topics) one top-level call may deposit.
    pub max_event_bytes_per_call: u64,
    /// Most storage bytes one top-level call may write: every write counts its key, its value
    /// and [`WRITE_OVERHEAD`] bytes, overwrites of the same key included (each write is held
    /// by the host until the call ends, to roll it back).
    pub max_storage_written_per_call: u64,
    /// Most bytes (keys plus values) a contract may keep in storage; growth past it fails the
    /// call that grows it. Bounds the replicated state one contract can make every worker hold.
    pub max_contract_storage: u64,
    /// Balance the signer of a call pays per byte the call adds to the replicated state (keys
    /// and values, any kind), and gets back per byte it frees: state growth is paid for, so
    /// all accounts together can make every worker store at most the supply divided by this.
    /// 0 (the runtime's default) charges nothing; a cluster's genesis sets the price.
    pub storage_deposit_per_byte: u64,
    /// Most gas a single top-level call may be given.
    pub max_gas_per_call: Gas,
    /// Wall-time bound of a query (commands are bounded by gas alone, deterministically).
    pub query_time_limit: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Phala's defaults: 2 MiB of code, 64 pages (4 MiB) of memory, 1 MiB values.
            max_code_size: 2 * 1024 * 1024,
            max_memory_pages: 64,
            max_wasm_stack: 128 * 1024,
            max_call_depth: 6,
            max_storage_key_len: 128,
            max_storage_value_len: 1024 * 1024,
            max_output_len: 64 * 1024,
            max_event_len: 16 * 1024,
            max_event_topics: 4,
            max_debug_buffer_len: 64 * 1024,
            max_events_per_call: 256,
            max_event_bytes_per_call: 256 * 1024,
            max_storage_written_per_call: 2 * 1024 * 1024,
            max_contract_storage: 16 * 1024 * 1024,
            // The runtime alone charges nothing; clusters set a price at genesis.
            storage_deposit_per_byte: 0,
            max_gas_per_call: 5_000_000_000,
            query_time_limit: Duration::from_secs(10),
        }
    }
}

/// Bytes a storage write counts beyond its key and value, toward
/// [`Limits::max_storage_written_per_call`] (the host's bookkeeping of one write).
pub const WRITE_OVERHEAD: u64 = 64;

/// Gas charged by host functions, on top of the fuel wasm instructions consume (about one
/// unit per instruction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GasSchedule {
    /// Every host call.
    pub host_call: Gas,
    /// Every byte copied between contract memory and the host.
    pub per_byte: Gas,
    /// A storage read, write or removal, on top of `host_call`.
    pub storage_access: Gas,
    /// A storage write, on top of `storage_access`.
    pub storage_write: Gas,
    /// Each byte written to storage (key and value), on top of `per_byte`: the worker encrypts,
    /// hashes and commits it, and every worker keeps it.
    pub storage_byte: Gas,
    /// A cross-contract call or delegate call.
    pub call: Gas,
    /// A contract instantiation.
    pub instantiate: Gas,
    /// An event, plus `per_byte` for its data.
    pub event: Gas,
    /// Each event topic.
    pub event_topic: Gas,
    /// Each event byte, on top of `per_byte`: events are hashed into the receipt and kept in
    /// the receipt and the log of every worker.
    pub event_byte: Gas,
    /// A hash, plus `per_byte` for its input.
    pub hash: Gas,
    /// `ecdsa_recover`, `ecdsa_to_eth_address` and `sr25519_verify`.
    pub signature: Gas,
    /// A chain-extension call, plus `per_byte` for input and output.
    pub extension: Gas,
}

impl Default for GasSchedule {
    fn default() -> Self {
        Self {
            host_call: 50,
            per_byte: 1,
            storage_access: 500,
            storage_write: 1_000,
            storage_byte: 4,
            call: 5_000,
            instantiate: 20_000,
            event: 500,
            event_topic: 200,
            event_byte: 4,
            hash: 100,
            signature: 50_000,
            extension: 1_000,
        }
    }
}

/// Everything a [`crate::Runtime`] is built from.
#[derive(Clone, Debug)]
pub struct Config {
    /// Resource limits.
    pub limits: Limits,
    /// Host-function gas costs.
    pub gas: GasSchedule,
    /// Directory for compiled modules, reused across restarts; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Key authenticating the files in `cache_dir` (compiled code is executable: a file that
    /// fails the check is recompiled, never loaded). The worker passes its own secret key,
    /// kept across restarts; the default is random per process (files are then reused only
    /// within the process that wrote them), never a fixed, guessable key.
    pub cache_key: [u8; 32],
    /// Instances that may exist at once (all concurrent calls, nested frames included).
    pub max_instances: u32,
    /// Bytes of compiled code kept in memory; the least recently used modules go past it
    /// (and come back from `cache_dir` when called again).
    pub code_cache_bytes: usize,
    /// How often the epoch (wall-clock) interrupt ticks.
    pub epoch_tick: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            gas: GasSchedule::default(),
            cache_dir: None,
            cache_key: random_key(),
            max_instances: 1000,
            code_cache_bytes: 256 << 20,
            epoch_tick: Duration::from_millis(5),
        }
    }
}

/// 32 bytes from the operating system's random source.
#[allow(
    clippy::expect_used,
    reason = "without the operating system's random source no key can be made; there is nothing to fall back to"
)]
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the operating system's random source works");
    key
}
