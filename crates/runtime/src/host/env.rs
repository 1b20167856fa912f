//! The frame's environment: input and return, getters (caller, address, balance, value, block
//! number, timestamp, gas left, …), contract queries, reentrancy counts and `debug_message`.

use parity_scale_codec::{Compact, Encode};
use phat_primitives::{blake2_256, AccountId, Balance, Hash};

use super::{
    at_most, charge_base, code, fail, gas, own_info, read, read_array, write_output, HostFn, C, R,
};
use crate::error::ExecError;
use crate::exec::{Exit, Frame};

/// The environment host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    // --- input and output
    "seal0", "input",                    Prefixed, seal0_input;
    "seal0", "seal_return",              Plain,    seal0_return; // no plain `return`, as upstream
    // --- context
    "seal0", "caller",                   Prefixed, seal0_caller;
    "seal0", "address",                  Prefixed, seal0_address;
    "seal0", "value_transferred",        Prefixed, seal0_value_transferred;
    "seal0", "balance",                  Prefixed, seal0_balance;
    "seal0", "minimum_balance",          Prefixed, seal0_minimum_balance;
    "seal0", "now",                      Prefixed, seal0_now;
    "seal0", "block_number",             Prefixed, seal0_block_number;
    "seal0", "gas_left",                 Prefixed, seal0_gas_left;
    "seal1", "gas_left",                 Plain,    seal1_gas_left;
    "seal0", "weight_to_fee",            Prefixed, seal0_weight_to_fee;
    "seal1", "weight_to_fee",            Plain,    seal1_weight_to_fee;
    "seal0", "random",                   Prefixed, seal0_random;
    "seal1", "random",                   Prefixed, seal1_random;
    "seal0", "caller_is_origin",         Prefixed, seal0_caller_is_origin;
    "seal0", "caller_is_root",           Plain,    seal0_caller_is_root;
    "seal0", "is_contract",              Prefixed, seal0_is_contract;
    "seal0", "code_hash",                Prefixed, seal0_code_hash;
    "seal0", "own_code_hash",            Prefixed, seal0_own_code_hash;
    "seal0", "reentrance_count",         Plain,    seal0_reentrance_count;
    "seal0", "account_reentrance_count", Plain,    seal0_account_reentrance_count;
    "seal0", "instantiation_nonce",      Plain,    seal0_instantiation_nonce;
    // --- debugging
    "seal0", "debug_message",            Prefixed, seal0_debug_message;
};

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

// ---------------------------------------------------------------------------------------------
// Input and output.

fn seal0_input(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    charge_base(&mut c, 0, 0)?;
    let Some(input) = c.data_mut().input.take() else {
        return fail(&mut c, ExecError::InputForwarded);
    };
    let r = write_output(&mut c, o, ol, &input, false, "input");
    c.data_mut().input = Some(input);
    r
}

fn seal0_return(mut c: C<'_>, fl: u32, d: u32, dl: u32) -> R<()> {
    charge_base(&mut c, 0, dl)?;
    let max = c.data_mut().tx().config().limits.max_output_len;
    at_most(&mut c, "return value", dl, max)?;
    let data = read(&mut c, d, dl, "seal_return")?;
    c.data_mut().exit = Some(Exit::Return(fl, data));
    Err(wasmtime::Error::msg("returned"))
}

// ---------------------------------------------------------------------------------------------
// Context.

fn seal0_caller(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "caller", |f| Ok(f.caller))
}

fn seal0_address(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "address", |f| Ok(f.address))
}

fn seal0_value_transferred(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "value_transferred", |f| Ok(f.value))
}

fn seal0_balance(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "balance", |f| {
        let a = f.address;
        f.tx().balance(&a)
    })
}

fn seal0_minimum_balance(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "minimum_balance", |_| Ok(0 as Balance))
}

fn seal0_now(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "now", |f| Ok(f.tx().ctx.timestamp))
}

fn seal0_block_number(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "block_number", |f| {
        Ok(f.tx().ctx.block_number)
    })
}

fn seal0_gas_left(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    let left = c.get_fuel()?;
    getter(&mut c, o, ol, "gas_left", |_| Ok(left))
}

fn seal1_gas_left(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    let left = c.get_fuel()?;
    getter(&mut c, o, ol, "gas_left", |_| {
        Ok((Compact(left), Compact(0u64)))
    })
}

fn seal0_weight_to_fee(mut c: C<'_>, gas: u64, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "weight_to_fee", |_| Ok(Balance::from(gas)))
}

fn seal1_weight_to_fee(mut c: C<'_>, gas: u64, _proof: u64, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "weight_to_fee", |_| Ok(Balance::from(gas)))
}

fn seal0_random(mut c: C<'_>, s: u32, sl: u32, o: u32, ol: u32) -> R<()> {
    let seed = random_seed(&mut c, s, sl)?;
    getter(&mut c, o, ol, "random", |_| Ok(seed))
}

fn seal1_random(mut c: C<'_>, s: u32, sl: u32, o: u32, ol: u32) -> R<()> {
    let seed = random_seed(&mut c, s, sl)?;
    getter(&mut c, o, ol, "random", |f| {
        Ok((seed, f.tx().ctx.block_number))
    })
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

fn seal0_caller_is_origin(mut c: C<'_>) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    let caller = c.data().caller;
    Ok(u32::from(c.data_mut().tx().origin == caller))
}

fn seal0_caller_is_root(mut c: C<'_>) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    Ok(0)
}

fn seal0_is_contract(mut c: C<'_>, a: u32) -> R<u32> {
    let g = gas(&mut c);
    charge_base(&mut c, g.storage_access, 0)?;
    let addr = AccountId(read_array(&mut c, a, "is_contract")?);
    match c.data_mut().tx().contract_info(&addr) {
        Ok(info) => Ok(u32::from(info.is_some())),
        Err(e) => fail(&mut c, e),
    }
}

fn seal0_code_hash(mut c: C<'_>, a: u32, o: u32, ol: u32) -> R<u32> {
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
}

fn seal0_own_code_hash(mut c: C<'_>, o: u32, ol: u32) -> R<()> {
    getter(&mut c, o, ol, "own_code_hash", |f| {
        let a = f.address;
        Ok(own_info(f.tx(), &a)?.code_hash)
    })
}

fn seal0_reentrance_count(mut c: C<'_>) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    let a = c.data().address;
    let n = c.data_mut().tx().stack.iter().filter(|x| **x == a).count();
    Ok(n.saturating_sub(1) as u32)
}

fn seal0_account_reentrance_count(mut c: C<'_>, p: u32) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    let a = AccountId(read_array(&mut c, p, "account_reentrance_count")?);
    Ok(c.data_mut().tx().stack.iter().filter(|x| **x == a).count() as u32)
}

fn seal0_instantiation_nonce(mut c: C<'_>) -> R<u64> {
    charge_base(&mut c, 0, 0)?;
    let r = c.data_mut().tx().instantiation_nonce();
    r.or_else(|e| fail(&mut c, e))
}

// ---------------------------------------------------------------------------------------------
// Debugging.

fn seal0_debug_message(mut c: C<'_>, p: u32, l: u32) -> R<u32> {
    let max = c.data_mut().tx().config().limits.max_debug_buffer_len as u32;
    let l = l.min(max);
    charge_base(&mut c, 0, l)?;
    let bytes = read(&mut c, p, l, "debug_message")?;
    if let Ok(msg) = std::str::from_utf8(&bytes) {
        c.data_mut().tx().append_debug(msg);
    }
    Ok(code::SUCCESS)
}
