//! The wire protocol between clients, workers and the ledger: signed requests, ledger entries,
//! receipts and query results.
//!
//! A client signs a [`RequestBody`] (SCALE-encoded, with a domain tag) with its sr25519 key and
//! sends the [`SignedRequest`] to a worker. Queries are answered at once; commands are appended
//! to the ledger as [`SignedRequest`] bytes and applied in order by every worker, each producing
//! the same [`Receipt`]. The encryption layer (envelopes) wraps these types without changing them.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{blake2_256, AccountId, Balance, CodeHash, Event, Gas, Hash, Mode, Timestamp};

mod logs;
pub use logs::*;

/// A command's position in the ledger; the first command is 1.
pub type Seq = u64;

/// Domain tag prefixed to every signed request body.
pub const REQUEST_SIGNING_DOMAIN: &[u8] = b"phat/request/v2:";

/// The longest a request may stay valid after it is signed (one hour, in ms). Bounds the
/// replay-protection memory of every worker.
pub const MAX_REQUEST_TTL_MS: u64 = 60 * 60 * 1000;

/// Bytes shown as `0x`-prefixed hex in JSON.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

// Hex in JSON (`0x…`), through `const-hex`: every sealed query, reply and command crosses
// HTTP this way, and `hex`'s char-at-a-time encoder showed in the query path's profile.
impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&const_hex::encode_prefixed(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("0x-prefixed hex bytes")
            }
            // Borrowed from the input when it can be: no copy of the text first.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Bytes, E> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                // `const_hex` would strip a second prefix; one spelling only, as before.
                if s.starts_with("0x") {
                    return Err(E::custom("expected 0x-prefixed hex bytes"));
                }
                const_hex::decode(s)
                    .map(Bytes)
                    .map_err(|_| E::custom("expected 0x-prefixed hex bytes"))
            }
        }
        d.deserialize_str(HexVisitor)
    }
}

/// What a request asks a worker (query) or the cluster (command) to do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Call {
    /// Instantiate uploaded code (a command uploads it from the ledger's blob store first).
    Instantiate {
        /// The code to instantiate.
        code_hash: CodeHash,
        /// Native value transferred to the new contract.
        value: Balance,
        /// Constructor selector and SCALE-encoded arguments.
        data: Bytes,
        /// Salt for the contract address.
        salt: Bytes,
        /// Gas limit.
        gas_limit: Gas,
    },
    /// Call a message of a contract.
    Call {
        /// The contract.
        dest: AccountId,
        /// Native value transferred.
        value: Balance,
        /// Message selector and SCALE-encoded arguments.
        data: Bytes,
        /// Gas limit.
        gas_limit: Gas,
    },
    /// Change the cluster itself (commands signed by the cluster owner only).
    Cluster {
        /// What to change.
        op: ClusterOp,
    },
    /// Add or remove a contract's schedule (commands signed by the contract's deployer).
    Schedule {
        /// What to change.
        op: ScheduleOp,
    },
    /// Add or remove a contract's subscription to Ethereum logs (commands signed by the
    /// contract's deployer).
    Subscription {
        /// What to change.
        op: SubscriptionOp,
    },
    /// Add or remove a contract's off-chain job (commands signed by the contract's deployer).
    Job {
        /// What to change.
        op: JobOp,
    },
    /// Read a contract's log (queries signed by its deployer or one of its log readers); the
    /// output is a SCALE [`LogPage`].
    Logs {
        /// The contract.
        contract: AccountId,
        /// Which records.
        filter: LogFilter,
    },
    /// Set who besides the deployer may read a contract's log (commands signed by the
    /// contract's deployer; at most [`MAX_LOG_READERS`], none to allow only the deployer).
    LogReaders {
        /// The contract.
        contract: AccountId,
        /// The accounts.
        readers: Vec<AccountId>,
    },
    /// Move native balance from the signer to `dest` (any account, a contract too: its code
    /// does not run). Commands only.
    Transfer {
        /// The receiving account.
        dest: AccountId,
        /// How much.
        value: Balance,
    },
    /// Estimate what a command of `call` (the SCALE bytes of a [`Call::Call`] or
    /// [`Call::Instantiate`]) would cost: run as a query whose cache writes and log lines are
    /// dropped, answering its gas and storage deposit. Queries only.
    Estimate {
        /// The call, SCALE-encoded.
        call: Bytes,
    },
}

/// When a schedule's ticks fall, in UTC on ledger time.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ScheduleSpec {
    /// Every `ms` milliseconds from the registration (at least 1000).
    Every {
        /// The period.
        ms: u64,
    },
    /// A cron expression with seconds: `sec min hour day-of-month month day-of-week [year]`.
    Cron {
        /// The expression.
        expr: String,
    },
}

/// What a schedule does with ticks that passed while nobody could run them (the cluster was
/// down): either way a tick runs at most once and missed ticks collapse into one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    /// Missed ticks are dropped: the run gets the message's arguments as given.
    #[default]
    Skip,
    /// The run gets one more argument, `ticks: u64`: how many ticks it stands for (1, or 1
    /// plus the ticks missed).
    RunOnce,
}

/// What a schedule runs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ScheduleDef {
    /// When.
    pub spec: ScheduleSpec,
    /// The message: selector and SCALE-encoded arguments.
    pub data: Bytes,
    /// The gas limit of each run.
    pub gas_limit: Gas,
    /// Missed-tick policy.
    pub missed: MissedTicks,
}

/// A change to a contract's schedules.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum ScheduleOp {
    /// Register a schedule; the receipt's output is its id (SCALE `u32`).
    Add {
        /// The contract it runs.
        contract: AccountId,
        /// What and when.
        def: ScheduleDef,
    },
    /// Remove schedule `id` of `contract`.
    Remove {
        /// The contract.
        contract: AccountId,
        /// The schedule's id.
        id: u32,
    },
}

