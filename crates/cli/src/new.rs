//! `phat new`: a ready ink! 5 contract project (a counter with an event and unit tests).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

/// Arguments of `phat new`.
#[derive(Args)]
pub struct NewArgs {
    /// Project name (a Rust identifier: letters, digits, `_`, `-`).
    pub name: String,
    /// Directory to create it in (default: `./NAME`).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
ink = { version = "=5.1.1", default-features = false }

[lib]
path = "lib.rs"

[features]
default = ["std"]
std = ["ink/std"]
ink-as-dependency = []

[profile.release]
panic = "abort"
lto = true
opt-level = "z"
codegen-units = 1
overflow-checks = false

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#;

const LIB_RS: &str = r#"//! {name}: a phat contract. Build it with `phat build`, deploy it with `phat deploy`.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod {module} {
    /// The contract's state.
    #[ink(storage)]
    pub struct {type_name} {
        value: u64,
        owner: AccountId,
    }

    /// Emitted when the counter changes.
    #[ink(event)]
    pub struct Incremented {
        #[ink(topic)]
        by: AccountId,
        value: u64,
    }

    /// Errors of the contract.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Only the owner may reset.
        NotOwner,
    }

    impl {type_name} {
        /// A counter starting at `init`.
        #[ink(constructor)]
        pub fn new(init: u64) -> Self {
            Self {
                value: init,
                owner: Self::env().caller(),
            }
        }

        /// A counter starting at 0.
        #[ink(constructor, default)]
        pub fn default() -> Self {
            Self::new(0)
        }

        /// Adds `by` (a command: every worker applies it).
        #[ink(message)]
        pub fn increment(&mut self, by: u64) -> u64 {
            self.value = self.value.saturating_add(by);
            self.env().emit_event(Incremented {
                by: self.env().caller(),
                value: self.value,
            });
            self.value
        }

        /// Sets the counter back to 0 (owner only).
        #[ink(message)]
        pub fn reset(&mut self) -> Result<(), Error> {
            if self.env().caller() != self.owner {
                return Err(Error::NotOwner);
            }
            self.value = 0;
            Ok(())
        }

        /// The current value (a query: any worker answers).
        #[ink(message)]
        pub fn get(&self) -> u64 {
            self.value
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[ink::test]
        fn increments_and_resets() {
            let mut c = {type_name}::new(1);
            assert_eq!(c.increment(2), 3);
            assert_eq!(c.get(), 3);
            assert_eq!(c.reset(), Ok(()));
            assert_eq!(c.get(), 0);
        }
    }
}
"#;

/// Runs `phat new`.
pub fn run(args: NewArgs) -> Result<()> {
    let name = args.name.as_str();
    let valid = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        bail!("`{name}` is not a valid contract name (letters, digits, `_`, `-`; starting with a letter)");
    }
    let dir = args.path.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let module = name.replace('-', "_");
    let type_name: String = module
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fill = |t: &str| {
        t.replace("{name}", name)
            .replace("{module}", &module)
            .replace("{type_name}", &type_name)
    };
    std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(dir.join("lib.rs"), fill(LIB_RS))?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    println!("created {} ({})", dir.display(), type_name);
    println!("next:   phat build {}", dir.display());
    Ok(())
}
