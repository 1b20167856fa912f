//! The pallet-contracts host API (`seal0`, `seal1`, `seal2`) that ink! 3, 4 and 5 import.
//!
//! Semantics follow pallet-contracts: pointers and lengths from the contract are checked
//! against its memory (a bad one traps with [`ExecError::OutOfBounds`]), outputs go through the
//! `(out_ptr, out_len_ptr)` protocol, and expected failures are return codes, not traps.
//! Functions with the `#[prefixed_alias]` attribute upstream are registered under both the
//! plain and the `seal_`-prefixed name.

use parity_scale_codec::{Compact, Decode, Encode};
use phat_primitives::{
    blake2_128, blake2_256, AccountId, Balance, CodeHash, ContractInfo, Event, Gas, Hash, StateKey,
};
use sha2::Digest as _;
use wasmtime::{Caller, IntoFunc, Linker};

use crate::error::ExecError;
use crate::exec::{do_call, do_delegate_call, do_instantiate, Exit, Failure, Frame, TxState};
use crate::extension::{ExtensionEnv, ExtensionError, ExtensionId, ExtensionState};

type R<T> = wasmtime::Result<T>;
type C<'a> = Caller<'a, Frame>;

/// "None" for lengths and pointers, as in pallet-contracts.
const SENTINEL: u32 = u32::MAX;

/// Return codes of host functions (pallet-contracts' `ReturnErrorCode`).
#[allow(dead_code)]
mod code {
    pub const SUCCESS: u32 = 0;
    pub const CALLEE_TRAPPED: u32 = 1;
    pub const CALLEE_REVERTED: u32 = 2;
    pub const KEY_NOT_FOUND: u32 = 3;
    pub const TRANSFER_FAILED: u32 = 5;
    pub const CODE_NOT_FOUND: u32 = 7;
    pub const NOT_CALLABLE: u32 = 8;
    pub const CALL_RUNTIME_FAILED: u32 = 10;
    pub const ECDSA_RECOVERY_FAILED: u32 = 11;
    pub const SR25519_VERIFY_FAILED: u32 = 12;
    pub const XCM_EXECUTION_FAILED: u32 = 13;
    pub const XCM_SEND_FAILED: u32 = 14;
}

/// `call` flags.
mod flags {
    pub const FORWARD_INPUT: u32 = 1;
    pub const CLONE_INPUT: u32 = 2;
    pub const TAIL_CALL: u32 = 4;
    pub const ALLOW_REENTRY: u32 = 8;
    pub const ALL: u32 = FORWARD_INPUT | CLONE_INPUT | TAIL_CALL | ALLOW_REENTRY;
}

// ---------------------------------------------------------------------------------------------
// Helpers: errors, gas, memory.

/// Ends the frame with `err`.
fn fail<T>(c: &mut C<'_>, err: ExecError) -> R<T> {
    let msg = err.to_string();
    c.data_mut().exit = Some(Exit::Error(err));
    Err(wasmtime::Error::msg(msg))
}

fn charge(c: &mut C<'_>, gas: Gas) -> R<()> {
    let fuel = c.get_fuel()?;
    if fuel < gas {
        c.set_fuel(0)?;
        return fail(c, ExecError::OutOfGas);
    }
    c.set_fuel(fuel - gas)
}

/// Charges the base host-call cost plus `bytes` copied.
/// Also enforces the per-call write bound on whatever the previous host call wrote.
fn charge_base(c: &mut C<'_>, extra: Gas, bytes: u32) -> R<()> {
    let tx = c.data_mut().tx();
    if let Err(e) = tx.check_written(0) {
        return fail(c, e);
    }
    let g = &tx.config().gas;
    let cost = g.host_call + extra + g.per_byte * Gas::from(bytes);
    charge(c, cost)
}

fn gas(c: &mut C<'_>) -> crate::config::GasSchedule {
    c.data_mut().tx().config().gas.clone()
}

fn memory(c: &C<'_>) -> wasmtime::Memory {
    c.data()
        .memory
        .expect("memory is set right after instantiation")
}

fn read(c: &mut C<'_>, ptr: u32, len: u32, what: &'static str) -> R<Vec<u8>> {
    let mem = memory(c);
    let data = mem.data(&*c);
    match data.get(ptr as usize..(ptr as usize).saturating_add(len as usize)) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => fail(c, ExecError::OutOfBounds(what)),
    }
}

fn read_array<const N: usize>(c: &mut C<'_>, ptr: u32, what: &'static str) -> R<[u8; N]> {
    let bytes = read(c, ptr, N as u32, what)?;
    Ok(bytes.try_into().expect("read returns exactly N bytes"))
}

fn read_as<T: Decode>(c: &mut C<'_>, ptr: u32, len: u32, what: &'static str) -> R<T> {
    let bytes = read(c, ptr, len, what)?;
    match T::decode(&mut &bytes[..]) {
        Ok(v) => Ok(v),
        Err(_) => fail(c, ExecError::Decode(what)),
    }
}

fn read_u128(c: &mut C<'_>, ptr: u32, what: &'static str) -> R<u128> {
    Ok(u128::from_le_bytes(read_array::<16>(c, ptr, what)?))
}

