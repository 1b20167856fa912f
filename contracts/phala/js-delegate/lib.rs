//! The code of phat's `JsDelegate2` driver. `phat_js::eval` (Phala's crate) looks the driver up
//! in the system contract and delegate-calls this code, so it runs in the calling contract's
//! context: its logs are the caller's. Every message runs the script on the worker's
//! JavaScript engine through pink's `js_eval` (queries only, like any JavaScript in phat).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

#[pink_extension::contract(env = PinkEnvironment)]
mod js_delegate {
    use alloc::string::String;
    use alloc::vec::Vec;
    use phat_js::{JsCode, JsValue, Output, Value};
    use pink::PinkEnvironment;
    use pink_extension as pink;

    /// No state: this code only runs by delegate call.
    #[ink(storage)]
    pub struct JsDelegate {}

    /// `phat_js`'s result for what the engine returned: strings and bytes as they are, other
    /// values as their string form, an exception as the error.
    fn output(value: JsValue) -> Result<Output, String> {
        match value {
            JsValue::Undefined | JsValue::Null => Ok(Value::Undefined),
            JsValue::String(s) | JsValue::Other(s) => Ok(Value::String(s)),
            JsValue::Bytes(b) => Ok(Value::Bytes(b)),
            JsValue::Exception(e) => Err(e),
        }
    }

    impl JsDelegate {
        /// An instance (never needed: the driver is code, found by its hash).
        #[ink(constructor)]
        pub fn default() -> Self {
            Self {}
        }

        /// Runs `script` with `args` as `scriptArgs`.
        #[ink(message)]
        pub fn eval(&self, script: String, args: Vec<String>) -> Result<Output, String> {
            output(pink::ext().js_eval(alloc::vec![JsCode::Source(script)], args))
        }

        /// Runs compiled bytecode (phat's engine refuses bytecode: the error says so).
        #[ink(message)]
        pub fn eval_bytecode(&self, code: Vec<u8>, args: Vec<String>) -> Result<Output, String> {
            output(pink::ext().js_eval(alloc::vec![JsCode::Bytecode(code)], args))
        }

        /// Runs several scripts in order, in one engine; the last one's value is the result.
        #[ink(message)]
        pub fn eval_all(&self, codes: Vec<Value>, args: Vec<String>) -> Result<Output, String> {
            let mut scripts = Vec::with_capacity(codes.len());
            for code in codes {
                scripts.push(match code {
                    Value::String(s) => JsCode::Source(s),
                    Value::Bytes(b) => JsCode::Bytecode(b),
                    Value::Undefined => return Err("an undefined script".into()),
                });
            }
            output(pink::ext().js_eval(scripts, args))
        }

        /// Compiling to bytecode is not offered: phat runs JavaScript from source only.
        #[ink(message)]
        pub fn compile(&self, _script: String) -> Result<Vec<u8>, String> {
            Err("phat's JavaScript engine runs source only: it compiles nothing to bytecode".into())
        }
    }
}