/// A registered schedule, as replicated state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Schedule {
    /// The contract it runs.
    pub contract: AccountId,
    /// Its id (unique in the cluster).
    pub id: u32,
    /// What and when.
    pub def: ScheduleDef,
    /// Ledger time of its registration (ticks of `Every` count from here).
    pub since: Timestamp,
    /// The last tick that ran (or was dropped); the next run is for a later tick.
    pub last_tick: Timestamp,
    /// Runs so far.
    pub runs: u64,
    /// Who set it up, pays its deposit and calls it: its deployer, or the contract itself.
    #[serde(default)]
    pub origin: ScheduleOrigin,
}

/// Who set up a schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleOrigin {
    /// The contract's deployer, with a [`ScheduleOp`] command: the deployer pays its deposit
    /// and its runs' deposits, and runs are called by [`schedule_caller`].
    #[default]
    Deployer,
    /// The contract itself, through the extension (phat's `schedule_set`, or Phala's
    /// `System::set_hook`): the contract pays, and runs are called by the contract itself,
    /// as Phala calls hooks. At most one per message selector.
    Contract,
}

/// Every schedule of the cluster (state key [`crate::StateKey::Schedules`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ScheduleTable {
    /// The id the next schedule gets.
    pub next_id: u32,
    /// The schedules, by id.
    pub schedules: Vec<Schedule>,
}

impl ScheduleTable {
    /// Decodes a stored table: this layout, or the one before schedules had an
    /// [`ScheduleOrigin`] (every schedule then was its deployer's). Tried in that order; the
    /// older layout is one byte shorter per schedule, so no table decodes as both.
    pub fn decode_stored(raw: &[u8]) -> Result<Self, parity_scale_codec::Error> {
        use parity_scale_codec::DecodeAll;
        if let Ok(table) = Self::decode_all(&mut &raw[..]) {
            return Ok(table);
        }
        #[derive(Decode)]
        struct ScheduleV1 {
            contract: AccountId,
            id: u32,
            def: ScheduleDef,
            since: Timestamp,
            last_tick: Timestamp,
            runs: u64,
        }
        #[derive(Decode)]
        struct TableV1 {
            next_id: u32,
            schedules: Vec<ScheduleV1>,
        }
        let old = TableV1::decode_all(&mut &raw[..])?;
        Ok(ScheduleTable {
            next_id: old.next_id,
            schedules: old
                .schedules
                .into_iter()
                .map(|s| Schedule {
                    contract: s.contract,
                    id: s.id,
                    def: s.def,
                    since: s.since,
                    last_tick: s.last_tick,
                    runs: s.runs,
                    origin: ScheduleOrigin::Deployer,
                })
                .collect(),
        })
    }
}

/// A worker's proposal that schedule `schedule` of `contract` has a due tick (a ledger entry;
/// whoever appends it, it runs only if the tick is due on ledger time and has not run).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TriggerEntry {
    /// The contract.
    pub contract: AccountId,
    /// The schedule.
    pub schedule: u32,
    /// The tick proposed (Unix ms).
    pub tick: Timestamp,
}

/// The caller a schedule's runs see: an account nobody holds a key for, so a contract knows a
/// call from it came from one of its schedules (blake2-256 of `phat/v1/trigger/schedule`).
pub fn schedule_caller() -> AccountId {
    AccountId(blake2_256(b"phat/v1/trigger/schedule"))
}

/// What a contract subscribes to: the logs of one Ethereum contract matching topics, past a
/// confirmation depth, delivered once each, in chain order, to a handler message.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SubscriptionDef {
    /// The JSON-RPC endpoint workers poll (`eth_blockNumber`, `eth_getLogs`); it goes through
    /// the workers' egress rules like a contract's own HTTP requests.
    pub rpc_url: String,
    /// The chain id the endpoint must answer (`eth_chainId`).
    pub chain_id: u64,
    /// The emitting contract (20 bytes).
    pub address: Bytes,
    /// Topic filters by position (`None`: any), at most 4.
    pub topics: Vec<Option<Hash>>,
    /// Blocks a log must be under the head before it is delivered (the reorg depth tolerated).
    pub confirmations: u32,
    /// The first block looked at.
    pub from_block: u64,
    /// The handler: a message selector (4 bytes); the run's arguments are appended
    /// (`block_number: u64, log_index: u32, topics: Vec<[u8; 32]>, data: Vec<u8>`).
    pub handler: Bytes,
    /// The gas limit of each run.
    pub gas_limit: Gas,
    /// Distinct workers that must report the same log before it is delivered (at least 1).
    pub quorum: u8,
}

/// A registered subscription, as replicated state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Subscription {
    /// The contract it delivers to.
    pub contract: AccountId,
    /// Its id (unique in the cluster).
    pub id: u32,
    /// What it follows.
    pub def: SubscriptionDef,
    /// The last log delivered (`None`: none yet); the next is after it in chain order.
    pub cursor: Option<LogPosition>,
    /// Logs delivered so far.
    pub delivered: u64,
    /// Reports of logs not delivered yet (at most [`MAX_PENDING_VOTES`]).
    pub votes: Vec<LogVote>,
}

/// Most undelivered log reports a subscription keeps (the oldest go first).
pub const MAX_PENDING_VOTES: usize = 16;

/// Where a log sits in its chain.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// Its block's number.
    pub block_number: u64,
    /// Its index in the block.
    pub log_index: u32,
}

