//! Contracts: their public view (keys, Ethereum address) and their log, stored and live.

use super::*;

pub(super) async fn contract(
    State(w): State<Worker>,
    Path(id): Path<String>,
) -> ApiResult<ContractView> {
    let id = parse_id(&id)?;
    let info = known_contract(&w, &id).await?;
    let seed = *w.inner.enclave.keys().contract_seed.expose();
    let keys = phat_pink::contract_public_keys(&seed, &id);
    Ok(Json(ContractView {
        id,
        code_hash: info.code_hash,
        deployer: info.deployer,
        keys: ContractKeys {
            sr25519: Hash(keys.sr25519),
            ed25519: Hash(keys.ed25519),
            secp256k1: keys.ecdsa.to_vec().into(),
            ethereum_address: eip55(&keys.ethereum_address),
        },
    }))
}

/// `?min_seq=N` on a read: answer once this worker applied seq `N` (read your own writes
/// through an endpoint that spreads reads over workers).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReadAfter {
    min_seq: Option<Seq>,
}

impl ReadAfter {
    /// Waits (at most the worker's wait timeout) until `min_seq` is applied.
    async fn wait(&self, w: &Worker) -> Result<(), ApiErr> {
        match self.min_seq {
            Some(min) if w.applied_seq() < min => wait_applied(w, min).await,
            _ => Ok(()),
        }
    }
}

/// The contract's schedules, with their last tick and runs so far.
pub(super) async fn schedules(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Schedule>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::schedule::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .schedules
            .into_iter()
            .filter(|s| s.contract == id)
            .collect(),
    ))
}

/// The contract's Ethereum log subscriptions, with their cursor, deliveries and pending
/// reports (RPC URLs shortened to scheme, host and port).
pub(super) async fn subscriptions(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Subscription>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::subscribe::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .subscriptions
            .into_iter()
            .filter(|s| s.contract == id)
            .map(|mut s| {
                // The endpoint's address may hold its API key: shown without path or query.
                s.def.rpc_url = crate::subscribe::public_url(&s.def.rpc_url);
                s
            })
            .collect(),
    ))
}

/// The contract's off-chain jobs, with their last tick answered and runs so far.
pub(super) async fn jobs(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Job>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::jobs::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .jobs
            .into_iter()
            .filter(|j| j.contract == id)
            .collect(),
    ))
}

/// An Ethereum address in EIP-55 mixed-case checksum form.
pub(super) fn eip55(address: &[u8; 20]) -> String {
    use sha3::Digest;
    let lower = hex::encode(address);
    let hash = sha3::Keccak256::digest(lower.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

#[derive(Deserialize)]
pub(super) struct LogParams {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `record` as the API serves it: with its index and, for an `event` record, the event.
pub(super) fn log_entry(record: LogRecord, index: Option<u64>) -> LogEntry {
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

/// The event an `event` record's message summarises (`topics=[0x…,0x…] data=0x…`, as
/// `execute::event_summary` writes it); `None` if the message is not such a summary. The summary
/// is lossless, so records stored before the API served events get theirs too.
pub(super) fn parse_event_summary(contract: AccountId, message: &str) -> Option<EventRecord> {
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

pub(super) fn stored_logs(
    w: &Worker,
    id: &AccountId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<LogEntry>, ApiErr> {
    Ok(w.inner
        .store
        .logs(id, after, limit)?
        .into_iter()
        .filter_map(|(index, raw)| {
            LogRecord::decode(&mut &raw[..])
                .ok()
                .map(|record| log_entry(record, Some(index)))
        })
        .collect())
}

pub(super) async fn logs(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Json<Vec<LogEntry>>, ApiErr> {
    let id = parse_id(&id)?;
    known_contract(&w, &id).await?;
    let limit = p.limit.unwrap_or(1000).min(10_000);
    stored_logs(&w, &id, p.after, limit).map(Json)
}

pub(super) async fn log_stream(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiErr> {
    let id = parse_id(&id)?;
    known_contract(&w, &id).await?;
    // Subscribe before reading history so nothing falls between the two.
    let live = tokio_stream::wrappers::BroadcastStream::new(w.inner.logs.subscribe());
    let history = stored_logs(&w, &id, p.after, p.limit.unwrap_or(100).min(10_000))?;
    let last_seq = history
        .iter()
        .filter_map(|l| l.record.seq)
        .max()
        .unwrap_or(0);
    let history = futures::stream::iter(history);
    let live = live.filter_map(move |r| {
        let keep = match r {
            Ok(record) if record.contract == id && record.seq.is_none_or(|s| s > last_seq) => {
                Some(log_entry(record, None))
            }
            _ => None,
        };
        futures::future::ready(keep)
    });
    let events = history.chain(live).map(|l| {
        Ok(SseEvent::default()
            .event("log")
            .json_data(&l)
            .unwrap_or_else(|_| SseEvent::default().data("{}")))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use phat_primitives::protocol::LogRecord;
    use phat_primitives::{AccountId, Hash, Mode};

    fn record(level: &str, message: String) -> LogRecord {
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
        let summary = crate::execute::event_summary(&topics, &data);
        let entry = super::log_entry(record("event", summary), Some(4));
        let event = entry.event.expect("structured event");
        assert_eq!(event.contract, AccountId([7; 32]));
        assert_eq!(event.topics, topics);
        assert_eq!(event.data.0, data);
        assert_eq!(entry.index, Some(4));
        // No topics, no data.
        let empty = super::log_entry(
            record("event", crate::execute::event_summary(&[], &[])),
            None,
        )
        .event
        .expect("an event without topics or data");
        assert!(empty.topics.is_empty() && empty.data.0.is_empty());
        // Other levels (even with a look-alike text) and malformed summaries carry none.
        let lookalike = crate::execute::event_summary(&topics, &data);
        assert_eq!(
            super::log_entry(record("info", lookalike), None).event,
            None
        );
        for bad in ["hello", "topics=[0x12] data=0x", "topics=[] data=0xz1"] {
            assert_eq!(
                super::log_entry(record("event", bad.into()), None).event,
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn log_entries_serialize_the_event_only_when_present_and_decode_old_answers() {
        let topics = [Hash([1; 32])];
        let with = super::log_entry(
            record("event", crate::execute::event_summary(&topics, &[9])),
            Some(0),
        );
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["event"]["data"], "0x09");
        assert_eq!(json["event"]["topics"][0], Hash([1; 32]).to_hex());
        assert_eq!(json["level"], "event");
        assert_eq!(json["index"], 0);
        let without = super::log_entry(record("debug", "hi".into()), None);
        let json = serde_json::to_value(&without).unwrap();
        assert!(json.get("event").is_none(), "{json}");
        // An answer of a worker that predates the field still decodes.
        let back: phat_primitives::protocol::LogEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, without);
    }

    #[test]
    fn eip55_checksums_match_the_spec_vectors() {
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        ] {
            let bytes: [u8; 20] = hex::decode(&addr[2..]).unwrap().try_into().unwrap();
            assert_eq!(super::eip55(&bytes), addr);
        }
    }
}
