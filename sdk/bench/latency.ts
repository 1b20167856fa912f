/** Query and command latency through this SDK next to the Rust client's, on one `phat dev`
 * (one worker, encrypted) in one run: erc20 `balance_of` queries in a resumed session and
 * `transfer` commands (submit → receipt). `npm run bench [N]`; the Rust side is
 * `crates/client/examples/latency.rs`, built in release. Both clients share the machine with
 * the cluster, so the figures are a floor. */
import { spawnSync } from "node:child_process";
import { u128 } from "scale-ts";
import { callOf, concatBytes, ContractApi, PhatClient, Signer } from "../src/index.js";
import { bundleJson, Dev, REPO } from "../test/dev.js";

function percentiles(samples: number[]): [number, number] {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.round((s.length - 1) * q)];
  return [at(0.5), at(0.99)];
}

const n = Number(process.argv[2] ?? 1000);
const dev = await Dev.start();
try {
  const alice = Signer.fromSuri("//Alice");
  const bob = Signer.fromSuri("//Bob");
  const client = await PhatClient.connect(dev.workers[0]);
  const { contract } = await ContractApi.deploy(client, alice, bundleJson("erc20"), { args: [1_000_000_000n] });
  const balanceOf = callOf(contract.address, concatBytes(Uint8Array.of(0x0f, 0x75, 0x5a, 0x56), alice.publicKey));
  const transfer = callOf(contract.address, concatBytes(Uint8Array.of(0x84, 0xa1, 0x5d, 0xa1), bob.publicKey, u128.enc(1n)));
  for (let i = 0; i < 10; i++) await client.query(alice, balanceOf);
  const queries: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await client.query(alice, balanceOf);
    queries.push((performance.now() - t) * 1000);
  }
  const commands: number[] = [];
  for (let i = 0; i < Math.max(1, n / 4); i++) {
    const t = performance.now();
    await client.submit(alice, transfer);
    commands.push((performance.now() - t) * 1000);
  }
  const rust = spawnSync(
    "cargo",
    ["run", "-q", "--release", "-p", "phat-client", "--example", "latency", "--", dev.workers[0], contract.address, String(n)],
    { cwd: REPO, encoding: "utf8" },
  );
  if (rust.status !== 0) throw new Error(`the Rust client's run failed: ${rust.stderr}`);
  const r = JSON.parse(rust.stdout.trim().split("\n").pop()!);
  const [q50, q99] = percentiles(queries);
  const [c50, c99] = percentiles(commands);
  const row = (what: string, ts: number, rs: number) =>
    `| ${what} | ${Math.round(ts).toLocaleString("en")} µs | ${Math.round(rs).toLocaleString("en")} µs | ${(ts / rs).toFixed(2)}× |`;
  console.log(`${n} queries, ${Math.max(1, n / 4)} commands each, one worker (encrypted), node ${process.version}\n`);
  console.log("| | TypeScript SDK | Rust client | SDK / Rust |\n|---|---|---|---|");
  console.log(row("query `balance_of`, resumed session, p50", q50, r.query_p50_us));
  console.log(row("query, p99", q99, r.query_p99_us));
  console.log(row("command `transfer`, submit → receipt, p50", c50, r.command_p50_us));
  console.log(row("command, p99", c99, r.command_p99_us));
} finally {
  dev.stop();
}