/// The workers that reported one log (a log is its position and the digest of all it says).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LogVote {
    /// Where the log is.
    pub position: LogPosition,
    /// blake2-256 of the reported [`EthLog`].
    pub digest: Hash,
    /// The distinct workers (identity keys) that reported it.
    pub workers: Vec<Hash>,
}

/// Every subscription of the cluster (state key [`crate::StateKey::Subscriptions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SubscriptionTable {
    /// The id the next subscription gets.
    pub next_id: u32,
    /// The subscriptions, by id.
    pub subscriptions: Vec<Subscription>,
}

/// A change to a contract's subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum SubscriptionOp {
    /// Register a subscription; the receipt's output is its id (SCALE `u32`).
    Add {
        /// The contract it delivers to.
        contract: AccountId,
        /// What it follows.
        def: SubscriptionDef,
    },
    /// Remove subscription `id` of `contract`.
    Remove {
        /// The contract.
        contract: AccountId,
        /// The subscription's id.
        id: u32,
    },
}

impl SubscriptionOp {
    /// The contract whose subscriptions change.
    pub fn contract(&self) -> AccountId {
        match self {
            SubscriptionOp::Add { contract, .. } | SubscriptionOp::Remove { contract, .. } => {
                *contract
            }
        }
    }
}

/// An Ethereum log as a worker read it from its RPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EthLog {
    /// The chain it is on.
    pub chain_id: u64,
    /// Where.
    pub position: LogPosition,
    /// Its block's hash.
    pub block_hash: Hash,
    /// The emitting contract (20 bytes).
    pub address: Bytes,
    /// Its topics (at most 4).
    pub topics: Vec<Hash>,
    /// Its data.
    pub data: Bytes,
}

/// A worker's report of a log for a subscription: what it saw, who it is, and its signature
/// with its attested vote key ([`EthLogEntry::signed_payload`]), checked against the members
/// in replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EthLogEntry {
    /// The contract subscribed.
    pub contract: AccountId,
    /// The subscription.
    pub subscription: u32,
    /// The log.
    pub log: EthLog,
    /// The reporting worker's identity key.
    pub worker: Hash,
    /// The key epoch it was made in.
    pub epoch: u32,
    /// The worker's ed25519 signature of [`EthLogEntry::signed_payload`] (64 bytes).
    pub signature: Bytes,
}

impl EthLogEntry {
    /// The domain its worker signs [`EthLogEntry::signed_payload`] under.
    pub const VOTE_DOMAIN: &'static str = "phat/v1/vote/eth-log";

    /// The bytes the signature covers: everything but the signature, under a domain tag.
    pub fn signed_payload(&self) -> Vec<u8> {
        (
            b"phat/v1/eth-log",
            &self.contract,
            self.subscription,
            &self.log,
            &self.worker,
            self.epoch,
        )
            .encode()
    }
}

/// The caller a subscription's runs see: an account nobody holds a key for, so a handler
/// knows a call from it is a delivered log (blake2-256 of `phat/v1/trigger/eth-log`).
pub fn eth_log_caller() -> AccountId {
    AccountId(blake2_256(b"phat/v1/trigger/eth-log"))
}

/// An off-chain job: on each tick one worker runs `query` in query mode (HTTP, randomness and
/// time allowed), and its output is committed to `handler` as a command.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct JobDef {
    /// When.
    pub spec: ScheduleSpec,
    /// The message run in query mode: selector and SCALE arguments.
    pub query: Bytes,
    /// The handler's selector (4 bytes); its arguments `(tick: u64, output: Vec<u8>)` are
    /// appended, `output` being what the query returned.
    pub handler: Bytes,
    /// The gas limit of the query and of the handler's run.
    pub gas_limit: Gas,
    /// How long a worker has to answer before the next one in the tick's order tries (ms).
    pub timeout_ms: u32,
}

/// A registered job, as replicated state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Job {
    /// The contract it runs.
    pub contract: AccountId,
    /// Its id (unique in the cluster).
    pub id: u32,
    /// What and when.
    pub def: JobDef,
    /// Ledger time of its registration (ticks of `Every` count from here).
    pub since: Timestamp,
    /// The last tick answered; the next answer is for a later tick.
    pub last_tick: Timestamp,
    /// Ticks answered so far.
    pub runs: u64,
}

/// Every job of the cluster (state key [`crate::StateKey::Jobs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct JobTable {
    /// The id the next job gets.
    pub next_id: u32,
    /// The jobs, by id.
    pub jobs: Vec<Job>,
}

/// A change to a contract's jobs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum JobOp {
    /// Register a job; the receipt's output is its id (SCALE `u32`).
    Add {
        /// The contract it runs.
        contract: AccountId,
        /// What and when.
        def: JobDef,
    },
    /// Remove job `id` of `contract`.
    Remove {
        /// The contract.
        contract: AccountId,
        /// The job's id.
        id: u32,
    },
}

impl JobOp {
    /// The contract whose jobs change.
    pub fn contract(&self) -> AccountId {
        match self {
            JobOp::Add { contract, .. } | JobOp::Remove { contract, .. } => *contract,
        }
    }
}

/// A worker's answer to a job's tick: the query's output, who ran it, and its signature with
/// its attested vote key ([`JobResultEntry::signed_payload`]).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct JobResultEntry {
    /// The contract.
    pub contract: AccountId,
    /// The job.
    pub job: u32,
    /// The tick answered (Unix ms).
    pub tick: Timestamp,
    /// What the query returned (its output bytes).
    pub output: Bytes,
    /// The worker that ran it (identity key).
    pub worker: Hash,
    /// The key epoch it was made in (its output is sealed under that epoch's secret).
    pub epoch: u32,
    /// The worker's ed25519 signature of [`JobResultEntry::signed_payload`] (64 bytes).
    pub signature: Bytes,
}

