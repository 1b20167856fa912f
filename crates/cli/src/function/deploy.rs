//! `phat fn deploy`, `update`, `status` and `logs`: a function as a `contracts/phat-function`
//! instance (its code ships in `phat-system`) holding the script and its secrets, and a job
//! that runs its `answer` query on one worker per tick.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use parity_scale_codec::{Decode, Encode};
use phat_client::primitives::protocol::{CallResult, JobDef, JobOp, ScheduleSpec};
use phat_client::primitives::AccountId;
use phat_client::{Client, Signer};

use crate::commands::Ctx;
use crate::Output;

/// Bytes of one script chunk (the contract's `MAX_CHUNK`).
const CHUNK: usize = 12 * 1024;
/// Failures in a row after which a function stops (the contract's `MAX_FAILURES`).
const MAX_FAILURES: u32 = 20;

/// The contract's `Config`.
#[derive(Clone, Debug, Encode, Decode)]
struct Config {
    rpc_url: String,
    chain_id: u64,
    anchor: [u8; 20],
    gas_limit: u64,
}

/// The contract's `Outcome` (only to name it in `status`).
#[derive(Clone, Debug, Encode, Decode, PartialEq, Eq)]
#[allow(dead_code, reason = "decoded for the record, printed by Debug")]
enum Outcome {
    Idle { head: u32 },
    Pending { nonce: u64 },
    Backoff { until_ms: u64 },
    Paused { failures: u32 },
    Answered { index: u32, tx: [u8; 32] },
    Failed { index: Option<u32>, error: String },
}

/// The contract's `Status`.
#[derive(Clone, Debug, Default, Encode, Decode)]
struct Status {
    answered: u64,
    last_answer: Option<(u32, [u8; 32])>,
    last_error: Option<(Option<u32>, String)>,
    failures: u32,
    retry_after_ms: u64,
    last_tick: u64,
}

/// The contract's `Error`.
#[derive(Clone, Debug, Encode, Decode)]
enum FnError {
    NotOwner,
    NotTheCluster,
    TooLarge,
    Incomplete,
}

/// `phat fn deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// The built script.
    script: PathBuf,
    /// The anchor contract (`PhatRollupAnchor`) whose queue it answers.
    #[arg(long, value_name = "0xADDR")]
    anchor: String,
    /// The Ethereum node's JSON-RPC URL (reached from the workers).
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// The chain id.
    #[arg(long)]
    chain_id: u64,
    /// The secrets the script gets as its second argument: text, or `@FILE`.
    #[arg(long)]
    secrets: Option<String>,
    /// How often the queue is looked at.
    #[arg(long, default_value = "5s")]
    every: String,
    /// Gas limit of an answer (default: estimated by the node, plus a quarter).
    #[arg(long, default_value_t = 0)]
    gas_limit: u64,
    /// The owner's secret URI.
    #[arg(long, default_value = "//Alice")]
    suri: String,
}

/// `phat fn update`.
#[derive(Args)]
pub struct UpdateArgs {
    /// The function (its contract id).
    id: String,
    /// A new script.
    #[arg(long)]
    script: Option<PathBuf>,
    /// New secrets: text, or `@FILE`.
    #[arg(long)]
    secrets: Option<String>,
    /// The owner's secret URI.
    #[arg(long, default_value = "//Alice")]
    suri: String,
}

/// `phat fn status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The function (its contract id).
    id: String,
    /// The secret URI queries are signed with.
    #[arg(long, default_value = "//Alice")]
    suri: String,
}

/// The function contract's message selectors, from its metadata.
struct Abi {
    meta: serde_json::Value,
}

impl Abi {
    fn new() -> Result<Self> {
        Ok(Self {
            meta: serde_json::from_str(phat_system::FUNCTION_METADATA)
                .context("the bundled function metadata")?,
        })
    }

    fn selector(&self, kind: &str, label: &str) -> Result<Vec<u8>> {
        let list = self.meta["spec"][kind]
            .as_array()
            .context("the function metadata has no spec")?;
        let sel = list
            .iter()
            .find(|m| m["label"] == label)
            .and_then(|m| m["selector"].as_str())
            .with_context(|| format!("the function metadata has no {label}"))?;
        hex::decode(sel.trim_start_matches("0x")).context("a selector is not hex")
    }

    fn message(&self, label: &str, args: impl Encode) -> Result<Vec<u8>> {
        let mut data = self.selector("messages", label)?;
        args.encode_to(&mut data);
        Ok(data)
    }
}

/// Reads `TEXT` or `@FILE`.
fn text_or_file(v: &str) -> Result<Vec<u8>> {
    match v.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {path}")),
        None => Ok(v.as_bytes().to_vec()),
    }
}