fn write(c: &mut C<'_>, ptr: u32, bytes: &[u8], what: &'static str) -> R<()> {
    let mem = memory(c);
    let data = mem.data_mut(&mut *c);
    match data.get_mut(ptr as usize..(ptr as usize).saturating_add(bytes.len())) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => fail(c, ExecError::OutOfBounds(what)),
    }
}

/// Writes `bytes` to `out_ptr` if the buffer size stored at `out_len_ptr` suffices, and the
/// length to `out_len_ptr`. With `allow_skip`, an `out_ptr` of [`SENTINEL`] skips it.
fn write_output(
    c: &mut C<'_>,
    out_ptr: u32,
    out_len_ptr: u32,
    bytes: &[u8],
    allow_skip: bool,
    what: &'static str,
) -> R<()> {
    if allow_skip && out_ptr == SENTINEL {
        return Ok(());
    }
    let capacity = u32::from_le_bytes(read_array::<4>(c, out_len_ptr, what)?);
    if (capacity as usize) < bytes.len() {
        return fail(c, ExecError::OutputBufferTooSmall(what));
    }
    let per_byte = gas(c).per_byte;
    charge(c, per_byte * bytes.len() as Gas)?;
    write(c, out_ptr, bytes, what)?;
    write(c, out_len_ptr, &(bytes.len() as u32).to_le_bytes(), what)
}

// ---------------------------------------------------------------------------------------------
// Storage.

fn read_key(c: &mut C<'_>, ptr: u32, len: Option<u32>, what: &'static str) -> R<Vec<u8>> {
    let len = len.unwrap_or(32);
    let max = c.data_mut().tx().config().limits.max_storage_key_len;
    if len > max {
        return fail(
            c,
            ExecError::TooLarge {
                what: "storage key",
                len: len.into(),
                max: max.into(),
            },
        );
    }
    read(c, ptr, len, what)
}

fn storage_key(c: &mut C<'_>, key: Vec<u8>) -> StateKey {
    StateKey::Storage(c.data().storage_id, key)
}

fn storage_get(c: &mut C<'_>, key: &StateKey) -> R<Option<Vec<u8>>> {
    match c.data_mut().tx().get(key) {
        Ok(v) => Ok(v),
        Err(e) => fail(c, e),
    }
}

fn set_storage_impl(
    c: &mut C<'_>,
    key_ptr: u32,
    key_len: Option<u32>,
    value_ptr: u32,
    value_len: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, value_len)?;
    let max = c.data_mut().tx().config().limits.max_storage_value_len;
    if value_len > max {
        return fail(
            c,
            ExecError::TooLarge {
                what: "storage value",
                len: value_len.into(),
                max: max.into(),
            },
        );
    }
    let key = read_key(c, key_ptr, key_len, "set_storage")?;
    charge(
        c,
        g.storage_byte * (key.len() as Gas + Gas::from(value_len)),
    )?;
    let key = storage_key(c, key);
    let size = crate::state::Overlay::write_size(&key, value_len as usize);
    if let Err(e) = c.data_mut().tx().check_written(size) {
        return fail(c, e);
    }
    let value = read(c, value_ptr, value_len, "set_storage")?;
    let old = storage_get(c, &key)?;
    c.data_mut().tx().overlay.set(key, Some(value));
    Ok(old.map_or(SENTINEL, |v| v.len() as u32))
}

fn clear_storage_impl(c: &mut C<'_>, key_ptr: u32, key_len: Option<u32>) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, 0)?;
    let key = read_key(c, key_ptr, key_len, "clear_storage")?;
    let key = storage_key(c, key);
    let old = storage_get(c, &key)?;
    if old.is_some() {
        c.data_mut().tx().overlay.set(key, None);
    }
    Ok(old.map_or(SENTINEL, |v| v.len() as u32))
}

fn get_storage_impl(
    c: &mut C<'_>,
    key_ptr: u32,
    key_len: Option<u32>,
    out_ptr: u32,
    out_len_ptr: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access, 0)?;
    let key = read_key(c, key_ptr, key_len, "get_storage")?;
    let key = storage_key(c, key);
    match storage_get(c, &key)? {
        Some(value) => {
            write_output(c, out_ptr, out_len_ptr, &value, false, "get_storage")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::KEY_NOT_FOUND),
    }
}

fn contains_storage_impl(c: &mut C<'_>, key_ptr: u32, key_len: Option<u32>) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access, 0)?;
    let key = read_key(c, key_ptr, key_len, "contains_storage")?;
    let key = storage_key(c, key);
    Ok(storage_get(c, &key)?.map_or(SENTINEL, |v| v.len() as u32))
}

fn take_storage(c: C<'_>, key_ptr: u32, key_len: u32, out_ptr: u32, out_len_ptr: u32) -> R<u32> {
    let mut c = c;
    let c = &mut c;
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, 0)?;
    let key = read_key(c, key_ptr, Some(key_len), "take_storage")?;
    let key = storage_key(c, key);
    match storage_get(c, &key)? {
        Some(value) => {
            c.data_mut().tx().overlay.set(key, None);
            write_output(c, out_ptr, out_len_ptr, &value, false, "take_storage")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::KEY_NOT_FOUND),
    }
}

// ---------------------------------------------------------------------------------------------
// Calls, instantiation, termination.

