//! Builds ink! contracts into deployable artifacts: the optimized `.wasm`, the ink! metadata
//! JSON and a `.contract` bundle (metadata with the wasm inlined), like cargo-contract.
//!
//! The pipeline is:
//! 1. pick a toolchain ([`toolchain::detect`]): a rustup wasm32 target, else Debian's
//!    `rustc-web` with `-Zbuild-std` (installed with apt-get when allowed);
//! 2. `cargo rustc --crate-type cdylib` for `wasm32-unknown-unknown`, memory imported (with
//!    [`BuildOptions::debug_output`]: ink!'s `ink-debug` and `-Cpanic=abort`, so panics print
//!    their message);
//! 3. post-process ([`postprocess`]): only `call`/`deploy` exported, memory capped, then
//!    `wasm-opt -Oz` when binaryen is installed;
//! 4. metadata: a small generated host program links the contract (feature `std`) and prints
//!    what `__ink_generate_metadata` returns; the `source` and `contract` sections are added.
//!
//! Contracts share one target directory (their workspace's), so a second contract builds in
//! seconds once the first has compiled `core`, `alloc` and ink!.

pub mod postprocess;
pub mod toolchain;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use phat_primitives::CodeHash;
use serde_json::{json, Value};

pub use toolchain::Toolchain;

/// Errors from building a contract.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No toolchain able to build wasm is available.
    #[error("no wasm toolchain: {0}")]
    ToolchainMissing(String),
    /// An I/O operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A command (cargo, wasm-opt, the metadata generator) failed.
    #[error("{what} failed ({status}){hint}")]
    CommandFailed {
        /// What was being run.
        what: String,
        /// Its exit status.
        status: String,
        /// Extra guidance, possibly empty.
        hint: String,
    },
    /// The manifest is not a usable ink! contract.
    #[error("not an ink! contract: {0}")]
    NotAContract(String),
    /// The linked module is not a valid contract.
    #[error("invalid contract wasm: {0}")]
    InvalidWasm(String),
    /// JSON output of a tool could not be understood.
    #[error("unexpected output from {0}: {1}")]
    BadOutput(String, String),
}

/// What to build and how.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The contract's `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// Install Debian's toolchain with apt-get if no wasm toolchain is found.
    pub install_toolchain: bool,
    /// Run `wasm-opt` when it is installed.
    pub optimize: bool,
    /// Generate the metadata and the `.contract` bundle (slower: a host build of the contract).
    pub metadata: bool,
    /// Largest memory (64 KiB pages) the contract may declare.
    pub max_memory_pages: u64,
    /// Build so that panics print their message (ink!'s `ink-debug` feature, `-Cpanic=abort`).
    ///
    /// The contract's panic handler then writes `panicked at …` (and `debug_print!` output) through
    /// `seal_debug_message`, which the runtime reports with a `panicked` error. The wasm is
    /// larger (panic formatting is linked in); the default build aborts without a message.
    pub debug_output: bool,
}

impl BuildOptions {
    /// Defaults for the contract at `manifest_path`: optimize, generate metadata, install the
    /// toolchain if needed.
    pub fn new(manifest_path: impl Into<PathBuf>) -> Self {
        Self {
            manifest_path: manifest_path.into(),
            install_toolchain: true,
            optimize: true,
            metadata: true,
            max_memory_pages: postprocess::MAX_MEMORY_PAGES,
            debug_output: false,
        }
    }
}

/// A step of the build, reported to the progress callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 1-based step number.
    pub step: u8,
    /// Number of steps.
    pub of: u8,
    /// What is happening.
    pub message: String,
}

/// The files a build produced.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The contract's package name.
    pub name: String,
    /// The optimized wasm.
    pub wasm: PathBuf,
    /// The ink! metadata JSON, if generated.
    pub metadata: Option<PathBuf>,
    /// The `.contract` bundle, if generated.
    pub bundle: Option<PathBuf>,
    /// blake2-256 of the final wasm.
    pub code_hash: CodeHash,
    /// Size of the final wasm in bytes.
    pub wasm_size: usize,
    /// The toolchain used.
    pub toolchain: Toolchain,
    /// Whether the wasm was built with debug output ([`BuildOptions::debug_output`]).
    pub debug_output: bool,
}

