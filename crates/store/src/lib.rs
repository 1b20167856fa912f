//! Durable worker state on redb.
//!
//! A worker's replicated contract state (key/value by [`StateKey`]) is stored together with its
//! [`Head`] — the last applied command's `(seq, state_root, timestamp)` — plus receipts, a
//! replay-protection nonce table and per-contract logs. Everything one command (or a group of
//! commands) changes is written by [`Store::commit`] in a single durable redb write transaction,
//! so a crash never loses a committed command nor applies one twice. Queries read consistent
//! [`Snapshot`]s (redb read transactions) while commands keep committing.
//!
//! Opened with a [`StorageCipher`] ([`Store::open_with`]), the store keeps nothing readable on
//! disk: state keys and signer accounts become keyed hashes, and state values, receipts and
//! log records are sealed (XChaCha20-Poly1305, bound to their hashed name). Head, sequence
//! numbers, contract ids of log records and nonce expiries stay in the clear (they are public
//! or carry no content).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use blake2::digest::{consts::U32, Digest};
use parity_scale_codec::Encode;
pub use phat_crypto::StorageCipher;
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};

pub use phat_primitives::{protocol::Seq, AccountId, Hash, StateKey, Timestamp};

/// How many log records are kept per contract (older ones are deleted at commit).
pub const LOG_RETENTION: u64 = 10_000;
/// Most old receipts one commit deletes (see [`Batch::prune_receipts_before`]).
pub const MAX_PRUNED_PER_COMMIT: usize = 4096;

/// Domain tag that starts every state-root preimage.
const ROOT_DOMAIN: &[u8] = b"phat/root/v1";

/// Key of the head record in the `meta` table.
const HEAD_KEY: &str = "head";

/// Encoded length of a [`Head`]: seq (8) + root (32) + timestamp (8).
const HEAD_LEN: usize = 48;

/// Contract state: `StateKey::to_bytes()` -> value.
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
/// Singletons such as the head.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Encoded receipts by command seq.
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
/// Remembered nonces: (signer, nonce) -> expires_at.
const NONCES: TableDefinition<([u8; 32], u64), u64> = TableDefinition::new("nonces");
/// Pruning index of [`NONCES`]: (expires_at, signer, nonce).
const NONCE_EXPIRY: TableDefinition<(u64, [u8; 32], u64), ()> =
    TableDefinition::new("nonce_expiry");
/// Log records: (contract, index) -> record.
const LOGS: TableDefinition<([u8; 32], u64), &[u8]> = TableDefinition::new("logs");
/// Next log index per contract.
const LOG_NEXT: TableDefinition<[u8; 32], u64> = TableDefinition::new("log_next");

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (any redb error; its message is kept).
    #[error("database error: {0}")]
    Db(String),
    /// A batch's head seq does not follow the current head.
    #[error("head seq must increase: current {current}, got {got}")]
    NotIncreasing {
        /// The seq of the stored head.
        current: Seq,
        /// The seq of the refused batch.
        got: Seq,
    },
    /// Stored data could not be decoded.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

/// Turns any redb error into [`StoreError::Db`], keeping its message.
fn db_err(e: impl Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// The last applied command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Head {
    /// Sequence number of the last applied command (0 before the first).
    pub seq: Seq,
    /// State root after that command.
    pub state_root: Hash,
    /// Ledger time of that command.
    pub timestamp: Timestamp,
}

impl Head {
    /// Fixed 48-byte encoding: seq LE, root, timestamp LE.
    fn to_bytes(self) -> [u8; HEAD_LEN] {
        let mut out = [0u8; HEAD_LEN];
        out[..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..40].copy_from_slice(&self.state_root.0);
        out[40..].copy_from_slice(&self.timestamp.to_le_bytes());
        out
    }

    /// Decodes [`Head::to_bytes`].
    fn from_bytes(bytes: &[u8]) -> Result<Head, StoreError> {
        let bytes: &[u8; HEAD_LEN] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("head has {} bytes", bytes.len())))?;
        let mut seq = [0u8; 8];
        let mut root = [0u8; 32];
        let mut ts = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        root.copy_from_slice(&bytes[8..40]);
        ts.copy_from_slice(&bytes[40..]);
        Ok(Head {
            seq: u64::from_le_bytes(seq),
            state_root: Hash(root),
            timestamp: u64::from_le_bytes(ts),
        })
    }
}