impl JobResultEntry {
    /// The domain its worker signs [`JobResultEntry::signed_payload`] under.
    pub const VOTE_DOMAIN: &'static str = "phat/v1/vote/job-result";

    /// The bytes the signature covers: everything but the signature, under a domain tag.
    pub fn signed_payload(&self) -> Vec<u8> {
        (
            b"phat/v1/job-result",
            &self.contract,
            self.job,
            self.tick,
            &self.output,
            &self.worker,
            self.epoch,
        )
            .encode()
    }
}

/// The caller a job's queries and handler runs see: an account nobody holds a key for, so a
/// handler knows a call from it carries its job's output (blake2-256 of
/// `phat/v1/trigger/job`).
pub fn job_caller() -> AccountId {
    AccountId(blake2_256(b"phat/v1/trigger/job"))
}

/// A change to the cluster that only its owner (named in the genesis) may order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum ClusterOp {
    /// Start a new key epoch: a new cluster secret, handed to the workers of the cluster.
    RotateKey,
    /// Remove a worker (by its identity key) from the cluster, then start a new key epoch
    /// it does not get.
    RevokeWorker {
        /// The worker's X25519 identity key.
        worker: Hash,
    },
    /// Set the accounts besides the owner that may upload code and instantiate contracts on
    /// a cluster whose genesis makes deploying owner-only (at most [`MAX_DEPLOYERS`]; none:
    /// the owner alone).
    SetDeployers {
        /// The accounts.
        accounts: Vec<AccountId>,
    },
}

/// The most accounts [`ClusterOp::SetDeployers`] allows besides the owner.
pub const MAX_DEPLOYERS: usize = 256;

/// The cluster's key epochs, kept in replicated state ([`crate::StateKey::ClusterEpochs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ClusterEpochs {
    /// Every change, oldest first; epoch `n` is the `n`-th (epoch 0 is the genesis key).
    pub changes: Vec<EpochChange>,
}

/// One key epoch's start.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochChange {
    /// The seq of the command that started it.
    pub seq: Seq,
    /// The worker revoked with it, if any.
    pub revoked: Option<Hash>,
    /// The deal that keyed it, once one was applied.
    pub dealt: Option<EpochDealt>,
}

/// The deal that keyed an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochDealt {
    /// The seq of the [`EpochDeal`] entry (its shares are read from there).
    pub seq: Seq,
    /// The epoch's envelope key.
    pub key: Hash,
}

impl ClusterEpochs {
    /// The epoch started last (keyed or not).
    pub fn epoch(&self) -> u32 {
        u32::try_from(self.changes.len()).unwrap_or(u32::MAX)
    }

    /// The newest keyed epoch: the one commands are sealed to and votes are made in. Epochs
    /// are keyed in order and a change waits for the one before to be keyed, so only the
    /// last one started can be unkeyed.
    pub fn keyed(&self) -> u32 {
        let keyed = self.epoch() - u32::from(self.pending().is_some());
        debug_assert!(self.changes[..keyed as usize]
            .iter()
            .all(|c| c.dealt.is_some()));
        keyed
    }

    /// The epoch started and not keyed yet, if any.
    pub fn pending(&self) -> Option<u32> {
        match self.changes.last() {
            Some(c) if c.dealt.is_none() => Some(self.epoch()),
            _ => None,
        }
    }

    /// The deal that keyed `epoch` (none for epoch 0, the genesis key).
    pub fn dealt(&self, epoch: u32) -> Option<&EpochDealt> {
        let index = usize::try_from(epoch.checked_sub(1)?).ok()?;
        self.changes.get(index)?.dealt.as_ref()
    }

    /// Whether `worker` was revoked.
    pub fn is_revoked(&self, worker: &Hash) -> bool {
        self.changes
            .iter()
            .any(|c| c.revoked.as_ref() == Some(worker))
    }

    /// The revoked workers.
    pub fn revoked(&self) -> impl Iterator<Item = &Hash> {
        self.changes.iter().filter_map(|c| c.revoked.as_ref())
    }
}

impl Call {
    /// The contract a call addresses, if it is a message call.
    pub fn dest(&self) -> Option<AccountId> {
        match self {
            Call::Call { dest, .. } => Some(*dest),
            Call::Instantiate { .. }
            | Call::Cluster { .. }
            | Call::Schedule { .. }
            | Call::Subscription { .. }
            | Call::Job { .. }
            | Call::Logs { .. }
            | Call::LogReaders { .. }
            | Call::Transfer { .. }
            | Call::Estimate { .. } => None,
        }
    }
}

/// The signed part of a request.
///
/// SCALE layout: `mode`, `call`, `nonce`, `expires_at`, then, only when there is one, the byte
/// 1 and the certificate. A body without a certificate has the layout of bodies from before
/// certificates existed, so their signatures still verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBody {
    /// Query or command; a signature for one is never valid for the other.
    pub mode: Mode,
    /// What to run.
    pub call: Call,
    /// Caller-chosen number, used once per caller within the validity window.
    pub nonce: u64,
    /// Unix time (ms) after which the request is refused.
    pub expires_at: Timestamp,
    /// A wallet's certificate for the key that signed the request: the request is then made
    /// as the certificate's account (see [`Certificate`]).
    pub certificate: Option<Certificate>,
}

impl Encode for RequestBody {
    fn encode_to<T: parity_scale_codec::Output + ?Sized>(&self, dest: &mut T) {
        self.mode.encode_to(dest);
        self.call.encode_to(dest);
        self.nonce.encode_to(dest);
        self.expires_at.encode_to(dest);
        if let Some(c) = &self.certificate {
            1u8.encode_to(dest);
            c.encode_to(dest);
        }
    }
}

