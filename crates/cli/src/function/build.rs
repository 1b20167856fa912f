//! `phat fn build`: one script from a TypeScript or JavaScript entry, with the wrapper
//! `@phala/fn build` puts around `main` (`scriptOutput = main.apply(null, scriptArgs)`), the
//! project's dependencies bundled in by esbuild.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::commands::Ctx;
use crate::Output;

/// The largest script `phat fn build` writes (Phala's `MAX_BUILD_SIZE`, 400 KiB).
pub const MAX_SCRIPT: usize = 400 << 10;

/// `phat fn build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The function's entry: a module whose default export is `main(request, secrets)`.
    entry: PathBuf,
    /// Where the script goes.
    #[arg(short = 'o', long = "out", default_value = "dist/index.js")]
    out: PathBuf,
    /// The esbuild binary (default: the project's `node_modules/.bin/esbuild`, else `esbuild`
    /// on the `PATH`).
    #[arg(long, env = "PHAT_ESBUILD")]
    esbuild: Option<PathBuf>,
    /// Keep the script readable (no minification).
    #[arg(long)]
    no_minify: bool,
}

/// The esbuild to use: given, the nearest `node_modules/.bin/esbuild` above `from`, or the
/// `PATH`'s.
fn find_esbuild(given: Option<PathBuf>, from: &Path) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let mut dir = Some(from);
    while let Some(d) = dir {
        let candidate = d.join("node_modules/.bin/esbuild");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent();
    }
    PathBuf::from("esbuild")
}

/// Runs `phat fn build`.
pub fn run(args: BuildArgs, ctx: &Ctx) -> Result<()> {
    let entry = std::fs::canonicalize(&args.entry)
        .with_context(|| format!("the function's entry {}", args.entry.display()))?;
    let project = entry.parent().unwrap_or(Path::new("."));
    let esbuild = find_esbuild(args.esbuild, project);
    // The wrapper, next to the entry so that esbuild resolves the project's packages.
    let wrapper = project.join(".phat-fn-entry.mjs");
    let entry_str = entry
        .to_str()
        .context("the entry's path is not UTF-8")?
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    std::fs::write(
        &wrapper,
        format!(
            "import main from \"{entry_str}\";\n\
             globalThis.scriptOutput = main.apply(null, globalThis.scriptArgs);\n"
        ),
    )
    .with_context(|| format!("writing {}", wrapper.display()))?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Command::new(&esbuild);
    cmd.arg(&wrapper)
        .args([
            "--bundle",
            "--format=iife",
            "--platform=neutral",
            "--main-fields=module,main",
            "--target=es2020",
            "--log-level=warning",
            "--legal-comments=none",
        ])
        .arg(format!("--outfile={}", args.out.display()));
    if !args.no_minify {
        cmd.arg("--minify");
    }
    let status = cmd.status();
    let _ = std::fs::remove_file(&wrapper);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!("esbuild failed ({s}); its messages are above"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "esbuild was not found ({}): install it in the project (`npm install --save-dev \
             esbuild`) or name it with --esbuild",
            esbuild.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("running {}", esbuild.display())),
    }
    let size = std::fs::metadata(&args.out)
        .with_context(|| format!("reading {}", args.out.display()))?
        .len() as usize;
    if size > MAX_SCRIPT {
        let _ = std::fs::remove_file(&args.out);
        bail!(
            "the script is {size} bytes, over the {MAX_SCRIPT}-byte limit of a function: \
             bundle fewer dependencies"
        );
    }
    match ctx.output {
        Output::Json => println!("{}", serde_json::json!({"script": args.out, "bytes": size})),
        Output::Human => println!("built {} ({size} bytes)", args.out.display()),
    }
    Ok(())
}
