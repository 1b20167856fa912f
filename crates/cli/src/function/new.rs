//! `phat fn new`: a TypeScript Phat Function project (a price function, as Phala's starter kit
//! has) with the Ethereum consumer contract it answers.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::commands::Ctx;
use crate::Output;

/// `phat fn new`.
#[derive(Args)]
pub struct NewArgs {
    /// Project name (letters, digits, `_`, `-`).
    name: String,
    /// Directory to create it in (default: `./NAME`).
    #[arg(long)]
    path: Option<PathBuf>,
}

/// The project's files: path, contents (`{name}` replaced).
const FILES: [(&str, &str); 5] = [
    (
        "src/index.ts",
        include_str!("../../templates/function/src/index.ts"),
    ),
    (
        "package.json",
        include_str!("../../templates/function/package.json"),
    ),
    (
        "tsconfig.json",
        include_str!("../../templates/function/tsconfig.json"),
    ),
    (
        "README.md",
        include_str!("../../templates/function/README.md"),
    ),
    (
        "contracts/FunctionConsumer.sol",
        include_str!("../../../../tools/eth/FunctionConsumer.sol"),
    ),
];

/// Runs `phat fn new`.
pub fn run(args: NewArgs, ctx: &Ctx) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if args.name.is_empty() || !args.name.chars().all(ok) {
        bail!(
            "`{}` is not a project name (letters, digits, `_`, `-`)",
            args.name
        );
    }
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not empty", dir.display());
    }
    for (path, text) in FILES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, text.replace("{name}", &args.name))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    match ctx.output {
        Output::Json => println!("{}", serde_json::json!({"path": dir})),
        Output::Human => {
            println!("created {} (a Phat Function)", dir.display());
            println!(
                "next:   cd {} && npm install && phat fn build src/index.ts",
                dir.display()
            );
        }
    }
    Ok(())
}
