//! `phat demo`: builds the example contracts and runs them in-process, printing each step.
//! (The worker issue replaces this with `phat dev --demo` on a real local cluster.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use parity_scale_codec::{Decode, Encode};
use phat_builder::{build, BuildOptions};
use phat_primitives::{AccountId, Mode};
use phat_runtime::{Config, ExecContext, MemoryState, Outcome, Runtime, Session};
use serde_json::Value;

/// Arguments of `phat demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The `contracts/` directory holding the examples.
    #[arg(long, default_value = "contracts")]
    contracts: PathBuf,
}

const ALICE: AccountId = AccountId([1; 32]);
const BOB: AccountId = AccountId([2; 32]);
const GAS: u64 = 1_000_000_000;

struct Contract {
    wasm: Vec<u8>,
    metadata: Value,
}

impl Contract {
    fn load(dir: &Path, name: &str) -> Result<Self> {
        let opts = BuildOptions::new(dir.join(name).join("Cargo.toml"));
        let a = build(&opts, |p| {
            eprintln!("  [{name} {}/{}] {}", p.step, p.of, p.message)
        })
        .with_context(|| format!("building {name}"))?;
        let metadata = a.metadata.context("metadata was not generated")?;
        Ok(Self {
            wasm: std::fs::read(&a.wasm)?,
            metadata: serde_json::from_slice(&std::fs::read(metadata)?)?,
        })
    }

    fn input(&self, label: &str, args: impl Encode) -> Result<Vec<u8>> {
        let spec = &self.metadata["spec"];
        let found = ["messages", "constructors"]
            .iter()
            .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default())
            .find(|m| m["label"] == label)
            .with_context(|| format!("no message `{label}` in the metadata"))?;
        let sel = found["selector"].as_str().unwrap_or_default();
        let mut input = hex::decode(sel.trim_start_matches("0x"))?;
        args.encode_to(&mut input);
        Ok(input)
    }
}

/// Decodes an ink! 5 `Result<T, LangError>`.
fn ok<T: Decode>(out: &Outcome) -> Result<T> {
    match <Result<T, u8>>::decode(&mut &out.data[..])? {
        Ok(v) => Ok(v),
        Err(e) => bail!("the contract answered LangError {e}"),
    }
}

fn short(a: &AccountId) -> String {
    let h = a.to_hex();
    format!("{}…{}", &h[..8], &h[h.len() - 4..])
}

/// An in-process "cluster of one": commands commit to the state, queries drop their writes.
struct Local {
    rt: Runtime,
    state: Arc<MemoryState>,
}

impl Local {
    fn command(&mut self, f: impl FnOnce(&mut Session) -> Result<Outcome>) -> Result<Outcome> {
        let mut s = self
            .rt
            .session(self.state.clone(), ExecContext::new(Mode::Command));
        let out = f(&mut s)?;
        Arc::make_mut(&mut self.state).apply(s.into_changes());
        Ok(out)
    }

    fn call(&mut self, who: AccountId, addr: AccountId, input: Vec<u8>) -> Result<Outcome> {
        self.command(|s| Ok(s.call(who, addr, 0, input, GAS)?))
    }

    fn query(&self, addr: AccountId, input: Vec<u8>) -> Result<Outcome> {
        let mut s = self
            .rt
            .session(self.state.clone(), ExecContext::new(Mode::Query));
        Ok(s.call(ALICE, addr, 0, input, GAS)?)
    }

    fn deploy(&mut self, c: &Contract, input: Vec<u8>, label: &str) -> Result<AccountId> {
        let out = self.command(|s| {
            let hash = s.upload_code(&c.wasm)?;
            Ok(s.instantiate(ALICE, hash, 0, input, b"", GAS)?)
        })?;
        let addr = out.address.context("constructor reverted")?;
        println!(
            "deployed {label} at {} ({} bytes of wasm, {} gas)",
            short(&addr),
            c.wasm.len(),
            out.gas_used
        );
        Ok(addr)
    }
}

/// Runs `phat demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    println!("== building the example contracts");
    let flipper = Contract::load(&args.contracts, "flipper")?;
    let erc20 = Contract::load(&args.contracts, "erc20")?;
    let counter = Contract::load(&args.contracts, "counter")?;
    let incrementer = Contract::load(&args.contracts, "incrementer")?;
    let mut local = Local {
        rt: Runtime::new(Config::default())?,
        state: Arc::new(MemoryState::new()),
    };

    println!("\n== flipper");
    let flip = local.deploy(&flipper, flipper.input("new", false)?, "flipper")?;
    let get = flipper.input("get", ())?;
    println!(
        "query get()                       -> {}",
        ok::<bool>(&local.query(flip, get.clone())?)?
    );
    let out = local.call(ALICE, flip, flipper.input("flip", ())?)?;
    println!(
        "command flip()                    -> ok, {} gas",
        out.gas_used
    );
    println!(
        "query get()                       -> {}",
        ok::<bool>(&local.query(flip, get)?)?
    );

    println!("\n== erc20");
    let erc = local.deploy(
        &erc20,
        erc20.input("new", 1_000_000u128)?,
        "erc20 (1,000,000 to Alice)",
    )?;
    let out = local.call(ALICE, erc, erc20.input("transfer", (BOB, 250u128))?)?;
    println!(
        "command transfer(Bob, 250)        -> {:?}, {} event(s), {} gas",
        ok::<Result<(), u8>>(&out)?,
        out.events.len(),
        out.gas_used
    );
    let out = local.call(BOB, erc, erc20.input("transfer", (ALICE, 1_000u128))?)?;
    println!(
        "command Bob: transfer(Alice, 1000) -> reverted: {} (InsufficientBalance), nothing written",
        out.reverted
    );
    for (name, who) in [("Alice", ALICE), ("Bob", BOB)] {
        let out = local.query(erc, erc20.input("balance_of", who)?)?;
        println!(
            "query balance_of({name:5})          -> {}",
            ok::<u128>(&out)?
        );
    }

    println!("\n== incrementer -> counter (cross-contract instantiate and call)");
    let out = local.command(|s| {
        let counter_hash = s.upload_code(&counter.wasm)?;
        let hash = s.upload_code(&incrementer.wasm)?;
        let input = incrementer.input("new", (counter_hash, 40u64))?;
        Ok(s.instantiate(ALICE, hash, 0, input, b"", GAS)?)
    })?;
    let inc = out.address.context("incrementer constructor reverted")?;
    println!(
        "deployed incrementer at {}; it instantiated a counter",
        short(&inc)
    );
    let out = local.call(ALICE, inc, incrementer.input("inc", 2u64)?)?;
    println!(
        "command inc(2)                    -> {} ({} event from the counter)",
        ok::<u64>(&out)?,
        out.events.len()
    );
    let out = local.call(ALICE, inc, incrementer.input("inc_then_fail", 100u64)?)?;
    println!(
        "command inc_then_fail(100)        -> reverted: {}, the nested write rolled back",
        out.reverted
    );
    let out = local.query(inc, incrementer.input("get", ())?)?;
    println!("query get()                       -> {}", ok::<u64>(&out)?);
    println!(
        "\nstate: {} entries; compiled modules cached: {}",
        local.state.len(),
        local.rt.cached_modules()
    );
    Ok(())
}