/// Maps a failed nested call to the code the calling contract sees, or traps the caller.
fn failure_code(c: &mut C<'_>, failure: Failure) -> R<u32> {
    match failure {
        // Worker-dependent failures and exceeded bounds end the whole call: a contract must
        // not observe (and store) what another worker would not see.
        Failure::InCallee(e) if e.aborts_call() => fail(c, e),
        Failure::InCallee(e) => {
            c.data_mut().tx().nested_error = Some(e);
            Ok(code::CALLEE_TRAPPED)
        }
        Failure::Before(ExecError::ContractNotFound(_)) => Ok(code::NOT_CALLABLE),
        Failure::Before(ExecError::CodeNotFound(_)) => Ok(code::CODE_NOT_FOUND),
        Failure::Before(ExecError::TransferFailed { .. }) => Ok(code::TRANSFER_FAILED),
        Failure::Before(e) => fail(c, e),
    }
}

/// Gas a nested call may use: all that is left when `requested` is 0, else the smaller.
fn nested_gas(c: &mut C<'_>, requested: u64) -> R<Gas> {
    let left = c.get_fuel()?;
    Ok(if requested == 0 {
        left
    } else {
        requested.min(left)
    })
}

fn settle_gas(c: &mut C<'_>, available: Gas, used: Gas) -> R<()> {
    c.set_fuel(available.saturating_sub(used))
}

#[derive(Clone, Copy)]
enum CallKind {
    Call {
        callee_ptr: u32,
        value_ptr: u32,
        gas: u64,
    },
    Delegate {
        code_hash_ptr: u32,
    },
}

#[allow(clippy::too_many_arguments)]
fn call_impl(
    c: &mut C<'_>,
    flags_bits: u32,
    kind: CallKind,
    input_ptr: u32,
    input_len: u32,
    out_ptr: u32,
    out_len_ptr: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.call, input_len)?;
    if flags_bits & !flags::ALL != 0 {
        return fail(c, ExecError::InvalidCallFlags(flags_bits));
    }
    let input = if flags_bits & flags::CLONE_INPUT != 0 {
        match c.data().input.clone() {
            Some(i) => i,
            None => return fail(c, ExecError::InputForwarded),
        }
    } else if flags_bits & flags::FORWARD_INPUT != 0 {
        match c.data_mut().input.take() {
            Some(i) => i,
            None => return fail(c, ExecError::InputForwarded),
        }
    } else {
        let max = c.data_mut().tx().config().limits.max_output_len;
        if input_len > max {
            return fail(
                c,
                ExecError::TooLarge {
                    what: "call input",
                    len: input_len.into(),
                    max: max.into(),
                },
            );
        }
        read(c, input_ptr, input_len, "call input")?
    };
    let (available, outcome) = match kind {
        CallKind::Call {
            callee_ptr,
            value_ptr,
            gas: requested,
        } => {
            let callee = AccountId(read_array(c, callee_ptr, "call callee")?);
            let value = read_u128(c, value_ptr, "call value")?;
            let available = nested_gas(c, requested)?;
            let frame = c.data_mut();
            let tx = frame.tx.take().expect("tx present while running");
            let caller = frame.address;
            let allow_reentry = flags_bits & flags::ALLOW_REENTRY != 0;
            let (tx, used, r) = do_call(tx, caller, callee, value, input, available, allow_reentry);
            c.data_mut().tx = Some(tx);
            (available, (used, r))
        }
        CallKind::Delegate { code_hash_ptr } => {
            if flags_bits & flags::ALLOW_REENTRY != 0 {
                return fail(c, ExecError::InvalidCallFlags(flags_bits));
            }
            let code_hash = CodeHash(read_array(c, code_hash_ptr, "delegate_call code hash")?);
            let available = nested_gas(c, 0)?;
            let frame = c.data_mut();
            let tx = frame.tx.take().expect("tx present while running");
            let (tx, used, r) = do_delegate_call(tx, frame, code_hash, input, available);
            c.data_mut().tx = Some(tx);
            (available, (used, r))
        }
    };
    let (used, result) = outcome;
    settle_gas(c, available, used)?;
    match result {
        Ok(ret) => {
            if flags_bits & flags::TAIL_CALL != 0 {
                c.data_mut().exit = Some(Exit::Return(ret.flags, ret.data));
                return Err(wasmtime::Error::msg("tail call returned"));
            }
            write_output(c, out_ptr, out_len_ptr, &ret.data, true, "call output")?;
            Ok(if ret.reverted() {
                code::CALLEE_REVERTED
            } else {
                code::SUCCESS
            })
        }
        Err(f) => failure_code(c, f),
    }
}

/// A `call` of any ABI version: the input is `(ptr, len)`, the output `(ptr, len_ptr)`.
fn value_call(
    c: &mut C<'_>,
    flags: u32,
    callee_ptr: u32,
    gas: u64,
    value_ptr: u32,
    (input_ptr, input_len): (u32, u32),
    (out_ptr, out_len_ptr): (u32, u32),
) -> R<u32> {
    let kind = CallKind::Call {
        callee_ptr,
        value_ptr,
        gas,
    };
    call_impl(c, flags, kind, input_ptr, input_len, out_ptr, out_len_ptr)
}