/// Everything one commit writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// The new head; its seq must be greater than the stored head's.
    pub head: Head,
    /// State changes; `None` deletes the key.
    pub writes: BTreeMap<StateKey, Option<Vec<u8>>>,
    /// Opaque encoded receipts by seq.
    pub receipts: Vec<(Seq, Vec<u8>)>,
    /// Forget receipts of seqs below this (at most [`MAX_PRUNED_PER_COMMIT`] per commit, the
    /// oldest first, so one commit's work stays bounded; later commits catch up).
    pub prune_receipts_before: Seq,
    /// Nonces to remember: (signer, nonce, expires_at).
    pub nonces: Vec<(AccountId, u64, Timestamp)>,
    /// Forget nonces whose `expires_at` is below this (applied after `nonces` are added).
    pub prune_nonces_before: Timestamp,
    /// Opaque log records appended per contract, in order.
    pub logs: Vec<(AccountId, Vec<u8>)>,
}

/// Durable worker state; cheap to clone and shareable between threads.
#[derive(Clone)]
pub struct Store {
    /// The shared redb database.
    db: Arc<Database>,
    /// Encrypts what is written, when set.
    cipher: Option<Arc<StorageCipher>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating the file and its tables if missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, None)
    }

    /// Opens (creating if needed) the store at `path`, encrypting everything it writes with
    /// `cipher` when one is given. A store must always be opened the same way.
    pub fn open_with(path: &Path, cipher: Option<StorageCipher>) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(STATE).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
            txn.open_table(RECEIPTS).map_err(db_err)?;
            txn.open_table(NONCES).map_err(db_err)?;
            txn.open_table(NONCE_EXPIRY).map_err(db_err)?;
            txn.open_table(LOGS).map_err(db_err)?;
            txn.open_table(LOG_NEXT).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Store {
            db: Arc::new(db),
            cipher: cipher.map(Arc::new),
        })
    }

    /// The stored head ([`Head::default`] when nothing was committed yet).
    pub fn head(&self) -> Result<Head, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        read_head(&meta)
    }

    /// A consistent read view of the current state.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        Snapshot::new(&txn, self.cipher.clone())
    }

    /// Writes `batch` in one durable transaction; refused unless its seq exceeds the head's.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::Immediate).map_err(db_err)?;
        let current = {
            let meta = txn.open_table(META).map_err(db_err)?;
            read_head(&meta)?
        };
        if batch.head.seq <= current.seq {
            txn.abort().map_err(db_err)?;
            return Err(StoreError::NotIncreasing {
                current: current.seq,
                got: batch.head.seq,
            });
        }
        // Any error below drops `txn` uncommitted, which aborts it.
        write_batch(&txn, &batch, self.cipher.as_deref())?;
        txn.commit().map_err(db_err)
    }

    /// Replaces everything in the store with `image` (the replicated state and nonces of some
    /// worker at `image.head`), in one durable transaction. Receipts and logs of the old
    /// history are dropped: they are this worker's record of commands it will no longer hold.
    /// The image must come from a store opened with the same cipher (the rows are kept as
    /// they were sealed).
    pub fn restore(&self, image: &StateImage) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::Immediate).map_err(db_err)?;
        txn.delete_table(STATE).map_err(db_err)?;
        txn.delete_table(RECEIPTS).map_err(db_err)?;
        txn.delete_table(NONCES).map_err(db_err)?;
        txn.delete_table(NONCE_EXPIRY).map_err(db_err)?;
        txn.delete_table(LOGS).map_err(db_err)?;
        txn.delete_table(LOG_NEXT).map_err(db_err)?;
        {
            txn.open_table(RECEIPTS).map_err(db_err)?;
            txn.open_table(LOGS).map_err(db_err)?;
            txn.open_table(LOG_NEXT).map_err(db_err)?;
            let mut state = txn.open_table(STATE).map_err(db_err)?;
            for (key, value) in &image.state {
                state
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(db_err)?;
            }
            let mut nonces = txn.open_table(NONCES).map_err(db_err)?;
            let mut expiry = txn.open_table(NONCE_EXPIRY).map_err(db_err)?;
            for (signer, nonce, expires_at) in &image.nonces {
                nonces
                    .insert((*signer, *nonce), *expires_at)
                    .map_err(db_err)?;
                expiry
                    .insert((*expires_at, *signer, *nonce), ())
                    .map_err(db_err)?;
            }
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let head = image.head().to_bytes();
            meta.insert(HEAD_KEY, head.as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// The receipt stored for `seq`, if any.
    pub fn receipt(&self, seq: Seq) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let receipts = txn.open_table(RECEIPTS).map_err(db_err)?;
        read_receipt(&receipts, seq, self.cipher.as_deref())
    }

    /// The next state root after `prev`: [`chain_root`], except that with a cipher each write
    /// enters as a keyed MAC, so a published root cannot be used to guess state values.
    pub fn chain_root(
        &self,
        prev: &Hash,
        seq: Seq,
        writes: &BTreeMap<StateKey, Option<Vec<u8>>>,
        receipt_digest: &[u8; 32],
    ) -> Hash {
        root(self.cipher.as_deref(), prev, seq, writes, receipt_digest)
    }

    /// Visits the log records of `contract` with an index above `after` (all when `None`),
    /// oldest first, or newest first when `newest_first`, until `visit` returns `false`;
    /// answers the index the contract's next record will get. One read transaction: the
    /// records visited and the index are of one moment.
    pub fn scan_logs(
        &self,
        contract: &AccountId,
        after: Option<u64>,
        newest_first: bool,
        mut visit: impl FnMut(u64, Vec<u8>) -> bool,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let next = txn
            .open_table(LOG_NEXT)
            .map_err(db_err)?
            .get(contract.0)
            .map_err(db_err)?
            .map(|g| g.value())
            .unwrap_or(0);
        let start = match after {
            None => 0,
            Some(a) if a >= next => return Ok(next),
            Some(a) => a + 1,
        };
        let logs = txn.open_table(LOGS).map_err(db_err)?;
        let range = logs
            .range((contract.0, start)..(contract.0, next))
            .map_err(db_err)?;
        let open = |entry: Result<LogRow<'_>, redb::StorageError>| -> Result<_, StoreError> {
            let (key, value) = entry.map_err(db_err)?;
            let (contract, index) = key.value();
            let record = match &self.cipher {
                Some(c) => c
                    .open(&log_name(&contract, index), value.value())
                    .map_err(|e| StoreError::Corrupt(format!("log record: {e}")))?,
                None => value.value().to_vec(),
            };
            Ok((index, record))
        };
        if newest_first {
            for entry in range.rev() {
                let (index, record) = open(entry)?;
                if !visit(index, record) {
                    break;
                }
            }
        } else {
            for entry in range {
                let (index, record) = open(entry)?;
                if !visit(index, record) {
                    break;
                }
            }
        }
        Ok(next)
    }

    /// Log records of `contract` with index > `after` (all when None), oldest first, at most `limit`.
    pub fn logs(
        &self,
        contract: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.scan_logs(contract, after, false, |index, record| {
            out.push((index, record));
            out.len() < limit
        })?;
        Ok(out)
    }
}

