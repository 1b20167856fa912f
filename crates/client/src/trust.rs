//! Whom the client trusts: pins given as hex or files, whether an endpoint is loopback, and the
//! check of a worker's attestation report (and keys, and encryption flag) before anything is
//! sent to it.

use std::sync::Arc;

use phat_crypto::attest::is_insecure;
use phat_crypto::AttestationPolicy;
use phat_primitives::protocol::WorkerInfo;

use crate::retry::SendRetrying;
use crate::sessions::ClientSession;
use crate::{Client, ClientError};

/// A 32-byte pin (a dev root public key, a measurement) given as hex (`0x` optional) or as
/// the path of a file holding that hex.
pub fn parse_pin(value: &str) -> Result<[u8; 32], ClientError> {
    let hex32 = |text: &str| {
        let text = text.trim();
        hex::decode(text.strip_prefix("0x").unwrap_or(text))
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
    };
    if let Some(pin) = hex32(value) {
        return Ok(pin);
    }
    let raw = std::fs::read(value).map_err(|e| {
        ClientError::Invalid(format!(
            "`{value}` is neither 32 bytes of hex nor a readable file: {e}"
        ))
    })?;
    // Text only: a raw 32-byte file is more likely a secret key than a public pin.
    std::str::from_utf8(&raw)
        .ok()
        .and_then(hex32)
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "{value} does not hold 32 bytes of hex (a dev root pin is the root's public \
                 key, not the root key file)"
            ))
        })
}

/// A worker whose report was verified, and the open query session with it.
pub(crate) struct Peer {
    /// Its verified info.
    pub(crate) info: WorkerInfo,
    /// The open query session, if any.
    pub(crate) session: parking_lot::Mutex<Option<Arc<ClientSession>>>,
}

