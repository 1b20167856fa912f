//! Execution: the [`Runtime`] (engine, linker, code cache) and the frames that run calls
//! (`Session`, in `session.rs`, is the entry point; resource accounting is in `accounting.rs`).
//!
//! One wasmtime `Store` is created per contract frame; the session's transaction state moves
//! into the store while the frame runs and moves out again for nested calls, so no frame can
//! observe another's half-done work and no shared mutability is needed. Gas is wasmtime fuel;
//! a nested call gets at most what its caller has left and its use is charged back.

use std::sync::Arc;
use std::time::Instant;

use parity_scale_codec::{Decode, Encode};
use phat_primitives::{
    blake2_256, contract_address, AccountId, Balance, BlockNumber, CodeHash, ContractInfo, Event,
    Gas, Hash, Mode, StateKey, Timestamp,
};
use wasmtime::{Engine, Extern, Linker, Memory, Store, Trap};

use crate::accounting::Usage;
use crate::code::{CodeCache, CompiledCode};
use crate::config::Config;
use crate::error::{CodeError, ExecError, Panic};
use crate::extension::{ChainExtension, NoExtension};
use crate::session::Session;
use crate::state::{Overlay, StateRead};

/// Errors creating a [`Runtime`].
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasm engine: {0}")]
pub struct RuntimeError(String);

/// Flag in a contract's return flags: revert all its state changes.
pub const FLAG_REVERT: u32 = 1;

/// Runs contracts. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Frame>,
    pub(crate) cache: CodeCache,
    pub(crate) config: Config,
}

/// Where and when a session executes.
#[derive(Clone)]
pub struct ExecContext {
    /// Query (writes are for the caller to drop) or command.
    pub mode: Mode,
    /// Block number contracts see.
    pub block_number: BlockNumber,
    /// Timestamp (ms) contracts see.
    pub timestamp: Timestamp,
    /// The chain extension serving `call_chain_extension`.
    pub extension: Arc<dyn ChainExtension>,
}

impl ExecContext {
    /// A context in `mode` at block 1, time 0, without extension functions.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            block_number: 1,
            timestamp: 0,
            extension: Arc::new(NoExtension),
        }
    }
}

/// The result of a top-level call or instantiation that ran to completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The bytes the contract returned (ink! 4/5 wrap them in `Result<T, LangError>`).
    pub data: Vec<u8>,
    /// The contract asked to revert: its state changes were rolled back.
    pub reverted: bool,
    /// Gas consumed, nested calls included.
    pub gas_used: Gas,
    /// Events deposited (empty when reverted).
    pub events: Vec<Event>,
    /// Debug messages printed by the contracts.
    pub debug_message: String,
    /// The new contract's address (instantiation only).
    pub address: Option<AccountId>,
    /// The storage deposit the call took from its payer (negative: gave back), at the
    /// cluster's price for the bytes it added or freed.
    pub storage_deposit: i128,
}