impl Decode for RequestBody {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let mode = Mode::decode(input)?;
        let call = Call::decode(input)?;
        let nonce = u64::decode(input)?;
        let expires_at = Timestamp::decode(input)?;
        let certificate = match input.remaining_len()? {
            Some(0) | None => None,
            Some(_) => match u8::decode(input)? {
                1 => Some(Certificate::decode(input)?),
                _ => return Err("a request body's certificate is tagged 1".into()),
            },
        };
        Ok(Self {
            mode,
            call,
            nonce,
            expires_at,
            certificate,
        })
    }
}

/// What a [`Certificate`] lets its session key sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateScope {
    /// Queries only.
    Queries,
    /// Queries and commands.
    All,
}

/// The longest a certificate may be valid for, from when it is used (24 hours).
pub const MAX_CERTIFICATE_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The domain tag a wallet's certificate signature covers.
pub const CERTIFICATE_DOMAIN: &[u8] = b"phat/certificate/v1:";

/// A wallet's authorisation of a session key (docs/ENVELOPES.md, "Certificates"): requests
/// signed by `session` and carrying this certificate are made as `account`, within `scope`,
/// until `expires_at`, on the cluster `cluster` only. A browser asks the wallet to sign once;
/// the session key it holds in memory signs every request after that.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Certificate {
    /// The wallet's account (sr25519): the caller of the requests.
    pub account: AccountId,
    /// The session key's sr25519 public key: the requests' signer.
    pub session: AccountId,
    /// The cluster (its id, epoch 0's envelope key) the certificate is for.
    pub cluster: Hash,
    /// Unix time (ms) after which requests carrying it are refused.
    pub expires_at: Timestamp,
    /// What the session key may sign.
    pub scope: CertificateScope,
    /// `account`'s sr25519 signature of [`Certificate::signing_payload`], either as it is or
    /// wrapped in `<Bytes>`…`</Bytes>` (what polkadot.js wallets sign for `signRaw`).
    pub signature: Bytes,
}

impl Certificate {
    /// What the wallet signs: the domain tag, then the SCALE fields before the signature.
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = CERTIFICATE_DOMAIN.to_vec();
        (
            &self.account,
            &self.session,
            &self.cluster,
            self.expires_at,
            self.scope,
        )
            .encode_to(&mut out);
        out
    }
}

impl RequestBody {
    /// Whom the request is made as: the certificate's account, else the signer.
    pub fn caller(&self, signer: &AccountId) -> AccountId {
        self.certificate.as_ref().map_or(*signer, |c| c.account)
    }

    /// The bytes the caller signs for the cluster whose envelope key is `cluster`: a domain
    /// tag, the cluster, then the SCALE encoding. A signature for one cluster is never valid
    /// on another.
    pub fn signing_payload(&self, cluster: &Hash) -> Vec<u8> {
        let mut out = REQUEST_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&cluster.0);
        self.encode_to(&mut out);
        out
    }
}

/// A request with the caller's sr25519 signature over [`RequestBody::signing_payload`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SignedRequest {
    /// SCALE-encoded [`RequestBody`].
    pub body: Bytes,
    /// The caller's sr25519 public key.
    pub signer: AccountId,
    /// sr25519 signature (64 bytes, `substrate` signing context).
    pub signature: Bytes,
}

impl SignedRequest {
    /// The request's identity: blake2-256 of its SCALE encoding.
    pub fn hash(&self) -> Hash {
        Hash(blake2_256(&self.encode()))
    }
}

/// A command as the ledger stores it: opaque bytes plus the position and time the ledger gave it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LedgerEntry {
    /// Position in the ledger.
    pub seq: Seq,
    /// Ledger time (Unix ms) at append; the time contracts see while the command applies.
    pub timestamp: Timestamp,
    /// The command bytes (a SCALE [`SignedRequest`]; an envelope once encrypted).
    pub payload: Vec<u8>,
}

/// An event in JSON-friendly form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct EventRecord {
    /// The contract that emitted it.
    pub contract: AccountId,
    /// Indexed topics.
    pub topics: Vec<Hash>,
    /// SCALE-encoded event data.
    pub data: Bytes,
}

impl From<Event> for EventRecord {
    fn from(e: Event) -> Self {
        Self {
            contract: e.contract,
            topics: e.topics,
            data: Bytes(e.data),
        }
    }
}

/// What a call produced when it ran to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CallOutput {
    /// The bytes the contract returned.
    pub data: Bytes,
    /// The contract reverted: its writes were dropped.
    pub reverted: bool,
    /// The new contract (instantiation only).
    pub address: Option<AccountId>,
}

/// Why a call did not run to completion. `kind` is a stable machine-readable name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct CallError {
    /// Stable name such as `out_of_gas`, `trapped`, `bad_signature`, `replayed`.
    pub kind: String,
    /// Human-readable detail.
    pub message: String,
}

/// The outcome of a call: output or a typed error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// The call ran to completion (possibly reverting).
    Ok(CallOutput),
    /// The call failed; nothing was applied.
    Err(CallError),
    /// The result encrypted to the caller (the reply key of the command's envelope; counter
    /// 0, SCALE-encoded `CallResult` inside). Clients open it and show the plain result.
    #[codec(index = 2)]
    Sealed(Bytes),
}

impl CallResult {
    /// True when the call completed without reverting.
    pub fn is_success(&self) -> bool {
        matches!(self, CallResult::Ok(o) if !o.reverted)
    }
}

