//! Wallet certificates on a real 2-worker `phat dev`: a session key certified by //Alice
//! moves Alice's tokens and reads as Alice on both workers, without Alice's key; a
//! queries-only certificate, an expired one, one valid too long, one for another key and a
//! forged one are refused with typed errors, and move nothing. (Applying a command checks the
//! same rules on ledger time: `worker/src/apply.rs` `check_body`.)

use phat_client::primitives::protocol::{CallResult, CertificateScope};
use phat_client::primitives::Mode;
use phat_client::{call, sign_certified, Client, Signer};
use phat_testkit::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_certified_session_key_speaks_for_the_wallet() {
    let erc20 = bundle("erc20");
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let id = deploy_erc20(&ep, &erc20, "1000").await;
    let client = Client::new(&ep).unwrap();
    let cluster = client.info().await.unwrap().cluster_key;
    let alice = Signer::from_suri("//Alice").unwrap();
    let bob = Signer::from_suri("//Bob").unwrap();
    // A key the browser made for this session; Alice's wallet signs one certificate for it.
    let session = Signer::from_suri("//a-session-key").unwrap();
    let hour = now_ms() + 3_600_000;
    let cert = alice.certify(&session.account(), &cluster, hour, CertificateScope::All);

    let mut transfer = vec![0x84, 0xa1, 0x5d, 0xa1];
    transfer.extend_from_slice(&bob.account().0);
    transfer.extend_from_slice(&7u128.to_le_bytes());
    let dest = id.parse().unwrap();
    let submit = |cert: Option<phat_client::primitives::protocol::Certificate>| {
        let (client, session, transfer) = (client.clone(), &session, transfer.clone());
        async move {
            let req = sign_certified(
                session,
                cert.as_ref(),
                &cluster,
                Mode::Command,
                call(dest, transfer),
            );
            client
                .submit_signed(&req, true)
                .await
                .unwrap()
                .receipt
                .unwrap()
        }
    };
    let receipt = submit(Some(cert.clone())).await;
    assert_eq!(receipt.caller, alice.account(), "made as Alice");
    assert!(receipt.result.is_success(), "{:?}", receipt.result);
    // Bob got Alice's tokens; read on both workers, by a certified query made as Alice.
    let mut balance_of = vec![0x0f, 0x75, 0x5a, 0x56];
    balance_of.extend_from_slice(&alice.account().0);
    for w in &dev.workers {
        wait_seq(w, receipt.seq).await;
        let bob_has = run_json(w, &["query", &id, "balance_of", &bob.account().to_string()]);
        assert_eq!(bob_has["decoded"], "Ok(7)", "{w}");
        let c = Client::new(w).unwrap();
        let req = sign_certified(
            &session,
            Some(&cert),
            &cluster,
            Mode::Query,
            call(dest, balance_of.clone()),
        );
        let r = c.query_signed(&req, None).await.unwrap();
        match r.result {
            CallResult::Ok(o) => assert_eq!(&o.data.0[1..], &993u128.to_le_bytes()),
            other => panic!("{other:?}"),
        }
    }

    // Refusals: each a receipt with a kind, equal roots on both workers.
    let queries_only = alice.certify(
        &session.account(),
        &cluster,
        hour,
        CertificateScope::Queries,
    );
    let expired = alice.certify(
        &session.account(),
        &cluster,
        now_ms() - 1,
        CertificateScope::All,
    );
    let too_long = alice.certify(
        &session.account(),
        &cluster,
        now_ms() + 2 * 86_400_000,
        CertificateScope::All,
    );
    let for_another_key = alice.certify(&bob.account(), &cluster, hour, CertificateScope::All);
    let mut forged = cert.clone();
    forged.account = bob.account();
    for (cert, kind) in [
        (queries_only, "certificate_scope"),
        (expired, "certificate_expired"),
        (too_long, "certificate_too_long"),
        (for_another_key, "bad_certificate"),
        (forged, "bad_certificate"),
    ] {
        let req = sign_certified(
            &session,
            Some(&cert),
            &cluster,
            Mode::Command,
            call(dest, transfer.clone()),
        );
        // The worker refuses it before it reaches the ledger.
        match client.submit_signed(&req, true).await {
            Err(phat_client::ClientError::Api { kind: k, .. }) => assert_eq!(k, kind),
            other => panic!("{kind}: {other:?}"),
        }
    }
    // Bob's balance did not move again.
    let last = run_json(
        &ep,
        &["query", &id, "balance_of", &bob.account().to_string()],
    );
    assert_eq!(last["decoded"], "Ok(7)");
}
