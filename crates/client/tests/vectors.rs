//! Cross-implementation test vectors with the TypeScript SDK (`sdk/`): each side produces
//! `testing/vectors/<side>.json` and checks the other's. Deterministic parts (key derivation,
//! envelopes with a given ephemeral key, SCALE bodies, account derivation) must match byte for
//! byte; sr25519 signatures are random and must verify. `sdk/test/vectors.ts` is the other
//! side. `PHAT_WRITE_VECTORS=1 cargo test -p phat-client --test vectors` rewrites rust.json.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::PathBuf;

use parity_scale_codec::{Decode, DecodeAll, Encode};
use phat_client::crypto::{
    expand, seal_with_ephemeral, sr25519_verify, EnvelopeSecret, Purpose, Secret32, SessionKeys,
};
use phat_client::primitives::protocol::{
    Bytes, Call, Certificate, CertificateScope, QueryOpen, RequestBody, Sealed, SessionQuery,
    SignedRequest,
};
use phat_client::primitives::{AccountId, Hash, Mode};
use phat_client::Signer;
use serde_json::{json, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testing/vectors")
}

fn hex(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn unhex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    hex::decode(s.trim_start_matches("0x")).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn arr32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().unwrap()
}

fn num(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

fn secret(byte: u8) -> EnvelopeSecret {
    EnvelopeSecret::from_secret(&Secret32::from_bytes([byte; 32]))
}

fn purpose(name: &str) -> Purpose {
    match name {
        "command" => Purpose::Command,
        "query" => Purpose::Query,
        "handover" => Purpose::Handover,
        other => panic!("purpose {other}"),
    }
}

const SURIS: &[&str] = &[
    "//Alice",
    "//Bob",
    "//Alice/stash",
    "//Alice//7",
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk//phat/soft///secret",
    "0x4242424242424242424242424242424242424242424242424242424242424242//x",
];

fn kdf(ikm: &[u8], domain: &str, parts: &[Vec<u8>], length: usize) -> Vec<u8> {
    let mut out = vec![0u8; length];
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    expand(ikm, domain, &parts, &mut out);
    out
}

fn envelope(p: &str, recipient: u8, eph: u8, first: Vec<u8>, later: Option<Vec<u8>>) -> Value {
    let r = secret(recipient);
    let e = secret(eph);
    let (sealed, keys) = seal_with_ephemeral(&e, &r.public(), purpose(p), &first).unwrap();
    let mut messages = Vec::new();
    for (i, plain) in std::iter::once(first).chain(later).enumerate() {
        let counter = i as u64;
        let reply = format!("reply {i} to a {p}").into_bytes();
        let ct = if i == 0 {
            sealed.ciphertext.0.clone()
        } else {
            keys.seal_request(counter, &plain)
        };
        messages.push(json!({
            "counter": counter.to_string(),
            "request_plaintext": hex(&plain),
            "request_ciphertext": hex(&ct),
            "reply_plaintext": hex(&reply),
            "reply_ciphertext": hex(&keys.seal_reply(counter, &reply)),
        }));
    }
    json!({
        "purpose": p,
        "recipient_secret": hex(&[recipient; 32]),
        "ephemeral_secret": hex(&[eph; 32]),
        "ephemeral": hex(&sealed.ephemeral.0),
        "messages": messages,
    })
}

fn produce() -> Value {
    let alice = Signer::from_suri("//Alice").unwrap();
    let cluster = Hash(secret(7).public());
    let call = Call::Call {
        dest: AccountId([9; 32]),
        value: 1_234_567_890_123_456_789,
        data: Bytes(vec![1, 2, 3, 4, 5]),
        gas_limit: 5_000_000_000,
    };
    let body = RequestBody {
        mode: Mode::Command,
        call: call.clone(),
        nonce: u64::MAX,
        expires_at: 1_900_000_000_000,
        certificate: None,
    };
    let signed = alice.sign_request(&cluster, &body);
    let query_open = QueryOpen {
        request: signed.clone(),
        min_seq: Some(42),
    };
    let session = SessionQuery {
        call: call.clone(),
        min_seq: None,
    };
    // A wallet (//Alice) certifies a session key (raw bytes, as `Signer::certify` signs);
    // the session key signs a query carrying the certificate.
    let session_key = Signer::from_suri("//session").unwrap();
    let cert = alice.certify(
        &session_key.account(),
        &cluster,
        1_900_000_000_000,
        CertificateScope::Queries,
    );
    let certified = session_key.sign_request(
        &cluster,
        &RequestBody {
            mode: Mode::Query,
            call,
            nonce: 5,
            expires_at: 1_900_000_000_000,
            certificate: Some(cert.clone()),
        },
    );
    let kdfs = [
        (vec![1u8; 32], "phat/v1/storage", vec![], 32),
        (
            vec![2u8; 7],
            "phat/v1/envelope",
            vec![b"query".to_vec(), vec![3u8; 32], vec![]],
            64,
        ),
    ];
    json!({
        "producer": "rust",
        "kdf": kdfs.iter().map(|(ikm, domain, parts, len)| json!({
            "ikm": hex(ikm),
            "domain": domain,
            "parts": parts.iter().map(|p| hex(p)).collect::<Vec<_>>(),
            "length": len,
            "out": hex(&kdf(ikm, domain, parts, *len)),
        })).collect::<Vec<_>>(),
        "suri": SURIS.iter().map(|s| json!({
            "suri": s,
            "public": hex(&Signer::from_suri(s).unwrap().account().0),
        })).collect::<Vec<_>>(),
        "request": {
            "cluster": hex(&cluster.0),
            "suri": "//Alice",
            "dest": hex(&[9; 32]),
            "value": "1234567890123456789",
            "data": "0x0102030405",
            "gas_limit": "5000000000",
            "nonce": u64::MAX.to_string(),
            "expires_at": "1900000000000",
            "body": hex(&signed.body.0),
            "signature": hex(&signed.signature.0),
        },
        "envelopes": [
            envelope("command", 7, 11, signed.encode(), None),
            envelope("query", 8, 12, query_open.encode(), Some(session.encode())),
            envelope("handover", 9, 13, vec![0x5a; 32], None),
        ],
        "certificate": {
            "wallet_suri": "//Alice",
            "session_suri": "//session",
            "cluster": hex(&cluster.0),
            "expires_at": "1900000000000",
            "scope": "Queries",
            "payload": hex(&cert.signing_payload()),
            "signature": hex(&cert.signature.0),
            "wrapped": false,
            "body": hex(&certified.body.0),
            "request_signature": hex(&certified.signature.0),
        },
    })
}

fn same(what: &str, got: &[u8], want: &Value) {
    assert_eq!(hex(got), want.as_str().unwrap(), "{what}");
}

/// Checks the certificate vector: the wallet's payload, its signature (raw or wrapped), the
/// certified body's bytes, and the whole request through the worker's own verification.
fn check_certificate(v: &Value) {
    let producer = v["producer"].as_str().unwrap();
    let c = &v["certificate"];
    let wallet = Signer::from_suri(c["wallet_suri"].as_str().unwrap()).unwrap();
    let session = Signer::from_suri(c["session_suri"].as_str().unwrap()).unwrap();
    let cluster = Hash(arr32(&c["cluster"]));
    let cert = Certificate {
        account: wallet.account(),
        session: session.account(),
        cluster,
        expires_at: num(&c["expires_at"]) as u64,
        scope: match c["scope"].as_str().unwrap() {
            "Queries" => CertificateScope::Queries,
            _ => CertificateScope::All,
        },
        signature: Bytes(unhex(&c["signature"])),
    };
    same(
        &format!("{producer} certificate payload"),
        &cert.signing_payload(),
        &c["payload"],
    );
    let r = &v["request"];
    let body = RequestBody {
        mode: Mode::Query,
        call: Call::Call {
            dest: AccountId(arr32(&r["dest"])),
            value: num(&r["value"]),
            data: Bytes(unhex(&r["data"])),
            gas_limit: num(&r["gas_limit"]) as u64,
        },
        nonce: 5,
        expires_at: num(&r["expires_at"]) as u64,
        certificate: Some(cert),
    };
    same(
        &format!("{producer} certified body"),
        &body.encode(),
        &c["body"],
    );
    let req = SignedRequest {
        body: Bytes(unhex(&c["body"])),
        signer: session.account(),
        signature: Bytes(unhex(&c["request_signature"])),
    };
    let verified = phat_client::crypto::verify_request(&req, &cluster)
        .unwrap_or_else(|e| panic!("the {producer} certified request: {e}"));
    assert_eq!(verified.caller(&req.signer), wallet.account());
}

/// Checks vectors from either producer against this implementation.
fn check(v: &Value) {
    check_certificate(v);
    let producer = v["producer"].as_str().unwrap();
    for k in v["kdf"].as_array().unwrap() {
        let parts: Vec<Vec<u8>> = k["parts"].as_array().unwrap().iter().map(unhex).collect();
        let got = kdf(
            &unhex(&k["ikm"]),
            k["domain"].as_str().unwrap(),
            &parts,
            k["length"].as_u64().unwrap() as usize,
        );
        same(&format!("{producer} kdf {}", k["domain"]), &got, &k["out"]);
    }
    for s in v["suri"].as_array().unwrap() {
        let suri = s["suri"].as_str().unwrap();
        let got = Signer::from_suri(suri).unwrap().account();
        same(
            &format!("{producer} account of {suri}"),
            &got.0,
            &s["public"],
        );
    }
    let r = &v["request"];
    let cluster = Hash(arr32(&r["cluster"]));
    let body = RequestBody {
        mode: Mode::Command,
        call: Call::Call {
            dest: AccountId(arr32(&r["dest"])),
            value: num(&r["value"]),
            data: Bytes(unhex(&r["data"])),
            gas_limit: num(&r["gas_limit"]) as u64,
        },
        nonce: num(&r["nonce"]) as u64,
        expires_at: num(&r["expires_at"]) as u64,
        certificate: None,
    };
    same(
        &format!("{producer} request body"),
        &body.encode(),
        &r["body"],
    );
    let alice = Signer::from_suri(r["suri"].as_str().unwrap())
        .unwrap()
        .account();
    assert!(
        sr25519_verify(
            &alice,
            &body.signing_payload(&cluster),
            &unhex(&r["signature"])
        ),
        "the {producer} request signature does not verify"
    );
    let request_in = |bytes: &[u8]| {
        let req = SignedRequest::decode_all(&mut &bytes[..]).unwrap();
        let body = RequestBody::decode(&mut &req.body.0[..]).unwrap();
        assert!(
            sr25519_verify(
                &req.signer,
                &body.signing_payload(&cluster),
                &req.signature.0
            ),
            "the request inside a {producer} envelope does not verify"
        );
    };
    for e in v["envelopes"].as_array().unwrap() {
        let p = e["purpose"].as_str().unwrap();
        let recipient =
            EnvelopeSecret::from_secret(&Secret32::from_bytes(arr32(&e["recipient_secret"])));
        let eph = EnvelopeSecret::from_secret(&Secret32::from_bytes(arr32(&e["ephemeral_secret"])));
        let messages = e["messages"].as_array().unwrap();
        let first = unhex(&messages[0]["request_plaintext"]);
        let (sealed, keys): (Sealed, SessionKeys) =
            seal_with_ephemeral(&eph, &recipient.public(), purpose(p), &first).unwrap();
        same(
            &format!("{producer} {p} ephemeral"),
            &sealed.ephemeral.0,
            &e["ephemeral"],
        );
        let theirs = Sealed {
            version: 1,
            ephemeral: Hash(arr32(&e["ephemeral"])),
            ciphertext: Bytes(unhex(&messages[0]["request_ciphertext"])),
        };
        same(
            &format!("{producer} {p} first message"),
            &sealed.ciphertext.0,
            &messages[0]["request_ciphertext"],
        );
        let (opened, _) = recipient.open(purpose(p), &theirs).unwrap();
        assert_eq!(opened, first, "{producer} {p} opened");
        for m in messages {
            let counter = num(&m["counter"]) as u64;
            let what = format!("{producer} {p} message {counter}");
            same(
                &what,
                &keys.seal_request(counter, &unhex(&m["request_plaintext"])),
                &m["request_ciphertext"],
            );
            same(
                &format!("{what}: reply sealed"),
                &keys.seal_reply(counter, &unhex(&m["reply_plaintext"])),
                &m["reply_ciphertext"],
            );
            let reply = keys
                .open_reply(counter, &unhex(&m["reply_ciphertext"]))
                .unwrap();
            same(
                &format!("{what}: reply opened"),
                &reply,
                &m["reply_plaintext"],
            );
        }
        match p {
            "command" => request_in(&opened),
            "query" => {
                let open = QueryOpen::decode_all(&mut &opened[..]).unwrap();
                request_in(&open.request.encode());
                SessionQuery::decode_all(&mut &unhex(&messages[1]["request_plaintext"])[..])
                    .unwrap();
            }
            _ => {}
        }
    }
}

fn load(producer: &str) -> Value {
    let path = dir().join(format!("{producer}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_rust_vectors_check_here_and_are_committed() {
    let fresh = produce();
    check(&fresh);
    if std::env::var_os("PHAT_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&fresh).unwrap() + "\n";
        std::fs::write(dir().join("rust.json"), text).unwrap();
    }
    let committed = load("rust");
    assert_eq!(committed["producer"], "rust");
    check(&committed);
}

#[test]
fn the_typescript_sdk_vectors_check_here() {
    let v = load("ts");
    assert_eq!(v["producer"], "ts");
    check(&v);
}
