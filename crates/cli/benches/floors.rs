//! The physical floors of a request's stages on this machine: what one sr25519 signature,
//! one X25519 envelope, one AEAD pass, one fsync and one loopback HTTP round trip cost, each
//! alone. docs/PERFORMANCE.md sets the per-stage profile of the cluster next to these.
//!
//! `cargo bench -p phat-cli --bench floors` prints a table (`PHAT_BENCH_N` sets the samples
//! per row, 2,000 by default).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is a failed run"
)]

mod common;

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use phat_client::crypto::{self, EnvelopeSecret, Purpose, Signer};
use phat_client::primitives::protocol::{Call, RequestBody};
use phat_client::primitives::{AccountId, Hash, Mode};

/// Samples per row.
fn n() -> usize {
    std::env::var("PHAT_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

/// Median and 99th percentile in µs of `f` run `n` times (after `n / 10` warm-up runs);
/// `per` divides each sample (for a batch of `per` operations).
fn time(n: usize, per: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        f();
    }
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .collect();
    lat.sort();
    let us = |q: f64| lat[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6 / per as f64;
    (us(0.5), us(0.99))
}

fn row(name: &str, (p50, p99): (f64, f64)) {
    println!("| {name:<52} | {p50:>9.2} | {p99:>9.2} |");
}

/// A signed command like the cluster bench's erc20 `transfer`.
fn request(
    signer: &Signer,
    cluster: &Hash,
    nonce: u64,
) -> phat_client::primitives::protocol::SignedRequest {
    let body = RequestBody {
        mode: Mode::Command,
        nonce,
        expires_at: u64::MAX,
        call: Call::Call {
            dest: AccountId([7; 32]),
            value: 0,
            data: vec![0x84, 0xa1, 0x5d, 0xa1]
                .into_iter()
                .chain([1u8; 48])
                .collect::<Vec<_>>()
                .into(),
            gas_limit: 1 << 40,
        },
        certificate: None,
    };
    signer.sign_request(cluster, &body)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = n();
    println!("\nphat floors: one operation alone on this machine ({n} samples a row)\n");
    println!("| operation                                            |    p50 µs |    p99 µs |");
    println!("| ---------------------------------------------------- | --------- | --------- |");

    let alice = Signer::from_suri("//Alice").unwrap();
    let cluster = Hash([3; 32]);
    let req = request(&alice, &cluster, 1);
    row(
        "sr25519 sign (a request)",
        time(n, 1, || {
            black_box(request(&alice, &cluster, 2));
        }),
    );
    row(
        "sr25519 verify (a request, alone)",
        time(n, 1, || {
            crypto::verify_request(black_box(&req), &cluster).unwrap();
        }),
    );
    for (size, signers) in [(64, 1), (64, 64)] {
        let keys: Vec<Signer> = (0..signers)
            .map(|i| Signer::from_suri(&format!("//bench{i}")).unwrap())
            .collect();
        let reqs: Vec<_> = (0..size)
            .map(|i| request(&keys[i % signers], &cluster, i as u64))
            .collect();
        let refs: Vec<_> = reqs.iter().collect();
        row(
            &format!("sr25519 verify, batch of {size} from {signers} signer(s), per request"),
            time(n / 16, size, || {
                let out = crypto::verify_requests(black_box(&refs), &cluster);
                assert!(out.iter().all(Result::is_ok));
            }),
        );
    }

    let plain = parity_scale_codec::Encode::encode(&req);
    let worker = EnvelopeSecret::generate();
    row(
        "X25519 key generation (an ephemeral key)",
        time(n, 1, || {
            black_box(EnvelopeSecret::generate());
        }),
    );
    row(
        "X25519 seal (key generation + exchange + AEAD)",
        time(n, 1, || {
            black_box(crypto::seal(&worker.public(), Purpose::Command, &plain).unwrap());
        }),
    );
    let (sealed, keys) = crypto::seal(&worker.public(), Purpose::Command, &plain).unwrap();
    row(
        "X25519 open (exchange + AEAD)",
        time(n, 1, || {
            black_box(worker.open(Purpose::Command, &sealed).unwrap());
        }),
    );
    let reply = vec![5u8; 256];
    row(
        "ChaCha20-Poly1305 seal, 256 bytes",
        time(n, 1, || {
            black_box(keys.seal_reply(0, &reply));
        }),
    );
    row(
        "blake2b-256, 256 bytes",
        time(n, 1, || {
            black_box(phat_client::primitives::blake2_256(&reply));
        }),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("fsync")).unwrap();
    row(
        "write 4 KiB + fdatasync (the data directory's disk)",
        time(n / 4, 1, || {
            file.write_all(&[1u8; 4096]).unwrap();
            file.sync_data().unwrap();
        }),
    );

    // Loopback HTTP/1.1 with keep-alive: axum on one side, reqwest on the other, as between
    // a client and a worker and between a worker and `phat ledger`.
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/echo");
    let body = vec![1u8; 512];
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        let r = client.post(&url).body(body.clone()).send().await.unwrap();
        black_box(r.bytes().await.unwrap());
        if i >= n / 10 {
            lat.push(t0.elapsed());
        }
    }
    let s = common::stats(lat, Duration::from_secs(1));
    row(
        "loopback HTTP/1.1 round trip, 512 bytes (keep-alive)",
        (s.p50, s.p99),
    );
    server.abort();
}
