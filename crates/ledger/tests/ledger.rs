//! Behaviour of every ledger: the embedded one directly, the same one served over HTTP on
//! 127.0.0.1 and used through `RemoteLedger`, and the JetStream ledger on a real `nats-server -js`
//! (Debian's package; `scripts/setup` installs it) started by each test on 127.0.0.1 and killed
//! when the test ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phat_ledger::http::{router_with_config, LedgerToken, RemoteLedger, TOKEN_FILE};
use phat_ledger::{
    EmbeddedLedger, JetStreamConfig, JetStreamLedger, Ledger, LedgerConfig, LedgerError,
};
use phat_primitives::CodeHash;
use tempfile::TempDir;

/// A ledger under test plus what keeps it alive.
struct Fixture {
    ledger: Arc<dyn Ledger>,
    _dir: TempDir,
    server: Option<tokio::task::JoinHandle<()>>,
    _nats: Option<NatsServer>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A small-limit config, so oversize cases are cheap.
fn small_config() -> LedgerConfig {
    LedgerConfig {
        max_payload: 4096,
        max_code: 8192,
        ..LedgerConfig::default()
    }
}

/// Serves `ledger` on 127.0.0.1 behind a new token; returns its base URL and the token.
async fn serve(
    ledger: Arc<dyn Ledger>,
    config: &LedgerConfig,
) -> (String, tokio::task::JoinHandle<()>, LedgerToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = LedgerToken::generate();
    let app = router_with_config(ledger, config, token.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), server, token)
}

async fn embedded(config: LedgerConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ledger = EmbeddedLedger::open(&dir.path().join("ledger.redb"), config).unwrap();
    Fixture {
        ledger: Arc::new(ledger),
        _dir: dir,
        server: None,
        _nats: None,
    }
}

async fn remote(config: LedgerConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedLedger::open(&dir.path().join("ledger.redb"), config.clone()).unwrap();
    let (url, server, token) = serve(Arc::new(inner), &config).await;
    Fixture {
        ledger: Arc::new(RemoteLedger::with_token(&url, &token).unwrap()),
        _dir: dir,
        server: Some(server),
        _nats: None,
    }
}

/// The password of the `phat` user of the test server.
const NATS_PASSWORD: &str = "s3cret-phat";
/// The password of the `guest` user, who may read but not write.
const GUEST_PASSWORD: &str = "guest-pw";
/// The password of user `worker` (the least-privilege layout of docs/cluster.md).
const WORKER_PASSWORD: &str = "worker-pw";

/// A `nats-server -js` on 127.0.0.1 with a temp store and two users; killed on drop.
struct NatsServer {
    child: std::process::Child,
    url: String,
    _dir: TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NatsServer {
    /// Starts a server: user `phat` may do anything; user `guest` may read (consumers, direct
    /// gets) but not publish to the log, the buckets or the stream-management API.
    fn start() -> Self {
        let bin = which_nats_server();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = dir.path().join("js");
        let config = format!(
            r#"
listen: "127.0.0.1:{port}"
server_name: "phat-test-{port}"
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
authorization {{
  users = [
    {{ user: phat, password: "{NATS_PASSWORD}", permissions: {{ publish: ">", subscribe: ">" }} }}
    {{ user: guest, password: "{GUEST_PASSWORD}", permissions: {{
        publish: {{ deny: ["phat.>", "$KV.>", "$O.>", "$JS.API.STREAM.CREATE.>",
                           "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
                           "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"] }}
        subscribe: ">" }} }}
    {{ user: worker, password: "{WORKER_PASSWORD}", permissions: {{
        publish: {{ allow: ["phat.test.log", "$KV.phat_test_meta.>", "$O.phat_test_code.>",
                            "$O.phat_test_snap.>", "$JS.API.>", "_INBOX.>"],
                    deny: ["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
                           "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.PHAT_test_LOG",
                           "$JS.API.STREAM.MSG.DELETE.>"] }}
        subscribe: ["_INBOX.>", "$KV.phat_test_meta.>", "$O.phat_test_code.>",
                    "$O.phat_test_snap.>"] }} }}
  ]
}}
"#,
            store = store.display()
        );
        let conf = dir.path().join("nats.conf");
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("nats.log")).unwrap();
        let child = std::process::Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn config(&self, user: &str, password: &str) -> JetStreamConfig {
        let mut config = JetStreamConfig::new(&self.url, "test");
        config.user = Some(user.into());
        config.password = Some(password.into());
        config
    }
}

fn which_nats_server() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .expect("nats-server is not installed (run scripts/setup, or apt-get install nats-server)")
}

