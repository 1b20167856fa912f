//! A contract's log: the records its runs leave, how its deployer reads them
//! ([`Call::Logs`](super::Call::Logs) with a [`LogFilter`], answered by a [`LogPage`]), and how a
//! worker hands the records of the queries it ran to the rest of the cluster
//! ([`QueryLogsEntry`]).

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::{Bytes, EventRecord, Seq};
use crate::{blake2_256, AccountId, Hash, Mode, Timestamp};

/// A line in a contract's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct LogRecord {
    /// The contract.
    pub contract: AccountId,
    /// A pink log level (`error`, `warn`, `info`, `debug`, `trace`), `debug` for the
    /// contract's debug output, or the name of another [`LogKind`] (`event`, `output`,
    /// `query`, `trigger`).
    pub level: String,
    /// Where it came from: `command` or `query`.
    pub origin: Mode,
    /// The command's sequence number (commands only).
    pub seq: Option<Seq>,
    /// Time (Unix ms): ledger time for commands, wall time for queries.
    pub timestamp: Timestamp,
    /// The text (for events, a summary with hex data).
    pub message: String,
}

impl LogRecord {
    /// The kind of record this is.
    pub fn kind(&self) -> LogKind {
        LogKind::of_level(&self.level)
    }
}

/// A log record as clients show it: the stored [`LogRecord`], its place in the contract's log
/// and, for an `event` record, the event itself, which clients decode with the contract's
/// metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The record.
    #[serde(flatten)]
    pub record: LogRecord,
    /// Its index in the contract's stored log (`None` for a record streamed live).
    #[serde(default)]
    pub index: Option<u64>,
    /// The event of an `event` record: topics and SCALE data (absent for other levels and
    /// from workers that predate the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRecord>,
}

impl LogEntry {
    /// `record` at `index` as clients show it: for an `event` record, with the event its
    /// summary (`topics=[0x…,0x…] data=0x…`) describes.
    pub fn new(record: LogRecord, index: Option<u64>) -> LogEntry {
        let event = if record.level == "event" {
            parse_event_summary(record.contract, &record.message)
        } else {
            None
        };
        LogEntry {
            record,
            index,
            event,
        }
    }
}

/// The text of an `event` record: its topics and data in hex (lossless: [`LogEntry::new`]
/// parses it back into the event).
pub fn event_summary(topics: &[Hash], data: &[u8]) -> String {
    let topics: Vec<String> = topics.iter().map(|t| t.to_hex()).collect();
    format!("topics=[{}] data=0x{}", topics.join(","), hex::encode(data))
}

/// The event an `event` record's message summarises ([`event_summary`]); `None` if the
/// message is not such a summary.
fn parse_event_summary(contract: AccountId, message: &str) -> Option<EventRecord> {
    let rest = message.strip_prefix("topics=[")?;
    let (topics, data) = rest.split_once("] data=0x")?;
    let topics = topics
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Hash>().ok())
        .collect::<Option<Vec<_>>>()?;
    let data = hex::decode(data).ok()?;
    Some(EventRecord {
        contract,
        topics,
        data: data.into(),
    })
}

/// What a log record is, as `phat logs --kind` and [`LogFilter::kinds`] name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// A line the contract logged (pink log levels) or its debug output.
    Log,
    /// An event a command emitted.
    Event,
    /// How a run ended: ok or reverted, gas, and its output (the output's digest when the
    /// request was sealed).
    Output,
    /// A query the contract answered: its caller and the digest of its input.
    Query,
    /// A run a trigger started (schedule, subscription, job).
    Trigger,
}

impl LogKind {
    /// Every kind, in the order `phat logs --help` lists them.
    pub const ALL: [LogKind; 5] = [
        LogKind::Log,
        LogKind::Event,
        LogKind::Output,
        LogKind::Query,
        LogKind::Trigger,
    ];

    /// The kind of a record of `level`.
    pub fn of_level(level: &str) -> LogKind {
        match level {
            "event" => LogKind::Event,
            "output" => LogKind::Output,
            "query" => LogKind::Query,
            "trigger" => LogKind::Trigger,
            _ => LogKind::Log,
        }
    }

