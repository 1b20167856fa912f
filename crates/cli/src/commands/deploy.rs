//! `phat deploy`: upload a contract's code and metadata, then instantiate it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use phat_client::primitives::protocol::{CallResult, Receipt};
use phat_client::primitives::{AccountId, CodeHash};
use phat_client::{Client, Contract, Signer};
use serde_json::json;

use super::common::load_contract;
use super::Ctx;

/// Arguments of `phat deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// A `.contract` bundle, a `.wasm` with `--metadata`, or a contract project (its directory
    /// or `Cargo.toml`) already built with `phat build`.
    pub bundle: PathBuf,
    /// The metadata JSON (required with a `.wasm`).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Constructor to call (default: the metadata's default constructor, else `new`).
    #[arg(long)]
    pub constructor: Option<String>,
    /// Constructor arguments, as text (`--args 1000 true`).
    #[arg(long, num_args = 0.., allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// The deployer's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
    /// Salt for the contract address (text; default: the current time, so redeploys differ).
    #[arg(long)]
    pub salt: Option<String>,
    /// Native value to transfer to the new contract.
    #[arg(long, default_value_t = 0)]
    pub value: u128,
}

/// What a deployment produced.
pub struct Deployed {
    /// The new contract.
    pub id: AccountId,
    /// Its code hash.
    pub code_hash: CodeHash,
    /// The instantiation receipt.
    pub receipt: Receipt,
}

/// Everything a deployment needs besides the client and the signer.
pub struct DeployRequest<'a> {
    /// The contract's metadata (to encode the constructor); `None` for a bare wasm deployed
    /// with a raw `0x…` constructor.
    pub contract: Option<&'a Contract>,
    /// Its wasm.
    pub wasm: Vec<u8>,
    /// Its metadata JSON, stored on the cluster.
    pub metadata: Option<&'a serde_json::Value>,
    /// The constructor label.
    pub constructor: &'a str,
    /// Constructor arguments as text.
    pub args: &'a [String],
    /// Address salt.
    pub salt: Vec<u8>,
    /// Native value for the new contract.
    pub value: u128,
}

/// Uploads the wasm and its metadata, then instantiates it with `constructor(args)`.
pub async fn deploy_code(
    client: &Client,
    signer: &Signer,
    req: DeployRequest<'_>,
) -> Result<Deployed> {
    let DeployRequest {
        contract,
        wasm,
        metadata,
        constructor,
        args,
        salt,
        value,
    } = req;
    let data = match (constructor.strip_prefix("0x"), contract) {
        (Some(raw), _) => {
            if !args.is_empty() {
                bail!("a raw constructor (0x…) takes no --args: append them SCALE-encoded");
            }
            hex::decode(raw).context("the raw constructor is not hex")?
        }
        (None, Some(c)) => c.encode_constructor(constructor, args)?,
        (None, None) => bail!(
            "without metadata, name the constructor by its raw call data: --constructor 0x<selector><args>"
        ),
    };
    let code_hash = client
        .upload_code(signer, wasm)
        .await
        .context("uploading code")?;
    if let Some(metadata) = metadata {
        client
            .put_metadata(signer, &code_hash, metadata)
            .await
            .context("storing metadata")?;
    }
    let mut call = phat_client::instantiate(code_hash, data, salt);
    if let phat_client::primitives::protocol::Call::Instantiate { value: v, .. } = &mut call {
        *v = value;
    }
    let submitted = client.submit(signer, call, true).await?;
    let receipt = submitted
        .receipt
        .context("the worker did not return a receipt")?;
    let id = match &receipt.result {
        CallResult::Ok(o) if !o.reverted => o.address.context("no address in the receipt")?,
        CallResult::Ok(o) => bail!(
            "the constructor reverted: {}",
            contract
                .and_then(|c| c.decode_return(constructor, &o.data).ok())
                .unwrap_or_else(|| format!("0x{}", hex::encode(&o.data.0)))
        ),
        CallResult::Err(e) => bail!("instantiation failed: {}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("the receipt's result is sealed to another key"),
    };
    Ok(Deployed {
        id,
        code_hash,
        receipt,
    })
}

/// `phat deploy`.
pub async fn run(mut args: DeployArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(&args.suri)?;
    args.bundle = built_bundle(args.bundle)?;
    let (contract, wasm, metadata) = if args.bundle.extension().is_some_and(|e| e == "wasm") {
        let wasm = std::fs::read(&args.bundle)
            .with_context(|| format!("reading {}", args.bundle.display()))?;
        match args.metadata.as_deref() {
            Some(meta_path) => {
                let text = std::fs::read_to_string(meta_path)
                    .with_context(|| format!("reading {}", meta_path.display()))?;
                (
                    Some(Contract::from_json(&text)?),
                    wasm,
                    Some(serde_json::from_str(&text)?),
                )
            }
            None => (None, wasm, None),
        }
    } else {
        let contract = load_contract(&args.bundle)?;
        let wasm = contract
            .wasm()
            .with_context(|| {
                format!(
                    "{} holds no wasm; pass the .wasm with --metadata",
                    args.bundle.display()
                )
            })?
            .to_vec();
        let text = std::fs::read_to_string(&args.bundle)?;
        let mut metadata: serde_json::Value = serde_json::from_str(&text)?;
        // The cluster keeps the ABI; the wasm is already in its blob store.
        if let Some(src) = metadata.get_mut("source").and_then(|s| s.as_object_mut()) {
            src.remove("wasm");
        }
        (Some(contract), wasm, Some(metadata))
    };
    let constructor = match (args.constructor, &contract) {
        (Some(c), _) => c,
        (None, Some(contract)) => contract
            .default_constructor()
            .context("the metadata has no constructor")?,
        (None, None) => {
            bail!("a .wasm without --metadata needs --constructor 0x<selector><SCALE args>")
        }
    };
    let salt = match args.salt {
        Some(s) => s.into_bytes(),
        None => format!("{:?}", std::time::SystemTime::now()).into_bytes(),
    };
    let d = deploy_code(
        &client,
        &signer,
        DeployRequest {
            contract: contract.as_ref(),
            wasm,
            metadata: metadata.as_ref(),
            constructor: &constructor,
            args: &args.args,
            salt,
            value: args.value,
        },
    )
    .await?;
    ctx.print(
        || {
            format!(
                "contract {}\n  code  {}\n  seq   {}  gas {}  root {}",
                d.id, d.code_hash, d.receipt.seq, d.receipt.gas_used, d.receipt.state_root
            )
        },
        || json!({"contract": d.id, "code_hash": d.code_hash, "receipt": d.receipt}),
    );
    Ok(())
}

/// `path` itself, unless it is a contract project (a directory or a `Cargo.toml`): then the
/// bundle `phat build` made of it.
fn built_bundle(path: PathBuf) -> Result<PathBuf> {
    let manifest = if path.is_dir() {
        path.join("Cargo.toml")
    } else if path.file_name().is_some_and(|n| n == "Cargo.toml") {
        path.clone()
    } else {
        return Ok(path);
    };
    if !manifest.is_file() {
        bail!(
            "{} is a directory without a Cargo.toml: pass a .contract bundle",
            path.display()
        );
    }
    let bundle = phat_builder::bundle_path(&manifest)
        .with_context(|| format!("finding the bundle of {}", manifest.display()))?;
    if !bundle.exists() {
        bail!(
            "{} is not built yet (no {}): run `phat build {}` first",
            path.display(),
            bundle.display(),
            path.display()
        );
    }
    Ok(bundle)
}
