//! The workload and its history: clients that move tokens between a fixed set of accounts and
//! increment a counter, each command with a unique request hash, through any worker; reads
//! of the counter with `min_seq`; every operation recorded as it ended.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parity_scale_codec::Decode;
use phat_client::primitives::protocol::CallResult;
use phat_client::primitives::{AccountId, Hash, Mode};
use phat_client::{Client, ClientError, Contract, Signer};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The accounts tokens move between (dev accounts, funded at genesis).
pub const ACCOUNTS: [&str; 5] = ["//Alice", "//Bob", "//Charlie", "//Dave", "//Eve"];
/// The token's total supply, all Alice's at first.
pub const SUPPLY: u128 = 1_000_000;
/// What each of the others gets from Alice before the run.
pub const SEED_BALANCE: u128 = 100_000;
/// How long one attempt may take before the client gives up on it.
const ATTEMPT: Duration = Duration::from_secs(8);
/// How long a client passes over a worker that failed it.
const AVOID: Duration = Duration::from_secs(5);
/// How long a client keeps re-sending one command.
const OP_DEADLINE: Duration = Duration::from_secs(25);

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `transfer(to, amount)` of the token, signed by `from` (indices into [`ACCOUNTS`]).
    Transfer {
        /// Payer.
        from: usize,
        /// Payee.
        to: usize,
        /// Amount.
        amount: u128,
    },
    /// `inc(1)` of the counter.
    Inc,
}

/// How an operation ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged with a receipt at `seq`; `output` is the contract's return bytes.
    Ok {
        /// Its seq.
        seq: u64,
        /// The call's output (`None` when it was refused before running).
        output: Option<Vec<u8>>,
    },
    /// Refused before it was appended, on every attempt (a 4xx answer).
    Failed {
        /// The refusal's kind.
        kind: String,
    },
    /// No answer says whether it was appended (timeouts, 5xx, lost connections).
    Unknown {
        /// The last error seen.
        last: String,
    },
}

/// One command.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    /// The client that ran it.
    pub client: usize,
    /// What it does.
    pub kind: Kind,
    /// Its request hash (hex).
    pub hash: String,
    /// Seconds since the run started, when it was invoked and when it ended.
    pub invoked: f64,
    /// When it ended.
    pub done: f64,
    /// The worker that answered last.
    pub worker: usize,
    /// Attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
}

/// One read of the counter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Read {
    /// The worker asked.
    pub worker: usize,
    /// The seq the read had to see (the client's own last command; 0: any).
    pub min_seq: u64,
    /// The highest seq any client had been told of when the read was invoked.
    pub known_head: u64,
    /// `None` when it failed; else the seq it read at and the value.
    pub answer: Option<(u64, u64)>,
    /// When it was invoked.
    pub invoked: f64,
}

/// Everything that happened, in the order it ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// Commands.
    pub ops: Vec<Op>,
    /// Reads.
    pub reads: Vec<Read>,
}

/// The deployed contracts and what clients need to call them.
#[derive(Clone)]
pub struct Setup {
    /// The worker endpoints.
    pub urls: Vec<String>,
    /// The cluster's key (requests are signed to it).
    pub cluster: Hash,
    /// The token.
    pub erc20: (Arc<Contract>, AccountId),
    /// The counter clients increment.
    pub counter: (Arc<Contract>, AccountId),
    /// The counter a schedule increments once a second.
    pub ticker: AccountId,
}

fn build(contracts: &Path, name: &str) -> Result<(Contract, std::path::PathBuf)> {
    let manifest = contracts.join(name).join("Cargo.toml");
    let built = phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |_| {})
        .with_context(|| format!("building {}", manifest.display()))?;
    let bundle = built.bundle.context("no bundle")?;
    Ok((Contract::load(&bundle)?, bundle))
}

async fn deploy(client: &Client, c: &Contract, ctor: &str, args: &[&str]) -> Result<AccountId> {
    let alice = Signer::from_suri("//Alice")?;
    let code = client
        .upload_code(&alice, c.wasm().context("no wasm")?.to_vec())
        .await?;
    let data = c.encode_constructor(ctor, args)?;
    let salt = rand::random::<[u8; 8]>().to_vec();
    let sub = client
        .submit(&alice, phat_client::instantiate(code, data, salt), true)
        .await?;
    match sub.receipt.map(|r| r.result) {
        Some(CallResult::Ok(o)) => o.address.context("no address"),
        other => bail!("deploying: {other:?}"),
    }
}