/// The result of a command, identical on every worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Receipt {
    /// The command's position in the ledger.
    pub seq: Seq,
    /// The command's [`SignedRequest::hash`] (zero when the entry did not decode).
    pub request: Hash,
    /// The signer (zero when the entry did not decode).
    pub caller: AccountId,
    /// Ledger time of the command.
    pub timestamp: Timestamp,
    /// Output or error.
    pub result: CallResult,
    /// Events emitted.
    pub events: Vec<EventRecord>,
    /// Gas used.
    pub gas_used: Gas,
    /// State root after the command.
    pub state_root: Hash,
}

/// A query as sent to a worker: the signed request and an optional read-your-writes bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The signed request (mode must be `Query`).
    #[serde(flatten)]
    pub request: SignedRequest,
    /// Answer only once the worker has applied this command (waits up to its limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq: Option<Seq>,
}

/// Header naming the account that signs an upload or a metadata write.
pub const SIGNER_HEADER: &str = "x-phat-signer";
/// Header carrying the sr25519 signature (hex) of an upload or a metadata write.
pub const SIGNATURE_HEADER: &str = "x-phat-signature";
/// Header carrying the expiry (Unix ms) the signature of an upload or metadata write covers.
pub const EXPIRES_HEADER: &str = "x-phat-expires";

/// Set on a worker's 503 `diverged` answer: the request was refused unread, so an endpoint
/// may send it to another worker.
pub const DIVERGED_HEADER: &str = "x-phat-diverged";

/// What the signer of a code upload signs: the cluster (its envelope key), the code and an
/// expiry, under a domain tag of its own (a signed upload can never pass for anything else).
pub fn upload_payload(cluster: &Hash, code_hash: &CodeHash, expires_at: u64) -> Vec<u8> {
    (b"phat/upload/v1", cluster, code_hash, expires_at).encode()
}

/// What the deployer signs to publish the ink! metadata of their contracts' code: the cluster,
/// the code, blake2-256 of the metadata's bytes exactly as sent, and an expiry.
pub fn metadata_payload(
    cluster: &Hash,
    code_hash: &CodeHash,
    metadata_hash: &[u8; 32],
    expires_at: u64,
) -> Vec<u8> {
    (
        b"phat/metadata/v1",
        cluster,
        code_hash,
        metadata_hash,
        expires_at,
    )
        .encode()
}

/// The answer to a code upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeUploaded {
    /// blake2-256 of the code.
    pub code_hash: CodeHash,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// Output or error.
    pub result: CallResult,
    /// Gas used.
    pub gas_used: Gas,
    /// Events the call would have emitted.
    pub events: Vec<EventRecord>,
    /// Debug messages printed by the contracts.
    pub debug_message: String,
    /// The last command applied in the snapshot the query read.
    pub seq: Seq,
    /// The state root of that snapshot.
    pub state_root: Hash,
    /// The storage deposit the call would take from its signer (negative: give back): with
    /// `gas_used`, what a command of the same call is estimated to cost.
    #[serde(default)]
    pub storage_deposit: DepositDelta,
}

/// A storage deposit a call takes (positive) or gives back (negative), in native units. JSON:
/// a decimal string, as a JavaScript number does not hold 128 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DepositDelta(pub i128);

impl Serialize for DepositDelta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DepositDelta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(DepositDelta)
            .map_err(|e| serde::de::Error::custom(format!("a deposit `{text}`: {e}")))
    }
}

/// The answer to a command submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The command's position in the ledger.
    pub seq: Seq,
    /// The command's request hash.
    pub request: Hash,
    /// The receipt, when the submission asked to wait for it.
    pub receipt: Option<Receipt>,
}

/// Public facts about a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's X25519 identity key (queries are encrypted to it).
    pub worker_key: Hash,
    /// The cluster's identity: the envelope key of epoch 0 (requests sign it; commands are
    /// sealed to `envelope_key` when it is set, else to this).
    pub cluster_key: Hash,
    /// The key epoch (0 until the cluster secret is first rotated).
    #[serde(default)]
    pub epoch: u32,
    /// The current epoch's envelope key, after a rotation (commands are sealed to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_key: Option<Hash>,
    /// Whether the cluster requires encrypted commands and queries.
    pub encryption: bool,
    /// The worker's attestation report (covering both keys).
    pub attestation: AttestationReport,
    /// phat version.
    pub version: String,
    /// The worker's name (from its data directory).
    pub name: String,
    /// The last command applied.
    pub seq: Seq,
    /// The state root after it.
    pub state_root: Hash,
    /// The ledger's head as last seen.
    pub ledger_head: Seq,
    /// Operating-system process id (for operators and crash tests).
    pub pid: u32,
    /// Set when this worker's state differs from what the other workers report (it then
    /// answers no queries until resynced): what differs, and since which seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<String>,
    /// The cluster's system contract (`None` in clusters created before genesis carried one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_contract: Option<AccountId>,
}

impl WorkerInfo {
    /// The key commands are sealed to: the current epoch's envelope key.
    pub fn sealing_key(&self) -> Hash {
        self.envelope_key.unwrap_or(self.cluster_key)
    }
}

/// A contract as the worker API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractView {
    /// The contract's id.
    pub id: AccountId,
    /// The code it runs.
    pub code_hash: CodeHash,
    /// Who instantiated it.
    pub deployer: AccountId,
    /// The contract's public keys.
    pub keys: ContractKeys,
}

/// The API's error body: `{"error": {"kind": ..., "message": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: CallError,
}

/// An envelope's first message (format in `docs/ENVELOPES.md`): the sender's ephemeral
/// X25519 key and a ChaCha20-Poly1305 ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Sealed {
    /// Format version (1).
    pub version: u8,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral: Hash,
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: Bytes,
}