fn parse_address(s: &str) -> Result<[u8; 20]> {
    let bytes = hex::decode(s.trim_start_matches("0x"))
        .with_context(|| format!("{s} is not a 0x-prefixed hex address"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{s} is not a 20-byte address"))
}

/// Submits `message(args)` to `id` as `signer`; its `Result<(), Error>` must be `Ok`.
async fn command(
    client: &Client,
    signer: &Signer,
    id: AccountId,
    data: Vec<u8>,
    what: &str,
) -> Result<Vec<u8>> {
    let sub = client
        .submit(signer, phat_client::call(id, data), true)
        .await
        .with_context(|| what.to_string())?;
    let receipt = sub.receipt.context("the worker returned no receipt")?;
    match receipt.result {
        CallResult::Ok(o) if !o.reverted => Ok(o.data.0),
        CallResult::Ok(o) => {
            let err = <Result<Result<(), FnError>, u8>>::decode(&mut &o.data.0[..])
                .map(|r| format!("{r:?}"))
                .unwrap_or_else(|_| format!("0x{}", hex::encode(&o.data.0)));
            bail!("{what}: the function refused: {err}")
        }
        CallResult::Err(e) => bail!("{what}: {}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("{what}: the result is sealed to another key"),
    }
}

/// Queries `message` of `id`; its SCALE output (`Result<T, LangError>`) decoded.
async fn query<T: Decode>(
    client: &Client,
    signer: &Signer,
    id: AccountId,
    data: Vec<u8>,
) -> Result<T> {
    let r = client
        .query(signer, phat_client::call(id, data), None)
        .await?;
    match r.result {
        CallResult::Ok(o) => match <Result<T, u8>>::decode(&mut &o.data.0[..]) {
            Ok(Ok(v)) => Ok(v),
            _ => bail!("the function's answer does not decode (is {id} a function?)"),
        },
        CallResult::Err(e) => bail!("{}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("the query's result is sealed to another key"),
    }
}

/// Stores `script` in chunks and makes it the function's script; its version.
async fn put_script(
    client: &Client,
    signer: &Signer,
    abi: &Abi,
    id: AccountId,
    script: &[u8],
) -> Result<u32> {
    if script.is_empty() {
        bail!("the script is empty");
    }
    if script.len() > super::build::MAX_SCRIPT {
        bail!(
            "the script is {} bytes, over the {}-byte limit of a function",
            script.len(),
            super::build::MAX_SCRIPT
        );
    }
    std::str::from_utf8(script).context("the script is not UTF-8 text")?;
    let chunks: Vec<&[u8]> = script.chunks(CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let data = abi.message("put_chunk", (i as u32, chunk.to_vec()))?;
        command(
            client,
            signer,
            id,
            data,
            &format!("storing chunk {}/{}", i + 1, chunks.len()),
        )
        .await?;
    }
    let out = command(
        client,
        signer,
        id,
        abi.message("set_script", chunks.len() as u32)?,
        "setting the script",
    )
    .await?;
    match <Result<Result<u32, FnError>, u8>>::decode(&mut &out[..]) {
        Ok(Ok(Ok(v))) => Ok(v),
        other => bail!("setting the script: {other:?}"),
    }
}

/// Runs `phat fn deploy`.
pub async fn deploy(args: DeployArgs, ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let signer = Signer::from_suri(&args.suri)?;
    let abi = Abi::new()?;
    let script = std::fs::read(&args.script)
        .with_context(|| format!("reading the script {}", args.script.display()))?;
    let secrets = args
        .secrets
        .as_deref()
        .map(text_or_file)
        .transpose()?
        .unwrap_or_default();
    let config = Config {
        rpc_url: args.rpc.clone(),
        chain_id: args.chain_id,
        anchor: parse_address(&args.anchor)?,
        gas_limit: args.gas_limit,
    };
    let every = crate::commands::parse_period(&args.every)?;
    let progress = |m: &str| {
        if ctx.output == Output::Human {
            eprintln!("{m}");
        }
    };
    progress("[1/4] instantiating the function contract");
    let mut constructor = abi.selector("constructors", "new")?;
    config.encode_to(&mut constructor);
    let metadata: serde_json::Value = serde_json::from_str(phat_system::FUNCTION_METADATA)?;
    let code_hash = client
        .upload_code(&signer, phat_system::FUNCTION_WASM.to_vec())
        .await
        .context("uploading the function's code")?;
    client
        .put_metadata(&signer, &code_hash, &metadata)
        .await
        .context("storing the function's metadata")?;
    let salt = phat_client::primitives::blake2_256(&[&script[..], &rand_salt()].concat()).to_vec();
    let sub = client
        .submit(
            &signer,
            phat_client::instantiate(code_hash, constructor, salt),
            true,
        )
        .await?;
    let receipt = sub.receipt.context("the worker returned no receipt")?;
    let id = match receipt.result {
        CallResult::Ok(o) if !o.reverted => o.address.context("no address in the receipt")?,
        CallResult::Ok(_) => bail!("the function's constructor reverted"),
        CallResult::Err(e) => bail!("instantiation failed: {}: {}", e.kind, e.message),
        CallResult::Sealed(_) => bail!("the receipt's result is sealed to another key"),
    };
    progress(&format!(
        "[2/4] storing the script ({} bytes) and its secrets, sealed",
        script.len()
    ));
    put_script(&client, &signer, &abi, id, &script).await?;
    if !secrets.is_empty() {
        command(
            &client,
            &signer,
            id,
            abi.message("set_secrets", secrets)?,
            "setting the secrets",
        )
        .await?;
    }
    progress(&format!(
        "[3/4] adding its job: the queue is read every {every} ms"
    ));
    let def = JobDef {
        spec: ScheduleSpec::Every { ms: every },
        query: abi.message("answer", ())?.into(),
        handler: abi.selector("messages", "record")?.into(),
        gas_limit: phat_client::DEFAULT_GAS_LIMIT,
        timeout_ms: (every / 2).clamp(500, 5_000) as u32,
    };
    client
        .change_job(&signer, JobOp::Add { contract: id, def })
        .await
        .context("adding the function's job")?;
    progress("[4/4] reading its attestor");
    let attestor: [u8; 20] = query(&client, &signer, id, abi.message("attestor", ())?).await?;
    let attestor = format!("0x{}", hex::encode(attestor));
    match ctx.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"contract": id.to_string(), "attestor": attestor, "code_hash": code_hash.to_string()})
        ),
        Output::Human => {
            println!("function {id}");
            println!("attestor {attestor}");
            println!(
                "next: grant {attestor} the anchor's attestor role and fund it with gas; \
                 `phat fn status {id}` shows its queue"
            );
        }
    }
    Ok(())
}

