/** The SDK against a real `phat dev` started here (two workers, embedded ledger): deploy
 * flipper and erc20, commands and queries on both workers, a reverted call, logs, and the
 * refusals (an unreachable endpoint, a forged attestation, an unpinned remote, an unencrypted
 * cluster). The `phat` binary comes from `PHAT_BIN`, else `$CARGO_TARGET_DIR/debug/phat`, else
 * `target/debug/phat`; `scripts/test` builds it first. */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { u128 as scaleU128 } from "scale-ts";
import { fileURLToPath } from "node:url";
import {
  ApiError,
  callOf,
  concatBytes,
  fromHex,
  instantiateOf,
  PhatClient,
  Signer,
  toHex,
  UnreachableError,
  UntrustedError,
  type WorkerInfo,
} from "../src/index.js";

const REPO = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

function phatBin(): string {
  const candidates = [
    process.env.PHAT_BIN,
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/phat"),
    join(REPO, "target/debug/phat"),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no phat binary (looked at ${candidates.join(", ")}): run cargo build -p phat-cli`);
  return found;
}

/** A contract bundle built by `phat build` (quick when it is built already). */
function bundle(name: string): { wasm: Uint8Array; selectors: Record<string, Uint8Array> } {
  const out = spawnSync(phatBin(), ["build", join(REPO, "contracts", name)], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  const path = (out.stdout + out.stderr).split(/\s+/).find((w) => w.endsWith(`${name}.contract`));
  assert.ok(path, `no .contract path in: ${out.stdout}`);
  const b = JSON.parse(readFileSync(path, "utf8"));
  const selectors: Record<string, Uint8Array> = {};
  for (const m of [...b.spec.constructors, ...b.spec.messages]) selectors[m.label] = fromHex(m.selector);
  return { wasm: fromHex(b.source.wasm), selectors };
}

async function freePorts(n: number): Promise<number> {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    const free = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        new Promise<boolean>((ok) => {
          const s = createServer();
          s.once("error", () => ok(false));
          s.listen(base + i, "127.0.0.1", () => s.close(() => ok(true)));
        }),
      ),
    );
    if (free.every(Boolean)) return base;
  }
}

/** `phat dev` with two workers in a temporary directory. */
class Dev {
  private constructor(
    readonly proc: ChildProcess,
    readonly dir: string,
    readonly endpoint: string,
    readonly workers: string[],
  ) {}

  static async start(extra: string[] = []): Promise<Dev> {
    const dir = mkdtempSync(join(tmpdir(), "phat-sdk-"));
    const base = await freePorts(4);
    const log = openSync(join(dir, "dev.log"), "w");
    const proc = spawn(phatBin(), ["dev", "--workers", "2", "--data", join(dir, "data"), "--port", String(base), ...extra], {
      stdio: ["ignore", log, log],
    });
    const dev = new Dev(proc, dir, `http://127.0.0.1:${base}`, [`http://127.0.0.1:${base + 2}`, `http://127.0.0.1:${base + 3}`]);
    const deadline = Date.now() + 60_000;
    for (const url of [...dev.workers, dev.endpoint]) {
      for (;;) {
        try {
          if ((await fetch(url + "/healthz")).ok) break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline || proc.exitCode !== null) {
          dev.stop();
          throw new Error(`${url} did not come up:\n${readFileSync(join(dir, "dev.log"), "utf8")}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return dev;
  }

  stop(): void {
    this.proc.kill("SIGTERM");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const alice = Signer.fromSuri("//Alice");
const bob = Signer.fromSuri("//Bob");
const u128 = (v: bigint) => scaleU128.enc(v);

/** The `Ok` value bytes of an ink! message's answer (`Result<T, LangError>`: 0x00 ‖ T). */
function inkOk(result: { ok?: { data: string; reverted: boolean } } | object): Uint8Array {
  assert.ok("ok" in result, `not ok: ${JSON.stringify(result)}`);
  const data = fromHex((result as { ok: { data: string } }).ok.data);
  assert.equal(data[0], 0, `a LangError: ${toHex(data)}`);
  return data.slice(1);
}

describe("the SDK against phat dev", { timeout: 240_000 }, () => {
  let dev: Dev;
  let client: PhatClient;
  const flipper = bundle("flipper");
  const erc20 = bundle("erc20");

  before(async () => {
    dev = await Dev.start();
    client = await PhatClient.connect(dev.endpoint);
  });
  after(() => dev?.stop());

  test("info is attested and the cluster encrypts", () => {
    assert.equal(client.info.encryption, true);
    assert.equal(client.info.attestation.provider, "dev");
    assert.ok(client.info.system_contract?.startsWith("0x"));
  });

  test("deploy flipper, flip, and read it on both workers", async () => {
    const code = await client.uploadCode(alice, flipper.wasm);
    const deployed = await client.submit(alice, instantiateOf(code, concatBytes(flipper.selectors.new, Uint8Array.of(0))));
    const result = deployed.receipt!.result;
    assert.ok("ok" in result && result.ok.address, JSON.stringify(result));
    const id = (result as { ok: { address: string } }).ok.address;
    const flipped = await client.submit(alice, callOf(id, flipper.selectors.flip));
    for (const w of dev.workers) {
      const c = await PhatClient.connect(w);
      const r = await c.query(alice, callOf(id, flipper.selectors.get), { minSeq: flipped.seq });
      assert.deepEqual(inkOk(r.result), Uint8Array.of(1), w);
      // A second query travels in the session the first opened.
      const again = await c.query(alice, callOf(id, flipper.selectors.get));
      assert.deepEqual(inkOk(again.result), Uint8Array.of(1));
    }
  });

  test("erc20: a transfer, its event and log, a reverted transfer, balances on both workers", async () => {
    const code = await client.uploadCode(alice, erc20.wasm);
    const deployed = await client.submit(alice, instantiateOf(code, concatBytes(erc20.selectors.new, u128(1000n))));
    const id = (deployed.receipt!.result as { ok: { address: string } }).ok.address;
    const sent = await client.submit(alice, callOf(id, concatBytes(erc20.selectors.transfer, bob.publicKey, u128(10n))));
    const receipt = sent.receipt!;
    assert.deepEqual(inkOk(receipt.result), Uint8Array.of(0), "Ok(())");
    assert.equal(receipt.events.length, 1, "one Transfer event");
    assert.equal(receipt.events[0].contract, id);
    // Bob has less than he sends: the contract answers Err and ink! reverts.
    const refused = await client.submit(bob, callOf(id, concatBytes(erc20.selectors.transfer, alice.publicKey, u128(11n))));
    const r = refused.receipt!.result;
    assert.ok("ok" in r && r.ok.reverted, JSON.stringify(r));
    for (const w of dev.workers) {
      const c = await PhatClient.connect(w);
      const q = await c.query(bob, callOf(id, concatBytes(erc20.selectors.balance_of, bob.publicKey)), { minSeq: refused.seq });
      assert.deepEqual(inkOk(q.result), u128(10n), w);
    }
    const logs = await client.logs(id);
    assert.ok(logs.some((l) => l.level === "event" && l.seq === sent.seq), JSON.stringify(logs));
    // A receipt read back later keeps the result sealed: only the sender opened it.
    const stored = await client.receipt(sent.seq);
    assert.ok("sealed" in stored.result, JSON.stringify(stored.result));
  });

  test("a call to a contract that does not exist is a typed error", async () => {
    await assert.rejects(
      client.query(alice, callOf("0x" + "ab".repeat(32), flipper.selectors.get)),
      (e: unknown) => e instanceof ApiError && e.kind === "unknown_contract",
    );
  });

  test("an unreachable endpoint, a forged report, an unpinned remote are refused", async () => {
    const [port] = [await freePorts(1)];
    await assert.rejects(PhatClient.connect(`http://127.0.0.1:${port}`), UnreachableError);
    // A man in the middle that turns the worker's key into its own: the report no longer
    // verifies (or no longer matches), so nothing is sent.
    const tamper = (edit: (info: WorkerInfo) => void): typeof fetch =>
      (async (input: RequestInfo | URL, init?: RequestInit) => {
        const resp = await fetch(String(input).replace("http://phat.example", dev.endpoint), init);
        if (!String(input).endsWith("/v1/info")) return resp;
        const info = (await resp.json()) as WorkerInfo;
        edit(info);
        return new Response(JSON.stringify(info), { status: 200 });
      }) as typeof fetch;
    const other = "0x" + "77".repeat(32);
    await assert.rejects(
      PhatClient.connect(dev.endpoint, { fetch: tamper((i) => ((i.worker_key = other), (i.attestation.worker_key = other))) }),
      /does not verify/,
    );
    await assert.rejects(PhatClient.connect(dev.endpoint, { fetch: tamper((i) => (i.worker_key = other)) }), /not the ones its report attests/);
    await assert.rejects(PhatClient.connect(dev.endpoint, { devRoot: other }), /not by the pinned dev root/);
    // The same worker seen under a non-loopback name: its dev report needs a pinned root.
    await assert.rejects(PhatClient.connect("http://phat.example", { fetch: tamper(() => {}) }), UntrustedError);
    const root = client.info.attestation.signer;
    const pinned = await PhatClient.connect("http://phat.example", { fetch: tamper(() => {}), devRoot: root });
    assert.equal(pinned.info.cluster_key, client.info.cluster_key);
  });
});

describe("an unencrypted cluster", { timeout: 120_000 }, () => {
  let dev: Dev;
  before(async () => {
    dev = await Dev.start(["--insecure-no-encryption"]);
  });
  after(() => dev?.stop());

  test("is refused unless allowed, then works in the clear", async () => {
    await assert.rejects(PhatClient.connect(dev.endpoint), /does not encrypt/);
    const client = await PhatClient.connect(dev.endpoint, { allowUnencrypted: true });
    const flipper = bundle("flipper");
    const code = await client.uploadCode(alice, flipper.wasm);
    const deployed = await client.submit(alice, instantiateOf(code, concatBytes(flipper.selectors.new, Uint8Array.of(1))));
    const id = (deployed.receipt!.result as { ok: { address: string } }).ok.address;
    const r = await client.query(alice, callOf(id, flipper.selectors.get));
    assert.deepEqual(inkOk(r.result), Uint8Array.of(1));
    // Here results stay in the clear in stored receipts too.
    const stored = await client.receipt(deployed.seq);
    assert.ok("ok" in stored.result, JSON.stringify(stored.result));
  });
});