impl Runtime {
    /// Builds the engine, the host-function linker and the code cache.
    pub fn new(config: Config) -> Result<Self, RuntimeError> {
        let engine =
            Engine::new(&engine_config(&config)).map_err(|e| RuntimeError(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        crate::host::define(&mut linker).map_err(|e| RuntimeError(format!("{e:#}")))?;
        let cache = CodeCache::new(
            &engine,
            config.cache_dir.clone(),
            config.cache_key,
            config.limits.max_memory_pages,
            config.code_cache_bytes,
        );
        spawn_epoch_ticker(&engine, config.epoch_tick);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                config,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Checks and compiles `wasm` (caching the result) without storing it in any state.
    pub fn prepare_code(&self, wasm: &[u8]) -> Result<CodeHash, CodeError> {
        let max = self.inner.config.limits.max_code_size;
        if wasm.len() > max {
            return Err(CodeError::TooLarge {
                size: wasm.len(),
                max,
            });
        }
        let hash = CodeHash::of(wasm);
        self.inner.prepare(hash, wasm)?;
        Ok(hash)
    }

    /// Number of compiled modules held in memory.
    pub fn cached_modules(&self) -> usize {
        self.inner.cache.len()
    }

    /// Bytes of compiled code held in memory (at most [`Config::code_cache_bytes`], plus the
    /// module being added).
    pub fn cached_code_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    /// Starts a session over `state`. Its writes accumulate until [`Session::into_changes`].
    pub fn session(&self, state: Arc<dyn StateRead>, ctx: ExecContext) -> Session {
        Session {
            tx: Some(Box::new(TxState {
                rt: self.inner.clone(),
                overlay: Overlay::new(state),
                events: Vec::new(),
                debug: String::new(),
                ctx,
                origin: AccountId::default(),
                deposit_payer: None,
                stack: Vec::new(),
                deadline: None,
                nested_error: None,
                usage: Usage::default(),
            })),
        }
    }
}

impl Inner {
    fn prepare(&self, hash: CodeHash, wasm: &[u8]) -> Result<Arc<CompiledCode>, CodeError> {
        self.cache.prepare(
            &self.engine,
            &self.linker,
            hash,
            wasm,
            self.config.limits.max_memory_pages,
        )
    }
}

/// Bytes of each pooled linear memory (and table) reset with `memset` rather than `madvise`
/// when an instance ends: an ink! contract's two initial pages. With `madvise` every call
/// took fresh page faults on its stack and data (half of a flipper `get`); past these bytes
/// the pool still gives memory back to the kernel.
const KEEP_RESIDENT: usize = 128 * 1024;

fn engine_config(config: &Config) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.limits.max_wasm_stack)
        .cranelift_nan_canonicalization(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .wasm_simd(false)
        .wasm_relaxed_simd(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_tail_call(false)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        // No error reads a wasm backtrace, and every ink! call ends in one (`seal_return`
        // unwinds through a host error): capturing it cost ~1 µs a call.
        .wasm_backtrace_max_frames(None);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let memory_bytes = config.limits.max_memory_pages as usize * 65536;
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    c
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
#[allow(
    clippy::expect_used,
    reason = "a runtime without its epoch thread cannot bound wall time; failing to spawn one thread at start-up is fatal"
)]
fn spawn_epoch_ticker(engine: &Engine, tick: std::time::Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("phat-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .expect("spawning the epoch thread");
}

/// State shared by all frames of a session; moves between stores as frames nest.
pub(crate) struct TxState {
    pub(crate) rt: Arc<Inner>,
    pub(crate) overlay: Overlay,
    pub(crate) events: Vec<Event>,
    pub(crate) debug: String,
    pub(crate) ctx: ExecContext,
    pub(crate) origin: AccountId,
    /// Who pays the storage deposit of the session's calls, when not their origin (a
    /// trigger's runs: the origin is an account nobody holds, the deployer pays).
    pub(crate) deposit_payer: Option<AccountId>,
    /// Addresses of the frames on the call stack, outermost first.
    pub(crate) stack: Vec<AccountId>,
    /// Wall-clock deadline of the current query.
    pub(crate) deadline: Option<Instant>,
    /// The error of the most recent callee that trapped, to explain a caller's trap.
    pub(crate) nested_error: Option<ExecError>,
    /// What the current top-level call has made the host hold, against [`crate::Limits`].
    pub(crate) usage: Usage,
}

/// How a frame ended by the host's hand.
pub(crate) enum Exit {
    /// `seal_return` with flags and data.
    Return(u32, Vec<u8>),
    /// `terminate`: the contract is gone.
    Terminated,
    /// A host function failed with a typed error.
    Error(ExecError),
}

/// The data of one contract frame (the wasmtime store's data).
pub struct Frame {
    pub(crate) tx: Option<Box<TxState>>,
    pub(crate) memory: Option<Memory>,
    pub(crate) input: Option<Vec<u8>>,
    pub(crate) caller: AccountId,
    pub(crate) address: AccountId,
    pub(crate) storage_id: Hash,
    pub(crate) value: Balance,
    pub(crate) exit: Option<Exit>,
}

impl Frame {
    /// The session state; present whenever wasm of this frame runs.
    #[allow(
        clippy::expect_used,
        reason = "the transaction state is in the frame whenever the frame's code runs"
    )]
    pub(crate) fn tx(&mut self) -> &mut TxState {
        self.tx
            .as_mut()
            .expect("transaction state is in the frame while its code runs")
    }
}

/// Which export a frame runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Deploy,
    Call,
}