struct PackageInfo {
    name: String,
    version: String,
    authors: Vec<String>,
    dir: PathBuf,
    target_dir: PathBuf,
    workspace_root: PathBuf,
    ink_version: String,
    /// The name the contract gives its `ink` dependency (`ink` unless renamed).
    ink_dep: String,
}

fn run(cmd: &mut Command, what: &str, hint: &str) -> Result<(), BuildError> {
    let status = cmd
        .status()
        .map_err(|e| BuildError::Io(format!("starting {what}"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::CommandFailed {
            what: what.into(),
            status: status.to_string(),
            hint: hint.into(),
        })
    }
}

fn package_info(manifest: &Path) -> Result<PackageInfo, BuildError> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BuildError::Io("running cargo metadata".into(), e))?;
    if !out.status.success() {
        return Err(BuildError::NotAContract(format!(
            "cargo metadata failed for {}",
            manifest.display()
        )));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| BuildError::BadOutput("cargo metadata".into(), e.to_string()))?;
    let manifest = fs::canonicalize(manifest)
        .map_err(|e| BuildError::Io(format!("reading {}", manifest.display()), e))?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let pkg = packages
        .iter()
        .find(|p| {
            // cargo may report the path through a symlink: compare resolved paths.
            p["manifest_path"]
                .as_str()
                .and_then(|m| fs::canonicalize(m).ok())
                .is_some_and(|m| m == manifest)
        })
        .ok_or_else(|| {
            BuildError::NotAContract(format!("{} has no [package]", manifest.display()))
        })?;
    // The normal (not dev or build) dependency on the `ink` package, possibly renamed.
    let ink_dep = pkg["dependencies"]
        .as_array()
        .and_then(|deps| {
            deps.iter()
                .find(|d| d["name"] == "ink" && d["kind"].is_null())
                .or_else(|| deps.iter().find(|d| d["name"] == "ink"))
        })
        .map(|d| d["rename"].as_str().unwrap_or("ink").to_owned())
        .ok_or_else(|| {
            BuildError::NotAContract(format!("{} does not depend on `ink`", manifest.display()))
        })?;
    let ink_version = packages
        .iter()
        .find(|p| p["name"] == "ink")
        .and_then(|p| p["version"].as_str())
        .unwrap_or("5.1.1")
        .to_owned();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Ok(PackageInfo {
        name: s(&pkg["name"]),
        version: s(&pkg["version"]),
        authors: pkg["authors"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default(),
        dir: manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
        target_dir: PathBuf::from(s(&meta["target_directory"])),
        workspace_root: PathBuf::from(s(&meta["workspace_root"])),
        ink_version,
        ink_dep,
    })
}

/// Where the artifacts of a contract named `name` go: `<target>/ink/<name>.{wasm,json,contract}`.
pub fn artifact_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("ink")
}

/// Where [`build`] puts the `.contract` bundle of the contract at `manifest_path` (it may not
/// exist yet): `<target>/ink/<name>.contract`, the target directory as cargo resolves it
/// (`CARGO_TARGET_DIR` included).
pub fn bundle_path(manifest_path: &Path) -> Result<PathBuf, BuildError> {
    let info = package_info(manifest_path)?;
    Ok(artifact_dir(&info.target_dir).join(format!("{}.contract", info.name)))
}

