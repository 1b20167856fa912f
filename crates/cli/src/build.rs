//! `phat build`: compile contracts with `phat-builder`, showing progress.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use phat_builder::{build, BuildOptions};

/// Arguments of `phat build`.
#[derive(Args)]
pub struct BuildArgs {
    /// Contract manifests (`Cargo.toml`) or directories holding one; defaults to `.`.
    paths: Vec<PathBuf>,
    /// Skip the metadata and `.contract` bundle (only the wasm).
    #[arg(long)]
    no_metadata: bool,
    /// Skip `wasm-opt` even when it is installed.
    #[arg(long)]
    no_optimize: bool,
    /// Never install a toolchain with apt-get; fail instead.
    #[arg(long)]
    no_install: bool,
    /// Build so that panics report their message (ink! `ink-debug`, `-Cpanic=abort`): larger
    /// wasm, for development. Writes the same artifact files as a default build.
    #[arg(long)]
    debug_output: bool,
}

/// Runs `phat build`.
pub fn run(args: BuildArgs) -> Result<()> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    for path in paths {
        let manifest = if path.is_dir() {
            path.join("Cargo.toml")
        } else {
            path
        };
        let mut opts = BuildOptions::new(&manifest);
        opts.metadata = !args.no_metadata;
        opts.optimize = !args.no_optimize;
        opts.install_toolchain = !args.no_install;
        opts.debug_output = args.debug_output;
        let started = Instant::now();
        let artifacts = build(&opts, |p| {
            eprintln!("[{}/{}] {}", p.step, p.of, p.message);
        })
        .with_context(|| format!("building {}", manifest.display()))?;
        eprintln!(
            "built {}{} in {:.1}s: {} ({} bytes)",
            artifacts.name,
            if artifacts.debug_output {
                " with debug output"
            } else {
                ""
            },
            started.elapsed().as_secs_f64(),
            artifacts.wasm.display(),
            artifacts.wasm_size
        );
        if artifacts.debug_output {
            eprintln!(
                "note:   these artifacts print panic messages and debug_print! output (not for \
                 production); they replace any earlier build of {} until the next `phat build` \
                 without --debug-output",
                artifacts.name
            );
        }
        for extra in [&artifacts.metadata, &artifacts.bundle]
            .into_iter()
            .flatten()
        {
            eprintln!("  {}", extra.display());
        }
        if let Some(bundle) = &artifacts.bundle {
            eprintln!("next:   phat deploy {}", bundle.display());
        }
    }
    Ok(())
}
