//! [`Session`]: a sequence of top-level calls over one state snapshot, the runtime's public
//! entry point. Each call is atomic; bounds and the storage deposit settle at its end.

use std::time::Instant;

use phat_primitives::{AccountId, Balance, CodeHash, ContractInfo, Gas, Mode, StateKey};

use crate::accounting::Usage;
use crate::error::ExecError;
use crate::exec::{
    do_call, do_instantiate, CallResult, Failure, Outcome, ReturnData, Runtime, TxState,
};
use crate::state::ChangeSet;

/// A sequence of top-level calls over one state snapshot. Each call is atomic; the writes of
/// the successful ones accumulate until [`Session::into_changes`].
pub struct Session {
    /// Always `Some` between calls; taken only while a call runs.
    pub(crate) tx: Option<Box<TxState>>,
}

impl Session {
    #[allow(
        clippy::expect_used,
        reason = "the session state is present between calls"
    )]
    fn tx(&self) -> &TxState {
        self.tx
            .as_ref()
            .expect("session state is present between calls")
    }

    #[allow(
        clippy::expect_used,
        reason = "the session state is present between calls"
    )]
    fn tx_mut(&mut self) -> &mut TxState {
        self.tx
            .as_mut()
            .expect("session state is present between calls")
    }

    /// The mode this session runs in.
    pub fn mode(&self) -> Mode {
        self.tx().ctx.mode
    }

    /// Checks, compiles and stores `wasm`; returns its code hash. Uploading the same code twice
    /// is harmless.
    pub fn upload_code(&mut self, wasm: &[u8]) -> Result<CodeHash, ExecError> {
        let hash = self.prepare(wasm)?;
        write_code(self.tx_mut(), hash, wasm)?;
        Ok(hash)
    }

    /// Checks and compiles `wasm` (once per code hash); its hash.
    fn prepare(&self, wasm: &[u8]) -> Result<CodeHash, ExecError> {
        Ok(Runtime {
            inner: self.tx().rt.clone(),
        }
        .prepare_code(wasm)?)
    }

    /// Instantiates `code_hash` from `origin`, transferring `value` and running the constructor
    /// selected by `input`.
    pub fn instantiate(
        &mut self,
        origin: AccountId,
        code_hash: CodeHash,
        value: Balance,
        input: Vec<u8>,
        salt: &[u8],
        gas_limit: Gas,
    ) -> Result<Outcome, ExecError> {
        self.top_level(origin, gas_limit, |tx, gas| {
            let (tx, used, r) = do_instantiate(tx, origin, code_hash, value, input, salt, gas);
            (tx, used, r.map(|(addr, data)| (Some(addr), data)))
        })
    }

    /// Uploads `wasm` and instantiates it as one call: the code is written inside the call,
    /// so its bytes count toward the call's storage deposit and write bound like any other
    /// write, and a constructor that reverts or fails leaves no code behind. `wasm` must
    /// hash to `code_hash`; code the state already holds is not written again.
    #[allow(
        clippy::too_many_arguments,
        reason = "the arguments of `instantiate`, plus the code"
    )]
    pub fn instantiate_with_code(
        &mut self,
        origin: AccountId,
        wasm: &[u8],
        code_hash: CodeHash,
        value: Balance,
        input: Vec<u8>,
        salt: &[u8],
        gas_limit: Gas,
    ) -> Result<Outcome, ExecError> {
        if self.prepare(wasm)? != code_hash {
            return Err(ExecError::Decode(
                "the uploaded code does not hash to the code hash instantiated",
            ));
        }
        self.top_level(origin, gas_limit, |mut tx, gas| {
            let before = tx.overlay.checkpoint();
            if let Err(e) = write_code(&mut tx, code_hash, wasm) {
                return (tx, 0, Err(Failure::InCallee(e)));
            }
            let (mut tx, used, r) = do_instantiate(tx, origin, code_hash, value, input, salt, gas);
            if !matches!(&r, Ok((_, data)) if !data.reverted()) {
                tx.overlay.rollback(before);
            }
            (tx, used, r.map(|(addr, data)| (Some(addr), data)))
        })
    }

    /// Makes `payer` pay the storage deposit of this session's calls instead of their origin
    /// (`None`: the origin pays). For calls whose origin holds no key and no balance.
    pub fn set_deposit_payer(&mut self, payer: Option<AccountId>) {
        if let Some(tx) = self.tx.as_mut() {
            tx.deposit_payer = payer;
        }
    }

    /// Calls the contract `dest` from `origin` with `value` and `input`.
    pub fn call(
        &mut self,
        origin: AccountId,
        dest: AccountId,
        value: Balance,
        input: Vec<u8>,
        gas_limit: Gas,
    ) -> Result<Outcome, ExecError> {
        self.top_level(origin, gas_limit, |tx, gas| {
            let (tx, used, r) = do_call(tx, origin, dest, value, input, gas, false);
            (tx, used, r.map(|data| (None, data)))
        })
    }

    #[allow(
        clippy::expect_used,
        reason = "the session state is present between calls"
    )]
    fn top_level(
        &mut self,
        origin: AccountId,
        gas_limit: Gas,
        run: impl FnOnce(Box<TxState>, Gas) -> CallResult<(Option<AccountId>, ReturnData)>,
    ) -> Result<Outcome, ExecError> {
        let mut tx = self
            .tx
            .take()
            .expect("session state is present between calls");
        let limits = &tx.rt.config.limits;
        let gas_limit = gas_limit.min(limits.max_gas_per_call);
        let deadline = match tx.ctx.mode {
            Mode::Query => Some(Instant::now() + limits.query_time_limit),
            Mode::Command => None,
        };
        tx.origin = origin;
        tx.deadline = deadline;
        tx.debug.clear();
        tx.nested_error = None;
        tx.usage = Usage {
            written_at_start: tx.overlay.written(),
            ..Usage::default()
        };
        let events_before = tx.events.len();
        let start = tx.overlay.checkpoint();
        let (mut tx, gas_used, result) = run(tx, gas_limit);
        let result = match result {
            Ok(r) if !r.1.reverted() => match tx
                .check_written(0)
                .and_then(|()| tx.settle_storage_usage(start))
            {
                Ok(()) => Ok(r),
                Err(e) => {
                    tx.overlay.rollback(start);
                    Err(Failure::InCallee(e))
                }
            },
            other => other,
        };
        let events = tx.events.split_off(events_before);
        let debug_message = std::mem::take(&mut tx.debug);
        let price = i128::from(tx.rt.config.limits.storage_deposit_per_byte);
        let storage_deposit = i128::from(tx.usage.storage_growth).saturating_mul(price);
        self.tx = Some(tx);
        let (address, ret) = result.map_err(Failure::into_error)?;
        let reverted = ret.reverted();
        Ok(Outcome {
            data: ret.data,
            reverted,
            gas_used,
            events: if reverted { Vec::new() } else { events },
            debug_message,
            address: if reverted { None } else { address },
            storage_deposit: if reverted { 0 } else { storage_deposit },
        })
    }

    /// The native balance of `who`, including this session's writes.
    pub fn balance(&self, who: &AccountId) -> Result<Balance, ExecError> {
        self.tx().balance(who)
    }

    /// Sets the native balance of `who` (genesis and dev funding).
    pub fn set_balance(&mut self, who: &AccountId, amount: Balance) {
        self.tx_mut().set_balance(who, amount);
    }

    /// Whether the state holds the code `hash` (this session's writes included).
    pub fn code_exists(&self, hash: &CodeHash) -> Result<bool, ExecError> {
        self.tx().code_exists(hash)
    }

    /// The contract at `addr`, if any.
    pub fn contract_info(&self, addr: &AccountId) -> Result<Option<ContractInfo>, ExecError> {
        self.tx().contract_info(addr)
    }

    /// The writes made so far.
    pub fn changes(&self) -> &ChangeSet {
        self.tx().overlay.changes()
    }

    /// Ends the session, returning its writes for the caller to commit or drop.
    #[allow(
        clippy::expect_used,
        reason = "the session state is present between calls"
    )]
    pub fn into_changes(mut self) -> ChangeSet {
        self.tx
            .take()
            .expect("session state is present between calls")
            .overlay
            .into_changes()
    }
}

/// Writes `wasm` as the code `hash` unless the state holds it already.
fn write_code(tx: &mut TxState, hash: CodeHash, wasm: &[u8]) -> Result<(), ExecError> {
    if !tx.code_exists(&hash)? {
        tx.overlay.set(StateKey::Code(hash), Some(wasm.to_vec()));
    }
    Ok(())
}
