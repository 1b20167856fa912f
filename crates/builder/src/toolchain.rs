//! Finds (or installs) a toolchain that can compile contracts to `wasm32-unknown-unknown`.
//!
//! Two ways are supported, tried in this order:
//! 1. a rustup toolchain with the `wasm32-unknown-unknown` target installed;
//! 2. Debian's `rustc-web` + `rust-web-src` (a rustc with its library source), building `core`
//!    and `alloc` from source with `-Zbuild-std` and linking with rustup's `rust-lld`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

/// The wasm target every contract is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The Debian rustc that ships with its library source (package `rustc-web`).
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// A toolchain able to build contracts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's active toolchain, which has the wasm32 target installed.
    Rustup,
    /// Debian's rustc built with `-Zbuild-std`, linked by `linker` (rustup's `rust-lld`).
    BuildStd {
        /// The rustc to use (Debian's `rustc-web`).
        rustc: PathBuf,
        /// The `rust-lld` that links wasm.
        linker: PathBuf,
    },
}

impl Toolchain {
    /// A short human description, for progress output.
    pub fn describe(&self) -> String {
        match self {
            Toolchain::Rustup => format!("rustup target {WASM_TARGET}"),
            Toolchain::BuildStd { rustc, .. } => {
                format!(
                    "{} with -Zbuild-std (no rustup wasm32 target)",
                    rustc.display()
                )
            }
        }
    }
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether rustup's active toolchain has the wasm32 target.
pub fn rustup_has_wasm_target() -> bool {
    output_of(Command::new("rustup").args(["target", "list", "--installed"]))
        .map(|s| s.lines().any(|l| l.trim() == WASM_TARGET))
        .unwrap_or(false)
}

/// The sysroot of the default (rustup) rustc.
fn rustup_sysroot() -> Option<PathBuf> {
    output_of(Command::new("rustc").args(["--print", "sysroot"])).map(|s| PathBuf::from(s.trim()))
}

/// rustup's `rust-lld`, which links wasm for the build-std toolchain.
pub fn find_rust_lld() -> Option<PathBuf> {
    let host = output_of(Command::new("rustc").arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))?;
    let lld = rustup_sysroot()?
        .join("lib/rustlib")
        .join(host)
        .join("bin/rust-lld");
    lld.exists().then_some(lld)
}

/// Whether `rustc` has its library source installed (needed by `-Zbuild-std`).
pub fn has_library_source(rustc: &Path) -> bool {
    output_of(Command::new(rustc).args(["--print", "sysroot"]))
        .map(|s| {
            Path::new(s.trim())
                .join("lib/rustlib/src/rust/library/core/Cargo.toml")
                .exists()
        })
        .unwrap_or(false)
}

/// Installs Debian's `rustc-web`, `rust-web-src` and `binaryen` with apt-get (needs root).
pub fn install_debian_toolchain() -> Result<(), BuildError> {
    let is_root = output_of(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0");
    if !is_root {
        return Err(BuildError::ToolchainMissing(
            "no rustup wasm32 target and Debian's rustc-web is not installed; run as root: \
             apt-get install -y rustc-web rust-web-src binaryen"
                .into(),
        ));
    }
    let run = |args: &[&str]| -> Result<(), BuildError> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| BuildError::Io("running apt-get".into(), e))?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::ToolchainMissing(format!(
                "apt-get {} failed ({status})",
                args.join(" ")
            )))
        }
    };
    run(&["update", "-q"])?;
    run(&[
        "install",
        "-y",
        "-q",
        "rustc-web",
        "rust-web-src",
        "binaryen",
    ])
}

/// Picks the toolchain to build with, installing Debian's when `install` is set and nothing
/// else is available.
pub fn detect(install: bool) -> Result<Toolchain, BuildError> {
    if rustup_has_wasm_target() {
        return Ok(Toolchain::Rustup);
    }
    let rustc = PathBuf::from(DEBIAN_RUSTC);
    if !(rustc.exists() && has_library_source(&rustc)) {
        if !install {
            return Err(BuildError::ToolchainMissing(format!(
                "no rustup {WASM_TARGET} target and no rustc with library source at {DEBIAN_RUSTC}; \
                 install Debian's rustc-web and rust-web-src"
            )));
        }
        install_debian_toolchain()?;
        if !has_library_source(&rustc) {
            return Err(BuildError::ToolchainMissing(
                "rustc-web was installed but its library source was not found".into(),
            ));
        }
    }
    let linker = find_rust_lld().ok_or_else(|| {
        BuildError::ToolchainMissing(
            "rust-lld was not found in the rustup toolchain (component `rustc`)".into(),
        )
    })?;
    Ok(Toolchain::BuildStd { rustc, linker })
}

/// The version line of a rustc, for the metadata's `source.compiler`.
pub fn rustc_version(rustc: &Path) -> String {
    output_of(Command::new(rustc).arg("--version"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "rustc (unknown version)".into())
}

/// `wasm-opt` from binaryen, when installed.
pub fn find_wasm_opt() -> Option<PathBuf> {
    let out = Command::new("wasm-opt").arg("--version").output().ok()?;
    out.status.success().then(|| PathBuf::from("wasm-opt"))
}