async fn nats(config: LedgerConfig) -> Fixture {
    let server = NatsServer::start();
    let mut js = server.config("phat", NATS_PASSWORD);
    js.limits = config;
    let ledger = JetStreamLedger::connect(js).await.unwrap();
    Fixture {
        ledger: Arc::new(ledger),
        _dir: tempfile::tempdir().unwrap(),
        server: None,
        _nats: Some(server),
    }
}

/// Runs one behaviour against each named ledger fixture (`embedded`, `remote` over HTTP,
/// `nats` on JetStream), one test each.
macro_rules! on {
    ([$($fixture:ident),+], $name:ident, $config:expr) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $fixture() {
                    let f = super::$fixture($config).await;
                    super::$name(&f.ledger).await;
                }
            )+
        }
    };
}

/// Every ledger.
macro_rules! both {
    ($name:ident, $config:expr) => {
        on!([embedded, remote, nats], $name, $config);
    };
}

/// The ledgers that keep snapshots and trim: embedded and JetStream (the HTTP transport
/// answers `Unsupported`, checked below).
macro_rules! snapshotting {
    ($name:ident, $config:expr) => {
        on!([embedded, nats], $name, $config);
    };
}

snapshotting!(
    trim_drops_old_entries_and_reads_below_say_trimmed,
    super::small_config()
);
async fn trim_drops_old_entries_and_reads_below_say_trimmed(ledger: &Arc<dyn Ledger>) {
    let wait = Duration::from_millis(100);
    assert_eq!(ledger.first_seq().await.unwrap(), 1);
    let mut stamps = Vec::new();
    for i in 0..10u8 {
        stamps.push(ledger.append(vec![i]).await.unwrap().timestamp);
    }
    ledger.trim(6).await.unwrap();
    assert_eq!(ledger.first_seq().await.unwrap(), 6);
    assert_eq!(ledger.head().await.unwrap(), 10);
    match ledger.read(3, 10, wait).await {
        Err(LedgerError::Trimmed { first: 6 }) => {}
        other => panic!("reading a trimmed seq: {other:?}"),
    }
    let rest = ledger.read(6, 10, wait).await.unwrap();
    let seqs: Vec<_> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![6, 7, 8, 9, 10]);
    assert_eq!(rest[0].payload, vec![5]);
    // Trimming is idempotent, never goes back, and never drops the head.
    ledger.trim(2).await.unwrap();
    ledger.trim(1_000).await.unwrap();
    assert_eq!(ledger.first_seq().await.unwrap(), 10);
    let last = ledger.read(10, 1, wait).await.unwrap();
    assert_eq!(last[0].payload, vec![9]);
    // Appends go on from the head.
    assert_eq!(ledger.append(vec![10]).await.unwrap().seq, 11);
}

