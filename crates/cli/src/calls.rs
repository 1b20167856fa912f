//! Commands that talk to a cluster through `phat-client`: deploy, query, tx, logs, info, keys.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use phat_client::primitives::protocol::{CallResult, EventRecord, LogEntry, Receipt};
use phat_client::primitives::{AccountId, CodeHash};
use phat_client::{Client, Contract, MessageKind, Signer};
use serde_json::json;

use crate::Output;

/// What every cluster command shares: where to send and how to print.
pub struct Ctx {
    /// The endpoint URL.
    pub endpoint: String,
    /// Accept `dev` attestation reports on any endpoint.
    pub accept_dev_attestation: bool,
    /// Output format.
    pub output: Output,
}

/// What the command line trusts (global flags): pins and the plaintext opt-in.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// Pin the dev attestation root: its public key (hex) or a file holding it. `dev` reports
    /// must be signed by it; on non-loopback endpoints they are accepted only with this pin.
    #[arg(long, global = true, env = "PHAT_DEV_ROOT", value_name = "HEX|FILE")]
    pub dev_root: Option<String>,
    /// Require this software measurement (hex) in the worker's attestation report.
    #[arg(long, global = true, env = "PHAT_MEASUREMENT", value_name = "HEX")]
    pub measurement: Option<String>,
    /// Talk to a cluster made with `--insecure-no-encryption` (refused by default).
    #[arg(long, global = true, env = "PHAT_ALLOW_UNENCRYPTED")]
    pub allow_unencrypted: bool,
}

static TRUST: std::sync::OnceLock<TrustArgs> = std::sync::OnceLock::new();

/// Sets the trust flags every [`Ctx::client`] of this process applies (once, from `main`).
pub fn set_trust(trust: TrustArgs) {
    let _ = TRUST.set(trust);
}

impl Ctx {
    pub(crate) fn client(&self) -> Result<Client> {
        let mut client = Client::new(&self.endpoint)?;
        if self.accept_dev_attestation {
            client = client.accept_dev_attestation(true);
        }
        let trust = TRUST.get().cloned().unwrap_or_default();
        if let Some(root) = &trust.dev_root {
            client = client.pin_dev_root(phat_client::parse_pin(root).context("--dev-root")?);
        }
        if let Some(m) = &trust.measurement {
            client = client.pin_measurement(phat_client::parse_pin(m).context("--measurement")?);
        }
        Ok(client.allow_unencrypted(trust.allow_unencrypted))
    }

    fn print(&self, human: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        match self.output {
            Output::Human => println!("{}", human()),
            Output::Json => println!("{}", json()),
        }
    }
}

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

/// Arguments of `phat query`.
#[derive(Args)]
pub struct CallArgs {
    /// The contract id (`0x…`).
    pub contract: String,
    /// The message label (`balance_of`), or a `0x…` selector with SCALE arguments appended.
    pub message: String,
    /// Message arguments, as text.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Metadata to encode with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// The caller's secret URI.
    #[arg(long, default_value = "//Alice")]
    pub suri: String,
    /// Native value to transfer.
    #[arg(long, default_value_t = 0)]
    pub value: u128,
}

/// Arguments of `phat tx`.
#[derive(Args)]
pub struct TxArgs {
    #[command(flatten)]
    pub call: CallArgs,
    /// Return once the ledger ordered the command, without waiting for the receipt.
    #[arg(long)]
    pub no_wait: bool,
}

/// Arguments of `phat logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// The contract id.
    pub contract: String,
    /// Keep following new records.
    #[arg(short, long)]
    pub follow: bool,
    /// Metadata to decode events with (default: the metadata stored on the cluster at deploy).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
}

/// Arguments of `phat info`.
#[derive(Args)]
pub struct InfoArgs {
    /// A contract id; without it, the worker's state.
    pub contract: Option<String>,
}

/// Arguments of `phat keys`.
#[derive(Args)]
pub struct KeysArgs {
    /// A secret URI.
    #[arg(default_value = "//Alice")]
    pub suri: String,
}

fn parse_id(s: &str) -> Result<AccountId> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("contract id `{s}` is not a 0x-prefixed 32-byte hex id: {e}"))
}