/// Salt bytes for a new function's address.
fn rand_salt() -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (nanos ^ u128::from(std::process::id())).to_le_bytes()
}

/// The client, signer, ABI and id a command on function `id` needs.
fn function_ctx(ctx: &Ctx, suri: &str, id: &str) -> Result<(Client, Signer, Abi, AccountId)> {
    let id: AccountId = id
        .parse()
        .map_err(|e| anyhow::anyhow!("function id `{id}`: {e}"))?;
    Ok((ctx.client()?, Signer::from_suri(suri)?, Abi::new()?, id))
}

/// Runs `phat fn update`.
pub async fn update(args: UpdateArgs, ctx: &Ctx) -> Result<()> {
    let (client, signer, abi, id) = function_ctx(ctx, &args.suri, &args.id)?;
    if args.script.is_none() && args.secrets.is_none() {
        bail!("nothing to update: give --script FILE and/or --secrets TEXT|@FILE");
    }
    let mut version = None;
    if let Some(path) = &args.script {
        let script = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        version = Some(put_script(&client, &signer, &abi, id, &script).await?);
    }
    if let Some(s) = &args.secrets {
        command(
            &client,
            &signer,
            id,
            abi.message("set_secrets", text_or_file(s)?)?,
            "setting the secrets",
        )
        .await?;
    }
    match ctx.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"contract": id.to_string(), "script_version": version})
        ),
        Output::Human => match version {
            Some(v) => println!("function {id}: script version {v}"),
            None => println!("function {id}: secrets replaced"),
        },
    }
    Ok(())
}

/// One JSON-RPC call from the CLI.
async fn rpc(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: serde_json::Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{method} to {url}"))?
        .json()
        .await
        .with_context(|| format!("{method}: not JSON-RPC"))?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    Ok(v["result"].clone())
}

/// The anchor's `getStorage(key)` read as a `uint32` (an empty value is 0).
async fn anchor_u32(
    http: &reqwest::Client,
    url: &str,
    anchor: &[u8; 20],
    key: &[u8],
) -> Result<u32> {
    use sha3::Digest;
    let mut data = sha3::Keccak256::digest(b"getStorage(bytes)")[..4].to_vec();
    let word = |n: usize| {
        let mut w = [0u8; 32];
        w[24..].copy_from_slice(&(n as u64).to_be_bytes());
        w
    };
    data.extend_from_slice(&word(32));
    data.extend_from_slice(&word(key.len()));
    let mut padded = key.to_vec();
    padded.resize(key.len().div_ceil(32) * 32, 0);
    data.extend_from_slice(&padded);
    let out = rpc(
        http,
        url,
        "eth_call",
        serde_json::json!([{"to": format!("0x{}", hex::encode(anchor)), "input": format!("0x{}", hex::encode(data))}, "latest"]),
    )
    .await?;
    let raw = hex::decode(out.as_str().unwrap_or_default().trim_start_matches("0x"))?;
    // `bytes` returned: offset, length, then the value (a 32-byte word, or nothing).
    let len = raw
        .get(56..64)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or_default()));
    if len == 0 {
        return Ok(0);
    }
    let value = raw.get(64..96).context("the anchor's answer is short")?;
    Ok(u32::from_be_bytes(value[28..32].try_into()?))
}

