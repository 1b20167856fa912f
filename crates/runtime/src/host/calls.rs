//! Calls, instantiation, termination: `transfer`, `call`, `delegate_call`, `instantiate`,
//! `terminate`, `set_code_hash` and the delegate-dependency locks.

use parity_scale_codec::Encode;
use phat_primitives::{AccountId, CodeHash, Gas, StateKey};

use super::{
    at_most, charge_base, code, fail, gas, own_info, read, read_array, read_u128, write_output,
    HostFn, C, R,
};
use crate::error::ExecError;
use crate::exec::{do_call, do_delegate_call, do_instantiate, Exit, Failure};

/// The call, instantiation and termination host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    "seal0", "transfer",                   Prefixed, seal0_transfer;
    "seal0", "call",                       Prefixed, seal0_call;
    "seal1", "call",                       Prefixed, seal1_call;
    "seal2", "call",                       Plain,    seal2_call;
    "seal0", "delegate_call",              Prefixed, seal0_delegate_call;
    "seal0", "instantiate",                Prefixed, seal0_instantiate;
    "seal1", "instantiate",                Prefixed, seal1_instantiate;
    "seal2", "instantiate",                Plain,    seal2_instantiate;
    "seal0", "terminate",                  Prefixed, seal0_terminate;
    "seal1", "terminate",                  Prefixed, seal1_terminate;
    "seal0", "set_code_hash",              Prefixed, seal0_set_code_hash;
    "seal0", "lock_delegate_dependency",   Plain,    seal0_lock_delegate_dependency;
    "seal0", "unlock_delegate_dependency", Plain,    seal0_unlock_delegate_dependency;
};

/// `call` flags.
mod flags {
    pub const FORWARD_INPUT: u32 = 1;
    pub const CLONE_INPUT: u32 = 2;
    pub const TAIL_CALL: u32 = 4;
    pub const ALLOW_REENTRY: u32 = 8;
    pub const ALL: u32 = FORWARD_INPUT | CLONE_INPUT | TAIL_CALL | ALLOW_REENTRY;
}

// ---------------------------------------------------------------------------------------------
// Value.

fn seal0_transfer(mut c: C<'_>, acc: u32, _al: u32, val: u32, _vl: u32) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    let to = AccountId(read_array(&mut c, acc, "transfer account")?);
    let value = read_u128(&mut c, val, "transfer value")?;
    let from = c.data().address;
    match c.data_mut().tx().transfer(&from, &to, value) {
        Ok(()) => Ok(code::SUCCESS),
        Err(ExecError::TransferFailed { .. }) => Ok(code::TRANSFER_FAILED),
        Err(e) => fail(&mut c, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Calls.

#[allow(clippy::too_many_arguments)]
fn seal0_call(
    mut c: C<'_>,
    callee: u32,
    _cl: u32,
    gas: u64,
    val: u32,
    _vl: u32,
    i: u32,
    il: u32,
    o: u32,
    ol: u32,
) -> R<u32> {
    value_call(
        &mut c,
        flags::ALLOW_REENTRY,
        callee,
        gas,
        val,
        (i, il),
        (o, ol),
    )
}

#[allow(clippy::too_many_arguments)]
fn seal1_call(
    mut c: C<'_>,
    fl: u32,
    callee: u32,
    gas: u64,
    val: u32,
    i: u32,
    il: u32,
    o: u32,
    ol: u32,
) -> R<u32> {
    value_call(&mut c, fl, callee, gas, val, (i, il), (o, ol))
}

#[allow(clippy::too_many_arguments)]
fn seal2_call(
    mut c: C<'_>,
    fl: u32,
    callee: u32,
    gas: u64,
    _proof: u64,
    _dep: u32,
    val: u32,
    i: u32,
    il: u32,
    o: u32,
    ol: u32,
) -> R<u32> {
    value_call(&mut c, fl, callee, gas, val, (i, il), (o, ol))
}

fn seal0_delegate_call(mut c: C<'_>, fl: u32, ch: u32, i: u32, il: u32, o: u32, ol: u32) -> R<u32> {
    call_impl(
        &mut c,
        fl,
        CallKind::Delegate { code_hash_ptr: ch },
        i,
        il,
        o,
        ol,
    )
}

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
        at_most(c, "call input", input_len, max)?;
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
            #[allow(
                clippy::expect_used,
                reason = "the transaction state is in the frame while its code runs"
            )]
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
            #[allow(
                clippy::expect_used,
                reason = "the transaction state is in the frame while its code runs"
            )]
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

// ---------------------------------------------------------------------------------------------
// Instantiation.

#[allow(clippy::too_many_arguments)]
fn seal0_instantiate(
    mut c: C<'_>,
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
    sl: u32,
) -> R<u32> {
    instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl)
}

#[allow(clippy::too_many_arguments)]
fn seal1_instantiate(
    mut c: C<'_>,
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
    sl: u32,
) -> R<u32> {
    instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl)
}

#[allow(clippy::too_many_arguments)]
fn seal2_instantiate(
    mut c: C<'_>,
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
    sl: u32,
) -> R<u32> {
    instantiate_impl(&mut c, ch, gas, val, i, il, a, al, o, ol, s, sl)
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
    #[allow(
        clippy::expect_used,
        reason = "the transaction state is in the frame while its code runs"
    )]
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

// ---------------------------------------------------------------------------------------------
// Termination and code.

fn seal0_terminate(mut c: C<'_>, b: u32, _bl: u32) -> R<()> {
    terminate_impl(&mut c, b)
}

fn seal1_terminate(mut c: C<'_>, b: u32) -> R<()> {
    terminate_impl(&mut c, b)
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

fn seal0_set_code_hash(mut c: C<'_>, ch: u32) -> R<u32> {
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
}

fn seal0_lock_delegate_dependency(mut c: C<'_>, _ch: u32) -> R<()> {
    charge_base(&mut c, 0, 0)
}

fn seal0_unlock_delegate_dependency(mut c: C<'_>, _ch: u32) -> R<()> {
    charge_base(&mut c, 0, 0)
}
