//! Signing, verification and key derivation through the dispatcher, in sp-core's formats.

use super::*;

#[test]
fn sr25519_derive_sign_verify_roundtrip() {
    let f = Fixture::new();
    let key = Vec::<u8>::decode(&mut &f.ok(Query, 4, b"a spoon of salt".to_vec())[..]).unwrap();
    assert_eq!(key.len(), 64, "a schnorrkel secret key: scalar ‖ nonce");
    let pubkey =
        Vec::<u8>::decode(&mut &f.ok(Query, 5, (SigType::Sr25519, key.clone()))[..]).unwrap();
    assert_eq!(pubkey.len(), 32);
    let message = b"hello world".to_vec();
    for mode in [Query, Command] {
        let sig = Vec::<u8>::decode(
            &mut &f.ok(mode, 2, (SigType::Sr25519, key.clone(), message.clone()))[..],
        )
        .unwrap();
        assert_eq!(sig.len(), 64);
        let good = (
            SigType::Sr25519,
            pubkey.clone(),
            message.clone(),
            sig.clone(),
        );
        assert_eq!(f.ok(mode, 3, good), [1]);
        let fake = (
            SigType::Sr25519,
            pubkey.clone(),
            b"Fake".to_vec(),
            sig.clone(),
        );
        assert_eq!(f.ok(mode, 3, fake), [0]);
    }
    // Commands sign deterministically.
    let sign = (SigType::Sr25519, key.clone(), message.clone());
    assert_eq!(f.ok(Command, 2, &sign), f.ok(Command, 2, &sign));
    // A 32-byte mini secret works too.
    let pubkey = f.ok(Query, 5, (SigType::Sr25519, vec![1u8; 32]));
    assert_eq!(
        pubkey,
        schnorrkel::MiniSecretKey::from_bytes(&[1; 32])
            .unwrap()
            .expand_to_public(schnorrkel::ExpansionMode::Ed25519)
            .to_bytes()
            .to_vec()
            .encode()
    );
}