/// Everything needed to run one frame.
pub(crate) struct FrameParams {
    pub caller: AccountId,
    pub address: AccountId,
    pub code_hash: CodeHash,
    pub storage_id: Hash,
    pub value: Balance,
    pub input: Vec<u8>,
    pub entry: Entry,
    pub gas_limit: Gas,
}

/// A frame's successful end: return flags and data.
pub(crate) struct ReturnData {
    pub flags: u32,
    pub data: Vec<u8>,
}

impl ReturnData {
    pub fn reverted(&self) -> bool {
        self.flags & FLAG_REVERT != 0
    }
}

/// Where a call failed: before its frame ran (the caller gets an error code or traps), or in
/// the callee's code (the caller sees `CalleeTrapped`).
#[derive(Debug)]
pub(crate) enum Failure {
    Before(ExecError),
    InCallee(ExecError),
}

impl Failure {
    pub fn into_error(self) -> ExecError {
        match self {
            Failure::Before(e) | Failure::InCallee(e) => e,
        }
    }
}

/// Result of a call or instantiation, with the gas it consumed.
pub(crate) type CallResult<T> = (Box<TxState>, Gas, Result<T, Failure>);

impl TxState {
    pub(crate) fn config(&self) -> &Config {
        &self.rt.config
    }

    pub(crate) fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError> {
        self.overlay.get(key).map_err(|e| ExecError::Backend(e.0))
    }

    pub(crate) fn contract_info(
        &self,
        addr: &AccountId,
    ) -> Result<Option<ContractInfo>, ExecError> {
        match self.get(&StateKey::Contract(*addr))? {
            Some(bytes) => ContractInfo::decode(&mut &bytes[..])
                .map(Some)
                .map_err(|_| ExecError::Backend(format!("corrupt contract info for {addr}"))),
            None => Ok(None),
        }
    }

    pub(crate) fn balance(&self, who: &AccountId) -> Result<Balance, ExecError> {
        Ok(self
            .get(&StateKey::Balance(*who))?
            .and_then(|b| Balance::decode(&mut &b[..]).ok())
            .unwrap_or(0))
    }

    pub(crate) fn set_balance(&mut self, who: &AccountId, amount: Balance) {
        let value = (amount != 0).then(|| amount.encode());
        self.overlay.set(StateKey::Balance(*who), value);
    }

    pub(crate) fn transfer(
        &mut self,
        from: &AccountId,
        to: &AccountId,
        value: Balance,
    ) -> Result<(), ExecError> {
        if value == 0 || from == to {
            return Ok(());
        }
        let from_balance = self.balance(from)?;
        if from_balance < value {
            return Err(ExecError::TransferFailed { value });
        }
        let to_balance = self.balance(to)?;
        self.set_balance(from, from_balance - value);
        self.set_balance(to, to_balance.saturating_add(value));
        Ok(())
    }

    pub(crate) fn instantiation_nonce(&self) -> Result<u64, ExecError> {
        Ok(self
            .get(&StateKey::InstantiationNonce)?
            .and_then(|b| u64::decode(&mut &b[..]).ok())
            .unwrap_or(0))
    }

