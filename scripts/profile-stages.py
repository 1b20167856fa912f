#!/usr/bin/env python3
"""Splits a system-wide `perf record -a -e cpu-clock` profile into processes and stages.

Reads `perf script -F comm,pid,tid,time,ip,sym,dso` on stdin and prints, for the last
`--window` seconds of the recording (the phase being measured), the CPU each process spent
in each stage as µs per operation (`--ops`, the operations done in the window) and as a share
of both cores. Stages are found by symbol name: a flat profile (release builds carry no frame
pointers), so a stage is what its own code costs, not what it calls.

    perf record -a -e cpu-clock -F 1999 -o p.data <bench>
    perf script -i p.data -F comm,pid,tid,time,ip,sym,dso | scripts/profile-stages.py --ops N --window S
"""
import argparse
import collections
import re
import sys

# (stage, pattern): the first match names the stage of a sample's symbol (and its dso).
STAGES = [
    ("idle", r"pv_native_safe_halt|cpuidle|default_idle|do_idle|intel_idle|acpi_idle"),
    # One stage: sr25519 and X25519 share curve25519-dalek's field arithmetic, which a flat
    # profile cannot split between them (the floors bench prices each alone).
    ("curve25519 (sr25519, X25519)", r"montgomery|x25519|MontgomeryPoint|curve25519|schnorrkel|ristretto|merlin|keccak|strobe|EdwardsPoint|Scalar52|FieldElement51"),
    ("AEAD (chacha20-poly1305)", r"chacha|poly1305|Poly1305|ChaCha|aead"),
    ("hashing (blake2, sha)", r"blake2|Blake2|sha2|sha3|sha256|compress256"),
    ("wasm execution", r"wasmtime|cranelift|\[JIT\]|JIT|phat_runtime|phat_pink|wasm"),
    ("store (redb)", r"redb"),
    ("fsync / disk", r"ext4|jbd2|fsync|blk_|nvme|bio_|submit_bio|file_write|filemap|iomap|xfs|fdatasync|writeback"),
    ("JSON", r"serde_json|serde::"),
    ("SCALE codec", r"parity_scale_codec|scale_info"),
    ("HTTP (hyper, axum, reqwest)", r"hyper|axum|reqwest|h2::|http::|httparse|tower|matchit"),
    ("loopback TCP (kernel)", r"tcp_|inet_|ip_|sock_|skb|__dev_queue|net_rx|netif|loopback|__sys_send|__sys_recv|sendmsg|recvmsg|_copy_to_iter|_copy_from_iter|__napi|process_backlog|dst_|nf_|__netif|ep_poll|epoll|sk_"),
    ("async runtime, scheduling", r"tokio|futex|schedule|__switch_to|finish_task_switch|pick_next|try_to_wake_up|enqueue_task|dequeue_task|update_curr|select_task_rq|ttwu|mio|parking_lot|pthread_cond|syscall_exit|entry_SYSCALL|do_syscall|psi_|_raw_spin"),
    ("allocation, copies", r"malloc|free|_int_|memmove|memcpy|memset|realloc|alloc::|clear_page|page_fault|exc_page|handle_mm|do_anonymous|mm_|folio|madvise|unmap"),
    ("tracing, metrics", r"tracing|prometheus|metrics"),
]
COMPILED = [(name, re.compile(p)) for name, p in STAGES]


def stage(sym: str, dso: str) -> str:
    text = f"{sym} {dso}"
    for name, pat in COMPILED:
        if pat.search(text):
            return name
    return "other kernel" if "kernel" in dso else "other"


LINE = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=float, required=True, help="operations done in the window")
    ap.add_argument("--window", type=float, required=True, help="seconds at the end to keep")
    ap.add_argument("--skip-end", type=float, default=0.0, help="seconds at the very end to drop")
    ap.add_argument("--hz", type=float, default=1999.0, help="the sampling frequency (-F)")
    args = ap.parse_args()

    samples = []
    threads = collections.defaultdict(set)
    for raw in sys.stdin:
        m = LINE.match(raw)
        if not m:
            continue
        comm, pid, tid, t, sym, dso = m.groups()
        samples.append((float(t), int(pid), comm, sym, dso))
        threads[int(pid)].add(comm)
    if not samples:
        sys.exit("no samples")
    end = max(s[0] for s in samples) - args.skip_end
    start = end - args.window
    # Name processes by their threads: the ledger has its writer thread, workers run tokio
    # and the epoch ticker, the bench is the one binary whose comm is not `phat`.
    names = {}
    for pid, comms in threads.items():
        if pid == 0:
            names[pid] = "idle"
        elif any(c.startswith("phat-ledger") for c in comms):
            names[pid] = f"ledger {pid}"
        elif "phat-epoch" in comms:
            names[pid] = f"worker {pid}"
        elif any(c.startswith("nats-server") for c in comms):
            names[pid] = f"nats {pid}"
        else:
            names[pid] = f"{sorted(comms)[0]} {pid}"
    table = collections.defaultdict(collections.Counter)
    for t, pid, comm, sym, dso in samples:
        if start <= t <= end:
            table[names[pid]][stage(sym, dso)] += 1
    per_sample_us = 1e6 / args.hz
    total = sum(sum(c.values()) for c in table.values())
    # Both cores are sampled: the window holds `2 * window * hz` samples at most.
    print(f"window {args.window:.2f} s, {args.ops:.0f} ops, {total} samples "
          f"({total / (2 * args.window * args.hz):.0%} of 2 cores)\n")
    stages = collections.Counter()
    for counts in table.values():
        stages.update(counts)
    # Processes with at least 1% of the samples; the rest (kernel threads) add up in "all".
    procs = sorted((p for p in table if p != "idle" and sum(table[p].values()) >= total / 100),
                   key=lambda p: -sum(table[p].values()))
    rest = [p for p in table if p != "idle" and p not in procs]
    head = ["stage"] + procs + ["all", "share"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |")
    for st, n in stages.most_common():
        if st == "idle":
            continue
        cells = [f"{table[p][st] * per_sample_us / args.ops:.1f}" for p in procs]
        n_all = sum(table[p][st] for p in procs + rest)
        all_us = n_all * per_sample_us / args.ops
        share = n_all / max(1, total)
        print(f"| {st} | " + " | ".join(cells) + f" | {all_us:.1f} | {share:.0%} |")
    sums = [sum(table[p].values()) * per_sample_us / args.ops for p in procs]
    every = sum(sum(table[p].values()) for p in procs + rest) * per_sample_us / args.ops
    print("| **total µs CPU per op** | " + " | ".join(f"**{s:.1f}**" for s in sums)
          + f" | **{every:.1f}** | |")
    idle = sum(table["idle"].values()) if "idle" in table else 0
    print(f"\nidle: {idle / max(1, total):.0%} of the samples")


if __name__ == "__main__":
    main()