#[test]
fn ed25519_matches_rfc8032() {
    // RFC 8032, section 7.1, test 1 (empty message).
    let f = Fixture::new();
    let seed =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
    let pubkey =
        Vec::<u8>::decode(&mut &f.ok(Query, 5, (SigType::Ed25519, seed.clone()))[..]).unwrap();
    assert_eq!(
        hex::encode(&pubkey),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let sig = Vec::<u8>::decode(
        &mut &f.ok(
            Command,
            2,
            (SigType::Ed25519, seed.clone(), Vec::<u8>::new()),
        )[..],
    )
    .unwrap();
    assert_eq!(
        hex::encode(&sig),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    assert_eq!(
        f.ok(
            Command,
            3,
            (
                SigType::Ed25519,
                pubkey.clone(),
                Vec::<u8>::new(),
                sig.clone()
            )
        ),
        [1]
    );
    assert_eq!(
        f.ok(Command, 3, (SigType::Ed25519, pubkey, b"x".to_vec(), sig)),
        [0]
    );
    let message = f.failed(Query, 2, (SigType::Ed25519, vec![0u8; 64], b"m".to_vec()));
    assert!(message.contains("expected 32, got 64"), "{message}");
}

#[test]
fn ecdsa_sign_verify_and_prehashed() {
    let f = Fixture::new();
    let key = vec![0x11u8; 32];
    let pubkey =
        Vec::<u8>::decode(&mut &f.ok(Command, 5, (SigType::Ecdsa, key.clone()))[..]).unwrap();
    assert_eq!(pubkey.len(), 33, "compressed");
    assert!(pubkey[0] == 2 || pubkey[0] == 3);
    let message = b"hello world".to_vec();
    let sig = Vec::<u8>::decode(
        &mut &f.ok(Command, 2, (SigType::Ecdsa, key.clone(), message.clone()))[..],
    )
    .unwrap();
    assert_eq!(sig.len(), 65);
    assert!(sig[64] <= 1);
    assert_eq!(
        f.ok(
            Query,
            3,
            (SigType::Ecdsa, pubkey.clone(), message.clone(), sig.clone())
        ),
        [1]
    );
    assert_eq!(
        f.ok(
            Query,
            3,
            (
                SigType::Ecdsa,
                pubkey.clone(),
                b"Fake".to_vec(),
                sig.clone()
            )
        ),
        [0]
    );
    // `sign` is `ecdsa_sign_prehashed` of blake2_256(message); fixed arrays, no prefix.
    let hash = blake2_256(&message);
    let prehashed = f.ok(Query, 13, (key.clone(), hash));
    assert_eq!(prehashed, sig);
    let pubkey: [u8; 33] = pubkey.try_into().unwrap();
    let sig: [u8; 65] = sig.try_into().unwrap();
    assert_eq!(f.ok(Query, 14, (sig, hash, pubkey)), [1]);
    assert_eq!(f.ok(Query, 14, (sig, [0u8; 32], pubkey)), [0]);
    let mut bad = sig;
    bad[64] = 9;
    assert_eq!(f.ok(Query, 14, (bad, hash, pubkey)), [0]);
    // Invalid keys trap; invalid public keys and signatures just do not verify.
    assert!(f
        .failed(Query, 13, (vec![0u8; 32], hash))
        .contains("invalid Ecdsa secret key"));
    assert!(f
        .failed(Query, 5, (SigType::Ecdsa, vec![1u8; 31]))
        .contains("got 31 bytes"));
    assert_eq!(
        f.ok(
            Query,
            3,
            (SigType::Ecdsa, vec![1u8; 3], message, vec![0u8; 65])
        ),
        [0]
    );
}

#[test]
fn malformed_keys_and_signatures_never_trap_verify() {
    let f = Fixture::new();
    for sigtype in [SigType::Ed25519, SigType::Sr25519, SigType::Ecdsa] {
        for (pk, sig) in [(0usize, 0usize), (32, 64), (33, 65), (31, 63), (64, 64)] {
            let args = (sigtype, vec![0xffu8; pk], b"m".to_vec(), vec![0xffu8; sig]);
            assert_eq!(f.ok(Query, 3, args), [0]);
        }
        let message = f.failed(Query, 2, (sigtype, vec![1u8; 7], b"m".to_vec()));
        assert!(message.starts_with("sign: invalid"), "{message}");
        assert!(f
            .failed(Query, 5, (sigtype, Vec::<u8>::new()))
            .starts_with("get_public_key"));
    }
}

#[test]
fn keys_are_deterministic_per_seed_and_contract() {
    let derive = |seed: [u8; 32], contract: AccountId, salt: &[u8]| {
        let f = Fixture::with_host(MockHost::new(seed));
        let key = f
            .call_as(Command, contract, 4, salt.to_vec())
            .unwrap()
            .output;
        let key = Vec::<u8>::decode(&mut &key[..]).unwrap();
        let pubkey = f.call_as(Query, contract, 5, (SigType::Sr25519, key.clone()));
        (key, pubkey.unwrap().output)
    };
    let a = derive([3; 32], CONTRACT, b"salt");
    assert_eq!(
        a,
        derive([3; 32], CONTRACT, b"salt"),
        "same on every worker"
    );
    assert_eq!(
        a.0.as_slice(),
        derive_sr25519_secret(&[3; 32], &CONTRACT, b"salt")
    );
    assert_ne!(a.1, derive([3; 32], OTHER, b"salt").1, "per contract");
    assert_ne!(a.1, derive([4; 32], CONTRACT, b"salt").1, "per seed");
    assert_ne!(a.1, derive([3; 32], CONTRACT, b"pepper").1, "per salt");

    let keys = contract_public_keys(&[3; 32], &CONTRACT);
    assert_eq!(keys, contract_public_keys(&[3; 32], &CONTRACT));
    let other = contract_public_keys(&[3; 32], &OTHER);
    let reseeded = contract_public_keys(&[4; 32], &CONTRACT);
    for k in [other, reseeded] {
        assert_ne!(k.sr25519, keys.sr25519);
        assert_ne!(k.ed25519, keys.ed25519);
        assert_ne!(k.ecdsa, keys.ecdsa);
    }
    // The sr25519 identity is the key `derive_sr25519_key` gives for an empty salt.
    let empty = derive([3; 32], CONTRACT, b"");
    assert_eq!(empty.1, keys.sr25519.to_vec().encode());
    // The Ethereum key is the one a contract gets from `derive_sr25519_key("ethereum")`.
    let eth = derive([3; 32], CONTRACT, ETHEREUM_KEY_SALT);
    assert_eq!(
        public_key(SigType::Ecdsa, &eth.0[..32]).unwrap(),
        keys.ecdsa.to_vec()
    );
    // Kinds are separated.
    assert_ne!(
        derive_key_material(&[3; 32], &CONTRACT, KeyKind::Ed25519, b""),
        derive_key_material(&[3; 32], &CONTRACT, KeyKind::Sr25519, b"")
    );
}