/// Reads the head from the `meta` table.
fn read_head(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Head, StoreError> {
    match meta.get(HEAD_KEY).map_err(db_err)? {
        Some(bytes) => Head::from_bytes(bytes.value()),
        None => Ok(Head::default()),
    }
}

/// Reads one receipt.
fn read_receipt(
    receipts: &impl ReadableTable<u64, &'static [u8]>,
    seq: Seq,
    cipher: Option<&StorageCipher>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(raw) = receipts.get(seq).map_err(db_err)? else {
        return Ok(None);
    };
    match cipher {
        Some(c) => c
            .open(&receipt_name(seq), raw.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("receipt {seq}: {e}"))),
        None => Ok(Some(raw.value().to_vec())),
    }
}

/// The name a state key is stored under: its bytes, or their keyed hash.
fn state_name(cipher: Option<&StorageCipher>, key: &StateKey) -> Vec<u8> {
    match cipher {
        Some(c) => c.hash_name(&key.to_bytes()).to_vec(),
        None => key.to_bytes(),
    }
}

/// The name a signer's nonces are stored under.
fn signer_name(cipher: Option<&StorageCipher>, signer: &AccountId) -> [u8; 32] {
    match cipher {
        Some(c) => c.hash_name(&[b"signer".as_slice(), &signer.0].concat()),
        None => signer.0,
    }
}

fn receipt_name(seq: Seq) -> Vec<u8> {
    [b"receipt/".as_slice(), &seq.to_le_bytes()].concat()
}

fn log_name(contract: &[u8; 32], index: u64) -> Vec<u8> {
    [b"log/".as_slice(), contract, &index.to_le_bytes()].concat()
}