    pub(crate) fn code_exists(&self, hash: &CodeHash) -> Result<bool, ExecError> {
        // The compiled cache only holds codes some state has (or had): check the state itself.
        Ok(self.get(&StateKey::Code(*hash))?.is_some())
    }

    /// The compiled module for `hash`. Callers guarantee the code exists in this state: a
    /// call takes the hash from this state's `ContractInfo`, and instantiation and delegate
    /// calls check `code_exists` first. So a cache hit needs no state read (which would copy
    /// the whole blob on every frame).
    fn compiled(&self, hash: &CodeHash) -> Result<Arc<CompiledCode>, ExecError> {
        if let Some(code) = self.rt.cache.get(hash) {
            return Ok(code);
        }
        let wasm = self
            .get(&StateKey::Code(*hash))?
            .ok_or(ExecError::CodeNotFound(*hash))?;
        Ok(self.rt.prepare(*hash, &wasm)?)
    }

    pub(crate) fn append_debug(&mut self, msg: &str) {
        let room = self
            .config()
            .limits
            .max_debug_buffer_len
            .saturating_sub(self.debug.len());
        let mut end = msg.len().min(room);
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        self.debug.push_str(&msg[..end]);
    }

    fn check_depth(&self) -> Result<(), ExecError> {
        let max = self.config().limits.max_call_depth;
        if self.stack.len() >= max {
            Err(ExecError::MaxCallDepth(max))
        } else {
            Ok(())
        }
    }
}

/// Runs one frame to its end and hands the transaction state back.
fn execute_frame(
    tx: Box<TxState>,
    p: FrameParams,
) -> (Box<TxState>, Gas, Result<ReturnData, ExecError>) {
    let code = match tx.compiled(&p.code_hash) {
        Ok(c) => c,
        Err(e) => return (tx, 0, Err(e)),
    };
    let rt = tx.rt.clone();
    let epoch_ticks = match tx.deadline {
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            (left.as_nanos() / rt.config.epoch_tick.as_nanos().max(1)) as u64 + 1
        }
        None => 1 << 40,
    };
    let who = FrameId {
        contract: p.address,
        caller: p.caller,
        selector: p.input.get(..4).map(|s| [s[0], s[1], s[2], s[3]]),
    };
    let mut tx = tx;
    tx.stack.push(p.address);
    let mut store = Store::new(
        &rt.engine,
        Frame {
            tx: Some(tx),
            memory: None,
            input: Some(p.input),
            caller: p.caller,
            address: p.address,
            storage_id: p.storage_id,
            value: p.value,
            exit: None,
        },
    );
    #[allow(clippy::expect_used, reason = "fuel is enabled in the engine config")]
    // Fuel must be set before instantiation: initializing data segments consumes it.
    store
        .set_fuel(p.gas_limit)
        .expect("fuel is enabled in the engine config");
    store.set_epoch_deadline(epoch_ticks);
    store.epoch_deadline_trap();

    let export = match p.entry {
        Entry::Call => &code.call,
        Entry::Deploy => &code.deploy,
    };
    let run = (|| -> wasmtime::Result<Result<(), ExecError>> {
        let instance = match code.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) if e.downcast_ref::<Trap>().is_some() => return Err(e),
            Err(e) => return Ok(Err(ExecError::Busy(format!("{e:#}")))),
        };
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut store, &code.memory)
        else {
            return Ok(Err(ExecError::Code(CodeError::Exports(
                "memory export missing".into(),
            ))));
        };
        store.data_mut().memory = Some(memory);
        let Some(Extern::Func(func)) = instance.get_module_export(&mut store, export) else {
            return Ok(Err(ExecError::Code(CodeError::Exports(
                "entry point missing".into(),
            ))));
        };
        func.typed::<(), ()>(&store)?.call(&mut store, ())?;
        Ok(Ok(()))
    })();
    let fuel_left = store.get_fuel().unwrap_or(0);
    let gas_used = p.gas_limit.saturating_sub(fuel_left);
    let mut frame = store.into_data();
    #[allow(
        clippy::expect_used,
        reason = "the transaction state returns to the frame after every nested call"
    )]
    let mut tx = frame
        .tx
        .take()
        .expect("transaction state returns to the frame after every nested call");
    tx.stack.pop();
    let result = match (run, frame.exit.take()) {
        (Ok(Ok(())), _) => Ok(ReturnData {
            flags: 0,
            data: Vec::new(),
        }),
        (Ok(Err(e)), _) => Err(e),
        (Err(_), Some(Exit::Return(flags, data))) => Ok(ReturnData { flags, data }),
        (Err(_), Some(Exit::Terminated)) => Ok(ReturnData {
            flags: 0,
            data: Vec::new(),
        }),
        (Err(_), Some(Exit::Error(e))) => Err(e),
        (Err(e), None) => Err(classify_trap(
            &e,
            &tx,
            who,
            rt.config.limits.query_time_limit,
        )),
    };
    (tx, gas_used, result)
}

