//! Secrets at rest: files sealed to this machine, the dev attestation root, and what a
//! worker's data directory opens of the ledger (`open_with_data_dir`).

use super::*;

/// The sealing key of this machine (see the module docs for what it protects).
pub(super) fn sealing_key() -> SealingKey {
    let material = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| b"phat: no machine id".to_vec());
    SealingKey::derive(&material, SEAL_IDENTITY)
}

pub(super) fn read_sealed(
    dir: &Path,
    name: &str,
    key: &SealingKey,
) -> Result<Option<Vec<u8>>, WorkerError> {
    let path = dir.join(format!("{name}.sealed"));
    match std::fs::read(&path) {
        Ok(raw) => key
            .unseal(name, &raw)
            .map(|b| Some(b.to_vec()))
            .map_err(|e| WorkerError::Enclave(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(data_dir_err(dir, e)),
    }
}

pub(super) fn write_sealed(
    dir: &Path,
    name: &str,
    key: &SealingKey,
    secret: &[u8],
) -> Result<(), WorkerError> {
    crate::write_private(dir, &format!("{name}.sealed"), &key.seal(name, secret))
}

/// The 32-byte secret sealed in `dir` as `name`, or a fresh random one, sealed there first.
pub(super) fn sealed_or_new(dir: &Path, name: &str) -> Result<Secret32, WorkerError> {
    let sealing = sealing_key();
    match read_sealed(dir, name, &sealing)? {
        Some(bytes) => to_secret(&bytes),
        None => {
            let secret = Secret32::random();
            write_sealed(dir, name, &sealing, secret.expose())?;
            Ok(secret)
        }
    }
}

pub(super) fn to_secret(bytes: &[u8]) -> Result<Secret32, WorkerError> {
    <[u8; 32]>::try_from(bytes)
        .map(Secret32::from_bytes)
        .map_err(|_| WorkerError::Enclave(format!("a sealed secret has {} bytes", bytes.len())))
}

/// Reads a dev attestation root secret (32 bytes, hex or raw).
pub(super) fn read_root(path: &Path) -> Result<Secret32, WorkerError> {
    let raw = std::fs::read(path).map_err(|e| WorkerError::DataDir {
        path: PathBuf::from(path),
        message: format!("dev attestation root: {e}"),
    })?;
    let bytes = match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(b) => b,
        Err(_) => {
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim();
            hex::decode(text.strip_prefix("0x").unwrap_or(text))
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| WorkerError::DataDir {
                    path: PathBuf::from(path),
                    message: "a dev attestation root is 32 bytes (raw or hex)".into(),
                })?
        }
    };
    Ok(Secret32::from_bytes(bytes))
}

/// Reads the dev root at `path`, creating a random one first if there is none.
pub fn read_or_create_root(path: &Path) -> Result<Secret32, WorkerError> {
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| data_dir_err(dir, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dev-root.key");
        // Another process creating it meanwhile wins: both then read the same root.
        phat_secret_file::create_new(&dir.join(name), Secret32::random().expose())
            .map_err(|e| data_dir_err(dir, e))?;
    }
    read_root(path)
}

/// The public key of the dev root secret at `path` (creating it if absent).
pub fn dev_root_public(path: &Path) -> Result<[u8; 32], WorkerError> {
    Ok(DevAttestation::new(&read_or_create_root(path)?).root_public())
}

/// What someone holding this machine and a worker's data directory can read of the ledger:
/// opens a ledger `payload` (a sealed command) with the cluster secrets sealed in `dir`, of
/// every epoch that worker was given. Revocation is shown with it: a revoked worker's
/// directory opens the commands of the epochs it held and none after.
pub fn open_with_data_dir(
    dir: &Path,
    payload: &[u8],
) -> Result<phat_primitives::protocol::SignedRequest, WorkerError> {
    use parity_scale_codec::DecodeAll;
    use phat_primitives::protocol::{LedgerCommand, SignedRequest};
    let sealing = sealing_key();
    let identity = read_sealed(dir, "cluster", &sealing)?.ok_or_else(|| {
        WorkerError::Enclave(format!("{} holds no cluster secret", dir.display()))
    })?;
    let mut secrets = vec![identity.get(..32).unwrap_or_default().to_vec()];
    secrets.extend(
        read_sealed(dir, "epochs", &sealing)?
            .unwrap_or_default()
            .chunks(32)
            .map(<[u8]>::to_vec),
    );
    let secret_of = |epoch: u32| -> Result<ClusterSecret, WorkerError> {
        let secret = secrets.get(epoch as usize).ok_or_else(|| {
            WorkerError::Enclave(format!(
                "{} holds no secret of key epoch {epoch} (it holds epochs 0 to {})",
                dir.display(),
                secrets.len() - 1
            ))
        })?;
        Ok(ClusterSecret::from_bytes(*to_secret(secret)?.expose()))
    };
    let (epoch, sealed) = match LedgerCommand::decode_all(&mut &payload[..]) {
        Ok(LedgerCommand::Sealed(s)) => (0, s),
        Ok(LedgerCommand::SealedAt { epoch, sealed }) => (epoch, sealed),
        Ok(LedgerCommand::Forwarded { epoch, data }) => {
            return crate::apply::forward::open(&secret_of(epoch)?, epoch, &data.0)
                .map(|(req, _)| req)
                .map_err(|e| WorkerError::Enclave(e.to_string()));
        }
        Ok(LedgerCommand::Plain(req)) => return Ok(req),
        Ok(LedgerCommand::Trigger(_)) => {
            return Err(WorkerError::Enclave(
                "a schedule's trigger, not a command".into(),
            ))
        }
        Ok(LedgerCommand::Join(_)) => {
            return Err(WorkerError::Enclave(
                "a worker's request to join, not a command".into(),
            ))
        }
        Ok(LedgerCommand::DealEpoch(_)) => {
            return Err(WorkerError::Enclave(
                "a member's deal of a key epoch, not a command".into(),
            ))
        }
        Ok(
            LedgerCommand::EthLog(_) | LedgerCommand::JobResult(_) | LedgerCommand::QueryLogs(_),
        ) => {
            return Err(WorkerError::Enclave(
                "a worker's own entry (a log report, a job's result, query records), not a \
                 command"
                    .into(),
            ))
        }
        Err(e) => return Err(WorkerError::Enclave(format!("not a ledger command: {e}"))),
    };
    let (plain, _) = secret_of(epoch)?
        .envelope_secret()
        .open(Purpose::Command, &sealed)
        .map_err(|e| WorkerError::Enclave(format!("the command does not open: {e}")))?;
    SignedRequest::decode_all(&mut &plain[..])
        .map_err(|e| WorkerError::Enclave(format!("the command does not decode: {e}")))
}