/// Builds the contract described by `opts`, reporting each step to `progress`.
pub fn build(
    opts: &BuildOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Artifacts, BuildError> {
    let steps = if opts.metadata { 5 } else { 4 };
    let mut step = 0u8;
    let mut report = |message: String| {
        step += 1;
        progress(Progress {
            step,
            of: steps,
            message,
        });
    };

    report("looking for a wasm toolchain".into());
    let toolchain = toolchain::detect(opts.install_toolchain)?;
    let info = package_info(&opts.manifest_path)?;

    report(format!(
        "compiling {} {} to wasm with {}{}",
        info.name,
        info.version,
        toolchain.describe(),
        if opts.debug_output {
            ", with debug output (feature ink-debug, -Cpanic=abort)"
        } else {
            ""
        }
    ));
    let raw = compile_wasm(&info, &toolchain, &opts.manifest_path, opts.debug_output)?;

    report("post-processing: exports, memory limits, wasm-opt".into());
    let processed = postprocess::postprocess(&raw, opts.max_memory_pages)?;
    let out_dir = artifact_dir(&info.target_dir);
    fs::create_dir_all(&out_dir)
        .map_err(|e| BuildError::Io(format!("creating {}", out_dir.display()), e))?;
    // Two builds of the same contract (two `phat build`s, parallel tests) write the same
    // artifact files: one at a time. The lock is released when the file is dropped.
    let lock_path = out_dir.join(format!(".{}.lock", info.name));
    let lock = fs::File::create(&lock_path)
        .map_err(|e| BuildError::Io(format!("creating {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| BuildError::Io(format!("locking {}", lock_path.display()), e))?;
    let wasm_path = out_dir.join(format!("{}.wasm", info.name));
    write(&wasm_path, &processed.wasm)?;
    if opts.optimize {
        if let Some(wasm_opt) = toolchain::find_wasm_opt() {
            run(
                Command::new(wasm_opt)
                    .arg(&wasm_path)
                    .args([
                        "-Oz",
                        "--mvp-features",
                        "--zero-filled-memory",
                        "--strip-debug",
                        "-o",
                    ])
                    .arg(&wasm_path),
                "wasm-opt",
                "",
            )?;
        }
    }
    let wasm = fs::read(&wasm_path)
        .map_err(|e| BuildError::Io(format!("reading {}", wasm_path.display()), e))?;
    let code_hash = CodeHash::of(&wasm);

    report(format!(
        "wasm ready: {} bytes, code hash {code_hash}",
        wasm.len()
    ));
    let (metadata, bundle) = if opts.metadata {
        report("generating ink! metadata (host build with feature `std`)".into());
        let compiler = match &toolchain {
            Toolchain::Rustup => toolchain::rustc_version(Path::new("rustc")),
            Toolchain::BuildStd { rustc, .. } => toolchain::rustc_version(rustc),
        };
        let project = generate_metadata(&info)?;
        let (meta, bundle) = assemble_metadata(
            &info,
            project,
            &wasm,
            &code_hash,
            &compiler,
            opts.debug_output,
        );
        let meta_path = out_dir.join(format!("{}.json", info.name));
        let bundle_path = out_dir.join(format!("{}.contract", info.name));
        write(&meta_path, &to_pretty(&meta))?;
        write(&bundle_path, &to_pretty(&bundle))?;
        (Some(meta_path), Some(bundle_path))
    } else {
        (None, None)
    };
    Ok(Artifacts {
        name: info.name,
        wasm: wasm_path,
        metadata,
        bundle,
        code_hash,
        wasm_size: wasm.len(),
        toolchain,
        debug_output: opts.debug_output,
    })
}

#[allow(clippy::expect_used, reason = "a serde_json::Value always serializes")]
fn to_pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("a serde_json::Value always serializes")
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    fs::write(path, bytes).map_err(|e| BuildError::Io(format!("writing {}", path.display()), e))
}

const LINK_FLAGS: &str =
    "-Clink-arg=-zstack-size=65536 -Clink-arg=--import-memory -Ctarget-cpu=mvp";

/// The RUSTFLAGS of the wasm build. Release builds with build-std abort on panic without
/// running the panic handler (`-Cpanic=immediate-abort`: no formatting code); debug-output
/// builds use `-Cpanic=abort`, so ink!'s panic handler runs and prints the message.
fn wasm_rustflags(toolchain: &Toolchain, debug_output: bool) -> String {
    match (toolchain, debug_output) {
        // The contract's release profile (`panic = "abort"`) decides, as it always has.
        (Toolchain::Rustup, false) => LINK_FLAGS.to_owned(),
        (Toolchain::Rustup, true) => format!("{LINK_FLAGS} -Cpanic=abort"),
        (Toolchain::BuildStd { .. }, false) => {
            format!("{LINK_FLAGS} -Zunstable-options -Cpanic=immediate-abort")
        }
        (Toolchain::BuildStd { .. }, true) => format!("{LINK_FLAGS} -Cpanic=abort"),
    }
}

/// The cargo target directory of the wasm build. Debug-output builds get their own, so that
/// switching between the two neither rebuilds `core`, `alloc` and ink! each time nor lets one
/// build read the other's freshly uplifted `.wasm`.
fn wasm_target_dir(target_dir: &Path, debug_output: bool) -> PathBuf {
    target_dir.join(if debug_output {
        "phat-wasm-debug"
    } else {
        "phat-wasm"
    })
}

fn compile_wasm(
    info: &PackageInfo,
    toolchain: &Toolchain,
    manifest: &Path,
    debug_output: bool,
) -> Result<Vec<u8>, BuildError> {
    let wasm_target_dir = wasm_target_dir(&info.target_dir, debug_output);
    let mut cmd = Command::new("cargo");
    cmd.args(["rustc", "--release", "--lib", "--crate-type", "cdylib"])
        .args(["--target", toolchain::WASM_TARGET, "--no-default-features"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(&wasm_target_dir)
        .env_remove("CARGO_TARGET_DIR");
    if debug_output {
        // ink! 4 and 5: `debug_print!` (and the panic handler's message) reach
        // `seal_debug_message` only with this feature.
        cmd.arg("--features")
            .arg(format!("{}/ink-debug", info.ink_dep));
    }
    cmd.env("RUSTFLAGS", wasm_rustflags(toolchain, debug_output));
    if let Toolchain::BuildStd { rustc, linker } = toolchain {
        cmd.args(["-Zbuild-std=core,alloc"])
            .env("RUSTC", rustc)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
    }
    run(
        &mut cmd,
        "cargo rustc (wasm)",
        "; the contract must build with `--no-default-features` (no `std`)",
    )?;
    let file = wasm_target_dir
        .join(toolchain::WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", info.name.replace('-', "_")));
    fs::read(&file).map_err(|e| BuildError::Io(format!("reading {}", file.display()), e))
}

/// Builds and runs a host program that links the contract and prints its `InkProject` JSON.
fn generate_metadata(info: &PackageInfo) -> Result<Value, BuildError> {
    let gen_dir = info
        .target_dir
        .join("phat-metadata")
        .join(format!("gen-{}", info.name));
    fs::create_dir_all(gen_dir.join("src"))
        .map_err(|e| BuildError::Io(format!("creating {}", gen_dir.display()), e))?;
    let manifest = format!(
        r#"[package]
name = "metadata-gen-{name}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
contract = {{ package = "{name}", path = {dir:?}, default-features = false, features = ["std"] }}
ink = {{ version = "={ink}", default-features = false, features = ["std"] }}
serde_json = "1"

[workspace]
"#,
        name = info.name,
        dir = info.dir.display().to_string(),
        ink = info.ink_version,
    );
    let main = r#"//! Generated by phat-builder: prints the contract's ink! metadata as JSON.
extern crate contract;

extern "Rust" {
    fn __ink_generate_metadata() -> ink::metadata::InkProject;
}

fn main() {
    // SAFETY: the symbol is defined by the `#[ink::contract]` macro in the linked contract crate
    // with exactly this signature.
    let project = unsafe { __ink_generate_metadata() };
    println!("{}", serde_json::to_string(&project).expect("metadata serializes"));
}
"#;
    write(&gen_dir.join("Cargo.toml"), manifest.as_bytes())?;
    write(&gen_dir.join("src/main.rs"), main.as_bytes())?;
    // Reuse the contract workspace's resolved versions.
    let lock = info.workspace_root.join("Cargo.lock");
    if lock.exists() && !gen_dir.join("Cargo.lock").exists() {
        fs::copy(&lock, gen_dir.join("Cargo.lock"))
            .map_err(|e| BuildError::Io("copying Cargo.lock".into(), e))?;
    }
    let out = Command::new("cargo")
        .args(["run", "--quiet", "--release", "--manifest-path"])
        .arg(gen_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(info.target_dir.join("phat-metadata").join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BuildError::Io("running the metadata generator".into(), e))?;
    if !out.status.success() {
        return Err(BuildError::CommandFailed {
            what: "metadata generator".into(),
            status: out.status.to_string(),
            hint: "; the contract must build for the host with feature `std`".into(),
        });
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| BuildError::BadOutput("metadata generator".into(), e.to_string()))
}

/// Adds the `source` and `contract` sections to an `InkProject`, giving (metadata, bundle).
fn assemble_metadata(
    info: &PackageInfo,
    project: Value,
    wasm: &[u8],
    code_hash: &CodeHash,
    compiler: &str,
    debug_output: bool,
) -> (Value, Value) {
    let mut build_info =
        json!({ "builder": format!("phat-builder {}", env!("CARGO_PKG_VERSION")) });
    if debug_output {
        // Only debug builds carry the field, so default builds stay byte-for-byte as before.
        build_info["debug_output"] = Value::Bool(true);
    }
    let mut meta = json!({
        "source": {
            "hash": code_hash.to_hex(),
            "language": format!("ink! {}", info.ink_version),
            "compiler": compiler,
            "build_info": build_info,
        },
        "contract": {
            "name": info.name,
            "version": info.version,
            "authors": info.authors,
        },
    });
    if let (Value::Object(m), Value::Object(p)) = (&mut meta, project) {
        m.extend(p);
    }
    let mut bundle = meta.clone();
    bundle["source"]["wasm"] = Value::String(format!("0x{}", hex::encode(wasm)));
    (meta, bundle)
}

/// Reads the wasm out of a `.contract` bundle.
pub fn wasm_from_bundle(bundle: &Value) -> Option<Vec<u8>> {
    let hex_str = bundle["source"]["wasm"].as_str()?;
    hex::decode(hex_str.strip_prefix("0x").unwrap_or(hex_str)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_std() -> Toolchain {
        Toolchain::BuildStd {
            rustc: toolchain::DEBIAN_RUSTC.into(),
            linker: "rust-lld".into(),
        }
    }

    #[test]
    fn default_builds_keep_their_flags_and_directory() {
        assert_eq!(wasm_rustflags(&Toolchain::Rustup, false), LINK_FLAGS);
        assert_eq!(
            wasm_rustflags(&build_std(), false),
            format!("{LINK_FLAGS} -Zunstable-options -Cpanic=immediate-abort")
        );
        assert_eq!(
            wasm_target_dir(Path::new("/t"), false),
            Path::new("/t/phat-wasm")
        );
        assert!(!BuildOptions::new("Cargo.toml").debug_output);
    }

    #[test]
    fn debug_output_runs_the_panic_handler_on_both_toolchains() {
        for tc in [Toolchain::Rustup, build_std()] {
            let flags = wasm_rustflags(&tc, true);
            assert!(flags.ends_with("-Cpanic=abort"), "{flags}");
            assert!(!flags.contains("immediate-abort"), "{flags}");
            assert!(flags.starts_with(LINK_FLAGS), "{flags}");
        }
        assert_ne!(
            wasm_target_dir(Path::new("/t"), true),
            wasm_target_dir(Path::new("/t"), false)
        );
    }

    #[test]
    fn only_debug_bundles_say_so() {
        let info = PackageInfo {
            name: "c".into(),
            version: "0.1.0".into(),
            authors: vec![],
            dir: PathBuf::from("/c"),
            target_dir: PathBuf::from("/t"),
            workspace_root: PathBuf::from("/"),
            ink_version: "5.1.1".into(),
            ink_dep: "ink".into(),
        };
        let hash = CodeHash::of(b"wasm");
        let (meta, _) = assemble_metadata(&info, json!({}), b"wasm", &hash, "rustc", false);
        assert!(meta["source"]["build_info"].get("debug_output").is_none());
        let (meta, bundle) = assemble_metadata(&info, json!({}), b"wasm", &hash, "rustc", true);
        assert_eq!(meta["source"]["build_info"]["debug_output"], true);
        assert_eq!(bundle["source"]["build_info"]["debug_output"], true);
    }
}