snapshotting!(snapshots_round_trip_list_and_delete, super::small_config());
async fn snapshots_round_trip_list_and_delete(ledger: &Arc<dyn Ledger>) {
    assert!(ledger.snapshot_names().await.unwrap().is_empty());
    assert_eq!(ledger.get_snapshot("none").await.unwrap(), None);
    // Larger than a payload and than one Object Store chunk.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    ledger
        .put_snapshot("00000000000000000200-b", big.clone())
        .await
        .unwrap();
    ledger
        .put_snapshot("00000000000000000100-a", vec![1, 2, 3])
        .await
        .unwrap();
    assert_eq!(
        ledger.snapshot_names().await.unwrap(),
        vec!["00000000000000000100-a", "00000000000000000200-b"]
    );
    assert_eq!(
        ledger
            .get_snapshot("00000000000000000200-b")
            .await
            .unwrap()
            .as_deref(),
        Some(big.as_slice())
    );
    ledger
        .put_snapshot("00000000000000000100-a", vec![4])
        .await
        .unwrap();
    assert_eq!(
        ledger.get_snapshot("00000000000000000100-a").await.unwrap(),
        Some(vec![4])
    );
    ledger
        .delete_snapshot("00000000000000000100-a")
        .await
        .unwrap();
    ledger.delete_snapshot("never-there").await.unwrap();
    assert_eq!(
        ledger.snapshot_names().await.unwrap(),
        vec!["00000000000000000200-b"]
    );
    for bad in ["", "a/b", "../x", "a b", &"x".repeat(200)] {
        assert!(
            matches!(
                ledger.put_snapshot(bad, vec![1]).await,
                Err(LedgerError::Protocol(_))
            ),
            "name {bad:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ledger_does_not_trim_or_keep_snapshots() {
    let f = remote(small_config()).await;
    assert!(matches!(
        f.ledger.trim(1).await,
        Err(LedgerError::Unsupported(_))
    ));
    assert!(matches!(
        f.ledger.snapshot_names().await,
        Err(LedgerError::Unsupported(_))
    ));
    assert_eq!(f.ledger.first_seq().await.unwrap(), 1);
}

async fn appends_are_contiguous_and_read_back_in_order(ledger: &Arc<dyn Ledger>) {
    assert_eq!(ledger.head().await.unwrap(), 0);
    let mut appended = Vec::new();
    for i in 0..20u8 {
        appended.push(ledger.append(vec![i; i as usize + 1]).await.unwrap());
    }
    let seqs: Vec<u64> = appended.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert_eq!(ledger.head().await.unwrap(), 20);

    let entries = ledger.read(1, 100, Duration::ZERO).await.unwrap();
    assert_eq!(entries.len(), 20);
    for (i, (e, a)) in entries.iter().zip(&appended).enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.timestamp, a.timestamp);
        assert_eq!(e.payload, vec![i as u8; i + 1]);
    }
    assert!(entries.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    // `from` and `max` select a window; `from` 0 means the start.
    let window = ledger.read(5, 3, Duration::ZERO).await.unwrap();
    assert_eq!(
        window.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(ledger.read(0, 1, Duration::ZERO).await.unwrap()[0].seq, 1);
    assert_eq!(ledger.read(20, 10, Duration::ZERO).await.unwrap().len(), 1);
    assert!(ledger
        .read(21, 10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    assert!(ledger.read(1, 0, Duration::ZERO).await.unwrap().is_empty());
}
both!(
    appends_are_contiguous_and_read_back_in_order,
    phat_ledger::LedgerConfig::default()
);

async fn concurrent_appends_get_distinct_contiguous_seqs(ledger: &Arc<dyn Ledger>) {
    let n = 500u32;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move { (i, ledger.append(i.to_le_bytes().to_vec()).await) })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let (i, appended) = task.await.unwrap();
        results.push((i, appended.unwrap().seq));
    }
    let seqs: HashSet<u64> = results.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs.len(), n as usize, "seqs must be distinct");
    assert_eq!(seqs, (1..=n as u64).collect::<HashSet<_>>());
    assert_eq!(ledger.head().await.unwrap(), n as u64);

    let mut entries = Vec::new();
    while entries.len() < n as usize {
        let from = entries.len() as u64 + 1;
        entries.extend(ledger.read(from, 128, Duration::ZERO).await.unwrap());
    }
    for (i, seq) in results {
        let e = &entries[seq as usize - 1];
        assert_eq!(e.seq, seq);
        assert_eq!(e.payload, i.to_le_bytes().to_vec());
    }
    assert!(entries.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
}
both!(
    concurrent_appends_get_distinct_contiguous_seqs,
    phat_ledger::LedgerConfig::default()
);

async fn read_waits_for_the_next_append(ledger: &Arc<dyn Ledger>) {
    ledger.append(b"first".to_vec()).await.unwrap();

    // Nothing arrives: empty after roughly the wait.
    let start = Instant::now();
    let none = ledger
        .read(2, 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(290));

    // Something arrives while waiting: the reader wakes well before its deadline.
    let start = Instant::now();
    let reader = {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.read(2, 10, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reader.is_finished(), "reader must wait for the append");
    let appended = ledger.append(b"second".to_vec()).await.unwrap();
    let got = reader.await.unwrap();
    let got = got.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].seq, 2);
    assert_eq!(got[0].seq, appended.seq);
    assert_eq!(got[0].payload, b"second");
    assert!(start.elapsed() < Duration::from_secs(10));
}
both!(
    read_waits_for_the_next_append,
    phat_ledger::LedgerConfig::default()
);

async fn code_and_meta_round_trip(ledger: &Arc<dyn Ledger>) {
    let wasm = b"\0asm\x01\0\0\0 some code".to_vec();
    let hash = ledger.put_code(wasm.clone()).await.unwrap();
    assert_eq!(hash, CodeHash::of(&wasm));
    assert_eq!(ledger.put_code(wasm.clone()).await.unwrap(), hash);
    assert_eq!(ledger.get_code(&hash).await.unwrap(), Some(wasm));
    assert_eq!(ledger.get_code(&CodeHash([9; 32])).await.unwrap(), None);

    assert_eq!(ledger.get_meta("cluster/name").await.unwrap(), None);
    ledger
        .put_meta("cluster/name", b"alpha".to_vec())
        .await
        .unwrap();
    ledger.put_meta("a b%c", b"odd key".to_vec()).await.unwrap();
    assert_eq!(
        ledger.get_meta("cluster/name").await.unwrap(),
        Some(b"alpha".to_vec())
    );
    assert_eq!(
        ledger.get_meta("a b%c").await.unwrap(),
        Some(b"odd key".to_vec())
    );
    ledger
        .put_meta("cluster/name", b"beta".to_vec())
        .await
        .unwrap();
    assert_eq!(
        ledger.get_meta("cluster/name").await.unwrap(),
        Some(b"beta".to_vec())
    );
    assert!(matches!(
        ledger.put_meta("", vec![]).await,
        Err(LedgerError::Protocol(_))
    ));
    // Code and meta do not touch the log.
    assert_eq!(ledger.head().await.unwrap(), 0);
}
both!(
    code_and_meta_round_trip,
    phat_ledger::LedgerConfig::default()
);

async fn create_meta_writes_once_and_keys_list_by_prefix(ledger: &Arc<dyn Ledger>) {
    assert!(ledger
        .create_meta("cluster", b"first".to_vec())
        .await
        .unwrap());
    assert!(!ledger
        .create_meta("cluster", b"second".to_vec())
        .await
        .unwrap());
    assert_eq!(
        ledger.get_meta("cluster").await.unwrap(),
        Some(b"first".to_vec())
    );
    // Concurrent creators: exactly one wins.
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let l = ledger.clone();
            tokio::spawn(async move { l.create_meta("race", vec![i]).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
    for k in ["join/b", "join/a", "joint", "key/a"] {
        ledger.put_meta(k, vec![1]).await.unwrap();
    }
    assert_eq!(
        ledger.meta_keys("join/").await.unwrap(),
        vec!["join/a", "join/b"]
    );
    assert_eq!(
        ledger.meta_keys("nothing").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(ledger.meta_keys("").await.unwrap().len(), 6);
}
both!(
    create_meta_writes_once_and_keys_list_by_prefix,
    phat_ledger::LedgerConfig::default()
);

async fn oversized_payload_and_code_are_too_large(ledger: &Arc<dyn Ledger>) {
    let config = small_config();
    let err = ledger
        .append(vec![0; config.max_payload + 1])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::TooLarge {
            size: config.max_payload + 1,
            max: config.max_payload
        }
    );
    let err = ledger
        .put_code(vec![0; config.max_code + 1])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::TooLarge {
            size: config.max_code + 1,
            max: config.max_code
        }
    );
    let err = ledger
        .put_meta("k", vec![0; config.max_payload + 1])
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::TooLarge { .. }));
    // Far over the limit (beyond the HTTP body limit too).
    let err = ledger.append(vec![0; 200_000]).await.unwrap_err();
    assert_eq!(
        err,
        LedgerError::TooLarge {
            size: 200_000,
            max: config.max_payload
        }
    );
    // Nothing was written; limits are inclusive.
    assert_eq!(ledger.head().await.unwrap(), 0);
    let a = ledger.append(vec![1; config.max_payload]).await.unwrap();
    assert_eq!(a.seq, 1);
}
both!(
    oversized_payload_and_code_are_too_large,
    super::small_config()
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_ledger_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("ledger.redb");
    let first_ts;
    {
        let ledger = EmbeddedLedger::open(&path, LedgerConfig::default()).unwrap();
        for i in 1..=10u8 {
            assert_eq!(ledger.append(vec![i]).await.unwrap().seq, i as u64);
        }
        let hash = ledger.put_code(b"code".to_vec()).await.unwrap();
        assert_eq!(hash, CodeHash::of(b"code"));
        ledger.put_meta("k", b"v".to_vec()).await.unwrap();
        first_ts = ledger.read(10, 1, Duration::ZERO).await.unwrap()[0].timestamp;
        // A clone keeps the file open until the last handle drops.
        let clone = ledger.clone();
        drop(ledger);
        assert_eq!(clone.head().await.unwrap(), 10);
    }
    let ledger = EmbeddedLedger::open(&path, LedgerConfig::default()).unwrap();
    assert_eq!(ledger.head().await.unwrap(), 10);
    let entries = ledger.read(1, 100, Duration::ZERO).await.unwrap();
    assert_eq!(entries.len(), 10);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.payload, vec![i as u8 + 1]);
    }
    assert_eq!(
        ledger.get_code(&CodeHash::of(b"code")).await.unwrap(),
        Some(b"code".to_vec())
    );
    assert_eq!(ledger.get_meta("k").await.unwrap(), Some(b"v".to_vec()));
    let next = ledger.append(b"eleven".to_vec()).await.unwrap();
    assert_eq!(next.seq, 11);
    assert!(next.timestamp >= first_ts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_ledger_on_closed_port_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let remote = RemoteLedger::new(&format!("http://{addr}")).unwrap();
    assert!(matches!(
        remote.head().await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(matches!(
        remote.append(b"x".to_vec()).await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(matches!(
        remote.read(1, 1, Duration::from_millis(10)).await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(matches!(
        RemoteLedger::new("not a url"),
        Err(LedgerError::Protocol(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rejects_bad_requests_with_json_errors() {
    let f = embedded(LedgerConfig::default()).await;
    let (url, _server, token) = serve(f.ledger.clone(), &LedgerConfig::default()).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.as_str()).parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .unwrap();

    for path in [
        "/ledger/v1/entries",
        "/ledger/v1/entries?from=abc",
        "/ledger/v1/code/0x1234",
    ] {
        let resp = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "protocol", "{path}");
    }

    let resp = client
        .get(format!("{url}/ledger/v1/head"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"seq": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_retried_append_is_stored_once_and_survives_reconnect() {
    let server = NatsServer::start();
    let ledger = JetStreamLedger::connect(server.config("phat", NATS_PASSWORD))
        .await
        .unwrap();
    let first = ledger.append(b"command".to_vec()).await.unwrap();
    let other = ledger.append(b"other".to_vec()).await.unwrap();
    // A retry (same bytes) within the dedupe window gets the first copy's seq and time.
    let retry = ledger.append(b"command".to_vec()).await.unwrap();
    assert_eq!(retry, first);
    // The time is the server's stored time (Unix ms).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(first.timestamp.abs_diff(now) < 60_000, "{first:?} vs {now}");
    assert!(other.timestamp >= first.timestamp);
    assert_eq!(ledger.head().await.unwrap(), 2);
    assert_eq!(other.seq, 2);

    // A second connection (another worker) sees the same log, times, code and metadata.
    let hash = ledger.put_code(b"\0asm code".to_vec()).await.unwrap();
    ledger.put_meta("k", b"v".to_vec()).await.unwrap();
    drop(ledger);
    let again = JetStreamLedger::connect(server.config("phat", NATS_PASSWORD))
        .await
        .unwrap();
    let entries = again.read(1, 10, Duration::ZERO).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].seq, entries[0].timestamp), (1, first.timestamp));
    assert_eq!((entries[1].seq, entries[1].timestamp), (2, other.timestamp));
    assert_eq!(entries[1].payload, b"other");
    // Reading from the middle first computes the same clamped time.
    let fresh = JetStreamLedger::connect(server.config("phat", NATS_PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        fresh.read(2, 1, Duration::ZERO).await.unwrap()[0].timestamp,
        other.timestamp
    );
    assert_eq!(
        again.get_code(&hash).await.unwrap(),
        Some(b"\0asm code".to_vec())
    );
    assert_eq!(again.get_meta("k").await.unwrap(), Some(b"v".to_vec()));
}

/// The worker user of docs/cluster.md's least-privilege layout does all a worker does
/// (append, read, metadata, code, snapshots) and cannot erase the log: no purge or trim, no
/// message delete, no stream delete or update. Every worker, a revoked one included, holds
/// that user's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_worker_user_cannot_erase_the_log() {
    let server = NatsServer::start();
    // The operator (here `phat`) creates the stream and buckets, as `phat genesis` does.
    let admin = JetStreamLedger::connect(server.config("phat", NATS_PASSWORD))
        .await
        .unwrap();
    admin.append(b"genesis".to_vec()).await.unwrap();
    let mut config = server.config("worker", WORKER_PASSWORD);
    config.request_timeout = Duration::from_secs(1);
    let worker = JetStreamLedger::connect(config).await.unwrap();
    for i in 0..5u8 {
        worker.append(vec![i]).await.unwrap();
    }
    assert_eq!(worker.head().await.unwrap(), 6);
    assert_eq!(worker.read(1, 10, Duration::ZERO).await.unwrap().len(), 6);
    worker
        .put_meta("checkpoint/x", b"v".to_vec())
        .await
        .unwrap();
    assert_eq!(
        worker.get_meta("checkpoint/x").await.unwrap(),
        Some(b"v".to_vec())
    );
    let code = worker.put_code(b"\0asm code".to_vec()).await.unwrap();
    assert!(worker.get_code(&code).await.unwrap().is_some());
    let name = format!("{:020}-{}", 3, "ab".repeat(32));
    worker.put_snapshot(&name, b"image".to_vec()).await.unwrap();
    assert!(worker.get_snapshot(&name).await.unwrap().is_some());
    worker.delete_snapshot(&name).await.unwrap();
    // Erasing the log is refused, through the ledger and through NATS directly.
    assert!(worker.trim(4).await.is_err(), "a worker trimmed the log");
    assert_eq!(worker.first_seq().await.unwrap(), 1);
    let client =
        async_nats::ConnectOptions::with_user_and_password("worker".into(), WORKER_PASSWORD.into())
            .connect(&server.url)
            .await
            .unwrap();
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(Duration::from_secs(1));
    assert!(js.delete_stream("PHAT_test_LOG").await.is_err());
    let log = js.get_stream("PHAT_test_LOG").await.unwrap();
    assert!(log.purge().await.is_err());
    assert!(log.delete_message(2).await.is_err());
    let mut cfg = log.cached_info().config.clone();
    cfg.max_messages = 1;
    assert!(js.update_stream(cfg).await.is_err());
    // All six entries are still there, for the operator too.
    assert_eq!(admin.first_seq().await.unwrap(), 1);
    assert_eq!(admin.head().await.unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_unauthenticated_clients_cannot_write() {
    let server = NatsServer::start();
    let ledger = JetStreamLedger::connect(server.config("phat", NATS_PASSWORD))
        .await
        .unwrap();
    ledger.append(b"one".to_vec()).await.unwrap();
    ledger.put_meta("cluster", b"alpha".to_vec()).await.unwrap();

    // No credentials, or a wrong password: the server refuses the connection.
    let anonymous = JetStreamConfig::new(&server.url, "test");
    assert!(matches!(
        JetStreamLedger::connect(anonymous).await.err(),
        Some(LedgerError::Unauthorized(_))
    ));
    assert!(matches!(
        JetStreamLedger::connect(server.config("phat", "wrong"))
            .await
            .err(),
        Some(LedgerError::Unauthorized(_))
    ));
    let raw = async_nats::connect(&server.url).await;
    assert!(raw.is_err(), "an anonymous NATS client must not connect");

    // A user without publish permission can read but not append or write the buckets.
    let mut guest_config = server.config("guest", GUEST_PASSWORD);
    guest_config.request_timeout = Duration::from_secs(1);
    let guest = JetStreamLedger::connect(guest_config).await.unwrap();
    assert_eq!(guest.head().await.unwrap(), 1);
    assert_eq!(
        guest.read(1, 10, Duration::ZERO).await.unwrap()[0].payload,
        b"one"
    );
    assert_eq!(
        guest.get_meta("cluster").await.unwrap(),
        Some(b"alpha".to_vec())
    );
    assert!(matches!(
        guest.append(b"forged".to_vec()).await,
        Err(LedgerError::Unauthorized(_))
    ));
    assert!(matches!(
        guest.put_meta("cluster", b"evil".to_vec()).await,
        Err(LedgerError::Unauthorized(_))
    ));
    assert!(guest.create_meta("new", b"evil".to_vec()).await.is_err());
    assert!(guest.put_code(b"evil code".to_vec()).await.is_err());

    // The same through a plain NATS client: a JetStream publish gets no ack.
    let client =
        async_nats::ConnectOptions::with_user_and_password("guest".into(), GUEST_PASSWORD.into())
            .connect(&server.url)
            .await
            .unwrap();
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(Duration::from_secs(1));
    let published = async {
        js.publish("phat.test.log", b"forged".to_vec().into())
            .await?
            .await
    };
    assert!(tokio::time::timeout(Duration::from_secs(10), published)
        .await
        .unwrap()
        .is_err());
    let kv = js.get_key_value("phat_test_meta").await.unwrap();
    let put = kv.put("cluster", b"evil".to_vec().into());
    assert!(tokio::time::timeout(Duration::from_secs(10), put)
        .await
        .unwrap()
        .is_err());

    // Nothing changed.
    assert_eq!(ledger.head().await.unwrap(), 1);
    assert_eq!(
        ledger.get_meta("cluster").await.unwrap(),
        Some(b"alpha".to_vec())
    );
    assert_eq!(ledger.get_meta("new").await.unwrap(), None);
    assert_eq!(
        ledger.get_code(&CodeHash::of(b"evil code")).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_unreachable_server_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = JetStreamConfig::new(format!("nats://127.0.0.1:{port}"), "test");
    config.user = Some("phat".into());
    config.password = Some(NATS_PASSWORD.into());
    config.request_timeout = Duration::from_secs(1);
    assert!(matches!(
        JetStreamLedger::connect(config.clone()).await.err(),
        Some(LedgerError::Unavailable(_))
    ));
    config.cluster = "bad.name".into();
    assert!(matches!(
        JetStreamLedger::connect(config).await.err(),
        Some(LedgerError::Protocol(_))
    ));
}

/// Every call of `ledger` fails with `Unauthorized`.
async fn every_call_is_unauthorized(ledger: &RemoteLedger, code: &CodeHash, who: &str) {
    let unauthorized = |what: &str, r: Result<(), LedgerError>| {
        assert!(
            matches!(r, Err(LedgerError::Unauthorized(_))),
            "{who}: {what} gave {r:?}"
        );
    };
    unauthorized("append", ledger.append(b"evil".to_vec()).await.map(|_| ()));
    unauthorized(
        "put_meta",
        ledger.put_meta("genesis", b"evil".to_vec()).await,
    );
    unauthorized(
        "create_meta",
        ledger
            .create_meta("new", b"evil".to_vec())
            .await
            .map(|_| ()),
    );
    unauthorized(
        "put_code",
        ledger.put_code(b"evil".to_vec()).await.map(|_| ()),
    );
    unauthorized("read", ledger.read(1, 10, Duration::ZERO).await.map(|_| ()));
    unauthorized("head", ledger.head().await.map(|_| ()));
    unauthorized("get_code", ledger.get_code(code).await.map(|_| ()));
    unauthorized("get_meta", ledger.get_meta("genesis").await.map(|_| ()));
    unauthorized("meta_keys", ledger.meta_keys("").await.map(|_| ()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ledger_refuses_a_missing_or_wrong_token_on_every_route() {
    let f = embedded(LedgerConfig::default()).await;
    let (url, _server, token) = serve(f.ledger.clone(), &LedgerConfig::default()).await;
    let good = RemoteLedger::with_token(&url, &token).unwrap();
    good.append(b"one".to_vec()).await.unwrap();
    good.put_meta("genesis", b"real".to_vec()).await.unwrap();
    let code = good.put_code(b"code".to_vec()).await.unwrap();

    every_call_is_unauthorized(&RemoteLedger::new(&url).unwrap(), &code, "no token").await;
    let wrong = LedgerToken::generate();
    every_call_is_unauthorized(
        &RemoteLedger::with_token(&url, &wrong).unwrap(),
        &code,
        "wrong token",
    )
    .await;
    // A prefix, or the token with a character changed, is just as wrong.
    let prefix = LedgerToken::parse(&token.as_str()[..10]).unwrap();
    every_call_is_unauthorized(
        &RemoteLedger::with_token(&url, &prefix).unwrap(),
        &code,
        "token prefix",
    )
    .await;

    // Nothing changed, and the right token still reads and writes.
    assert_eq!(good.head().await.unwrap(), 1);
    assert_eq!(
        good.get_meta("genesis").await.unwrap(),
        Some(b"real".to_vec())
    );
    assert_eq!(good.get_meta("new").await.unwrap(), None);
    assert_eq!(good.get_code(&code).await.unwrap(), Some(b"code".to_vec()));
    let entries = good.read(1, 10, Duration::ZERO).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].payload, b"one".to_vec());
    assert_eq!(good.append(b"two".to_vec()).await.unwrap().seq, 2);

    // On the wire: 401, the ledger's JSON error body, a Bearer challenge; other schemes, a
    // token in another header and unknown routes get the same.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let bearer = format!("Bearer {}", token.as_str());
    let basic = format!("Basic {}", token.as_str());
    let cases: Vec<(reqwest::Method, String, Option<&str>)> = vec![
        (reqwest::Method::POST, "/ledger/v1/append".into(), None),
        (reqwest::Method::PUT, "/ledger/v1/meta/genesis".into(), None),
        (
            reqwest::Method::GET,
            "/ledger/v1/entries?from=1".into(),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/ledger/v1/code/{}", code.to_hex()),
            None,
        ),
        (
            reqwest::Method::GET,
            "/ledger/v1/head".into(),
            Some("Bearer"),
        ),
        (
            reqwest::Method::GET,
            "/ledger/v1/head".into(),
            Some("Bearer "),
        ),
        (reqwest::Method::GET, "/ledger/v1/head".into(), Some(&basic)),
        (
            reqwest::Method::GET,
            "/ledger/v1/head".into(),
            Some(token.as_str()),
        ),
        (reqwest::Method::GET, "/ledger/v1/nowhere".into(), None),
    ];
    for (method, path, auth) in cases {
        let mut request = client
            .request(method.clone(), format!("{url}{path}"))
            .body(b"evil".to_vec());
        if let Some(auth) = auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} {auth:?}");
        assert!(
            resp.headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
            "{method} {path}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "unauthorized", "{method} {path}");
    }
    // The scheme is case-insensitive.
    let resp = client
        .get(format!("{url}/ledger/v1/head"))
        .header(
            reqwest::header::AUTHORIZATION,
            bearer.replacen("Bearer", "bearer", 1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(good.head().await.unwrap(), 2);
}

#[test]
fn ledger_token_file_is_created_0600_and_then_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TOKEN_FILE);
    let (token, created) = LedgerToken::load_or_create(&path).unwrap();
    assert!(created);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(token.as_str().len(), 64);
    assert!(hex::decode(token.as_str()).is_ok());
    assert!(!format!("{token:?}").contains(token.as_str()));
    // Only the token file is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(TOKEN_FILE)]);

    let (again, created) = LedgerToken::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(again, token);
    assert_eq!(LedgerToken::read(&path).unwrap(), token);
    assert_ne!(LedgerToken::generate(), token);

    // An empty or missing file is an error, not an empty token.
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    assert!(LedgerToken::read(&empty).is_err());
    assert!(LedgerToken::load_or_create(&empty).is_err());
    assert!(LedgerToken::read(&dir.path().join("missing.token")).is_err());
}