#[allow(clippy::too_many_arguments)]
fn instantiate_impl(
    c: &mut C<'_>,
    code_hash_ptr: u32,
    requested_gas: u64,
    value_ptr: u32,
    input_ptr: u32,
    input_len: u32,
    address_ptr: u32,
    address_len_ptr: u32,
    out_ptr: u32,
    out_len_ptr: u32,
    salt_ptr: u32,
    salt_len: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.instantiate, input_len.saturating_add(salt_len))?;
    let max = c.data_mut().tx().config().limits.max_output_len;
    if input_len > max || salt_len > max {
        return fail(
            c,
            ExecError::TooLarge {
                what: "instantiate input",
                len: input_len.max(salt_len).into(),
                max: max.into(),
            },
        );
    }
    let value = read_u128(c, value_ptr, "instantiate value")?;
    let code_hash = CodeHash(read_array(c, code_hash_ptr, "instantiate code hash")?);
    let input = read(c, input_ptr, input_len, "instantiate input")?;
    let salt = read(c, salt_ptr, salt_len, "instantiate salt")?;
    let available = nested_gas(c, requested_gas)?;
    let frame = c.data_mut();
    let tx = frame.tx.take().expect("tx present while running");
    let deployer = frame.address;
    let (tx, used, result) =
        do_instantiate(tx, deployer, code_hash, value, input, &salt, available);
    c.data_mut().tx = Some(tx);
    settle_gas(c, available, used)?;
    match result {
        Ok((address, ret)) => {
            if !ret.reverted() {
                write_output(
                    c,
                    address_ptr,
                    address_len_ptr,
                    &address.0,
                    true,
                    "instantiate address",
                )?;
            }
            write_output(
                c,
                out_ptr,
                out_len_ptr,
                &ret.data,
                true,
                "instantiate output",
            )?;
            Ok(if ret.reverted() {
                code::CALLEE_REVERTED
            } else {
                code::SUCCESS
            })
        }
        Err(f) => failure_code(c, f),
    }
}

fn terminate_impl(c: &mut C<'_>, beneficiary_ptr: u32) -> R<()> {
    let g = gas(c);
    charge_base(c, g.storage_write, 0)?;
    let beneficiary = AccountId(read_array(c, beneficiary_ptr, "terminate beneficiary")?);
    let address = c.data().address;
    let tx = c.data_mut().tx();
    if tx.stack.iter().filter(|a| **a == address).count() > 1 {
        return fail(c, ExecError::TerminatedWhileReentrant(address));
    }
    let result = (|| {
        let balance = tx.balance(&address)?;
        tx.transfer(&address, &beneficiary, balance)?;
        tx.overlay.set(StateKey::Contract(address), None);
        Ok(())
    })();
    if let Err(e) = result {
        return fail(c, e);
    }
    c.data_mut().exit = Some(Exit::Terminated);
    Err(wasmtime::Error::msg("terminated"))
}

// ---------------------------------------------------------------------------------------------
// Registration.

/// Registers `f` under `name` and under `seal_{name}`, like pallet-contracts' `#[prefixed_alias]`.
fn prefixed<P, Res>(
    linker: &mut Linker<Frame>,
    module: &str,
    name: &str,
    f: impl IntoFunc<Frame, P, Res> + Clone,
) -> wasmtime::Result<()> {
    linker.func_wrap(module, name, f.clone())?;
    linker.func_wrap(module, &format!("seal_{name}"), f)?;
    Ok(())
}

/// Writes a SCALE-encodable value through the output protocol (the common "getter" shape).
fn getter<T: Encode>(
    c: &mut C<'_>,
    out_ptr: u32,
    out_len_ptr: u32,
    what: &'static str,
    f: impl FnOnce(&mut Frame) -> Result<T, ExecError>,
) -> R<()> {
    charge_base(c, 0, 0)?;
    let value = match f(c.data_mut()) {
        Ok(v) => v.encode(),
        Err(e) => return fail(c, e),
    };
    write_output(c, out_ptr, out_len_ptr, &value, false, what)
}

fn hash_impl<const N: usize>(
    c: &mut C<'_>,
    input_ptr: u32,
    input_len: u32,
    output_ptr: u32,
    f: fn(&[u8]) -> [u8; N],
) -> R<()> {
    let g = gas(c);
    charge_base(c, g.hash, input_len)?;
    let input = read(c, input_ptr, input_len, "hash input")?;
    write(c, output_ptr, &f(&input), "hash output")
}

fn sha2_256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

