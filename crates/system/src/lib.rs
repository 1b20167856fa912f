//! The cluster's system contract: the prebuilt code of `contracts/phala/system` and of the
//! `JsDelegate2` driver (`contracts/phala/js-delegate`) that a new genesis carries, and the
//! address the system contract gets when every worker instantiates it while applying the
//! genesis. Also the Phat Function contract (`contracts/phat-function`) `phat fn deploy`
//! instantiates.
//!
//! The artifacts in `artifacts/` are `phat build` outputs, committed so that building phat
//! needs no wasm toolchain. `tests/artifacts.rs` rebuilds them from source and fails when they
//! are stale; `scripts/system-contract` refreshes them.

use parity_scale_codec::{Decode, Encode};
use phat_primitives::{blake2_256, contract_address, AccountId, CodeHash};

/// The system contract's code (`contracts/phala/system`, built by `phat build`).
pub const SYSTEM_WASM: &[u8] = include_bytes!("../artifacts/system.wasm");
/// The system contract's ink! metadata (what the worker serves for its code hash).
pub const SYSTEM_METADATA: &str = include_str!("../artifacts/system.json");
/// The `JsDelegate2` driver's code (`contracts/phala/js-delegate`), which `phat_js::eval`
/// delegate-calls.
pub const JS_DELEGATE_WASM: &[u8] = include_bytes!("../artifacts/js-delegate.wasm");
/// The Phat Function contract's code (`contracts/phat-function`): what `phat fn deploy`
/// instantiates for each function.
pub const FUNCTION_WASM: &[u8] = include_bytes!("../artifacts/phat-function.wasm");
/// The Phat Function contract's ink! metadata.
pub const FUNCTION_METADATA: &str = include_str!("../artifacts/phat-function.json");
/// The driver name `phat_js` looks the JavaScript delegate up by.
pub const JS_DRIVER: &str = "JsDelegate2";
/// The salt of the system contract's instantiation.
pub const SALT: &[u8] = b"phat/system-contract";
/// Most drivers a genesis may register.
pub const MAX_DRIVERS: usize = 8;

/// The system contract a genesis sets up: its code and the drivers registered at once, each
/// a code blob registered by its code hash (delegates such as `JsDelegate2` are code, called
/// with `delegate_call`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct SystemSetup {
    /// The system contract's wasm.
    pub code: Vec<u8>,
    /// `(driver name, wasm)`, uploaded and registered under the name by their code hash.
    pub drivers: Vec<(String, Vec<u8>)>,
}

impl SystemSetup {
    /// The setup this phat release ships: its system contract with the JavaScript delegate.
    pub fn bundled() -> Self {
        Self {
            code: SYSTEM_WASM.to_vec(),
            drivers: vec![(JS_DRIVER.to_owned(), JS_DELEGATE_WASM.to_vec())],
        }
    }

    /// The system contract's code hash.
    pub fn code_hash(&self) -> CodeHash {
        CodeHash::of(&self.code)
    }

    /// The drivers as the constructor registers them: `(name, code hash as an account id)`.
    pub fn driver_ids(&self) -> Vec<(String, AccountId)> {
        self.drivers
            .iter()
            .map(|(name, code)| (name.clone(), AccountId(CodeHash::of(code).0)))
            .collect()
    }

    /// The constructor call: `new(drivers)` (selector `blake2_256("new")[..4]`).
    pub fn constructor_input(&self) -> Vec<u8> {
        let mut input = blake2_256(b"new")[..4].to_vec();
        self.driver_ids().encode_to(&mut input);
        input
    }

    /// The account that instantiates the system contract, and so owns it: the cluster owner,
    /// or for a cluster without one an account nobody holds the key of.
    pub fn instantiator(owner: Option<AccountId>) -> AccountId {
        owner.unwrap_or(AccountId(blake2_256(b"phat/no-owner")))
    }

    /// The system contract's address in a cluster owned by `owner`.
    pub fn address(&self, owner: Option<AccountId>) -> AccountId {
        contract_address(
            &Self::instantiator(owner),
            &self.code_hash(),
            &self.constructor_input(),
            SALT,
        )
    }

    /// Checks what a genesis may carry: at most [`MAX_DRIVERS`] drivers with distinct,
    /// non-empty names of at most 64 bytes.
    pub fn check(&self) -> Result<(), String> {
        if self.drivers.len() > MAX_DRIVERS {
            return Err(format!("at most {MAX_DRIVERS} drivers"));
        }
        let mut names: Vec<&str> = self.drivers.iter().map(|(n, _)| n.as_str()).collect();
        if names.iter().any(|n| n.is_empty() || n.len() > 64) {
            return Err("driver names are 1 to 64 bytes".into());
        }
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("driver names must differ".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_setup_registers_the_js_delegate_by_its_code_hash() {
        let s = SystemSetup::bundled();
        assert!(s.check().is_ok());
        assert_eq!(
            s.driver_ids(),
            vec![(
                "JsDelegate2".to_owned(),
                AccountId(CodeHash::of(JS_DELEGATE_WASM).0)
            )]
        );
        // The metadata shipped is the code's.
        assert!(SYSTEM_METADATA.contains(&s.code_hash().to_string()));
        // The constructor input starts with `new`'s selector as the metadata names it.
        assert!(SYSTEM_METADATA.contains(&format!(
            "\"0x{}\"",
            s.constructor_input()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )));
    }

    #[test]
    fn the_address_depends_on_the_owner() {
        let s = SystemSetup::bundled();
        let a = s.address(Some(AccountId([1; 32])));
        assert_eq!(a, s.address(Some(AccountId([1; 32]))));
        assert_ne!(a, s.address(Some(AccountId([2; 32]))));
        assert_ne!(a, s.address(None));
    }

    #[test]
    fn bad_driver_lists_are_refused() {
        let mut s = SystemSetup::bundled();
        s.drivers.push(s.drivers[0].clone());
        assert!(s.check().unwrap_err().contains("differ"));
        s.drivers = vec![(String::new(), vec![])];
        assert!(s.check().is_err());
        s.drivers = (0..9).map(|i| (format!("d{i}"), vec![])).collect();
        assert!(s.check().is_err());
    }
}