/// The SS58-or-hex text of account `i`.
pub fn account(i: usize) -> AccountId {
    // The dev URIs are valid: a failure here is a bug in this file.
    Signer::from_suri(ACCOUNTS[i])
        .map(|s| s.account())
        .unwrap_or_else(|e| panic!("{}: {e}", ACCOUNTS[i]))
}

/// Deploys the token, hands out balances, deploys both counters and schedules the ticker.
pub async fn set_up(contracts: &Path, urls: Vec<String>, phat: &Path) -> Result<Setup> {
    let erc20 = Arc::new(build(contracts, "erc20")?.0);
    let (counter, counter_bundle) = build(contracts, "counter")?;
    let counter = Arc::new(counter);
    let client = Client::new(&urls[0])?;
    let cluster = client.trusted_info().await?.cluster_key;
    let supply = SUPPLY.to_string();
    let token = deploy(&client, &erc20, "new", &[&supply]).await?;
    let alice = Signer::from_suri("//Alice")?;
    for i in 1..ACCOUNTS.len() {
        let to = format!("0x{}", hex::encode(account(i).0));
        let data = erc20.encode_message("transfer", &[to.as_str(), &SEED_BALANCE.to_string()])?;
        let sub = client
            .submit(&alice, phat_client::call(token, data), true)
            .await?;
        let ok = sub.receipt.is_some_and(|r| r.result.is_success());
        anyhow::ensure!(ok, "handing out balances");
    }
    let count = deploy(&client, &counter, "new", &["0"]).await?;
    let ticker = deploy(&client, &counter, "new", &["0"]).await?;
    let out = tokio::process::Command::new(phat)
        .args(["schedule", "add"])
        .arg(format!("0x{}", hex::encode(ticker.0)))
        .args(["inc", "--every", "1s", "--missed", "run-once", "--metadata"])
        .arg(&counter_bundle)
        .args(["--endpoint", &urls[0], "--suri", "//Alice"])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "phat schedule add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Setup {
        urls,
        cluster,
        erc20: (erc20, token),
        counter: (counter, count),
        ticker,
    })
}

/// Runs `clients` clients until `stop`; each records into `history`.
pub fn spawn_clients(
    setup: &Setup,
    clients: usize,
    seed: u64,
    started: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let known_head = Arc::new(AtomicU64::new(0));
    (0..clients)
        .map(|c| {
            let (setup, stop, history) = (setup.clone(), stop.clone(), history.clone());
            let known_head = known_head.clone();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((c as u64 + 1) * 7919));
                let endpoints: Vec<Client> = setup
                    .urls
                    .iter()
                    .filter_map(|u| Client::new(u).ok())
                    .collect();
                // When each worker last failed this client: it is passed over for a while.
                let mut avoid = vec![None::<Instant>; endpoints.len()];
                while !stop.load(Ordering::Relaxed) {
                    let op = one_op(&setup, &endpoints, &mut avoid, c, &mut rng, started).await;
                    if let Outcome::Ok { seq, .. } = &op.outcome {
                        known_head.fetch_max(*seq, Ordering::Relaxed);
                    }
                    // A third of the reads ask for no seq: they show how stale a worker is.
                    let read_after = match &op.outcome {
                        Outcome::Ok { seq, .. } if op.kind == Kind::Inc => {
                            Some(if rng.gen_bool(0.33) { 0 } else { *seq })
                        }
                        _ => None,
                    };
                    history
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .ops
                        .push(op);
                    if let Some(min_seq) = read_after {
                        let head = known_head.load(Ordering::Relaxed);
                        let read =
                            one_read(&setup, &endpoints, &mut rng, min_seq, head, started).await;
                        history
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .reads
                            .push(read);
                    }
                }
            })
        })
        .collect()
}