fn keccak_256(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

/// Defines every host function in `linker`.
pub(crate) fn define(linker: &mut Linker<Frame>) -> wasmtime::Result<()> {
    // --- storage
    prefixed(
        linker,
        "seal0",
        "set_storage",
        |mut c: C<'_>, k: u32, v: u32, vl: u32| -> R<()> {
            set_storage_impl(&mut c, k, None, v, vl).map(|_| ())
        },
    )?;
    prefixed(
        linker,
        "seal1",
        "set_storage",
        |mut c: C<'_>, k: u32, v: u32, vl: u32| -> R<u32> {
            set_storage_impl(&mut c, k, None, v, vl)
        },
    )?;
    prefixed(
        linker,
        "seal2",
        "set_storage",
        |mut c: C<'_>, k: u32, kl: u32, v: u32, vl: u32| -> R<u32> {
            set_storage_impl(&mut c, k, Some(kl), v, vl)
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "clear_storage",
        |mut c: C<'_>, k: u32| -> R<()> { clear_storage_impl(&mut c, k, None).map(|_| ()) },
    )?;
    prefixed(
        linker,
        "seal1",
        "clear_storage",
        |mut c: C<'_>, k: u32, kl: u32| -> R<u32> { clear_storage_impl(&mut c, k, Some(kl)) },
    )?;
    prefixed(
        linker,
        "seal0",
        "get_storage",
        |mut c: C<'_>, k: u32, o: u32, ol: u32| -> R<u32> {
            get_storage_impl(&mut c, k, None, o, ol)
        },
    )?;
    prefixed(
        linker,
        "seal1",
        "get_storage",
        |mut c: C<'_>, k: u32, kl: u32, o: u32, ol: u32| -> R<u32> {
            get_storage_impl(&mut c, k, Some(kl), o, ol)
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "contains_storage",
        |mut c: C<'_>, k: u32| -> R<u32> { contains_storage_impl(&mut c, k, None) },
    )?;
    prefixed(
        linker,
        "seal1",
        "contains_storage",
        |mut c: C<'_>, k: u32, kl: u32| -> R<u32> { contains_storage_impl(&mut c, k, Some(kl)) },
    )?;
    prefixed(linker, "seal0", "take_storage", take_storage)?;

    // --- value
    prefixed(
        linker,
        "seal0",
        "transfer",
        |mut c: C<'_>, acc: u32, _al: u32, val: u32, _vl: u32| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            let to = AccountId(read_array(&mut c, acc, "transfer account")?);
            let value = read_u128(&mut c, val, "transfer value")?;
            let from = c.data().address;
            match c.data_mut().tx().transfer(&from, &to, value) {
                Ok(()) => Ok(code::SUCCESS),
                Err(ExecError::TransferFailed { .. }) => Ok(code::TRANSFER_FAILED),
                Err(e) => fail(&mut c, e),
            }
        },
    )?;

    // --- calls
    prefixed(
        linker,
        "seal0",
        "call",
        |mut c: C<'_>,
         callee: u32,
         _cl: u32,
         gas: u64,
         val: u32,
         _vl: u32,
         i: u32,
         il: u32,
         o: u32,
         ol: u32|
         -> R<u32> {
            value_call(
                &mut c,
                flags::ALLOW_REENTRY,
                callee,
                gas,
                val,
                (i, il),
                (o, ol),
            )
        },
    )?;
    prefixed(
        linker,
        "seal1",
        "call",
        |mut c: C<'_>,
         fl: u32,
         callee: u32,
         gas: u64,
         val: u32,
         i: u32,
         il: u32,
         o: u32,
         ol: u32|
         -> R<u32> { value_call(&mut c, fl, callee, gas, val, (i, il), (o, ol)) },
    )?;
    linker.func_wrap(
        "seal2",
        "call",
        |mut c: C<'_>,
         fl: u32,
         callee: u32,
         gas: u64,
         _proof: u64,
         _dep: u32,
         val: u32,
         i: u32,
         il: u32,
         o: u32,
         ol: u32|
         -> R<u32> { value_call(&mut c, fl, callee, gas, val, (i, il), (o, ol)) },
    )?;
    prefixed(
        linker,
        "seal0",
        "delegate_call",
        |mut c: C<'_>, fl: u32, ch: u32, i: u32, il: u32, o: u32, ol: u32| -> R<u32> {
            call_impl(
                &mut c,
                fl,
                CallKind::Delegate { code_hash_ptr: ch },
                i,
                il,
                o,
                ol,
            )
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "instantiate",
        |mut c: C<'_>,
         ch: u32,
         _chl: u32,
         gas: u64,
         val: u32,
         _vl: u32,
         i: u32,
         il: u32,
         a: u32,
         al: u32,
         o: u32,
         ol: u32,
         s: u32,
         sl: u32|
         -> R<u32> { instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl) },
    )?;
    prefixed(
        linker,
        "seal1",
        "instantiate",
        |mut c: C<'_>,
         ch: u32,
         gas: u64,
         val: u32,
         i: u32,
         il: u32,
         a: u32,
         al: u32,
         o: u32,
         ol: u32,
         s: u32,
         sl: u32|
         -> R<u32> { instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl) },
    )?;
    linker.func_wrap(
        "seal2",
        "instantiate",
        |mut c: C<'_>,
         ch: u32,
         gas: u64,
         _proof: u64,
         _dep: u32,
         val: u32,
         i: u32,
         il: u32,
         a: u32,
         al: u32,
         o: u32,
         ol: u32,
         s: u32,
         sl: u32|
         -> R<u32> { instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl) },
    )?;
    prefixed(
        linker,
        "seal0",
        "terminate",
        |mut c: C<'_>, b: u32, _bl: u32| -> R<()> { terminate_impl(&mut c, b) },
    )?;
    prefixed(
        linker,
        "seal1",
        "terminate",
        |mut c: C<'_>, b: u32| -> R<()> { terminate_impl(&mut c, b) },
    )?;

    // --- input and output
    prefixed(
        linker,
        "seal0",
        "input",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            charge_base(&mut c, 0, 0)?;
            let Some(input) = c.data_mut().input.take() else {
                return fail(&mut c, ExecError::InputForwarded);
            };
            let r = write_output(&mut c, o, ol, &input, false, "input");
            c.data_mut().input = Some(input);
            r
        },
    )?;
    linker.func_wrap(
        "seal0",
        "seal_return",
        |mut c: C<'_>, fl: u32, d: u32, dl: u32| -> R<()> {
            charge_base(&mut c, 0, dl)?;
            let max = c.data_mut().tx().config().limits.max_output_len;
            if dl > max {
                return fail(
                    &mut c,
                    ExecError::TooLarge {
                        what: "return value",
                        len: dl.into(),
                        max: max.into(),
                    },
                );
            }
            let data = read(&mut c, d, dl, "seal_return")?;
            c.data_mut().exit = Some(Exit::Return(fl, data));
            Err(wasmtime::Error::msg("returned"))
        },
    )?;

    // --- context
    prefixed(
        linker,
        "seal0",
        "caller",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "caller", |f| Ok(f.caller))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "address",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "address", |f| Ok(f.address))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "value_transferred",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "value_transferred", |f| Ok(f.value))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "balance",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "balance", |f| {
                let a = f.address;
                f.tx().balance(&a)
            })
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "minimum_balance",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "minimum_balance", |_| Ok(0 as Balance))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "now",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "now", |f| Ok(f.tx().ctx.timestamp))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "block_number",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "block_number", |f| {
                Ok(f.tx().ctx.block_number)
            })
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "gas_left",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            let left = c.get_fuel()?;
            getter(&mut c, o, ol, "gas_left", |_| Ok(left))
        },
    )?;
    linker.func_wrap(
        "seal1",
        "gas_left",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            let left = c.get_fuel()?;
            getter(&mut c, o, ol, "gas_left", |_| {
                Ok((Compact(left), Compact(0u64)))
            })
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "weight_to_fee",
        |mut c: C<'_>, gas: u64, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "weight_to_fee", |_| Ok(Balance::from(gas)))
        },
    )?;
    linker.func_wrap(
        "seal1",
        "weight_to_fee",
        |mut c: C<'_>, gas: u64, _proof: u64, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "weight_to_fee", |_| Ok(Balance::from(gas)))
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "random",
        |mut c: C<'_>, s: u32, sl: u32, o: u32, ol: u32| -> R<()> {
            let seed = random_seed(&mut c, s, sl)?;
            getter(&mut c, o, ol, "random", |_| Ok(seed))
        },
    )?;
    prefixed(
        linker,
        "seal1",
        "random",
        |mut c: C<'_>, s: u32, sl: u32, o: u32, ol: u32| -> R<()> {
            let seed = random_seed(&mut c, s, sl)?;
            getter(&mut c, o, ol, "random", |f| {
                Ok((seed, f.tx().ctx.block_number))
            })
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "caller_is_origin",
        |mut c: C<'_>| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            let caller = c.data().caller;
            Ok(u32::from(c.data_mut().tx().origin == caller))
        },
    )?;
    linker.func_wrap("seal0", "caller_is_root", |mut c: C<'_>| -> R<u32> {
        charge_base(&mut c, 0, 0)?;
        Ok(0)
    })?;
    prefixed(
        linker,
        "seal0",
        "is_contract",
        |mut c: C<'_>, a: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.storage_access, 0)?;
            let addr = AccountId(read_array(&mut c, a, "is_contract")?);
            match c.data_mut().tx().contract_info(&addr) {
                Ok(info) => Ok(u32::from(info.is_some())),
                Err(e) => fail(&mut c, e),
            }
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "code_hash",
        |mut c: C<'_>, a: u32, o: u32, ol: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.storage_access, 0)?;
            let addr = AccountId(read_array(&mut c, a, "code_hash")?);
            match c.data_mut().tx().contract_info(&addr) {
                Ok(Some(info)) => {
                    write_output(&mut c, o, ol, &info.code_hash.0, false, "code_hash")?;
                    Ok(code::SUCCESS)
                }
                Ok(None) => Ok(code::KEY_NOT_FOUND),
                Err(e) => fail(&mut c, e),
            }
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "own_code_hash",
        |mut c: C<'_>, o: u32, ol: u32| -> R<()> {
            getter(&mut c, o, ol, "own_code_hash", |f| {
                let a = f.address;
                Ok(own_info(f.tx(), &a)?.code_hash)
            })
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "set_code_hash",
        |mut c: C<'_>, ch: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.storage_access + g.storage_write, 0)?;
            let hash = CodeHash(read_array(&mut c, ch, "set_code_hash")?);
            let addr = c.data().address;
            let tx = c.data_mut().tx();
            let result = (|| {
                if !tx.code_exists(&hash)? {
                    return Ok(code::CODE_NOT_FOUND);
                }
                let mut info = own_info(tx, &addr)?;
                info.code_hash = hash;
                tx.overlay
                    .set(StateKey::Contract(addr), Some(info.encode()));
                Ok(code::SUCCESS)
            })();
            result.or_else(|e| fail(&mut c, e))
        },
    )?;
    linker.func_wrap("seal0", "reentrance_count", |mut c: C<'_>| -> R<u32> {
        charge_base(&mut c, 0, 0)?;
        let a = c.data().address;
        let n = c.data_mut().tx().stack.iter().filter(|x| **x == a).count();
        Ok(n.saturating_sub(1) as u32)
    })?;
    linker.func_wrap(
        "seal0",
        "account_reentrance_count",
        |mut c: C<'_>, p: u32| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            let a = AccountId(read_array(&mut c, p, "account_reentrance_count")?);
            Ok(c.data_mut().tx().stack.iter().filter(|x| **x == a).count() as u32)
        },
    )?;
    linker.func_wrap("seal0", "instantiation_nonce", |mut c: C<'_>| -> R<u64> {
        charge_base(&mut c, 0, 0)?;
        let r = c.data_mut().tx().instantiation_nonce();
        r.or_else(|e| fail(&mut c, e))
    })?;
    linker.func_wrap(
        "seal0",
        "lock_delegate_dependency",
        |mut c: C<'_>, _ch: u32| -> R<()> { charge_base(&mut c, 0, 0) },
    )?;
    linker.func_wrap(
        "seal0",
        "unlock_delegate_dependency",
        |mut c: C<'_>, _ch: u32| -> R<()> { charge_base(&mut c, 0, 0) },
    )?;

    // --- events and debugging
    prefixed(
        linker,
        "seal0",
        "deposit_event",
        |mut c: C<'_>, t: u32, tl: u32, d: u32, dl: u32| -> R<()> {
            deposit_event(&mut c, t, tl, d, dl)
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "debug_message",
        |mut c: C<'_>, p: u32, l: u32| -> R<u32> {
            let max = c.data_mut().tx().config().limits.max_debug_buffer_len as u32;
            let l = l.min(max);
            charge_base(&mut c, 0, l)?;
            let bytes = read(&mut c, p, l, "debug_message")?;
            if let Ok(msg) = std::str::from_utf8(&bytes) {
                c.data_mut().tx().append_debug(msg);
            }
            Ok(code::SUCCESS)
        },
    )?;

    // --- hashing
    prefixed(
        linker,
        "seal0",
        "hash_sha2_256",
        |mut c: C<'_>, i: u32, il: u32, o: u32| -> R<()> { hash_impl(&mut c, i, il, o, sha2_256) },
    )?;
    prefixed(
        linker,
        "seal0",
        "hash_keccak_256",
        |mut c: C<'_>, i: u32, il: u32, o: u32| -> R<()> {
            hash_impl(&mut c, i, il, o, keccak_256)
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "hash_blake2_256",
        |mut c: C<'_>, i: u32, il: u32, o: u32| -> R<()> {
            hash_impl(&mut c, i, il, o, blake2_256)
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "hash_blake2_128",
        |mut c: C<'_>, i: u32, il: u32, o: u32| -> R<()> {
            hash_impl(&mut c, i, il, o, blake2_128)
        },
    )?;

    // --- signatures
    prefixed(
        linker,
        "seal0",
        "ecdsa_recover",
        |mut c: C<'_>, s: u32, m: u32, o: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.signature, 0)?;
            let sig = read_array::<65>(&mut c, s, "ecdsa_recover signature")?;
            let msg = read_array::<32>(&mut c, m, "ecdsa_recover message")?;
            match crate::crypto::ecdsa_recover(&sig, &msg) {
                Some(key) => {
                    write(&mut c, o, &key, "ecdsa_recover output")?;
                    Ok(code::SUCCESS)
                }
                None => Ok(code::ECDSA_RECOVERY_FAILED),
            }
        },
    )?;
    prefixed(
        linker,
        "seal0",
        "ecdsa_to_eth_address",
        |mut c: C<'_>, k: u32, o: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.signature, 0)?;
            let key = read_array::<33>(&mut c, k, "ecdsa_to_eth_address key")?;
            match crate::crypto::ecdsa_to_eth_address(&key) {
                Some(addr) => {
                    write(&mut c, o, &addr, "ecdsa_to_eth_address output")?;
                    Ok(code::SUCCESS)
                }
                None => Ok(code::ECDSA_RECOVERY_FAILED),
            }
        },
    )?;
    linker.func_wrap(
        "seal0",
        "sr25519_verify",
        |mut c: C<'_>, s: u32, pk: u32, ml: u32, m: u32| -> R<u32> {
            let g = gas(&mut c);
            charge_base(&mut c, g.signature, ml)?;
            let sig = read_array::<64>(&mut c, s, "sr25519_verify signature")?;
            let key = read_array::<32>(&mut c, pk, "sr25519_verify key")?;
            let msg = read(&mut c, m, ml, "sr25519_verify message")?;
            Ok(if crate::crypto::sr25519_verify(&sig, &msg, &key) {
                code::SUCCESS
            } else {
                code::SR25519_VERIFY_FAILED
            })
        },
    )?;

    // --- chain extension and runtime calls
    prefixed(
        linker,
        "seal0",
        "call_chain_extension",
        |mut c: C<'_>, id: u32, i: u32, il: u32, o: u32, ol: u32| -> R<u32> {
            call_chain_extension(&mut c, id, i, il, o, ol)
        },
    )?;
    linker.func_wrap(
        "seal0",
        "call_runtime",
        |mut c: C<'_>, _p: u32, _l: u32| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            Ok(code::CALL_RUNTIME_FAILED)
        },
    )?;
    linker.func_wrap(
        "seal0",
        "xcm_execute",
        |mut c: C<'_>, _p: u32, _l: u32| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            Ok(code::XCM_EXECUTION_FAILED)
        },
    )?;
    linker.func_wrap(
        "seal0",
        "xcm_send",
        |mut c: C<'_>, _d: u32, _m: u32, _ml: u32, _o: u32| -> R<u32> {
            charge_base(&mut c, 0, 0)?;
            Ok(code::XCM_SEND_FAILED)
        },
    )?;
    Ok(())
}

