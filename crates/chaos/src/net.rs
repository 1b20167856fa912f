//! Hosts as Linux network namespaces joined by one bridge, with their own addresses.
//!
//! Every host gets a namespace `phx<pid>-<name>` with one interface, `eth0`, whose address is
//! in 127.66.0.0/16; the bridge lives in a namespace of its own (`phx<pid>-sw`), so the
//! machine's own namespace is never touched. Addresses stay inside 127.0.0.0/8: each host
//! routes 127.66/16 over its interface (`route_localnet`) and keeps only 127.0.0.1 on `lo`.
//! Dropping a [`Net`] kills every process left in its namespaces and deletes them; a run that
//! was killed itself is swept by the next one ([`sweep_stale`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The prefix of every namespace this tool creates.
const PREFIX: &str = "phx";

/// One host: a namespace and its address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The host's name (`n1`, `w2`, `client`).
    pub name: String,
    /// Its namespace's name.
    pub ns: String,
    /// Its address, reachable from every other host.
    pub addr: Ipv4Addr,
}

/// A set of hosts on one bridge.
#[derive(Debug)]
pub struct Net {
    /// The hosts, in the order they were asked for.
    pub hosts: Vec<Host>,
    switch: String,
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn sysctl(ns: &str, key: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &format!("echo 1 > {path}")])
        .output()?;
    if !out.status.success() {
        bail!(
            "sysctl {key} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Pids of the processes in namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_ns(ns: &str) {
    let me = std::process::id() as i32;
    for pid in pids_in(ns).into_iter().filter(|p| *p != me) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Deletes the namespaces of runs whose process is gone (a run killed before its cleanup).
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("chaos: removing namespace {name} left by run {pid}");
            remove_ns(&name);
        }
    }
}

impl Net {
    /// Creates one namespace per name, joined by a bridge. Needs root (CAP_SYS_ADMIN).
    pub fn create(names: &[&str]) -> Result<Net> {
        assert!(names.len() < 200, "addresses are 127.66.0.10 and up");
        if !nix::unistd::geteuid().is_root() {
            bail!("phat-chaos lays out hosts as network namespaces: run it as root");
        }
        sweep_stale();
        let pid = std::process::id();
        let switch = format!("{PREFIX}{pid}-sw");
        let mut net = Net {
            hosts: Vec::new(),
            switch: switch.clone(),
        };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "set", "lo", "up"])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{PREFIX}{pid}-{name}");
            let addr = Ipv4Addr::new(127, 66, 0, 10 + i as u8);
            ip(&["netns", "add", &ns])?;
            net.hosts.push(Host {
                name: name.to_string(),
                ns: ns.clone(),
                addr,
            });
            let port = format!("p{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // Only 127.0.0.1 is this host's own; the rest of 127/8 is the network.
            ip(&[
                "-n",
                &ns,
                "route",
                "del",
                "local",
                "127.0.0.0/8",
                "dev",
                "lo",
                "table",
                "local",
            ])?;
            sysctl(&ns, "net.ipv4.conf.all.route_localnet")?;
            sysctl(&ns, "net.ipv4.conf.eth0.route_localnet")?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/16"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// Takes host `i`'s link to the bridge down (a cut cable) or up again.
    pub fn set_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch, "link", "set", &format!("p{i}"), state])
    }
}

/// Moves the calling thread into namespace `ns` (threads it starts afterwards inherit it).
pub fn enter(ns: &str) -> Result<()> {
    let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
        .with_context(|| format!("opening namespace {ns}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering namespace {ns}"))?;
    Ok(())
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            remove_ns(&h.ns);
        }
        remove_ns(&self.switch);
    }
}