/// Loads metadata (and maybe wasm) from a bundle or JSON file.
fn load_contract(path: &Path) -> Result<Contract> {
    Contract::load(path).with_context(|| format!("reading {}", path.display()))
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
pub async fn deploy(mut args: DeployArgs, ctx: &Ctx) -> Result<()> {
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

/// The metadata to encode calls to `id` with.
async fn contract_metadata(
    client: &Client,
    id: &AccountId,
    path: Option<&Path>,
) -> Result<Contract> {
    if let Some(p) = path {
        return load_contract(p);
    }
    let meta = client
        .contract_metadata(id)
        .await
        .with_context(|| format!("no metadata on the cluster for {id}; pass --metadata FILE"))?;
    Ok(Contract::from_json(&meta.to_string())?)
}

/// Encodes `message(args)`; a `0x…` message is taken as raw call data.
fn encode_call(contract: Option<&Contract>, message: &str, args: &[String]) -> Result<Vec<u8>> {
    if let Some(raw) = message.strip_prefix("0x") {
        if !args.is_empty() {
            bail!("raw call data (0x…) takes no further arguments");
        }
        return hex::decode(raw).context("raw call data is not hex");
    }
    let contract = contract.context("metadata needed to encode by name")?;
    Ok(contract.encode_message(message, args)?)
}

fn decode(contract: Option<&Contract>, message: &str, data: &[u8]) -> String {
    contract
        .filter(|_| !message.starts_with("0x"))
        .and_then(|c| c.decode_return(message, data).ok())
        .unwrap_or_else(|| format!("0x{}", hex::encode(data)))
}

fn event_text(contract: Option<&Contract>, e: &EventRecord) -> String {
    let topics: Vec<[u8; 32]> = e.topics.iter().map(|t| t.0).collect();
    contract
        .and_then(|c| c.decode_event(&topics, &e.data))
        .unwrap_or_else(|| {
            format!(
                "topics=[{}] data={:?}",
                e.topics
                    .iter()
                    .map(|t| t.to_hex())
                    .collect::<Vec<_>>()
                    .join(","),
                e.data
            )
        })
}

/// `phat query`.
pub async fn query(args: CallArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(&args.suri)?;
    let id = parse_id(&args.contract)?;
    let contract = if args.message.starts_with("0x") {
        None
    } else {
        Some(contract_metadata(&client, &id, args.metadata.as_deref()).await?)
    };
    let data = encode_call(contract.as_ref(), &args.message, &args.args)?;
    let mut call = phat_client::call(id, data);
    if let phat_client::primitives::protocol::Call::Call { value, .. } = &mut call {
        *value = args.value;
    }
    let r = client.query(&signer, call, None).await?;
    let out = match &r.result {
        CallResult::Ok(o) => o,
        CallResult::Err(e) => bail!("{}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("the answer is sealed to another key"),
    };
    let decoded = decode(contract.as_ref(), &args.message, &out.data);
    ctx.print(
        || {
            let mut s = decoded.clone();
            if out.reverted {
                s.push_str("  (reverted)");
            }
            if !r.debug_message.is_empty() {
                s.push_str(&format!("\n  debug: {}", r.debug_message.trim_end()));
            }
            s
        },
        || json!({"decoded": decoded, "response": r}),
    );
    // A message that returns an error reverts; for a query that is still an answer.
    Ok(())
}

/// `phat tx`.
pub async fn tx(args: TxArgs, ctx: &Ctx) -> Result<()> {
    let a = args.call;
    let client = ctx.client()?;
    let signer = Signer::from_suri(&a.suri)?;
    let id = parse_id(&a.contract)?;
    let contract = if a.message.starts_with("0x") {
        None
    } else {
        Some(contract_metadata(&client, &id, a.metadata.as_deref()).await?)
    };
    if let (Some(c), false) = (&contract, a.message.starts_with("0x")) {
        if c.kind(&a.message) == Some(MessageKind::Query) {
            eprintln!(
                "note: `{}` does not change state; `phat query` answers it faster",
                a.message
            );
        }
    }
    let data = encode_call(contract.as_ref(), &a.message, &a.args)?;
    let mut call = phat_client::call(id, data);
    if let phat_client::primitives::protocol::Call::Call { value, .. } = &mut call {
        *value = a.value;
    }
    let submitted = client.submit(&signer, call, !args.no_wait).await?;
    let Some(receipt) = submitted.receipt else {
        ctx.print(
            || {
                format!(
                    "submitted: seq {} request {}",
                    submitted.seq, submitted.request
                )
            },
            || json!({"seq": submitted.seq, "request": submitted.request}),
        );
        return Ok(());
    };
    print_receipt(ctx, contract.as_ref(), &a.message, &receipt)
}

fn print_receipt(
    ctx: &Ctx,
    contract: Option<&Contract>,
    message: &str,
    receipt: &Receipt,
) -> Result<()> {
    let out = match &receipt.result {
        CallResult::Ok(o) => o,
        CallResult::Err(e) => bail!("seq {}: {}: {}", receipt.seq, e.kind, e.message),
        CallResult::Sealed(_) => bail!(
            "seq {}: the result is encrypted to the command's sender",
            receipt.seq
        ),
    };
    let decoded = decode(contract, message, &out.data);
    let events: Vec<String> = receipt
        .events
        .iter()
        .map(|e| event_text(contract, e))
        .collect();
    ctx.print(
        || {
            let mut s = format!(
                "seq {}  gas {}  root {}\nresult {}{}",
                receipt.seq,
                receipt.gas_used,
                receipt.state_root,
                decoded,
                if out.reverted { "  (reverted)" } else { "" }
            );
            for e in &events {
                s.push_str(&format!("\nevent  {e}"));
            }
            s
        },
        || json!({"decoded": decoded, "events_decoded": events, "receipt": receipt}),
    );
    if out.reverted {
        bail!("the call reverted; nothing was applied");
    }
    Ok(())
}

/// The event of an `event` log entry, decoded with the contract's metadata (`None` without
/// an event, metadata, or a matching event in it).
fn decoded_event(contract: Option<&Contract>, entry: &LogEntry) -> Option<String> {
    let event = entry.event.as_ref()?;
    let topics: Vec<[u8; 32]> = event.topics.iter().map(|t| t.0).collect();
    contract?.decode_event(&topics, &event.data)
}

/// Prints one log entry: events decoded when the metadata allows, else the record's text. The
/// JSON form keeps the raw event (topics and data hex) and adds `decoded`.
fn print_log(ctx: &Ctx, contract: Option<&Contract>, entry: &LogEntry) {
    let decoded = decoded_event(contract, entry);
    ctx.print(
        || {
            let r = &entry.record;
            let origin = match r.seq {
                Some(s) => format!("seq {s}"),
                None => "query".into(),
            };
            let text = decoded.as_deref().unwrap_or(&r.message);
            format!("{} [{}] {}: {}", r.timestamp, origin, r.level, text)
        },
        || {
            let mut v = json!(entry);
            if let Some(d) = &decoded {
                v["decoded"] = json!(d);
            }
            v
        },
    );
}

/// `phat logs`.
pub async fn logs(args: LogsArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let id = parse_id(&args.contract)?;
    // Fetched once; without metadata on the cluster, events stay in their hex form.
    let contract = match args.metadata.as_deref() {
        Some(path) => Some(load_contract(path)?),
        None => contract_metadata(&client, &id, None).await.ok(),
    };
    if !args.follow {
        for entry in client.logs(&id).await? {
            print_log(ctx, contract.as_ref(), &entry);
        }
        return Ok(());
    }
    let mut stream = Box::pin(client.follow_logs(&id).await?);
    while let Some(entry) = stream.next().await {
        print_log(ctx, contract.as_ref(), &entry?);
    }
    bail!("the log stream ended (worker stopped?)")
}

/// `phat info`.
pub async fn info(args: InfoArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    match args.contract {
        None => {
            let i = client.trusted_info().await?;
            let insecure = phat_client::crypto::attest::is_insecure(&i.attestation);
            let label = if insecure {
                format!("{} (INSECURE: development only)", i.attestation.provider)
            } else {
                i.attestation.provider.clone()
            };
            ctx.print(
                || {
                    format!(
                        "worker {} (phat {}, pid {})\n  applied seq  {}\n  ledger head  {}\n  state root   {}\n  worker key   {}\n  cluster key  {}\n  encryption   {}\n  attestation  {}\n  measurement  {}",
                        i.name,
                        i.version,
                        i.pid,
                        i.seq,
                        i.ledger_head,
                        i.state_root,
                        i.worker_key,
                        i.cluster_key,
                        if i.encryption { "on" } else { "OFF (insecure)" },
                        label,
                        i.attestation.measurement
                    )
                },
                || json!({"worker": i, "attestation_insecure": insecure}),
            );
        }
        Some(c) => {
            let id = parse_id(&c)?;
            let v = client.contract(&id).await?;
            let name = client
                .contract_metadata(&id)
                .await
                .ok()
                .and_then(|m| m["contract"]["name"].as_str().map(String::from));
            ctx.print(
                || {
                    format!(
                        "contract {}\n  name      {}\n  code      {}\n  deployer  {}\n  sr25519   {}\n  ed25519   {}\n  secp256k1 {:?}\n  ethereum  {}",
                        v.id,
                        name.as_deref().unwrap_or("(no metadata)"),
                        v.code_hash,
                        v.deployer,
                        v.keys.sr25519,
                        v.keys.ed25519,
                        v.keys.secp256k1,
                        v.keys.ethereum_address
                    )
                },
                || json!({"contract": v, "name": name}),
            );
        }
    }
    Ok(())
}

/// `phat keys`.
pub fn keys(args: KeysArgs, ctx: &Ctx) -> Result<()> {
    let s = Signer::from_suri(&args.suri)?;
    ctx.print(
        || format!("account {}", s.account()),
        || json!({"account": s.account()}),
    );
    Ok(())
}