/// Applies every part of `batch` inside `txn` (the seq check is done by the caller).
fn write_batch(
    txn: &WriteTransaction,
    batch: &Batch,
    cipher: Option<&StorageCipher>,
) -> Result<(), StoreError> {
    {
        let mut state = txn.open_table(STATE).map_err(db_err)?;
        for (key, value) in &batch.writes {
            let key = state_name(cipher, key);
            match value {
                Some(v) => {
                    let v = match cipher {
                        Some(c) => c.seal(&key, v),
                        None => v.clone(),
                    };
                    state.insert(key.as_slice(), v.as_slice()).map_err(db_err)?;
                }
                None => {
                    state.remove(key.as_slice()).map_err(db_err)?;
                }
            }
        }
    }
    {
        let mut receipts = txn.open_table(RECEIPTS).map_err(db_err)?;
        for (seq, bytes) in &batch.receipts {
            let bytes = match cipher {
                Some(c) => c.seal(&receipt_name(*seq), bytes),
                None => bytes.clone(),
            };
            receipts.insert(*seq, bytes.as_slice()).map_err(db_err)?;
        }
        for _ in 0..MAX_PRUNED_PER_COMMIT {
            let oldest = receipts.first().map_err(db_err)?.map(|(k, _)| k.value());
            match oldest {
                Some(seq) if seq < batch.prune_receipts_before => {
                    receipts.remove(seq).map_err(db_err)?;
                }
                _ => break,
            }
        }
    }
    write_nonces(txn, &batch.nonces, batch.prune_nonces_before, cipher)?;
    write_logs(txn, &batch.logs, cipher)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let head = batch.head.to_bytes();
        meta.insert(HEAD_KEY, head.as_slice()).map_err(db_err)?;
    }
    Ok(())
}

/// Remembers `nonces`, then forgets every nonce that expires before `prune_before`.
fn write_nonces(
    txn: &WriteTransaction,
    nonces: &[(AccountId, u64, Timestamp)],
    prune_before: Timestamp,
    cipher: Option<&StorageCipher>,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(NONCES).map_err(db_err)?;
    let mut expiry = txn.open_table(NONCE_EXPIRY).map_err(db_err)?;
    for (signer, nonce, expires_at) in nonces {
        let signer = AccountId(signer_name(cipher, signer));
        let old = table
            .insert((signer.0, *nonce), *expires_at)
            .map_err(db_err)?
            .map(|g| g.value());
        if let Some(old) = old {
            expiry.remove((old, signer.0, *nonce)).map_err(db_err)?;
        }
        expiry
            .insert((*expires_at, signer.0, *nonce), ())
            .map_err(db_err)?;
    }
    if prune_before == 0 {
        return Ok(());
    }
    let mut expired = Vec::new();
    {
        let removed = expiry
            .extract_from_if(..(prune_before, [0u8; 32], 0u64), |_, _| true)
            .map_err(db_err)?;
        for entry in removed {
            let (key, _) = entry.map_err(db_err)?;
            let (_, signer, nonce) = key.value();
            expired.push((signer, nonce));
        }
    }
    for key in expired {
        table.remove(key).map_err(db_err)?;
    }
    Ok(())
}

/// A row of the log table as a range yields it.
type LogRow<'a> = (
    redb::AccessGuard<'a, ([u8; 32], u64)>,
    redb::AccessGuard<'a, &'static [u8]>,
);

