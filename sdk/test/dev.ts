/** Test helpers: a real `phat dev` and this repository's contracts. The `phat` binary comes
 * from `PHAT_BIN`, else `$CARGO_TARGET_DIR/debug/phat`, else `target/debug/phat`
 * (`scripts/test` builds it before the SDK's tests run). */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fromHex } from "../src/index.js";

/** The repository's root. */
export const REPO = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

export function phatBin(): string {
  const candidates = [
    process.env.PHAT_BIN,
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/phat"),
    join(REPO, "target/debug/phat"),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no phat binary (looked at ${candidates.join(", ")}): run cargo build -p phat-cli`);
  return found;
}

/** A contract's code and selectors by label, from its bundle. */
export function bundle(name: string): { wasm: Uint8Array; selectors: Record<string, Uint8Array> } {
  const b = bundleJson(name) as { source: { wasm: string }; spec: { constructors: { label: string; selector: string }[]; messages: { label: string; selector: string }[] } };
  const selectors: Record<string, Uint8Array> = {};
  for (const m of [...b.spec.constructors, ...b.spec.messages]) selectors[m.label] = fromHex(m.selector);
  return { wasm: fromHex(b.source.wasm), selectors };
}

export async function freePorts(n: number): Promise<number> {
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

/** A bundle's JSON, built by `phat build` when it is one of this repository's contracts. */
export function bundleJson(name: string): Record<string, unknown> {
  const out = spawnSync(phatBin(), ["build", join(REPO, "contracts", name)], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  const path = (out.stdout + out.stderr).split(/\s+/).find((w) => w.endsWith(`${name}.contract`));
  assert.ok(path, `no .contract path in: ${out.stdout}`);
  return JSON.parse(readFileSync(path, "utf8"));
}

/** Phala's prebuilt flip (ink! 3) from the shared conformance files: `$PHAT_SHARED_DIR`,
 * else `../shared` next to the clone, else `/work/shared` (as `testing/shared.rs`). */
export function phalaFlip(): Record<string, unknown> {
  const rel = "conformance/phala-pink/flip/flip.contract";
  const dirs = [process.env.PHAT_SHARED_DIR, join(REPO, "../shared"), "/work/shared"].filter((d): d is string => !!d);
  const found = dirs.map((d) => join(d, rel)).find((p) => existsSync(p));
  if (!found) throw new Error(`${rel} is in none of ${dirs.join(", ")}`);
  return JSON.parse(readFileSync(found, "utf8"));
}

/** `phat dev` with two workers in a temporary directory. */
export class Dev {
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

