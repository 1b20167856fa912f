//! The one way phat writes a secret to disk (keys, sealed secrets, ledger tokens, passwords).
//!
//! Every write goes to a fresh file in the target's directory, created exclusively with mode
//! 0600 (never readable by others, not even for a moment, whatever the umask), written and
//! `fsync`ed, then moved into place in one step and the directory synced: a crash leaves the
//! old file or the new one, never a torn or world-readable one.
//!
//! - [`create_new`]: the first writer wins; a file already there is left untouched (two
//!   processes racing to create a token agree on one).
//! - [`replace`]: the new content replaces any old one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The only mode a secret file has.
pub const MODE: u32 = 0o600;

/// What [`create_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The file was created with the given bytes.
    New,
    /// A file was there already; it was left as it was.
    Existing,
}

/// Creates `path` holding `bytes`, unless a file is there already (then nothing changes).
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<Created> {
    let tmp = write_aside(path, bytes)?;
    // A hard link fails if the name exists: exactly one racing writer gets it.
    let linked = std::fs::hard_link(&tmp, path);
    let removed = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            removed?;
            sync_dir(path)?;
            Ok(Created::New)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Created::Existing),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path`, replacing what was there, in one step.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_aside(path, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Writes `bytes` to a new, exclusive, 0600 file next to `path` and syncs it; returns its path.
fn write_aside(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a secret file needs a name"))?;
    let mut aside = name.to_owned();
    aside.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(aside);
    // A leftover of a crashed writer with the same pid and counter would block create_new.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&tmp)?;
        // The umask can only clear bits of MODE; make it exactly MODE.
        file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Syncs the directory holding `path`, so the new name survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_new_secret_is_owner_only_and_the_first_writer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert_eq!(create_new(&path, b"first").unwrap(), Created::New);
        assert_eq!(mode(&path), MODE);
        assert_eq!(create_new(&path, b"second").unwrap(), Created::Existing);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn replace_swaps_the_content_and_fixes_a_loose_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), MODE);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn racing_creators_agree_on_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race");
        let winners: Vec<Created> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || create_new(path, &[i; 16]).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|c| **c == Created::New).count(), 1);
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len(), 16);
        assert!(content.iter().all(|b| *b == content[0]));
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("key");
        assert!(replace(&path, b"x").is_err());
        assert!(create_new(&path, b"x").is_err());
        assert!(!path.exists());
        assert!(create_new(Path::new("/"), b"x").is_err());
    }
}