fn own_info(tx: &mut crate::exec::TxState, addr: &AccountId) -> Result<ContractInfo, ExecError> {
    tx.contract_info(addr)?
        .ok_or(ExecError::ContractNotFound(*addr))
}

/// The deprecated `random`: deterministic, from the subject and the block number.
fn random_seed(c: &mut C<'_>, subject_ptr: u32, subject_len: u32) -> R<Hash> {
    let g = gas(c);
    charge_base(c, g.hash, subject_len)?;
    if subject_len > 32 {
        return fail(
            c,
            ExecError::TooLarge {
                what: "random subject",
                len: subject_len.into(),
                max: 32,
            },
        );
    }
    let subject = read(c, subject_ptr, subject_len, "random subject")?;
    let block = c.data_mut().tx().ctx.block_number;
    Ok(Hash(blake2_256(&(b"phat-random", subject, block).encode())))
}

fn deposit_event(
    c: &mut C<'_>,
    topics_ptr: u32,
    topics_len: u32,
    data_ptr: u32,
    data_len: u32,
) -> R<()> {
    let g = gas(c);
    charge_base(c, g.event, data_len.saturating_add(topics_len))?;
    let limits = c.data_mut().tx().config().limits.clone();
    if data_len > limits.max_event_len {
        return fail(
            c,
            ExecError::TooLarge {
                what: "event",
                len: data_len.into(),
                max: limits.max_event_len.into(),
            },
        );
    }
    // A SCALE Vec<[u8; 32]> of at most `max_event_topics` entries fits in this many bytes.
    let max_topic_bytes = 5 + 32 * limits.max_event_topics;
    if topics_len > max_topic_bytes {
        return fail(c, ExecError::TooManyTopics((topics_len / 32) as usize));
    }
    let topics: Vec<Hash> = if topics_len == 0 {
        Vec::new()
    } else {
        read_as(c, topics_ptr, topics_len, "event topics")?
    };
    if topics.len() > limits.max_event_topics as usize {
        return fail(c, ExecError::TooManyTopics(topics.len()));
    }
    charge(
        c,
        g.event_topic * topics.len() as Gas + g.event_byte * Gas::from(data_len),
    )?;
    let bytes = data_len as usize + 32 * topics.len();
    if let Err(e) = c.data_mut().tx().account_event(bytes) {
        return fail(c, e);
    }
    let data = read(c, data_ptr, data_len, "event data")?;
    let contract = c.data().address;
    c.data_mut().tx().events.push(Event {
        contract,
        topics,
        data,
    });
    Ok(())
}