/// A ledger entry's payload: one command, sealed to the cluster key or (only on clusters
/// created with encryption off) in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum LedgerCommand {
    /// A signed request in the clear.
    #[codec(index = 0)]
    Plain(SignedRequest),
    /// A SCALE-encoded [`SignedRequest`] sealed to the cluster key of epoch 0.
    #[codec(index = 1)]
    Sealed(Sealed),
    /// A SCALE-encoded [`SignedRequest`] sealed to the cluster key of a later epoch.
    #[codec(index = 2)]
    SealedAt {
        /// The key epoch (at least 1).
        epoch: u32,
        /// The envelope.
        sealed: Sealed,
    },
    /// A schedule's due tick, proposed by a worker (in the clear: it carries no secret).
    #[codec(index = 3)]
    Trigger(TriggerEntry),
    /// An Ethereum log a worker saw for a subscription, authenticated by that worker (in the
    /// clear: logs are public on their chain).
    #[codec(index = 4)]
    EthLog(EthLogEntry),
    /// A job's output for a tick, run by a worker in query mode and authenticated by it.
    #[codec(index = 5)]
    JobResult(JobResultEntry),
    /// A worker asking to be a member of the cluster, with its attestation report (in the
    /// clear: a report holds no secret). Every worker checks it at apply against the genesis
    /// policy, so membership is replicated state ([`MemberTable`]).
    #[codec(index = 6)]
    Join(JoinEntry),
    /// A member's deal of the secret of the key epoch the cluster started last: the first
    /// valid deal ordered after the start keys the epoch ([`EpochDeal`]).
    #[codec(index = 7)]
    DealEpoch(EpochDeal),
    /// The records of queries a worker ran, authenticated by it (sealed for the workers on a
    /// cluster that encrypts).
    #[codec(index = 8)]
    QueryLogs(QueryLogsEntry),
    /// A sealed command as the worker that opened it passes it on: the signed request and
    /// the key that seals its result to the caller, sealed under the worker-entry key of the
    /// epoch (`phat_crypto::entry`). The other workers open it with one AEAD pass instead of
    /// an X25519 exchange, and still check the request's signature themselves.
    #[codec(index = 9)]
    Forwarded {
        /// The key epoch whose secret sealed it.
        epoch: u32,
        /// The sealed request and reply key.
        data: Bytes,
    },
}

/// A member's deal of a new key epoch: the epoch's envelope key, and its secret sealed to
/// every member that is not revoked, signed with the dealer's vote key. Every worker checks
/// it at apply against the member table, so the first valid deal after the epoch's start is
/// the same on every worker, and nothing outside the ordered log can withhold a share.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochDeal {
    /// The epoch dealt (the one the cluster started last).
    pub epoch: u32,
    /// The epoch's X25519 envelope key.
    pub key: Hash,
    /// The dealing member's identity key.
    pub dealer: Hash,
    /// The secret sealed to each member that is not revoked, one share per member.
    pub shares: Vec<EpochShare>,
    /// The dealer's ed25519 signature of [`EpochDeal::signed_payload`] (64 bytes).
    pub signature: Bytes,
}

/// A key epoch's secret sealed to one member's identity key.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct EpochShare {
    /// The member's identity key.
    pub member: Hash,
    /// The secret (32 bytes), sealed to it.
    pub sealed: Sealed,
}

impl EpochDeal {
    /// The domain its dealer signs [`EpochDeal::signed_payload`] under.
    pub const VOTE_DOMAIN: &'static str = "phat/v1/vote/epoch-deal";

    /// The bytes the signature covers: everything but the signature, under a domain tag (the
    /// epoch included, so one epoch's deal is no deal of another).
    pub fn signed_payload(&self) -> Vec<u8> {
        (
            b"phat/v1/epoch-deal",
            self.epoch,
            &self.key,
            &self.dealer,
            &self.shares,
        )
            .encode()
    }
}

/// A worker's request to join the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct JoinEntry {
    /// Its report: identity key, vote key, measurement, signed by its TEE (or the dev root).
    pub report: AttestationReport,
}

/// Most workers a cluster has (members, the revoked included): a bound on the member table
/// and on what a vote's check reads.
pub const MAX_MEMBERS: usize = 64;

/// One worker of the cluster, as admitted by an applied [`JoinEntry`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Member {
    /// Its X25519 identity key (secrets are sealed to it).
    pub identity: Hash,
    /// Its ed25519 vote key (its votes are signed with it).
    pub vote_key: Hash,
    /// The measurement its report attested.
    pub measurement: Hash,
    /// The seq of the entry that admitted it.
    pub joined: Seq,
}

/// The workers of the cluster, in the order they joined ([`crate::StateKey::Members`]).
/// Revocations are in [`ClusterEpochs`]; a revoked worker stays listed (it cannot join again).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MemberTable {
    /// The members, oldest first.
    pub members: Vec<Member>,
}

impl MemberTable {
    /// The member with identity key `identity`, if any.
    pub fn get(&self, identity: &Hash) -> Option<&Member> {
        self.members.iter().find(|m| m.identity == *identity)
    }
}

/// An encrypted query: the first message of a session (`counter` 0, `session` is the
/// client's ephemeral key, the plaintext a SCALE [`QueryOpen`]) or a later one (the
/// plaintext a SCALE [`SessionQuery`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedQuery {
    /// The worker key the session is with (the `phat dev` gateway routes by it).
    pub worker: Hash,
    /// The session id: the client's ephemeral X25519 public key.
    pub session: Hash,
    /// The message number in the session (each used once).
    pub counter: u64,
    /// The ciphertext.
    pub ciphertext: Bytes,
}

