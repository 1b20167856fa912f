//! Worker entries: ledger entries a worker proposes on its own (an Ethereum log it saw),
//! authenticated so that only a worker of the cluster can make one.
//!
//! The key is derived from the cluster secret of a key epoch and the reporting worker's
//! identity key, and the MAC is keyed BLAKE2b-256. Whoever holds the cluster secret (the
//! workers, inside their enclaves) can check it; nobody outside can make one, and a worker
//! revoked at an epoch cannot make one for the epochs after it. It names *which* worker
//! reports only as far as workers are honest code: a worker holds every worker's key, as it
//! holds every secret of the cluster.

use blake2::digest::{consts::U32, Mac};

use crate::keys::{derive, ClusterSecret};

type EntryMac = blake2::Blake2bMac<U32>;

/// The MAC of `payload` by `worker` under `secret` (one key epoch's cluster secret).
pub fn entry_mac(secret: &ClusterSecret, worker: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let key = derive(secret.expose(), "phat/v1/worker-entry", &[worker]);
    let mut mac = mac_with(key.expose());
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is `worker`'s MAC of `payload` under `secret` (compared in constant time).
pub fn verify_entry_mac(
    secret: &ClusterSecret,
    worker: &[u8; 32],
    payload: &[u8],
    tag: &[u8; 32],
) -> bool {
    let key = derive(secret.expose(), "phat/v1/worker-entry", &[worker]);
    let mut mac = mac_with(key.expose());
    mac.update(payload);
    mac.verify_slice(tag).is_ok()
}

/// The MAC of a checkpoint record `record` published by `worker` under `secret` (one key
/// epoch's cluster secret): a vote on state roots, so a worker revoked at an epoch cannot
/// vote with the epochs after it. A key of its own ("phat/v1/checkpoint"): a checkpoint MAC
/// is never a worker entry's, whatever the bytes.
pub fn checkpoint_mac(secret: &ClusterSecret, worker: &[u8; 32], record: &[u8]) -> [u8; 32] {
    let key = derive(secret.expose(), "phat/v1/checkpoint", &[worker]);
    let mut mac = mac_with(key.expose());
    mac.update(record);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is `worker`'s [`checkpoint_mac`] of `record` under `secret` (in constant
/// time).
pub fn verify_checkpoint_mac(
    secret: &ClusterSecret,
    worker: &[u8; 32],
    record: &[u8],
    tag: &[u8; 32],
) -> bool {
    let key = derive(secret.expose(), "phat/v1/checkpoint", &[worker]);
    let mut mac = mac_with(key.expose());
    mac.update(record);
    mac.verify_slice(tag).is_ok()
}

/// `data` sealed under `secret` (one key epoch's cluster secret) for the workers of the
/// cluster: what an entry carries that the ledger must not read (a job's output). `name`
/// binds it to its place (the entry's other fields), so it does not open elsewhere.
pub fn seal_entry_data(secret: &ClusterSecret, name: &[u8], data: &[u8]) -> Vec<u8> {
    entry_cipher(secret).seal(name, data)
}

/// The data [`seal_entry_data`] sealed under `secret` for `name`.
pub fn open_entry_data(
    secret: &ClusterSecret,
    name: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, crate::CryptoError> {
    entry_cipher(secret).open(name, sealed)
}

fn entry_cipher(secret: &ClusterSecret) -> crate::StorageCipher {
    crate::StorageCipher::new(&derive(secret.expose(), "phat/v1/worker-entry-data", &[]))
}

fn mac_with(key: &[u8; 32]) -> EntryMac {
    // A 32-byte key is within BLAKE2b's 64-byte key limit: this never fails.
    match <EntryMac as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("BLAKE2b takes keys of up to 64 bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_mac_is_not_an_entry_mac() {
        let a = ClusterSecret::from_bytes([1; 32]);
        let tag = checkpoint_mac(&a, &[7; 32], b"record");
        assert!(verify_checkpoint_mac(&a, &[7; 32], b"record", &tag));
        assert!(!verify_checkpoint_mac(&a, &[8; 32], b"record", &tag));
        assert!(!verify_entry_mac(&a, &[7; 32], b"record", &tag));
        let b = ClusterSecret::from_bytes([2; 32]);
        assert!(!verify_checkpoint_mac(&b, &[7; 32], b"record", &tag));
    }

    #[test]
    fn only_the_same_secret_worker_and_payload_verify() {
        let a = ClusterSecret::from_bytes([1; 32]);
        let b = ClusterSecret::from_bytes([2; 32]);
        let tag = entry_mac(&a, &[7; 32], b"log");
        assert!(verify_entry_mac(&a, &[7; 32], b"log", &tag));
        assert!(
            !verify_entry_mac(&b, &[7; 32], b"log", &tag),
            "another epoch"
        );
        assert!(
            !verify_entry_mac(&a, &[8; 32], b"log", &tag),
            "another worker"
        );
        assert!(
            !verify_entry_mac(&a, &[7; 32], b"lag", &tag),
            "another payload"
        );
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_secret_and_name() {
        let a = ClusterSecret::from_bytes([1; 32]);
        let b = ClusterSecret::from_bytes([2; 32]);
        let sealed = seal_entry_data(&a, b"job 0 tick 5", b"42.17");
        assert!(
            !sealed.windows(5).any(|w| w == b"42.17"),
            "not in the clear"
        );
        assert_eq!(
            open_entry_data(&a, b"job 0 tick 5", &sealed).ok(),
            Some(b"42.17".to_vec())
        );
        assert!(open_entry_data(&b, b"job 0 tick 5", &sealed).is_err());
        assert!(open_entry_data(&a, b"job 0 tick 6", &sealed).is_err());
    }
}