fn call_chain_extension(
    c: &mut C<'_>,
    id: u32,
    input_ptr: u32,
    input_len: u32,
    out_ptr: u32,
    out_len_ptr: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.extension, input_len)?;
    let max = c.data_mut().tx().config().limits.max_output_len;
    if input_len > max {
        return fail(
            c,
            ExecError::TooLarge {
                what: "extension input",
                len: input_len.into(),
                max: max.into(),
            },
        );
    }
    let input = read(c, input_ptr, input_len, "call_chain_extension input")?;
    let gas_left = c.get_fuel()?;
    let frame = c.data_mut();
    let (caller, address) = (frame.caller, frame.address);
    let tx = frame.tx();
    let env = ExtensionEnv {
        mode: tx.ctx.mode,
        address,
        caller,
        origin: tx.origin,
        block_number: tx.ctx.block_number,
        timestamp: tx.ctx.timestamp,
        gas_left,
        deadline: tx.deadline,
    };
    let extension = tx.ctx.extension.clone();
    let id = ExtensionId::from(id);
    let result = extension.call(&env, &*tx, id, &input);
    match result {
        Ok(out) => {
            charge(c, out.gas)?;
            if out.output.len() > max as usize {
                return fail(
                    c,
                    ExecError::TooLarge {
                        what: "extension output",
                        len: out.output.len() as u64,
                        max: max.into(),
                    },
                );
            }
            write_output(
                c,
                out_ptr,
                out_len_ptr,
                &out.output,
                false,
                "call_chain_extension output",
            )?;
            Ok(out.status)
        }
        Err(ExtensionError::Unsupported) => fail(
            c,
            ExecError::UnsupportedExtension {
                extension: id.extension,
                function: id.function,
            },
        ),
        Err(ExtensionError::Failed(message)) => fail(
            c,
            ExecError::Extension {
                function: id.function,
                message,
            },
        ),
        Err(ExtensionError::Backend(message)) => fail(c, ExecError::Backend(message)),
    }
}

/// The session's state as chain extensions see it.
impl ExtensionState for TxState {
    fn balance(&self, who: &AccountId) -> Result<Balance, ExtensionError> {
        TxState::balance(self, who).map_err(backend_error)
    }

    fn code_exists(&self, hash: &CodeHash) -> Result<bool, ExtensionError> {
        TxState::code_exists(self, hash).map_err(backend_error)
    }
}

fn backend_error(err: ExecError) -> ExtensionError {
    match err {
        ExecError::Backend(message) => ExtensionError::Backend(message),
        other => ExtensionError::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(
            hex::encode(sha2_256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(keccak_256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