/// Which frame trapped, to explain a panic.
struct FrameId {
    contract: AccountId,
    caller: AccountId,
    selector: Option<[u8; 4]>,
}

/// The last panic message in the debug output (ink!'s panic handler prints `panicked at …`
/// when the contract is built with debug output), at most 1 KiB of it.
fn panic_message(debug: &str) -> Option<String> {
    let start = debug.rfind("panicked at")?;
    // ink! prints `panicked at FILE:LINE:COL:` and the message on the next line: one line.
    let mut msg = debug[start..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if msg.len() > 1024 {
        let mut end = 1024;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push('…');
    }
    Some(msg)
}

/// What made a chain of nested failures start: a panic that followed a callee's failure is
/// explained by the innermost failure, not by every frame in between.
fn root_cause(e: &ExecError) -> String {
    match e {
        ExecError::Panicked(p) => match &p.after_callee {
            Some(cause) => cause.clone(),
            None => e.to_string(),
        },
        other => other.to_string(),
    }
}

fn classify_trap(
    e: &wasmtime::Error,
    tx: &TxState,
    who: FrameId,
    time_limit: std::time::Duration,
) -> ExecError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ExecError::OutOfGas,
        Some(Trap::Interrupt) => ExecError::Timeout(time_limit.as_millis() as u64),
        Some(Trap::StackOverflow) => ExecError::StackOverflow,
        Some(Trap::UnreachableCodeReached) => ExecError::Panicked(Box::new(Panic {
            contract: who.contract,
            caller: who.caller,
            selector: who.selector,
            message: panic_message(&tx.debug),
            after_callee: tx.nested_error.as_ref().map(root_cause),
        })),
        Some(trap) => {
            let mut msg = trap.to_string();
            if let Some(cause) = &tx.nested_error {
                msg.push_str(&format!(" (after a callee failed: {cause})"));
            }
            ExecError::Trapped(msg)
        }
        None => ExecError::Trapped(format!("{e:#}")),
    }
}

/// Calls `dest` from `caller` with `value` and `input`: the shared path of top-level calls and
/// `seal_call`. Writes roll back when the callee fails or reverts.
pub(crate) fn do_call(
    mut tx: Box<TxState>,
    caller: AccountId,
    dest: AccountId,
    value: Balance,
    input: Vec<u8>,
    gas_limit: Gas,
    allow_reentry: bool,
) -> CallResult<ReturnData> {
    let pre = (|| {
        tx.check_depth()?;
        if !allow_reentry && tx.stack.contains(&dest) {
            return Err(ExecError::ReentranceDenied(dest));
        }
        tx.contract_info(&dest)?
            .ok_or(ExecError::ContractNotFound(dest))
    })();
    let info = match pre {
        Ok(info) => info,
        Err(e) => return (tx, 0, Err(Failure::Before(e))),
    };
    let cp = (tx.overlay.checkpoint(), tx.events.len());
    if let Err(e) = tx.transfer(&caller, &dest, value) {
        return (tx, 0, Err(Failure::Before(e)));
    }
    let params = FrameParams {
        caller,
        address: dest,
        code_hash: info.code_hash,
        storage_id: info.storage_id,
        value,
        input,
        entry: Entry::Call,
        gas_limit,
    };
    finish(execute_frame(tx, params), cp)
}

