//! The replicated trigger tables: schedules, Ethereum log subscriptions and off-chain jobs,
//! the changes to them, and the ledger entries workers append to fire them.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::{blake2_256, AccountId, Gas, Hash, Timestamp};

use super::Bytes;

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

#[cfg(test)]
mod tests {
    use super::*;

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