    /// The kind's name (`log`, `event`, `output`, `query`, `trigger`).
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Log => "log",
            LogKind::Event => "event",
            LogKind::Output => "output",
            LogKind::Query => "query",
            LogKind::Trigger => "trigger",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<LogKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The most records one log read returns.
pub const MAX_LOG_PAGE: u32 = 1000;

/// The longest a log read waits for a first matching record (ms).
pub const MAX_LOG_WAIT_MS: u32 = 25_000;

/// Which records a log read returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LogFilter {
    /// Only records with a greater index (paging forward and following).
    pub after: Option<u64>,
    /// Only records at or after this time (Unix ms).
    pub since: Option<Timestamp>,
    /// Only records of these kinds (every kind when empty).
    pub kinds: Vec<LogKind>,
    /// At most this many records (at most [`MAX_LOG_PAGE`]; 0 reads [`MAX_LOG_PAGE`]).
    pub limit: u32,
    /// The last `limit` matching records rather than the first.
    pub tail: bool,
    /// With no matching record yet, wait up to this long (ms, at most [`MAX_LOG_WAIT_MS`])
    /// for one: how clients follow a log.
    pub wait_ms: u32,
}

impl LogFilter {
    /// Whether `record` passes the kind and time filters.
    pub fn matches(&self, record: &LogRecord) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&record.kind()))
            && self.since.is_none_or(|s| record.timestamp >= s)
    }

    /// The page size the filter asks for, within the bound.
    pub fn page(&self) -> usize {
        match self.limit {
            0 => MAX_LOG_PAGE as usize,
            n => n.min(MAX_LOG_PAGE) as usize,
        }
    }
}

/// The answer to a log read: the SCALE output of a [`Call::Logs`](super::Call::Logs) query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct LogPage {
    /// The matching records with their index, oldest first.
    pub records: Vec<(u64, LogRecord)>,
    /// The index the contract's next record will get: `after` for a reader that follows is
    /// `next - 1`.
    pub next: u64,
}

/// The most accounts besides the deployer that may read a contract's log.
pub const MAX_LOG_READERS: usize = 16;

/// The most records one [`QueryLogsEntry`] carries.
pub const MAX_QUERY_LOG_RECORDS: usize = 256;

/// The most bytes (SCALE) the records of one [`QueryLogsEntry`] take.
pub const MAX_QUERY_LOG_BYTES: usize = 256 * 1024;

/// The records of queries a worker ran (their log lines, their input digest and how they
/// ended), handed to every worker through the ordered log so any worker serves them. Signed
/// with the worker's attested vote key and checked against the members at apply; on a cluster
/// that encrypts, the records are sealed with the key of `epoch`, so the ledger reads none.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct QueryLogsEntry {
    /// The worker's identity key.
    pub worker: Hash,
    /// The key epoch it was made in.
    pub epoch: u32,
    /// A number the worker uses once: with `expires_at`, what makes a copy appended again a
    /// replay (the nonce table holds it as [`QueryLogsEntry::account`]'s).
    pub nonce: u64,
    /// Unix ms after which the entry is refused (at most an hour after it was made).
    pub expires_at: Timestamp,
    /// SCALE `Vec<LogRecord>`, sealed for the workers on a cluster that encrypts.
    pub records: Bytes,
    /// The worker's ed25519 signature of [`QueryLogsEntry::signed_payload`] (64 bytes).
    pub signature: Bytes,
}

impl QueryLogsEntry {
    /// The domain its worker signs [`QueryLogsEntry::signed_payload`] under.
    pub const VOTE_DOMAIN: &'static str = "phat/v1/vote/query-logs";

    /// The bytes the signature covers: everything but the signature, under a domain tag.
    pub fn signed_payload(&self) -> Vec<u8> {
        (
            b"phat/v1/query-logs",
            &self.worker,
            self.epoch,
            self.nonce,
            self.expires_at,
            &self.records,
        )
            .encode()
    }

    /// The account the nonce table keeps `worker`'s entries under: nobody holds its key, and
    /// it differs from every request signer's.
    pub fn account(worker: &Hash) -> AccountId {
        AccountId(blake2_256(&(b"phat/v1/query-logs", worker).encode()))
    }

