//! What a new user copies must work as printed: the README's "Using a cluster" steps, run
//! verbatim by a shell against a `phat dev` cluster, and the hints `phat dev --demo` ends with.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use phat_testkit::*;

/// //Alice in SS58, as decoded events show an `AccountId`.
const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

/// The commands of the first fenced block after the `## Using a cluster` heading: comments
/// (from ` #` on) and comment-only lines dropped.
fn readme_steps() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let section = readme
        .split_once("\n## Using a cluster\n")
        .expect("a `## Using a cluster` section")
        .1;
    let block = section
        .split_once("```\n")
        .expect("a fenced block in `Using a cluster`")
        .1
        .split_once("```")
        .expect("the block's end")
        .0;
    block
        .lines()
        .map(|l| match l.find(" #") {
            Some(i) => &l[..i],
            None => l,
        })
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The directory holding the `phat` binary under test, to put first on `PATH`.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_phat"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where contract builds go: the examples' target directory, so ink! and core are reused.
fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/target").to_string()
    })
}

/// `bash -c line` in `cwd`, with the `phat` under test first on `PATH`.
fn shell(line: &str, cwd: &Path, endpoint: Option<&str>) -> Command {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", line])
        .current_dir(cwd)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("PHAT_ENDPOINT")
        .stdin(Stdio::null());
    if let Some(ep) = endpoint {
        cmd.env("PHAT_ENDPOINT", ep);
    }
    cmd
}

/// Runs `line` to completion; panics with its output unless it exits 0.
fn run_step(line: &str, cwd: &Path, endpoint: Option<&str>) -> String {
    let out: Output = shell(line, cwd, endpoint).output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{line}` failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Starts a long-running `line`, returns its first line of output, then kills it.
fn first_line(line: &str, cwd: &Path, endpoint: Option<&str>) -> String {
    let mut child = shell(&format!("exec {line}"), cwd, endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let first = first.unwrap_or_else(|_| panic!("`{line}` printed nothing in 60 s"));
    assert!(
        !first.trim().is_empty(),
        "`{line}` ended without output ({exited:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    first
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_steps_work_as_printed() {
    let steps = readme_steps();
    assert_eq!(
        steps.first().map(String::as_str),
        Some("phat dev"),
        "{steps:?}"
    );
    assert!(steps.len() >= 8, "{steps:?}");
    // `phat dev` is this cluster, on free ports: the other steps find it through PHAT_ENDPOINT.
    let dev = Dev::start(2).await;
    let ep = dev.endpoint.clone();
    let cwd = tempfile::tempdir().unwrap();
    let mut contract: Option<String> = None;
    let mut ran = Vec::new();
    for step in &steps[1..] {
        assert!(!step.contains('$'), "an unset variable in `{step}`");
        let line = if step.contains("0x<contract>") {
            let id = contract
                .as_deref()
                .unwrap_or_else(|| panic!("`{step}` before any deploy"));
            step.replace("0x<contract>", id)
        } else {
            step.clone()
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let (step_cwd, ep) = (cwd.path(), Some(ep.as_str()));
        let out = if words.contains(&"-f") || words.contains(&"--follow") {
            tokio::task::block_in_place(|| first_line(&line, step_cwd, ep))
        } else {
            tokio::task::block_in_place(|| run_step(&line, step_cwd, ep))
        };
        eprintln!("$ {line}\n{out}");
        // What each command printed is what the README says it prints.
        match (words[0], words[1]) {
            ("phat", "deploy") => {
                let id = out
                    .lines()
                    .find_map(|l| l.strip_prefix("contract "))
                    .unwrap_or_else(|| panic!("no contract id from `{line}`: {out}"));
                contract = Some(id.trim().to_string());
            }
            ("phat", "tx") => {
                assert!(out.contains("result Ok(8)"), "{line}: {out}");
                assert!(
                    out.contains(&format!("event  Incremented {{ by: {ALICE}, value: 8 }}")),
                    "{line}: {out}"
                );
            }
            ("phat", "query") => assert_eq!(out.trim(), "Ok(8)", "{line}"),
            ("phat", "logs") => assert!(
                out.contains(&format!("event: Incremented {{ by: {ALICE}, value: 8 }}")),
                "{line}: {out}"
            ),
            ("phat", "info") if words.len() == 2 => {
                assert!(out.contains("attestation"), "{line}: {out}")
            }
            ("phat", "info") => {
                assert!(out.contains("name      my-counter"), "{line}: {out}");
                assert!(out.contains("ethereum  0x"), "{line}: {out}");
            }
            ("phat", "keys") => assert_eq!(out.trim(), format!("account {BOB}"), "{line}"),
            ("phat", "cluster") => assert!(
                out.starts_with("key rotated at seq ")
                    && out.trim_end().ends_with("the cluster is at key epoch 1"),
                "{line}: {out}"
            ),
            ("phat", "new") => assert!(cwd.path().join("my-counter/Cargo.toml").exists()),
            _ => {}
        }
        ran.push(words[1].to_string());
    }
    for cmd in [
        "new", "deploy", "tx", "query", "logs", "info", "keys", "cluster",
    ] {
        assert!(
            ran.iter().any(|r| r == cmd),
            "no `phat {cmd}` step: {steps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_ends_with_hints_that_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let _dev = Proc::start(
        "dev",
        &[
            "dev",
            "--demo",
            "--workers",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--port",
            &base.to_string(),
        ],
        &log,
    );
    let text = eventually(
        "the demo to finish",
        Duration::from_secs(900),
        Duration::from_millis(200),
        async || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready; Ctrl-C stops the cluster") {
                return Ok(text);
            }
            assert!(
                !text.lines().any(|l| l.starts_with("error: ")),
                "the demo did not finish:\n{text}"
            );
            Err(format!("\n{text}"))
        },
    )
    .await;
    let hints: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  phat "))
        .collect();
    assert_eq!(hints.len(), 3, "{text}");
    let cwd = tempfile::tempdir().unwrap();
    for hint in hints {
        let line = format!("phat {hint}");
        assert!(
            line.contains(&format!("--endpoint http://127.0.0.1:{base}")),
            "a hint that misses the cluster's endpoint: {line}"
        );
        // No PHAT_ENDPOINT: the hint itself must reach the cluster.
        let out = tokio::task::block_in_place(|| run_step(&line, cwd.path(), None));
        eprintln!("$ {line}\n{out}");
        if hint.starts_with("query") {
            assert_eq!(out.trim(), "Ok(2500)", "{line}");
        } else if hint.starts_with("tx") {
            assert!(out.contains("result Ok(Ok(()))"), "{line}: {out}");
            assert!(out.contains("event  Transfer {"), "{line}: {out}");
        } else {
            assert!(hint.starts_with("logs"), "{line}");
            let transfers = out
                .lines()
                .filter(|l| l.contains("event: Transfer {"))
                .count();
            // The mint, the demo's transfer and the hint's.
            assert_eq!(transfers, 3, "{line}: {out}");
        }
    }
}
