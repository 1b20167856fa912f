//! Worker entries: what a ledger entry a worker proposes on its own carries that the ledger
//! must not read (a job's output), sealed under one key epoch's cluster secret. Who made an
//! entry is proven by its signature instead ([`crate::vote`]).

use crate::keys::{derive, ClusterSecret};

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

#[cfg(test)]
mod tests {
    use super::*;

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