    /// What sealed records are bound to: the worker and the nonce.
    pub fn sealed_name(worker: &Hash, nonce: u64) -> Vec<u8> {
        (b"phat/v1/query-logs", worker, nonce).encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(level: &str, message: String) -> LogRecord {
        LogRecord {
            contract: AccountId([7; 32]),
            level: level.into(),
            origin: Mode::Command,
            seq: Some(3),
            timestamp: 1,
            message,
        }
    }

    #[test]
    fn event_records_carry_the_event_their_summary_describes() {
        let topics = [Hash([1; 32]), Hash([0xab; 32])];
        let data = [0u8, 5, 0xff];
        let entry = LogEntry::new(event("event", event_summary(&topics, &data)), Some(4));
        let got = entry.event.expect("structured event");
        assert_eq!(got.contract, AccountId([7; 32]));
        assert_eq!(got.topics, topics);
        assert_eq!(got.data.0, data);
        assert_eq!(entry.index, Some(4));
        let empty = LogEntry::new(event("event", event_summary(&[], &[])), None)
            .event
            .expect("an event without topics or data");
        assert!(empty.topics.is_empty() && empty.data.0.is_empty());
        // Other levels (even with a look-alike text) and malformed summaries carry none.
        let lookalike = event_summary(&topics, &data);
        assert_eq!(LogEntry::new(event("info", lookalike), None).event, None);
        for bad in ["hello", "topics=[0x12] data=0x", "topics=[] data=0xz1"] {
            assert_eq!(
                LogEntry::new(event("event", bad.into()), None).event,
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn log_entries_serialize_the_event_only_when_present_and_decode_old_answers() {
        let topics = [Hash([1; 32])];
        let with = LogEntry::new(event("event", event_summary(&topics, &[9])), Some(0));
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["event"]["data"], "0x09");
        assert_eq!(json["event"]["topics"][0], Hash([1; 32]).to_hex());
        assert_eq!(json["level"], "event");
        assert_eq!(json["index"], 0);
        let without = LogEntry::new(event("debug", "hi".into()), None);
        let json = serde_json::to_value(&without).unwrap();
        assert!(json.get("event").is_none(), "{json}");
        let back: LogEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, without);
    }

    /// The bytes of a log read, pinned here and in the SDK's tests (`sdk/test/sdk.test.ts`).
    pub(crate) const LOGS_CALL_HEX: &str = concat!(
        "06",
        "0101010101010101010101010101010101010101010101010101010101010101",
        "010500000000000000",
        "00",
        "080103",
        "0a000000",
        "01",
        "fa000000"
    );

    #[test]
    fn a_log_read_encodes_as_the_sdk_encodes_it() {
        let call = super::super::Call::Logs {
            contract: AccountId([1; 32]),
            filter: LogFilter {
                after: Some(5),
                since: None,
                kinds: vec![LogKind::Event, LogKind::Query],
                limit: 10,
                tail: true,
                wait_ms: 250,
            },
        };
        assert_eq!(hex::encode(call.encode()), LOGS_CALL_HEX);
        let readers = super::super::Call::LogReaders {
            contract: AccountId([1; 32]),
            readers: vec![AccountId([2; 32])],
        };
        assert_eq!(&readers.encode()[..1], &[7]);
    }

    #[test]
    fn every_kind_round_trips_through_its_name_and_level() {
        for kind in LogKind::ALL {
            assert_eq!(LogKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(LogKind::of_level("info"), LogKind::Log);
        assert_eq!(LogKind::of_level("debug"), LogKind::Log);
        assert_eq!(LogKind::of_level("event"), LogKind::Event);
        assert_eq!(LogKind::of_level("trigger"), LogKind::Trigger);
        assert_eq!(LogKind::parse("logs"), None);
    }

    #[test]
    fn a_filter_keeps_its_kinds_and_times_and_bounds_its_page() {
        let record = |level: &str, timestamp| LogRecord {
            contract: AccountId([1; 32]),
            level: level.into(),
            origin: Mode::Query,
            seq: None,
            timestamp,
            message: String::new(),
        };
        let all = LogFilter::default();
        assert!(all.matches(&record("info", 5)));
        assert_eq!(all.page(), MAX_LOG_PAGE as usize);
        let some = LogFilter {
            kinds: vec![LogKind::Event, LogKind::Query],
            since: Some(10),
            limit: 5_000,
            ..LogFilter::default()
        };
        assert!(some.matches(&record("event", 10)));
        assert!(!some.matches(&record("event", 9)));
        assert!(!some.matches(&record("warn", 11)));
        assert_eq!(some.page(), MAX_LOG_PAGE as usize);
    }
}
