//! Behaviour of `phat-store` against real database files in temporary directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;

use phat_store::{
    chain_root, AccountId, Batch, Hash, Head, StateKey, Store, StoreError, LOG_RETENTION,
    MAX_PRUNED_PER_COMMIT,
};

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.redb")).expect("open");
    (dir, store)
}

/// A head with a recognisable root and timestamp.
fn head(seq: u64) -> Head {
    Head {
        seq,
        state_root: Hash([seq as u8; 32]),
        timestamp: 1_000 + seq,
    }
}

/// A balance key of account `n`.
fn bal(n: u8) -> StateKey {
    StateKey::Balance(AccountId([n; 32]))
}

#[test]
fn empty_store_has_default_head() {
    let (_dir, store) = fresh();
    assert_eq!(store.head().unwrap(), Head::default());
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head(), Head::default());
    assert_eq!(snap.get(&bal(1)).unwrap(), None);
    assert_eq!(store.receipt(1).unwrap(), None);
    assert!(store
        .logs(&AccountId([1; 32]), None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn commit_survives_reopen_and_deletes_remove_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let contract = AccountId([9; 32]);
    let storage = StateKey::Storage(Hash([3; 32]), b"cell".to_vec());
    {
        let store = Store::open(&path).unwrap();
        let mut batch = Batch {
            head: head(1),
            ..Batch::default()
        };
        batch.writes.insert(bal(1), Some(vec![1, 2, 3]));
        batch.writes.insert(bal(2), Some(vec![4]));
        batch.writes.insert(storage.clone(), Some(Vec::new()));
        batch.receipts.push((1, b"receipt-1".to_vec()));
        batch.logs.push((contract, b"log-a".to_vec()));
        store.commit(batch).unwrap();

        let mut batch = Batch {
            head: head(2),
            ..Batch::default()
        };
        batch.writes.insert(bal(2), None);
        batch.receipts.push((2, b"receipt-2".to_vec()));
        batch.logs.push((contract, b"log-b".to_vec()));
        store.commit(batch).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.head().unwrap(), head(2));
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head(), head(2));
    assert_eq!(snap.get(&bal(1)).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(snap.get(&bal(2)).unwrap(), None);
    assert_eq!(snap.get(&storage).unwrap(), Some(Vec::new()));
    assert_eq!(snap.receipt(1).unwrap(), Some(b"receipt-1".to_vec()));
    assert_eq!(store.receipt(2).unwrap(), Some(b"receipt-2".to_vec()));
    assert_eq!(store.receipt(3).unwrap(), None);
    assert_eq!(
        store.logs(&contract, None, 10).unwrap(),
        vec![(0, b"log-a".to_vec()), (1, b"log-b".to_vec())]
    );
}

#[test]
fn snapshot_is_isolated_from_later_commits() {
    let (_dir, store) = fresh();
    let mut batch = Batch {
        head: head(1),
        ..Batch::default()
    };
    batch.writes.insert(bal(1), Some(b"old".to_vec()));
    batch.writes.insert(bal(2), Some(b"gone".to_vec()));
    store.commit(batch).unwrap();

    let before = store.snapshot().unwrap();
    let mut batch = Batch {
        head: head(2),
        ..Batch::default()
    };
    batch.writes.insert(bal(1), Some(b"new".to_vec()));
    batch.writes.insert(bal(2), None);
    batch.receipts.push((2, b"r2".to_vec()));
    store.commit(batch).unwrap();
    let after = store.snapshot().unwrap();

    assert_eq!(before.head(), head(1));
    assert_eq!(before.get(&bal(1)).unwrap(), Some(b"old".to_vec()));
    assert_eq!(before.get(&bal(2)).unwrap(), Some(b"gone".to_vec()));
    assert_eq!(before.receipt(2).unwrap(), None);

    assert_eq!(after.head(), head(2));
    assert_eq!(after.get(&bal(1)).unwrap(), Some(b"new".to_vec()));
    assert_eq!(after.get(&bal(2)).unwrap(), None);
    assert_eq!(after.receipt(2).unwrap(), Some(b"r2".to_vec()));
}

#[test]
fn non_increasing_seq_is_refused_and_writes_nothing() {
    let (_dir, store) = fresh();
    let mut batch = Batch {
        head: head(5),
        ..Batch::default()
    };
    batch.writes.insert(bal(1), Some(b"five".to_vec()));
    store.commit(batch).unwrap();

    for seq in [5, 4, 0] {
        let mut batch = Batch {
            head: head(seq),
            ..Batch::default()
        };
        batch.writes.insert(bal(1), Some(b"bad".to_vec()));
        batch.writes.insert(bal(2), Some(b"bad".to_vec()));
        batch.receipts.push((seq, b"bad".to_vec()));
        batch.nonces.push((AccountId([1; 32]), 1, 10));
        batch.logs.push((AccountId([1; 32]), b"bad".to_vec()));
        match store.commit(batch) {
            Err(StoreError::NotIncreasing { current: 5, got }) => assert_eq!(got, seq),
            other => panic!("expected NotIncreasing, got {other:?}"),
        }
    }

    assert_eq!(store.head().unwrap(), head(5));
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.get(&bal(1)).unwrap(), Some(b"five".to_vec()));
    assert_eq!(snap.get(&bal(2)).unwrap(), None);
    assert_eq!(snap.receipt(4).unwrap(), None);
    assert_eq!(snap.nonce_expiry(&AccountId([1; 32]), 1).unwrap(), None);
    assert!(store
        .logs(&AccountId([1; 32]), None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn nonces_are_remembered_and_only_expired_ones_pruned() {
    let (_dir, store) = fresh();
    let alice = AccountId([1; 32]);
    let bob = AccountId([2; 32]);
    let batch = Batch {
        head: head(1),
        nonces: vec![
            (alice, 1, 100),
            (alice, 2, 200),
            (bob, 1, 150),
            (bob, 7, 300),
        ],
        ..Batch::default()
    };
    store.commit(batch).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.nonce_expiry(&alice, 1).unwrap(), Some(100));
    assert_eq!(snap.nonce_expiry(&alice, 2).unwrap(), Some(200));
    assert_eq!(snap.nonce_expiry(&bob, 1).unwrap(), Some(150));
    assert_eq!(snap.nonce_expiry(&bob, 7).unwrap(), Some(300));
    assert_eq!(snap.nonce_expiry(&bob, 2).unwrap(), None);
    assert_eq!(snap.nonce_expiry(&alice, 7).unwrap(), None);

    // Prune below 200: 100 and 150 go, 200 (not < 200) and 300 stay, the new one stays.
    let batch = Batch {
        head: head(2),
        nonces: vec![(alice, 3, 250)],
        prune_nonces_before: 200,
        ..Batch::default()
    };
    store.commit(batch).unwrap();
    let snap2 = store.snapshot().unwrap();
    assert_eq!(snap2.nonce_expiry(&alice, 1).unwrap(), None);
    assert_eq!(snap2.nonce_expiry(&bob, 1).unwrap(), None);
    assert_eq!(snap2.nonce_expiry(&alice, 2).unwrap(), Some(200));
    assert_eq!(snap2.nonce_expiry(&alice, 3).unwrap(), Some(250));
    assert_eq!(snap2.nonce_expiry(&bob, 7).unwrap(), Some(300));
    // The older snapshot still sees the pruned nonces.
    assert_eq!(snap.nonce_expiry(&alice, 1).unwrap(), Some(100));

    // Re-remembering a nonce with a later expiry moves it in the pruning index.
    let batch = Batch {
        head: head(3),
        nonces: vec![(alice, 2, 1_000)],
        prune_nonces_before: 400,
        ..Batch::default()
    };
    store.commit(batch).unwrap();
    let snap3 = store.snapshot().unwrap();
    assert_eq!(snap3.nonce_expiry(&alice, 2).unwrap(), Some(1_000));
    assert_eq!(snap3.nonce_expiry(&alice, 3).unwrap(), None);
    assert_eq!(snap3.nonce_expiry(&bob, 7).unwrap(), None);
}

#[test]
fn logs_are_indexed_per_contract_with_after_and_limit() {
    let (_dir, store) = fresh();
    let a = AccountId([0xa; 32]);
    let b = AccountId([0xb; 32]);
    let batch = Batch {
        head: head(1),
        logs: vec![
            (a, b"a0".to_vec()),
            (b, b"b0".to_vec()),
            (a, b"a1".to_vec()),
        ],
        ..Batch::default()
    };
    store.commit(batch).unwrap();
    let batch = Batch {
        head: head(2),
        logs: vec![(a, b"a2".to_vec()), (b, b"b1".to_vec())],
        ..Batch::default()
    };
    store.commit(batch).unwrap();

    let all_a = store.logs(&a, None, 100).unwrap();
    assert_eq!(
        all_a,
        vec![
            (0, b"a0".to_vec()),
            (1, b"a1".to_vec()),
            (2, b"a2".to_vec())
        ]
    );
    assert_eq!(
        store.logs(&b, None, 100).unwrap(),
        vec![(0, b"b0".to_vec()), (1, b"b1".to_vec())]
    );
    assert_eq!(
        store.logs(&a, Some(0), 100).unwrap(),
        vec![(1, b"a1".to_vec()), (2, b"a2".to_vec())]
    );
    assert_eq!(store.logs(&a, None, 2).unwrap(), all_a[..2].to_vec());
    assert_eq!(
        store.logs(&a, Some(0), 1).unwrap(),
        vec![(1, b"a1".to_vec())]
    );
    assert!(store.logs(&a, Some(2), 100).unwrap().is_empty());
    assert!(store.logs(&a, Some(u64::MAX), 100).unwrap().is_empty());
    assert!(store.logs(&a, None, 0).unwrap().is_empty());
    assert!(store
        .logs(&AccountId([0xc; 32]), None, 100)
        .unwrap()
        .is_empty());
}

#[test]
fn receipts_below_the_retention_cut_are_deleted_a_bounded_number_per_commit() {
    let (_dir, store) = fresh();
    let n = MAX_PRUNED_PER_COMMIT as u64 + 10;
    store
        .commit(Batch {
            head: head(n),
            receipts: (1..=n).map(|s| (s, s.to_le_bytes().to_vec())).collect(),
            ..Batch::default()
        })
        .unwrap();
    assert!(store.receipt(1).unwrap().is_some());
    // Cut everything below n: one commit deletes at most MAX_PRUNED_PER_COMMIT.
    store
        .commit(Batch {
            head: head(n + 1),
            prune_receipts_before: n,
            ..Batch::default()
        })
        .unwrap();
    let first_kept = MAX_PRUNED_PER_COMMIT as u64 + 1;
    assert!(store.receipt(first_kept - 1).unwrap().is_none());
    assert!(store.receipt(first_kept).unwrap().is_some());
    store
        .commit(Batch {
            head: head(n + 2),
            prune_receipts_before: n,
            ..Batch::default()
        })
        .unwrap();
    assert!(store.receipt(n - 1).unwrap().is_none());
    assert_eq!(store.receipt(n).unwrap(), Some(n.to_le_bytes().to_vec()));
}

#[test]
fn logs_beyond_retention_are_deleted() {
    let (_dir, store) = fresh();
    let a = AccountId([0xa; 32]);
    let b = AccountId([0xb; 32]);
    let extra = 5;
    let logs = (0..LOG_RETENTION + extra)
        .map(|i| (a, i.to_le_bytes().to_vec()))
        .chain(std::iter::once((b, b"b0".to_vec())))
        .collect();
    store
        .commit(Batch {
            head: head(1),
            logs,
            ..Batch::default()
        })
        .unwrap();
    let first = store.logs(&a, None, 1).unwrap();
    assert_eq!(first, vec![(extra, extra.to_le_bytes().to_vec())]);
    assert_eq!(
        store.logs(&a, None, usize::MAX).unwrap().len() as u64,
        LOG_RETENTION
    );
    // One more record pushes exactly one more out; indices keep increasing.
    store
        .commit(Batch {
            head: head(2),
            logs: vec![(a, b"last".to_vec())],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.logs(&a, None, 1).unwrap()[0].0, extra + 1);
    assert_eq!(
        store.logs(&a, Some(LOG_RETENTION + extra - 1), 10).unwrap(),
        vec![(LOG_RETENTION + extra, b"last".to_vec())]
    );
    assert_eq!(store.logs(&b, None, 10).unwrap(), vec![(0, b"b0".to_vec())]);
}

#[test]
fn a_log_scans_both_ways_from_an_index_and_says_what_comes_next() {
    let (_dir, store) = fresh();
    let a = AccountId([0xa; 32]);
    let b = AccountId([0xb; 32]);
    let scan = |after, newest_first, max: usize| {
        let mut seen = Vec::new();
        let next = store
            .scan_logs(&a, after, newest_first, |i, raw| {
                seen.push((i, raw));
                seen.len() < max
            })
            .unwrap();
        (seen.into_iter().map(|(i, _)| i).collect::<Vec<_>>(), next)
    };
    assert_eq!(scan(None, false, 10), (vec![], 0));
    store
        .commit(Batch {
            head: head(1),
            logs: (0..5u8)
                .map(|i| (a, vec![i]))
                .chain(std::iter::once((b, vec![9])))
                .collect(),
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(scan(None, false, 10), (vec![0, 1, 2, 3, 4], 5));
    assert_eq!(scan(None, true, 2), (vec![4, 3], 5));
    assert_eq!(scan(Some(2), false, 10), (vec![3, 4], 5));
    assert_eq!(scan(Some(2), true, 10), (vec![4, 3], 5));
    // Past the end: nothing, and where the next record goes.
    assert_eq!(scan(Some(4), false, 10), (vec![], 5));
    assert_eq!(scan(Some(u64::MAX), true, 10), (vec![], 5));
    // Another contract's records are not this one's.
    let mut other = Vec::new();
    let next = store
        .scan_logs(&b, None, false, |i, raw| {
            other.push((i, raw));
            true
        })
        .unwrap();
    assert_eq!((other, next), (vec![(0, vec![9])], 1));
}

#[test]
fn chain_root_is_deterministic_and_sensitive() {
    let prev = Hash([1; 32]);
    let digest = [2u8; 32];
    let mut writes = BTreeMap::new();
    writes.insert(bal(1), Some(vec![1, 2]));
    writes.insert(StateKey::InstantiationNonce, None);
    let root = chain_root(&prev, 7, &writes, &digest);
    assert_eq!(root, chain_root(&prev, 7, &writes.clone(), &digest));

    assert_ne!(root, chain_root(&Hash([9; 32]), 7, &writes, &digest));
    assert_ne!(root, chain_root(&prev, 8, &writes, &digest));
    assert_ne!(root, chain_root(&prev, 7, &writes, &[3u8; 32]));

    let mut other_key = writes.clone();
    let v = other_key.remove(&bal(1)).unwrap();
    other_key.insert(bal(2), v);
    assert_ne!(root, chain_root(&prev, 7, &other_key, &digest));

    let mut other_value = writes.clone();
    other_value.insert(bal(1), Some(vec![1, 3]));
    assert_ne!(root, chain_root(&prev, 7, &other_value, &digest));

    let mut empty_vs_none = writes.clone();
    empty_vs_none.insert(StateKey::InstantiationNonce, Some(Vec::new()));
    assert_ne!(root, chain_root(&prev, 7, &empty_vs_none, &digest));

    let mut fewer = writes.clone();
    fewer.remove(&StateKey::InstantiationNonce);
    assert_ne!(root, chain_root(&prev, 7, &fewer, &digest));
    assert_ne!(
        chain_root(&prev, 7, &BTreeMap::new(), &digest),
        chain_root(&prev, 7, &fewer, &digest)
    );

    // Moving bytes between key and value must not collide.
    let mut split_a = BTreeMap::new();
    split_a.insert(StateKey::Storage(Hash([0; 32]), vec![1]), Some(vec![2]));
    let mut split_b = BTreeMap::new();
    split_b.insert(StateKey::Storage(Hash([0; 32]), vec![1, 2]), Some(vec![]));
    assert_ne!(
        chain_root(&prev, 7, &split_a, &digest),
        chain_root(&prev, 7, &split_b, &digest)
    );
}

#[test]
fn chain_root_and_state_do_not_depend_on_batching() {
    let genesis = Hash::default();
    let mut w1 = BTreeMap::new();
    w1.insert(bal(1), Some(vec![1]));
    w1.insert(bal(2), Some(vec![2]));
    let mut w2 = BTreeMap::new();
    w2.insert(bal(2), None);
    w2.insert(bal(3), Some(vec![3]));
    let d1 = [0x11; 32];
    let d2 = [0x22; 32];
    let r1 = chain_root(&genesis, 1, &w1, &d1);
    let r2 = chain_root(&r1, 2, &w2, &d2);
    assert_ne!(r1, r2);

    // Two batches.
    let (_d1, separate) = fresh();
    separate
        .commit(Batch {
            head: Head {
                seq: 1,
                state_root: r1,
                timestamp: 10,
            },
            writes: w1.clone(),
            receipts: vec![(1, d1.to_vec())],
            ..Batch::default()
        })
        .unwrap();
    separate
        .commit(Batch {
            head: Head {
                seq: 2,
                state_root: r2,
                timestamp: 20,
            },
            writes: w2.clone(),
            receipts: vec![(2, d2.to_vec())],
            ..Batch::default()
        })
        .unwrap();

    // One batch holding both commands: the roots are chained per command, the writes merged.
    let mut merged = w1.clone();
    merged.extend(w2.clone());
    let (_d2, together) = fresh();
    together
        .commit(Batch {
            head: Head {
                seq: 2,
                state_root: chain_root(&chain_root(&genesis, 1, &w1, &d1), 2, &w2, &d2),
                timestamp: 20,
            },
            writes: merged,
            receipts: vec![(1, d1.to_vec()), (2, d2.to_vec())],
            ..Batch::default()
        })
        .unwrap();

    assert_eq!(separate.head().unwrap(), together.head().unwrap());
    let (s, t) = (separate.snapshot().unwrap(), together.snapshot().unwrap());
    for key in [bal(1), bal(2), bal(3)] {
        assert_eq!(s.get(&key).unwrap(), t.get(&key).unwrap());
    }
    assert_eq!(t.get(&bal(2)).unwrap(), None);
    for seq in [1, 2] {
        assert_eq!(s.receipt(seq).unwrap(), t.receipt(seq).unwrap());
    }
}

#[test]
fn snapshot_is_shared_across_threads_while_writer_commits() {
    let (_dir, store) = fresh();
    let mut batch = Batch {
        head: head(1),
        ..Batch::default()
    };
    for n in 0..16u8 {
        batch.writes.insert(bal(n), Some(vec![n]));
    }
    store.commit(batch).unwrap();
    let snap = store.snapshot().unwrap();

    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let snap = &snap;
                scope.spawn(move || {
                    for _ in 0..200 {
                        assert_eq!(snap.head(), head(1));
                        for n in 0..16u8 {
                            assert_eq!(snap.get(&bal(n)).unwrap(), Some(vec![n]));
                        }
                    }
                })
            })
            .collect();
        let writer = {
            let store = store.clone();
            scope.spawn(move || {
                for seq in 2..12u64 {
                    let mut batch = Batch {
                        head: head(seq),
                        ..Batch::default()
                    };
                    for n in 0..16u8 {
                        batch.writes.insert(bal(n), Some(vec![n, seq as u8]));
                    }
                    store.commit(batch).unwrap();
                }
            })
        };
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    });

    assert_eq!(store.head().unwrap(), head(11));
    assert_eq!(
        store.snapshot().unwrap().get(&bal(3)).unwrap(),
        Some(vec![3, 11])
    );
    assert_eq!(snap.get(&bal(3)).unwrap(), Some(vec![3]));
}

#[test]
fn a_sealed_store_keeps_nothing_readable_and_reads_back() {
    use phat_crypto::{Secret32, StorageCipher};
    let marker = b"MARKER-sealed-store-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let cipher = || Some(StorageCipher::new(&Secret32::from_bytes([5; 32])));
    let key = StateKey::Storage(Hash([3; 32]), marker.to_vec());
    let signer = AccountId(*b"MARKER-sealed-store-7f3a-signer!");
    let contract = AccountId([9; 32]);
    {
        let store = Store::open_with(&path, cipher()).unwrap();
        let mut batch = Batch {
            head: head(1),
            ..Default::default()
        };
        batch.writes.insert(key.clone(), Some(marker.to_vec()));
        batch.receipts.push((1, marker.to_vec()));
        batch.logs.push((contract, marker.to_vec()));
        batch.nonces.push((signer, 1, 5_000));
        store.commit(batch).unwrap();
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.get(&key).unwrap().as_deref(), Some(marker.as_slice()));
        assert_eq!(snap.nonce_expiry(&signer, 1).unwrap(), Some(5_000));
        assert_eq!(
            store.receipt(1).unwrap().as_deref(),
            Some(marker.as_slice())
        );
        assert_eq!(
            store.logs(&contract, None, 10).unwrap()[0].1,
            marker.to_vec()
        );
        // The keyed root differs from the plain one and does not depend on the random nonces.
        let mut writes = BTreeMap::new();
        writes.insert(key.clone(), Some(marker.to_vec()));
        let plain = chain_root(&Hash::default(), 1, &writes, &[0; 32]);
        let keyed = store.chain_root(&Hash::default(), 1, &writes, &[0; 32]);
        assert_ne!(plain, keyed);
        assert_eq!(
            keyed,
            store.chain_root(&Hash::default(), 1, &writes, &[0; 32])
        );
    }
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(marker.len()).any(|w| w == marker),
        "marker on disk"
    );
    assert!(!raw.windows(6).any(|w| w == b"MARKER"));
    // The wrong key reads a corrupt store, not garbage.
    let wrong = Store::open_with(
        &path,
        Some(StorageCipher::new(&Secret32::from_bytes([6; 32]))),
    )
    .unwrap();
    assert_eq!(wrong.snapshot().unwrap().get(&key).unwrap(), None);
    assert!(matches!(wrong.receipt(1), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_plain_store_is_readable_on_disk() {
    // The counterpart of the sealed test: without a cipher the same marker is on disk.
    let marker = b"MARKER-plain-store-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path).unwrap();
    let mut batch = Batch {
        head: head(1),
        ..Default::default()
    };
    batch.writes.insert(
        StateKey::Storage(Hash([3; 32]), vec![1]),
        Some(marker.to_vec()),
    );
    store.commit(batch).unwrap();
    drop(store);
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.windows(marker.len()).any(|w| w == marker));
}

#[test]
fn an_image_restores_state_nonces_and_head_in_another_store_with_the_same_key() {
    use phat_crypto::{Secret32, StorageCipher};
    let cipher = || Some(StorageCipher::new(&Secret32::from_bytes([5; 32])));
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open_with(&dir.path().join("a.redb"), cipher()).unwrap();
    let signer = AccountId([7; 32]);
    let cell = StateKey::Storage(Hash([3; 32]), b"cell".to_vec());
    let mut batch = Batch {
        head: head(5),
        ..Batch::default()
    };
    batch.writes.insert(bal(1), Some(vec![1; 16]));
    batch.writes.insert(cell.clone(), Some(b"value".to_vec()));
    batch.nonces.push((signer, 42, 9_000));
    batch.receipts.push((5, b"receipt".to_vec()));
    source.commit(batch).unwrap();
    let image = source.snapshot().unwrap().image().unwrap();
    assert_eq!(image.head(), head(5));
    assert_eq!(image.state.len(), 2);
    assert_eq!(image.nonces.len(), 1);

    // The target has a different history: it is replaced entirely.
    let target = Store::open_with(&dir.path().join("b.redb"), cipher()).unwrap();
    let mut other = Batch {
        head: head(9),
        ..Batch::default()
    };
    other.writes.insert(bal(2), Some(vec![2; 16]));
    other.receipts.push((9, b"old receipt".to_vec()));
    other.nonces.push((signer, 1, 9_000));
    target.commit(other).unwrap();
    let encoded = parity_scale_codec::Encode::encode(&image);
    let decoded: phat_store::StateImage =
        parity_scale_codec::Decode::decode(&mut encoded.as_slice()).unwrap();
    target.restore(&decoded).unwrap();
    assert_eq!(target.head().unwrap(), head(5));
    let snap = target.snapshot().unwrap();
    assert_eq!(snap.get(&bal(1)).unwrap(), Some(vec![1; 16]));
    assert_eq!(snap.get(&cell).unwrap(), Some(b"value".to_vec()));
    assert_eq!(snap.get(&bal(2)).unwrap(), None, "the old state is gone");
    assert_eq!(snap.nonce_expiry(&signer, 42).unwrap(), Some(9_000));
    assert_eq!(snap.nonce_expiry(&signer, 1).unwrap(), None);
    assert_eq!(
        target.receipt(9).unwrap(),
        None,
        "the old receipts are gone"
    );
    assert_eq!(snap.image().unwrap(), image);
    // It goes on from the image's head.
    let next = Batch {
        head: head(6),
        ..Batch::default()
    };
    target.commit(next).unwrap();
    assert_eq!(target.head().unwrap().seq, 6);
}
