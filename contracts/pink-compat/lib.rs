//! A contract written the Phala way (ink! 4 and the `pink-extension` crate from crates.io),
//! kept to check that phat runs such contracts unmodified: HTTP with `http_get!`, the cache,
//! contract keys and signatures, logging, and JavaScript through `js_eval`.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

#[pink_extension::contract(env = PinkEnvironment)]
mod pink_compat {
    use alloc::string::String;
    use alloc::vec::Vec;
    use pink::chain_extension::signing::{self, SigType};
    use pink::chain_extension::{JsCode, JsValue};
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
