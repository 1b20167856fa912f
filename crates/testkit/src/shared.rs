//! Where tests find Phala's conformance files: the project's read-only `shared` directory.
//! Every test looks in the same places, and a missing file fails the test with every path
//! looked at. No test skips when a file is missing.

use std::path::PathBuf;

/// The candidate `shared` directories, in order: only `$PHAT_SHARED_DIR` when it is set, else
/// `../shared` next to the clone, then `/work/shared`.
pub fn shared_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("PHAT_SHARED_DIR") {
        return vec![dir.into()];
    }
    vec![
        crate::repo_root().join("../shared"),
        PathBuf::from("/work/shared"),
    ]
}

/// The path of `rel` in the first candidate `shared` directory that has it; panics naming
/// every path looked at when none has it.
pub fn shared_file(rel: &str) -> PathBuf {
    let looked: Vec<PathBuf> = shared_dirs().into_iter().map(|d| d.join(rel)).collect();
    if let Some(found) = looked.iter().find(|p| p.exists()) {
        return found.clone();
    }
    let list: Vec<String> = looked
        .iter()
        .map(|p| format!("  {}", p.display()))
        .collect();
    panic!(
        "test fixture `{rel}` is missing; looked at:\n{}\n(set PHAT_SHARED_DIR to the shared directory)",
        list.join("\n")
    )
}

/// The path of Phala's conformance file `rel` (under `conformance/phala-pink`); panics naming
/// every path looked at when it is missing.
pub fn phala_path(rel: &str) -> PathBuf {
    shared_file(&format!("conformance/phala-pink/{rel}"))
}