/// Runs `phat fn status`.
pub async fn status(args: StatusArgs, ctx: &Ctx) -> Result<()> {
    let (client, signer, abi, id) = function_ctx(ctx, &args.suri, &args.id)?;
    let config: Config = query(&client, &signer, id, abi.message("config", ())?).await?;
    let status: Status = query(&client, &signer, id, abi.message("status", ())?).await?;
    let (version, size): (u32, u32) =
        query(&client, &signer, id, abi.message("script_info", ())?).await?;
    let attestor: [u8; 20] = query(&client, &signer, id, abi.message("attestor", ())?).await?;
    // What the chain says, read from here (the node may not be reachable from this machine).
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let chain = async {
        let head = anchor_u32(&http, &config.rpc_url, &config.anchor, b"q/_head").await?;
        let tail = anchor_u32(&http, &config.rpc_url, &config.anchor, b"q/_tail").await?;
        let balance = rpc(
            &http,
            &config.rpc_url,
            "eth_getBalance",
            serde_json::json!([format!("0x{}", hex::encode(attestor)), "latest"]),
        )
        .await?;
        let balance = u128::from_str_radix(
            balance.as_str().unwrap_or("0x0").trim_start_matches("0x"),
            16,
        )?;
        anyhow::Ok((head, tail, balance))
    }
    .await;
    let hexs = |b: &[u8]| format!("0x{}", hex::encode(b));
    match ctx.output {
        Output::Json => {
            let mut doc = serde_json::json!({
                "contract": id.to_string(),
                "attestor": hexs(&attestor),
                "anchor": hexs(&config.anchor),
                "rpc": config.rpc_url,
                "chain_id": config.chain_id,
                "script_version": version,
                "script_bytes": size,
                // Every request popped from the queue was answered by the function; its own
                // count misses a run whose job result lost to another worker's for the tick.
                "answered": chain.as_ref().map_or(u64::from(0u32), |(head, _, _)| u64::from(*head)),
                "recorded_answers": status.answered,
                "last_answer": status.last_answer.map(|(i, tx)| serde_json::json!({"index": i, "tx": hexs(&tx)})),
                "last_error": status.last_error.as_ref().map(|(i, e)| serde_json::json!({"index": i, "error": e})),
                "failures": status.failures,
                "paused": status.failures >= MAX_FAILURES,
                "retry_after_ms": status.retry_after_ms,
                "last_tick": status.last_tick,
            });
            match &chain {
                Ok((head, tail, balance)) => {
                    doc["queue"] = serde_json::json!({"head": head, "tail": tail});
                    doc["attestor_balance_wei"] = serde_json::Value::String(balance.to_string());
                }
                Err(e) => doc["chain_error"] = serde_json::Value::String(format!("{e:#}")),
            }
            println!("{doc}");
        }
        Output::Human => {
            println!("function  {id} (script version {version}, {size} bytes)");
            println!(
                "anchor    {} on chain {} via {}",
                hexs(&config.anchor),
                config.chain_id,
                config.rpc_url
            );
            println!("attestor  {}", hexs(&attestor));
            match &chain {
                Ok((head, tail, balance)) => {
                    println!(
                        "queue     head {head}, tail {tail} ({} waiting)",
                        tail.saturating_sub(*head)
                    );
                    println!(
                        "balance   {balance} wei{}",
                        if *balance == 0 {
                            " (unfunded: answers cannot be sent)"
                        } else {
                            ""
                        }
                    );
                }
                Err(e) => println!("chain     not readable from here: {e:#}"),
            }
            if let Ok((head, _, _)) = &chain {
                println!("answered  {head} (the queue's head on chain)");
            } else {
                println!(
                    "answered  {} (recorded; the chain was not read)",
                    status.answered
                );
            }
            if let Some((i, tx)) = status.last_answer {
                println!("last      queue item {i} answered in {}", hexs(&tx));
            }
            if let Some((i, e)) = &status.last_error {
                let at = i.map(|i| format!(" (queue item {i})")).unwrap_or_default();
                println!(
                    "last error {e}{at}; {} failures in a row now",
                    status.failures
                );
            }
        }
    }
    Ok(())
}
