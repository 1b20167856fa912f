//! Chain extension and runtime calls: `call_chain_extension` (dispatched to the embedder's
//! [`crate::ChainExtension`]), and `call_runtime`, `xcm_execute`, `xcm_send`, which always fail.

use phat_primitives::{AccountId, Balance, CodeHash};

use super::{at_most, charge, charge_base, code, fail, gas, read, write_output, HostFn, C, R};
use crate::error::ExecError;
use crate::exec::TxState;
use crate::extension::{ExtensionEnv, ExtensionError, ExtensionId, ExtensionState};

/// The chain-extension and runtime-call host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    "seal0", "call_chain_extension", Prefixed, seal0_call_chain_extension;
    "seal0", "call_runtime",         Plain,    seal0_call_runtime;
    "seal0", "xcm_execute",          Plain,    seal0_xcm_execute;
    "seal0", "xcm_send",             Plain,    seal0_xcm_send;
};

fn seal0_call_chain_extension(mut c: C<'_>, id: u32, i: u32, il: u32, o: u32, ol: u32) -> R<u32> {
    call_chain_extension(&mut c, id, i, il, o, ol)
}

fn seal0_call_runtime(mut c: C<'_>, _p: u32, _l: u32) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    Ok(code::CALL_RUNTIME_FAILED)
}

fn seal0_xcm_execute(mut c: C<'_>, _p: u32, _l: u32) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    Ok(code::XCM_EXECUTION_FAILED)
}

fn seal0_xcm_send(mut c: C<'_>, _d: u32, _m: u32, _ml: u32, _o: u32) -> R<u32> {
    charge_base(&mut c, 0, 0)?;
    Ok(code::XCM_SEND_FAILED)
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
    at_most(c, "extension input", input_len, max)?;
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
