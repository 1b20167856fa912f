//! The pallet-contracts host API (`seal0`, `seal1`, `seal2`) that ink! 3, 4 and 5 import.
//!
//! Semantics follow pallet-contracts: pointers and lengths from the contract are checked
//! against its memory (a bad one traps with [`ExecError::OutOfBounds`]), outputs go through the
//! `(out_ptr, out_len_ptr)` protocol, and expected failures are return codes, not traps.
//! Functions with the `#[prefixed_alias]` attribute upstream are registered under both the
//! plain and the `seal_`-prefixed name.
//!
//! The host functions are grouped by area; each area has a table, `FUNCTIONS`, whose lines
//! name the module, the name, whether the `seal_` alias is linked too and the implementation,
//! and [`define`] links every table once per `Runtime`:
//!
//! ```text
//! mod.rs        helpers (errors, gas charging, memory read/write) and `define`
//! storage.rs    set/clear/get/contains/take_storage
//! calls.rs      transfer, call, delegate_call, instantiate, terminate, set_code_hash
//! env.rs        input, seal_return, getters (caller, address, balance, value, block number,
//!               timestamp, gas left, …), contract queries, debug_message
//! events.rs     deposit_event
//! crypto.rs     hashes, signatures, ecdsa
//! extension.rs  call_chain_extension, call_runtime, xcm_*
//! ```
//!
//! Adding a host function is one line in its area's table plus its implementation, a plain
//! `fn(Caller<Frame>, params…) -> wasmtime::Result<_>`.

/// A host-function table, one line per function: `module, name, alias, implementation;`, with
/// `alias` one of [`Alias`]'s variants (rustfmt leaves the table's alignment alone).
macro_rules! host_fns {
    ($($module:literal, $name:literal, $alias:ident, $f:path;)*) => {
        &[$(
            $crate::host::HostFn {
                module: $module,
                name: $name,
                alias: $crate::host::Alias::$alias,
                link: |linker, module, name| linker.func_wrap(module, name, $f).map(|_| ()),
            },
        )*]
    };
}

mod calls;
mod crypto;
mod env;
mod events;
mod extension;
mod storage;

use parity_scale_codec::Decode;
use phat_primitives::{AccountId, ContractInfo, Gas};
use wasmtime::{Caller, Linker};

use crate::error::ExecError;
use crate::exec::{Exit, Frame, TxState};

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

// ---------------------------------------------------------------------------------------------
// Helpers: errors, gas, memory.

/// Ends the frame with `err`.
fn fail<T>(c: &mut C<'_>, err: ExecError) -> R<T> {
    let msg = err.to_string();
    c.data_mut().exit = Some(Exit::Error(err));
    Err(wasmtime::Error::msg(msg))
}

/// Ends the frame with `TooLarge` when `len` bytes of `what` exceed `max`.
fn at_most(c: &mut C<'_>, what: &'static str, len: u32, max: u32) -> R<()> {
    if len > max {
        return fail(
            c,
            ExecError::TooLarge {
                what,
                len: len.into(),
                max: max.into(),
            },
        );
    }
    Ok(())
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

#[allow(
    clippy::expect_used,
    reason = "memory is set right after instantiation"
)]
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

#[allow(
    clippy::expect_used,
    reason = "read returns exactly N bytes or an error"
)]
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

/// The running contract's own info (`own_code_hash`, `set_code_hash`).
fn own_info(tx: &mut TxState, addr: &AccountId) -> Result<ContractInfo, ExecError> {
    tx.contract_info(addr)?
        .ok_or(ExecError::ContractNotFound(*addr))
}

// ---------------------------------------------------------------------------------------------
// Registration.

/// The names a host function is linked under.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Alias {
    /// `name` only.
    Plain,
    /// `name` and `seal_{name}`, like pallet-contracts' `#[prefixed_alias]`.
    Prefixed,
}

/// Links one implementation under `(module, name)`; written by `host_fns!` for each line, so
/// the implementation keeps its concrete type and calls from wasm stay statically typed.
type Link = fn(&mut Linker<Frame>, &str, &str) -> wasmtime::Result<()>;

/// One host function: where it is linked and how.
struct HostFn {
    module: &'static str,
    name: &'static str,
    alias: Alias,
    link: Link,
}

/// Every area's table, in the order they are linked.
const TABLES: [&[HostFn]; 6] = [
    storage::FUNCTIONS,
    calls::FUNCTIONS,
    env::FUNCTIONS,
    events::FUNCTIONS,
    crypto::FUNCTIONS,
    extension::FUNCTIONS,
];

/// Defines every host function in `linker`.
pub(crate) fn define(linker: &mut Linker<Frame>) -> wasmtime::Result<()> {
    for f in TABLES.iter().flat_map(|table| table.iter()) {
        (f.link)(linker, f.module, f.name)?;
        if f.alias == Alias::Prefixed {
            (f.link)(linker, f.module, &format!("seal_{}", f.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phat_primitives::Hash;

    #[test]
    fn every_table_line_is_linked_with_its_alias() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        // Fails on a name linked twice: shadowing is off.
        define(&mut linker).unwrap();
        let frame = Frame {
            tx: None,
            memory: None,
            input: None,
            caller: AccountId([0; 32]),
            address: AccountId([0; 32]),
            storage_id: Hash([0; 32]),
            value: 0,
            exit: None,
        };
        let mut store = wasmtime::Store::new(&engine, frame);
        let mut expected = 0;
        for f in TABLES.iter().flat_map(|table| table.iter()) {
            assert!(["seal0", "seal1", "seal2"].contains(&f.module));
            let mut names = vec![f.name.to_string()];
            if f.alias == Alias::Prefixed {
                names.push(format!("seal_{}", f.name));
            }
            for name in names {
                assert!(
                    linker.get(&mut store, f.module, &name).is_ok(),
                    "{}::{name}",
                    f.module
                );
                expected += 1;
            }
        }
        assert_eq!(linker.iter(&mut store).count(), expected);
    }
}
