//! The runtime's harness, shared by its tests and its bench: a runtime over an in-memory
//! state, and the example contracts built with phat-builder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use parity_scale_codec::Encode;
use phat_primitives::{AccountId, CodeHash, Mode};
use phat_runtime::{Config, ExecContext, ExecError, MemoryState, Outcome, Runtime, Session};

pub use crate::hostile_wasm as hostile;

/// The account the harness deploys and calls from.
pub const ALICE: AccountId = AccountId([1; 32]);
/// A second account.
pub const BOB: AccountId = AccountId([2; 32]);
/// The gas limit of every call of the harness.
pub const GAS: u64 = 1_000_000_000;

/// The repository root.
pub fn repo() -> PathBuf {
    crate::repo_root()
}

/// A Phala conformance file from `<shared>/conformance/phala-pink`, read.
pub fn phala(rel: &str) -> Vec<u8> {
    let path = crate::phala_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A built example contract.
#[derive(Clone)]
pub struct Built {
    /// Its Wasm code.
    pub wasm: Vec<u8>,
    /// Its ink! metadata.
    pub metadata: serde_json::Value,
}

impl Built {
    /// The selector of the message or constructor `label`, from the metadata.
    pub fn selector(&self, label: &str) -> [u8; 4] {
        let spec = &self.metadata["spec"];
        let all = spec["messages"]
            .as_array()
            .unwrap()
            .iter()
            .chain(spec["constructors"].as_array().unwrap());
        let item = all
            .into_iter()
            .find(|m| m["label"] == label)
            .unwrap_or_else(|| panic!("no message or constructor `{label}`"));
        let hex = item["selector"].as_str().unwrap().trim_start_matches("0x");
        hex::decode(hex).unwrap().try_into().unwrap()
    }

    /// `selector(label) ++ args.encode()`.
    pub fn input(&self, label: &str, args: impl Encode) -> Vec<u8> {
        let mut v = self.selector(label).to_vec();
        args.encode_to(&mut v);
        v
    }
}

/// Builds (once per test binary) the example contract `contracts/<name>` with phat-builder.
pub fn contract(name: &str) -> Built {
    static BUILT: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    let mut map = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(b) = map.get(name) {
        return b.clone();
    }
    let manifest = crate::contract_manifest(name);
    let artifacts = phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |p| {
        eprintln!("[build {name} {}/{}] {}", p.step, p.of, p.message)
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    let built = Built {
        wasm: std::fs::read(&artifacts.wasm).unwrap(),
        metadata: serde_json::from_slice(&std::fs::read(artifacts.metadata.unwrap()).unwrap())
            .unwrap(),
    };
    map.insert(name.into(), built.clone());
    built
}

/// A runtime over an in-memory state: commands commit, queries do not.
pub struct Harness {
    /// The runtime.
    pub rt: Runtime,
    /// The state its sessions read, with every command's writes.
    pub state: Arc<MemoryState>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A runtime with the default configuration over an empty state.
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A runtime with `config` over an empty state.
    pub fn with_config(config: Config) -> Self {
        Self {
            rt: Runtime::new(config).unwrap(),
            state: Arc::new(MemoryState::new()),
        }
    }

    /// Runs `f` in a command session and commits its writes.
    pub fn command<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        self.command_in(ExecContext::new(Mode::Command), f)
    }

    /// Runs `f` in a command session with context `ctx` and commits its writes.
    pub fn command_in<T>(&mut self, ctx: ExecContext, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = self.rt.session(self.state.clone(), ctx);
        let out = f(&mut session);
        let changes = session.into_changes();
        Arc::make_mut(&mut self.state).apply(changes);
        out
    }

    /// Runs `f` in a query session; its writes are dropped.
    pub fn query<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        self.query_in(ExecContext::new(Mode::Query), f)
    }

    /// Runs `f` in a query session with context `ctx`; its writes are dropped.
    pub fn query_in<T>(&self, ctx: ExecContext, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = self.rt.session(self.state.clone(), ctx);
        f(&mut session)
    }

    /// Uploads `wasm` as a command; its code hash.
    pub fn upload(&mut self, wasm: &[u8]) -> CodeHash {
        self.command(|s| s.upload_code(wasm)).expect("upload")
    }

    /// Uploads `wasm` and instantiates it from ALICE with `input`.
    pub fn deploy(&mut self, wasm: &[u8], input: Vec<u8>) -> AccountId {
        let hash = self.upload(wasm);
        let out = self
            .command(|s| s.instantiate(ALICE, hash, 0, input, b"", GAS))
            .expect("instantiate");
        assert!(!out.reverted, "constructor reverted: {out:?}");
        out.address.unwrap()
    }

    /// Calls `contract` from ALICE with `input` as a command.
    pub fn call(&mut self, contract: AccountId, input: Vec<u8>) -> Result<Outcome, ExecError> {
        self.command(|s| s.call(ALICE, contract, 0, input, GAS))
    }

    /// Calls `contract` from `who` with `input` as a command.
    pub fn call_as(
        &mut self,
        who: AccountId,
        contract: AccountId,
        input: Vec<u8>,
    ) -> Result<Outcome, ExecError> {
        self.command(|s| s.call(who, contract, 0, input, GAS))
    }

    /// Calls `contract` from ALICE with `input` as a query (its writes dropped).
    pub fn read(&self, contract: AccountId, input: Vec<u8>) -> Result<Outcome, ExecError> {
        self.query(|s| s.call(ALICE, contract, 0, input, GAS))
    }
}