/// Runs code `code_hash` in the context of the calling frame (`delegate_call`).
pub(crate) fn do_delegate_call(
    tx: Box<TxState>,
    frame: &Frame,
    code_hash: CodeHash,
    input: Vec<u8>,
    gas_limit: Gas,
) -> CallResult<ReturnData> {
    let pre = (|| {
        tx.check_depth()?;
        if !tx.code_exists(&code_hash)? {
            return Err(ExecError::CodeNotFound(code_hash));
        }
        Ok(())
    })();
    if let Err(e) = pre {
        return (tx, 0, Err(Failure::Before(e)));
    }
    // The delegate frame is a frame of its own on the stack (same address), so delegation
    // counts toward the depth limit: self-delegation cannot recurse past it.
    let cp = (tx.overlay.checkpoint(), tx.events.len());
    let params = FrameParams {
        caller: frame.caller,
        address: frame.address,
        code_hash,
        storage_id: frame.storage_id,
        value: frame.value,
        input,
        entry: Entry::Call,
        gas_limit,
    };
    finish(execute_frame(tx, params), cp)
}

/// Instantiates `code_hash` from `deployer`: shared by top-level deploys and `seal_instantiate`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn do_instantiate(
    mut tx: Box<TxState>,
    deployer: AccountId,
    code_hash: CodeHash,
    value: Balance,
    input: Vec<u8>,
    salt: &[u8],
    gas_limit: Gas,
) -> CallResult<(AccountId, ReturnData)> {
    let address = contract_address(&deployer, &code_hash, &input, salt);
    let pre = (|| {
        tx.check_depth()?;
        if !tx.code_exists(&code_hash)? {
            return Err(ExecError::CodeNotFound(code_hash));
        }
        if tx.contract_info(&address)?.is_some() {
            return Err(ExecError::DuplicateContract(address));
        }
        tx.instantiation_nonce()
    })();
    let nonce = match pre {
        Ok(n) => n,
        Err(e) => return (tx, 0, Err(Failure::Before(e))),
    };
    let cp = (tx.overlay.checkpoint(), tx.events.len());
    let storage_id = Hash(blake2_256(&(b"phat-storage", address, nonce).encode()));
    tx.overlay
        .set(StateKey::InstantiationNonce, Some((nonce + 1).encode()));
    let info = ContractInfo {
        code_hash,
        deployer,
        storage_id,
    };
    tx.overlay
        .set(StateKey::Contract(address), Some(info.encode()));
    if let Err(e) = tx.transfer(&deployer, &address, value) {
        tx.overlay.rollback(cp.0);
        return (tx, 0, Err(Failure::Before(e)));
    }
    let params = FrameParams {
        caller: deployer,
        address,
        code_hash,
        storage_id,
        value,
        input,
        entry: Entry::Deploy,
        gas_limit,
    };
    let (tx, gas, result) = finish(execute_frame(tx, params), cp);
    (tx, gas, result.map(|r| (address, r)))
}

/// Rolls back to `cp` unless the frame succeeded without reverting.
fn finish(
    (mut tx, gas, result): (Box<TxState>, Gas, Result<ReturnData, ExecError>),
    cp: (crate::state::Checkpoint, usize),
) -> CallResult<ReturnData> {
    let keep = matches!(&result, Ok(r) if !r.reverted());
    if !keep {
        tx.overlay.rollback(cp.0);
        tx.events.truncate(cp.1);
    }
    (tx, gas, result.map_err(Failure::InCallee))
}
