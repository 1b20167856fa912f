//! A contract written the Phala way (ink! 4 and the `pink-extension` crate from crates.io),
//! kept to check that phat runs such contracts unmodified: HTTP with `http_get!`, the cache,
//! contract keys and signatures, logging, JavaScript through `js_eval` and through `phat_js`
//! (the `JsDelegate2` driver), and the system contract through `SystemRef`.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

#[pink_extension::contract(env = PinkEnvironment)]
mod pink_compat {
    use alloc::string::String;
    use alloc::vec::Vec;
    use pink::chain_extension::signing::{self, SigType};
    use pink::chain_extension::{JsCode, JsValue};
    use pink::system::{CodeType, Error as SystemError, SystemRef};
    use pink::PinkEnvironment;
    use pink_extension as pink;

    /// No replicated state.
    #[ink(storage)]
    pub struct PinkCompat {}

    impl PinkCompat {
        /// A new instance.
        #[ink(constructor)]
        pub fn default() -> Self {
            Self {}
        }

        /// Runs `script` with `args` (`scriptArgs`) on the cluster's JavaScript engine.
        #[ink(message)]
        pub fn js(&self, script: String, args: Vec<String>) -> JsValue {
            pink::ext().js_eval(alloc::vec![JsCode::Source(script)], args)
        }

        /// The same as a command: every worker refuses it alike (JavaScript is for queries).
        #[ink(message)]
        pub fn js_command(&mut self, script: String) -> JsValue {
            pink::ext().js_eval(alloc::vec![JsCode::Source(script)], alloc::vec![])
        }

        /// Runs `script` through `phat_js::eval`: the system contract's `JsDelegate2` driver,
        /// delegate-called.
        #[ink(message)]
        pub fn js_driver(&self, script: String, args: Vec<String>) -> Result<phat_js::Output, String> {
            phat_js::eval(&script, &args)
        }

        /// The system contract's id and version, as `SystemRef` finds them.
        #[ink(message)]
        pub fn system(&self) -> (AccountId, (u16, u16, u16)) {
            (pink::ext().system_contract_id(), SystemRef::instance().version())
        }

        /// The driver registered under `name`, and its history.
        #[ink(message)]
        pub fn driver(&self, name: String) -> (Option<AccountId>, Option<Vec<(u32, AccountId)>>) {
            let system = SystemRef::instance();
            (system.get_driver(name.clone()), system.driver_history(name))
        }

        /// Registers this contract as driver `name`: refused unless it is an administrator.
        #[ink(message)]
        pub fn register_as(&mut self, name: String) -> Result<(), SystemError> {
            SystemRef::instance().set_driver(name, self.env().account_id())
        }

        /// `account`'s total and free balance through the system contract.
        #[ink(message)]
        pub fn balances(&self, account: AccountId) -> (Balance, Balance) {
            let system = SystemRef::instance();
            (system.total_balance_of(account), system.free_balance_of(account))
        }

        /// Whether `hash` is uploaded (as ink! code and as SideVM code), and the code hash of
        /// `account`, through the system contract.
        #[ink(message)]
        pub fn code(&self, hash: pink::Hash, account: AccountId) -> (bool, bool, Option<Hash>) {
            let system = SystemRef::instance();
            (
                system.code_exists(hash, CodeType::Ink),
                system.code_exists(hash, CodeType::Sidevm),
                system.code_hash(account),
            )
        }

        /// Asks the system contract to deploy a SideVM program: phat answers an error.
        #[ink(message)]
        pub fn sidevm(&mut self) -> Result<(), SystemError> {
            SystemRef::instance().deploy_sidevm_to(self.env().account_id(), [0; 32])
        }

        /// Calls `import_latest_system_code`, which only the system contract may call.
        #[ink(message)]
        pub fn import_system_code(&mut self) -> Option<pink::Hash> {
            pink::ext().import_latest_system_code(self.env().caller())
        }

        /// `GET url`: the status and the body (a query).
        #[ink(message)]
        pub fn get(&self, url: String) -> (u16, Vec<u8>) {
            let resp = pink::http_get!(url);
            pink::info!("GET answered {}", resp.status_code);
            (resp.status_code, resp.body)
        }

        /// Stores `value` in the cache and reads it back.
        #[ink(message)]
        pub fn cache_round_trip(&self, key: Vec<u8>, value: Vec<u8>) -> Option<Vec<u8>> {
            let _ = pink::ext().cache_set(&key, &value);
            pink::ext().cache_get(&key)
        }

        /// Signs `message` with a key derived from the contract's key and verifies it; returns
        /// the public key.
        #[ink(message)]
        pub fn sign_and_verify(&self, message: Vec<u8>) -> Vec<u8> {
            let secret = signing::derive_sr25519_key(b"compat");
            let public = signing::get_public_key(&secret, SigType::Sr25519);
            let signature = signing::sign(&message, &secret, SigType::Sr25519);
            assert!(signing::verify(
                &message,
                &public,
                &signature,
                SigType::Sr25519
            ));
            pink::warn!("signed {} bytes", message.len());
            public
        }
    }
}