async fn one_op(
    setup: &Setup,
    endpoints: &[Client],
    avoid: &mut [Option<Instant>],
    c: usize,
    rng: &mut rand::rngs::StdRng,
    started: Instant,
) -> Op {
    let (kind, signer, call) = if rng.gen_bool(0.5) {
        let (contract, id) = &setup.counter;
        let data = contract
            .encode_message("inc", &["1"])
            .unwrap_or_else(|e| panic!("inc: {e}"));
        (Kind::Inc, c % ACCOUNTS.len(), phat_client::call(*id, data))
    } else {
        let from = rng.gen_range(0..ACCOUNTS.len());
        let to = (from + rng.gen_range(1..ACCOUNTS.len())) % ACCOUNTS.len();
        let amount = rng.gen_range(1..=5_000u128);
        let (contract, id) = &setup.erc20;
        let payee = format!("0x{}", hex::encode(account(to).0));
        let data = contract
            .encode_message("transfer", &[payee.as_str(), &amount.to_string()])
            .unwrap_or_else(|e| panic!("transfer: {e}"));
        (
            Kind::Transfer { from, to, amount },
            from,
            phat_client::call(*id, data),
        )
    };
    let signer = Signer::from_suri(ACCOUNTS[signer]).unwrap_or_else(|e| panic!("{e}"));
    let req = phat_client::sign(&signer, &setup.cluster, Mode::Command, call);
    let hash = hex::encode(req.hash().0);
    let invoked = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + OP_DEADLINE;
    // A client with failover, as users' clients are: it starts with a worker that has not
    // failed it in the last few seconds.
    let healthy: Vec<usize> = (0..endpoints.len())
        .filter(|w| avoid[*w].is_none_or(|t| t.elapsed() > AVOID))
        .collect();
    let mut worker = match healthy.len() {
        0 => rng.gen_range(0..endpoints.len()),
        n => healthy[rng.gen_range(0..n)],
    };
    let mut attempts = 0;
    let mut ambiguous = None::<String>;
    let outcome = loop {
        attempts += 1;
        let answer =
            tokio::time::timeout(ATTEMPT, endpoints[worker].submit_signed(&req, true)).await;
        let refused = match answer {
            Ok(Ok(sub)) => match sub.receipt {
                Some(r) => {
                    let output = match r.result {
                        CallResult::Ok(o) => Some(o.data.to_vec()),
                        _ => None,
                    };
                    break Outcome::Ok {
                        seq: sub.seq,
                        output,
                    };
                }
                None => {
                    ambiguous = Some("acknowledged without a receipt".into());
                    None
                }
            },
            // An earlier attempt may be in the log: not an acknowledgement of this one.
            Ok(Err(ClientError::Api { status, kind, .. }))
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                Some(kind)
            }
            Ok(Err(e)) => {
                ambiguous = Some(e.to_string());
                None
            }
            Err(_) => {
                ambiguous = Some(format!("no answer in {ATTEMPT:?}"));
                None
            }
        };
        if let Some(kind) = &refused {
            // Refused before appending, and no earlier attempt can be in the log.
            if ambiguous.is_none() && kind != "replayed" {
                break Outcome::Failed { kind: kind.clone() };
            }
            if kind == "replayed" {
                break Outcome::Unknown {
                    last: "replayed".into(),
                };
            }
        }
        if Instant::now() > deadline {
            break Outcome::Unknown {
                last: ambiguous.or(refused).unwrap_or_else(|| "deadline".into()),
            };
        }
        avoid[worker] = Some(Instant::now());
        worker = (worker + 1) % endpoints.len();
        tokio::time::sleep(Duration::from_millis(100 + rng.gen_range(0..100))).await;
    };
    Op {
        client: c,
        kind,
        hash,
        invoked,
        done: started.elapsed().as_secs_f64(),
        worker,
        attempts,
        outcome,
    }
}

async fn one_read(
    setup: &Setup,
    endpoints: &[Client],
    rng: &mut rand::rngs::StdRng,
    min_seq: u64,
    known_head: u64,
    started: Instant,
) -> Read {
    let worker = rng.gen_range(0..endpoints.len());
    let invoked = started.elapsed().as_secs_f64();
    let (contract, id) = &setup.counter;
    let answer = async {
        let data = contract.encode_message("get", &[] as &[&str]).ok()?;
        let signer = Signer::from_suri("//Ferdie").ok()?;
        let r = tokio::time::timeout(
            ATTEMPT,
            endpoints[worker].query(
                &signer,
                phat_client::call(*id, data),
                (min_seq > 0).then_some(min_seq),
            ),
        )
        .await
        .ok()?
        .ok()?;
        let CallResult::Ok(o) = r.result else {
            return None;
        };
        let value = <Result<u64, u8>>::decode(&mut &o.data[..]).ok()?.ok()?;
        Some((r.seq, value))
    }
    .await;
    Read {
        worker,
        min_seq,
        known_head,
        answer,
        invoked,
    }
}