/// What a [`SealedReply`] carries: the query's answer, or the API error it met (sealed too,
/// so an error does not reveal what the query was about).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealedAnswer {
    /// The query ran.
    Ok(QueryResponse),
    /// The query was refused or failed (the HTTP status it would have had, and the error).
    Err {
        /// The HTTP status of the error.
        status: u16,
        /// The error.
        error: CallError,
    },
}

/// A worker's encrypted answer to a [`SealedQuery`]: a JSON [`SealedAnswer`] under the
/// session's reply key with the same counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedReply {
    /// The counter of the query answered.
    pub counter: u64,
    /// The ciphertext.
    pub ciphertext: Bytes,
    /// In the answer to a session's opening (counter 0) only: the worker's fresh random salt
    /// that the session's reply key is bound to (`SessionKeys::with_reply_salt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Hash>,
}

/// The plaintext of a session's first message: a signed query (whose signer becomes the
/// session's caller, and whose expiry ends the session).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueryOpen {
    /// The signed query.
    pub request: SignedRequest,
    /// Answer only once this seq is applied.
    pub min_seq: Option<Seq>,
}

/// The plaintext of a later session message: a call made by the session's caller.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionQuery {
    /// The call.
    pub call: Call,
    /// Answer only once this seq is applied.
    pub min_seq: Option<Seq>,
}

/// A signed statement binding a worker's software measurement to its keys (see
/// `phat_crypto::attest`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AttestationReport {
    /// Who signed it (`dev` is insecure: a local root anybody can create).
    pub provider: String,
    /// The worker software's measurement.
    pub measurement: Hash,
    /// The worker's X25519 identity key.
    pub worker_key: Hash,
    /// The cluster envelope key the worker serves, once it holds the cluster secret.
    pub cluster_key: Option<Hash>,
    /// Whether the worker requires encrypted commands and queries (attested, so a man in
    /// the middle cannot talk a client into plaintext).
    pub encryption: bool,
    /// The worker's ed25519 signing key: what it signs its votes and reports with (checkpoints,
    /// Ethereum log reports, job results), counted only for members of the cluster.
    #[serde(default)]
    pub signing_key: Option<Hash>,
    /// When the report was made (Unix ms).
    pub issued_at: u64,
    /// The key that signed the report.
    pub signer: Hash,
    /// The provider's signature.
    pub signature: Bytes,
}

/// A contract's public keys, derived inside the workers from the cluster secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractKeys {
    /// sr25519 public key (salt `""`).
    pub sr25519: Hash,
    /// ed25519 public key.
    pub ed25519: Hash,
    /// secp256k1 public key, 33 bytes compressed (the key `phat-evm` signs with).
    pub secp256k1: Bytes,
    /// The Ethereum address of the secp256k1 key (`0x`, EIP-55 checksummed).
    pub ethereum_address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_serialize_as_hex_and_back() {
        let b = Bytes(vec![0xde, 0xad]);
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, "\"0xdead\"");
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"0xzz\"").is_err());
        // Upper case and no prefix read too; odd lengths and a doubled prefix do not.
        assert_eq!(serde_json::from_str::<Bytes>("\"DEAD\"").unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"0xdea\"").is_err());
        assert!(serde_json::from_str::<Bytes>("\"0x0xdead\"").is_err());
        // An escaped string (not borrowable from the input) reads the same.
        assert_eq!(
            serde_json::from_str::<Bytes>("\"0x\\u0064ead\"").unwrap(),
            b
        );
        let long = Bytes((0..=255).collect());
        let j = serde_json::to_string(&long).unwrap();
        assert_eq!(j.trim_matches('"'), format!("0x{}", hex::encode(&long.0)));
        assert_eq!(serde_json::from_str::<Bytes>(&j).unwrap(), long);
    }

    #[test]
    fn signing_payload_is_domain_separated() {
        let body = RequestBody {
            mode: Mode::Query,
            call: Call::Call {
                dest: AccountId([1; 32]),
                value: 0,
                data: Bytes(vec![1, 2]),
                gas_limit: 10,
            },
            nonce: 1,
            expires_at: 2,
            certificate: None,
        };
        let cluster = Hash([5; 32]);
        let p = body.signing_payload(&cluster);
        assert!(p.starts_with(REQUEST_SIGNING_DOMAIN));
        assert_ne!(
            p,
            body.signing_payload(&Hash([6; 32])),
            "bound to the cluster"
        );
        let cmd = RequestBody {
            mode: Mode::Command,
            ..body
        };
        assert_ne!(p, cmd.signing_payload(&cluster));
    }

    #[test]
    fn a_schedule_table_stored_before_origins_still_decodes() {
        let def = ScheduleDef {
            spec: ScheduleSpec::Cron {
                expr: "*/5 * * * * *".into(),
            },
            data: Bytes(vec![1, 2, 3, 4]),
            gas_limit: 9,
            missed: MissedTicks::RunOnce,
        };
        // The old layout: the same fields without the origin.
        let old = (
            7u32,
            vec![(AccountId([3; 32]), 5u32, def.clone(), 10u64, 20u64, 2u64)],
        )
            .encode();
        let table = ScheduleTable::decode_stored(&old).unwrap();
        assert_eq!(table.next_id, 7);
        assert_eq!(table.schedules[0].origin, ScheduleOrigin::Deployer);
        assert_eq!(table.schedules[0].def, def);
        assert_eq!(table.schedules[0].runs, 2);
        // Today's layout decodes as itself.
        let mut now = table.clone();
        now.schedules[0].origin = ScheduleOrigin::Contract;
        assert_eq!(ScheduleTable::decode_stored(&now.encode()).unwrap(), now);
        assert!(ScheduleTable::decode_stored(&[1, 2, 3]).is_err());
    }
}