/// Whether `endpoint`'s host is a loopback address (where `phat dev` runs).
pub(crate) fn is_loopback(endpoint: &str) -> bool {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

impl Client {
    /// The verified worker behind the endpoint (fetched and checked once).
    pub(crate) async fn peer(&self) -> Result<Arc<Peer>, ClientError> {
        if let Some(peer) = self.peer.lock().clone() {
            return Ok(peer);
        }
        let peer = self.verified_peer().await?;
        *self.peer.lock() = Some(peer.clone());
        Ok(peer)
    }

    /// Fetches the worker's info and checks its attestation report.
    async fn verified_peer(&self) -> Result<Arc<Peer>, ClientError> {
        let info: WorkerInfo = self
            .answer(self.http.get(self.url("/v1/info")).send_retrying().await)
            .await?;
        self.check_peer(&info)?;
        Ok(Arc::new(Peer {
            info,
            session: parking_lot::Mutex::new(None),
        }))
    }

    /// Whether `info` may be trusted: its report verifies against what this client pins
    /// (against the signer it names itself only on loopback, without a pin), it attests the
    /// keys and the encryption flag `info` announces, and the cluster encrypts unless
    /// [`Client::allow_unencrypted`].
    fn check_peer(&self, info: &WorkerInfo) -> Result<(), ClientError> {
        let report = &info.attestation;
        let policy = AttestationPolicy {
            accept_dev: self
                .accept_dev
                .unwrap_or(self.loopback || self.dev_root.is_some()),
            dev_root: self.dev_root,
            measurement: self.measurement,
            tee: self.tee_policy.clone(),
            tee_time: None,
        };
        let verified =
            if is_insecure(report) && self.dev_root.is_none() && self.accept_dev != Some(false) {
                if !self.loopback {
                    return Err(ClientError::Unpinned {
                        endpoint: self.base.clone(),
                    });
                }
                policy.verify_self_signed_dev(report)
            } else {
                policy.verify(report)
            };
        verified.map_err(|e| ClientError::Untrusted(e.to_string()))?;
        if report.worker_key != info.worker_key
            || report.cluster_key != Some(info.sealing_key())
            || report.encryption != info.encryption
        {
            return Err(ClientError::Untrusted(
                "the keys the worker announces are not the ones its report attests".into(),
            ));
        }
        if !info.encryption && !self.allow_unencrypted {
            return Err(ClientError::Unencrypted {
                endpoint: self.base.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{call, Signer};
    use phat_crypto::{Attestation, Claims, DevAttestation, Secret32};
    use phat_primitives::{AccountId, Hash};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: &str = "http://127.0.0.1:8700";
    const REMOTE: &str = "http://10.1.2.3:8700";

    fn root(n: u8) -> DevAttestation {
        DevAttestation::new(&Secret32::from_bytes([n; 32]))
    }

    /// A worker's info with a report `root` signs, attesting its keys and `encryption`.
    fn info(root: &DevAttestation, encryption: bool) -> WorkerInfo {
        let claims = Claims {
            measurement: [1; 32],
            worker_key: [2; 32],
            cluster_key: Some([3; 32]),
            encryption,
            signing_key: Some([4; 32]),
        };
        WorkerInfo {
            worker_key: Hash([2; 32]),
            cluster_key: Hash([3; 32]),
            epoch: 0,
            envelope_key: None,
            encryption,
            attestation: root.report(&claims, 1).unwrap(),
            version: "test".into(),
            name: "worker-0".into(),
            seq: 0,
            state_root: Hash::default(),
            ledger_head: 0,
            pid: 1,
            diverged: None,
            system_contract: None,
        }
    }

    #[test]
    fn a_report_signed_by_another_key_than_the_pinned_root_is_refused() {
        let (pinned, other) = (root(1), root(2));
        for endpoint in [LOOPBACK, REMOTE] {
            let client = Client::new(endpoint)
                .unwrap()
                .pin_dev_root(pinned.root_public());
            client.check_peer(&info(&pinned, true)).unwrap();
            match client.check_peer(&info(&other, true)) {
                Err(ClientError::Untrusted(m)) => {
                    assert!(m.contains("not by the pinned dev root"), "{m}")
                }
                r => panic!("{endpoint}: a foreign root accepted: {r:?}"),
            }
            // Naming the pinned root as its signer does not make another key's signature good.
            let mut claimed = info(&other, true);
            claimed.attestation.signer = Hash(pinned.root_public());
            match client.check_peer(&claimed) {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("signature"), "{m}"),
                r => panic!("{endpoint}: a mislabelled report accepted: {r:?}"),
            }
            // Refusing dev outright wins over the pin.
            match client
                .clone()
                .accept_dev_attestation(false)
                .check_peer(&info(&pinned, true))
            {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("insecure"), "{m}"),
                r => panic!("{endpoint}: dev accepted against the setting: {r:?}"),
            }
        }
        // A pinned measurement is enforced too.
        let client = Client::new(REMOTE)
            .unwrap()
            .pin_dev_root(pinned.root_public())
            .pin_measurement([9; 32]);
        match client.check_peer(&info(&pinned, true)) {
            Err(ClientError::Untrusted(m)) => assert!(m.contains("required"), "{m}"),
            r => panic!("another measurement accepted: {r:?}"),
        }
    }

    #[test]
    fn a_self_signed_report_is_refused_on_a_non_loopback_endpoint_without_a_pin() {
        let signed = info(&root(1), true);
        for endpoint in [
            REMOTE,
            "http://worker.example.com:8700",
            "https://[2001:db8::1]:8700",
        ] {
            let plain = Client::new(endpoint).unwrap();
            let accepting = plain.clone().accept_dev_attestation(true);
            let measured = accepting.clone().pin_measurement([1; 32]);
            for client in [plain, accepting, measured] {
                match client.check_peer(&signed) {
                    Err(e @ ClientError::Unpinned { .. }) => {
                        let m = e.to_string();
                        assert!(m.contains(endpoint) && m.contains("--dev-root"), "{m}");
                    }
                    r => panic!("{endpoint}: a self-signed report accepted: {r:?}"),
                }
            }
        }
        // On loopback (where `phat dev` runs) the self-declared signer is accepted by default,
        // as long as its signature is intact.
        for endpoint in [LOOPBACK, "http://localhost:8700", "http://[::1]:8700"] {
            let client = Client::new(endpoint).unwrap();
            client.check_peer(&signed).unwrap();
            let mut altered = signed.clone();
            altered.attestation.measurement = Hash([7; 32]);
            assert!(matches!(
                client.check_peer(&altered),
                Err(ClientError::Untrusted(_))
            ));
        }
    }

    #[test]
    fn encryption_false_is_refused_unless_opted_in() {
        let r = root(1);
        let plain = info(&r, false);
        let clients = [
            Client::new(LOOPBACK).unwrap(),
            Client::new(REMOTE).unwrap().pin_dev_root(r.root_public()),
        ];
        for client in clients {
            match client.check_peer(&plain) {
                Err(e @ ClientError::Unencrypted { .. }) => {
                    let m = e.to_string();
                    assert!(
                        m.contains("encryption: false") && m.contains("--allow-unencrypted"),
                        "{m}"
                    );
                }
                r => panic!("{}: plaintext accepted: {r:?}", client.endpoint()),
            }
            let opted_in = client.clone().allow_unencrypted(true);
            opted_in.check_peer(&plain).unwrap();
            opted_in.check_peer(&info(&r, true)).unwrap();
            // The flag the worker announces must be the one its report attests.
            let mut flipped = info(&r, true);
            flipped.encryption = false;
            match opted_in.check_peer(&flipped) {
                Err(ClientError::Untrusted(m)) => assert!(m.contains("attests"), "{m}"),
                r => panic!("an unattested flag accepted: {r:?}"),
            }
        }
    }

    /// An HTTP server on 127.0.0.1 answering `GET /v1/info` with `info` and everything else
    /// with 404; it records each request line.
    async fn serve_info(
        info: &WorkerInfo,
    ) -> (std::net::SocketAddr, Arc<parking_lot::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (body, log) = (serde_json::to_string(info).unwrap(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, log) = (body.clone(), log.clone());
                tokio::spawn(async move {
                    let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let (status, body) = if line.starts_with("GET /v1/info ") {
                        ("200 OK", body)
                    } else {
                        (
                            "404 Not Found",
                            r#"{"error":{"kind":"not_found","message":"test server"}}"#.into(),
                        )
                    };
                    log.lock().push(line);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_downgrading_endpoint_gets_nothing_but_the_info_request() {
        let r = root(1);
        let (addr, seen) = serve_info(&info(&r, false)).await;
        let client = Client::new(&format!("http://{addr}")).unwrap();
        let alice = Signer::from_suri("//Alice").unwrap();
        let call = call(AccountId([5; 32]), vec![1, 2, 3, 4]);
        assert!(matches!(
            client.submit(&alice, call.clone(), true).await,
            Err(ClientError::Unencrypted { .. })
        ));
        assert!(matches!(
            client.query(&alice, call, None).await,
            Err(ClientError::Unencrypted { .. })
        ));
        assert!(matches!(
            client.trusted_info().await,
            Err(ClientError::Unencrypted { .. })
        ));
        let lines = seen.lock().clone();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.starts_with("GET /v1/info ")),
            "{lines:?}"
        );
        let opted_in = client.allow_unencrypted(true).trusted_info().await.unwrap();
        assert!(!opted_in.encryption);
    }

    #[tokio::test]
    async fn a_non_loopback_name_needs_the_pinned_root_over_http() {
        let r = root(1);
        let (addr, _) = serve_info(&info(&r, true)).await;
        // A non-loopback name, resolved by this test to the local server only.
        let host = "phat-worker.invalid";
        let mut client = Client::new(&format!("http://{host}:{}", addr.port())).unwrap();
        client.http = reqwest::Client::builder()
            .resolve(host, addr)
            .build()
            .unwrap();
        assert!(!client.loopback);
        assert!(matches!(
            client.trusted_info().await,
            Err(ClientError::Unpinned { .. })
        ));
        let wrong = client.clone().pin_dev_root(root(2).root_public());
        assert!(matches!(
            wrong.trusted_info().await,
            Err(ClientError::Untrusted(_))
        ));
        let pinned = client.pin_dev_root(r.root_public());
        assert_eq!(
            pinned.trusted_info().await.unwrap().attestation.signer,
            Hash(r.root_public())
        );
    }

    #[test]
    fn pins_are_hex_or_a_file_of_hex() {
        let key = [0xab; 32];
        let text = hex::encode(key);
        assert_eq!(parse_pin(&text).unwrap(), key);
        assert_eq!(parse_pin(&format!("0x{text}")).unwrap(), key);
        let dir = std::env::temp_dir().join(format!("phat-client-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("root.pub");
        std::fs::write(&file, format!("0x{text}\n")).unwrap();
        assert_eq!(parse_pin(file.to_str().unwrap()).unwrap(), key);
        // Raw bytes (the shape of a root key file) are not taken for a public key.
        std::fs::write(&file, key).unwrap();
        match parse_pin(file.to_str().unwrap()) {
            Err(ClientError::Invalid(m)) => assert!(m.contains("not the root key file"), "{m}"),
            r => panic!("raw bytes accepted: {r:?}"),
        }
        assert!(parse_pin(dir.join("absent").to_str().unwrap()).is_err());
        assert!(parse_pin("0x1234").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