/// Appends `logs` per contract and deletes records that fall out of [`LOG_RETENTION`].
fn write_logs(
    txn: &WriteTransaction,
    logs: &[(AccountId, Vec<u8>)],
    cipher: Option<&StorageCipher>,
) -> Result<(), StoreError> {
    if logs.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(LOGS).map_err(db_err)?;
    let mut next_table = txn.open_table(LOG_NEXT).map_err(db_err)?;
    let mut next: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for (contract, record) in logs {
        let index = match next.get(&contract.0) {
            Some(i) => *i,
            None => next_table
                .get(contract.0)
                .map_err(db_err)?
                .map(|g| g.value())
                .unwrap_or(0),
        };
        let record = match cipher {
            Some(c) => c.seal(&log_name(&contract.0, index), record),
            None => record.clone(),
        };
        table
            .insert((contract.0, index), record.as_slice())
            .map_err(db_err)?;
        next.insert(contract.0, index + 1);
    }
    for (contract, next_index) in next {
        next_table.insert(contract, next_index).map_err(db_err)?;
        let keep_from = next_index.saturating_sub(LOG_RETENTION);
        if keep_from > 0 {
            table
                .retain_in((contract, 0u64)..(contract, keep_from), |_, _| false)
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// The replicated part of a store at one head, as stored (state rows and nonce rows, sealed
/// and with hashed names when the store encrypts): what a worker needs to go on applying from
/// `seq + 1`. Receipts and logs are not part of it.
#[derive(Clone, Debug, PartialEq, Eq, parity_scale_codec::Encode, parity_scale_codec::Decode)]
pub struct StateImage {
    /// The seq of the last command the state includes.
    pub seq: Seq,
    /// The state root after it.
    pub state_root: Hash,
    /// Its ledger time.
    pub timestamp: Timestamp,
    /// State rows: stored name and stored value.
    pub state: Vec<(Vec<u8>, Vec<u8>)>,
    /// Nonce rows: stored signer name, nonce, expiry.
    pub nonces: Vec<([u8; 32], u64, u64)>,
}

impl StateImage {
    /// The head the image was taken at.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            state_root: self.state_root,
            timestamp: self.timestamp,
        }
    }
}

/// A consistent read view; `Send + Sync` so worker threads can share it.
pub struct Snapshot {
    /// The head as of the snapshot.
    head: Head,
    /// Contract state.
    state: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// Remembered nonces.
    nonces: ReadOnlyTable<([u8; 32], u64), u64>,
    /// Receipts.
    receipts: ReadOnlyTable<u64, &'static [u8]>,
    /// The store's cipher, if it encrypts.
    cipher: Option<Arc<StorageCipher>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Opens the tables of a read transaction (they keep the transaction alive).
    fn new(
        txn: &ReadTransaction,
        cipher: Option<Arc<StorageCipher>>,
    ) -> Result<Snapshot, StoreError> {
        let meta = txn.open_table(META).map_err(db_err)?;
        Ok(Snapshot {
            head: read_head(&meta)?,
            state: txn.open_table(STATE).map_err(db_err)?,
            nonces: txn.open_table(NONCES).map_err(db_err)?,
            receipts: txn.open_table(RECEIPTS).map_err(db_err)?,
            cipher,
        })
    }

    /// The head as of the snapshot.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The replicated state of this view, to seed another worker with [`Store::restore`].
    pub fn image(&self) -> Result<StateImage, StoreError> {
        let mut state = Vec::new();
        for row in self.state.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            state.push((k.value().to_vec(), v.value().to_vec()));
        }
        let mut nonces = Vec::new();
        for row in self.nonces.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let (signer, nonce) = k.value();
            nonces.push((signer, nonce, v.value()));
        }
        Ok(StateImage {
            seq: self.head.seq,
            state_root: self.head.state_root,
            timestamp: self.head.timestamp,
            state,
            nonces,
        })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        let cipher = self.cipher.as_deref();
        let name = state_name(cipher, key);
        let Some(raw) = self.state.get(name.as_slice()).map_err(db_err)? else {
            return Ok(None);
        };
        match cipher {
            Some(c) => c
                .open(&name, raw.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("state value: {e}"))),
            None => Ok(Some(raw.value().to_vec())),
        }
    }

    /// When the remembered `(signer, nonce)` expires, if it is remembered.
    pub fn nonce_expiry(
        &self,
        signer: &AccountId,
        nonce: u64,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .nonces
            .get((signer_name(self.cipher.as_deref(), signer), nonce))
            .map_err(db_err)?
            .map(|v| v.value()))
    }

    /// The receipt stored for `seq`, if any.
    pub fn receipt(&self, seq: Seq) -> Result<Option<Vec<u8>>, StoreError> {
        read_receipt(&self.receipts, seq, self.cipher.as_deref())
    }
}

/// Compile-time proof that the handles can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Snapshot>();
};

/// The state-root hash chain.
///
/// blake2-256 over the domain tag `b"phat/root/v1"`, `prev`, `seq` (u64 LE), the number of
/// writes (u64 LE), then for each write in key order its SCALE key bytes and its value as a
/// SCALE `Option<Vec<u8>>` (length-prefixed), and finally `receipt_digest`.
pub fn chain_root(
    prev: &Hash,
    seq: Seq,
    writes: &BTreeMap<StateKey, Option<Vec<u8>>>,
    receipt_digest: &[u8; 32],
) -> Hash {
    root(None, prev, seq, writes, receipt_digest)
}

fn root(
    cipher: Option<&StorageCipher>,
    prev: &Hash,
    seq: Seq,
    writes: &BTreeMap<StateKey, Option<Vec<u8>>>,
    receipt_digest: &[u8; 32],
) -> Hash {
    let mut hasher = blake2::Blake2b::<U32>::new();
    hasher.update(ROOT_DOMAIN);
    hasher.update(prev.0);
    hasher.update(seq.to_le_bytes());
    hasher.update((writes.len() as u64).to_le_bytes());
    for (key, value) in writes {
        match cipher {
            Some(c) => hasher.update(c.mac(&[&key.to_bytes(), &value.encode()])),
            None => {
                hasher.update(key.to_bytes());
                value.using_encoded(|bytes| hasher.update(bytes));
            }
        }
    }
    hasher.update(receipt_digest);
    Hash(hasher.finalize().into())
}
