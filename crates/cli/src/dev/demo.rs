//! `phat dev --demo`: build and deploy the example erc20, send a command, query every worker
//! and compare their state roots, then print what to try next.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use phat_client::{Client, Contract, Signer};

use crate::commands::{deploy_code, Ctx, DeployRequest};

/// Finds the examples: `dir`, else the source tree this binary was built from.
fn examples_dir(dir: &std::path::Path) -> PathBuf {
    if dir.join("erc20/Cargo.toml").exists() {
        return dir.to_path_buf();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// Runs the demo against the cluster at `ctx.endpoint` whose workers are `workers`.
pub(super) async fn run_demo(
    contracts: &std::path::Path,
    ctx: &Ctx,
    workers: &[String],
    serving: bool,
) -> Result<()> {
    let step = |n: u32, s: &str| println!("\n[demo {n}/5] {s}");
    step(1, "building contracts/erc20 (wasm + metadata)");
    let manifest = examples_dir(contracts).join("erc20/Cargo.toml");
    let artifacts = tokio::task::spawn_blocking(move || {
        phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |p| {
            println!("  [{}/{}] {}", p.step, p.of, p.message)
        })
    })
    .await??;
    let bundle = artifacts
        .bundle
        .context("the build produced no .contract bundle")?;
    let contract = Contract::load(&bundle)?;
    let wasm = contract.wasm().context("no wasm in the bundle")?.to_vec();
    let mut metadata: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle)?)?;
    if let Some(src) = metadata.get_mut("source").and_then(|s| s.as_object_mut()) {
        src.remove("wasm");
    }
    println!(
        "  {} ({} bytes, code {})",
        bundle.display(),
        wasm.len(),
        artifacts.code_hash
    );

    step(2, "deploying erc20 with a supply of 1,000,000 as //Alice");
    let client = ctx.client()?;
    let alice = Signer::from_suri("//Alice")?;
    let bob = Signer::from_suri("//Bob")?;
    let salt = format!("demo {:?}", std::time::SystemTime::now()).into_bytes();
    let d = deploy_code(
        &client,
        &alice,
        DeployRequest {
            contract: Some(&contract),
            wasm,
            metadata: Some(&metadata),
            constructor: "new",
            args: &["1000000".to_string()],
            salt,
            value: 0,
        },
    )
    .await?;
    println!(
        "  contract {}  (seq {}, gas {})",
        d.id, d.receipt.seq, d.receipt.gas_used
    );

    step(3, "command: transfer 2,500 from //Alice to //Bob");
    let data =
        contract.encode_message("transfer", &[bob.account().to_hex(), "2500".to_string()])?;
    let sub = client
        .submit(&alice, phat_client::call(d.id, data), true)
        .await?;
    let receipt = sub.receipt.context("no receipt")?;
    let out = match &receipt.result {
        phat_client::primitives::protocol::CallResult::Ok(o) => o,
        phat_client::primitives::protocol::CallResult::Err(e) => {
            bail!("transfer failed: {}: {}", e.kind, e.message)
        }
        phat_client::primitives::protocol::CallResult::Sealed(_) => {
            bail!("transfer result sealed to another key")
        }
    };
    println!(
        "  seq {}  gas {}  result {}  events {}",
        receipt.seq,
        receipt.gas_used,
        contract.decode_return("transfer", &out.data)?,
        receipt.events.len()
    );
    for e in &receipt.events {
        let topics: Vec<[u8; 32]> = e.topics.iter().map(|t| t.0).collect();
        if let Some(text) = contract.decode_event(&topics, &e.data) {
            println!("  event {text}");
        }
    }

    step(4, "queries: balances, asked of each worker directly");
    for url in workers {
        let w = Client::new(url)?;
        let mut line = format!("  {url}:");
        for (name, who) in [("alice", &alice), ("bob", &bob)] {
            let data = contract.encode_message("balance_of", &[who.account().to_hex()])?;
            let r = w
                .query(&alice, phat_client::call(d.id, data), Some(receipt.seq))
                .await?;
            let text = match &r.result {
                phat_client::primitives::protocol::CallResult::Ok(o) => {
                    contract.decode_return("balance_of", &o.data)?
                }
                phat_client::primitives::protocol::CallResult::Err(e) => e.message.clone(),
                phat_client::primitives::protocol::CallResult::Sealed(_) => "(sealed)".into(),
            };
            line.push_str(&format!("  {name}={text}"));
        }
        println!("{line}");
    }

    step(5, "state roots after the same commands");
    let mut roots = Vec::new();
    for url in workers {
        let i = Client::new(url)?.info().await?;
        println!("  {}  seq {}  root {}", i.name, i.seq, i.state_root);
        roots.push((i.seq, i.state_root));
    }
    roots.dedup();
    if roots.len() == 1 {
        println!("  all workers agree");
    } else {
        println!("  workers are at different points (still applying?)");
    }
    for line in demo_hints(&d.id, &bob.account(), &ctx.endpoint, serving) {
        println!("{line}");
    }
    Ok(())
}

/// What to try after the demo, as commands that work as printed.
fn demo_hints(
    id: &phat_client::primitives::AccountId,
    bob: &phat_client::primitives::AccountId,
    endpoint: &str,
    serving: bool,
) -> Vec<String> {
    let endpoint = if endpoint == crate::DEFAULT_ENDPOINT {
        String::new()
    } else {
        format!(" --endpoint {endpoint}")
    };
    let mut out = vec![String::new()];
    if !serving {
        out.push(
            "the cluster stops now; `phat dev` (same --data and --port) starts it again as it was"
                .into(),
        );
    }
    out.push(
        "try (`phat` is `cargo run -p phat-cli --` until `cargo install --path crates/cli --locked`):"
            .into(),
    );
    let bob = bob.to_hex();
    out.push(format!("  phat query {id} balance_of {bob}{endpoint}"));
    out.push(format!(
        "  phat tx    {id} transfer {bob} 100 --suri //Alice{endpoint}"
    ));
    out.push(format!("  phat logs  {id}{endpoint}"));
    out
}
