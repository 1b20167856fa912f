/** Unit tests of the protocol core, and the cross-implementation vectors. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { x25519 } from "@noble/curves/ed25519.js";
import { codec, EnvelopeError, openSealed, seal, Signer, SuriError, toHex, utf8ToBytes } from "../src/index.js";
import { check, load, produce } from "./vectors.js";

test("dev accounts match Substrate's", () => {
  // The well-known public keys of //Alice and //Bob.
  assert.equal(toHex(Signer.fromSuri("//Alice").publicKey), "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  assert.equal(toHex(Signer.fromSuri("//Bob").publicKey), "0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48");
  assert.throws(() => Signer.fromSuri("not a mnemonic at all"), SuriError);
  assert.throws(() => Signer.fromSuri("0x1234"), TypeError);
});

test("envelopes open only with the right key, purpose and counter", () => {
  const secret = new Uint8Array(32).fill(5);
  const { sealed, keys } = seal(x25519.getPublicKey(secret), "query", utf8ToBytes("hi"));
  const { plaintext, keys: server } = openSealed(secret, "query", sealed);
  assert.deepEqual(plaintext, utf8ToBytes("hi"));
  assert.deepEqual(keys.openReply(3n, server.sealReply(3n, utf8ToBytes("yo"))), utf8ToBytes("yo"));
  assert.throws(() => openSealed(secret, "command", sealed), EnvelopeError);
  assert.throws(() => openSealed(new Uint8Array(32).fill(6), "query", sealed), EnvelopeError);
  assert.throws(() => keys.openReply(4n, server.sealReply(3n, utf8ToBytes("yo"))), EnvelopeError);
  const tampered = { ...sealed, ciphertext: sealed.ciphertext.map((b, i) => (i === 0 ? b ^ 1 : b)) };
  assert.throws(() => openSealed(secret, "query", tampered), EnvelopeError);
});

test("this SDK's own vectors check", () => {
  check(produce());
});

test("the committed TypeScript vectors still check (regenerate: npm run vectors)", () => {
  check(load("ts"));
});

test("the Rust client's vectors check here", () => {
  const v = load("rust");
  assert.equal(v.producer, "rust");
  check(v);
});

test("the SDK bundles for browsers, with no Node built-ins; the core without @polkadot", async () => {
  const { build } = await import("esbuild");
  for (const entry of ["index", "core"]) {
    const out = await build({
      entryPoints: [new URL(`../../src/${entry}.js`, import.meta.url).pathname],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    assert.deepEqual(out.errors, []);
    const js = out.outputFiles[0].text;
    assert.ok(js.length > 10_000, `${entry}: ${js.length} bytes`);
    assert.ok(!/from\s*"node:/.test(js), `${entry}: a node: import in the browser bundle`);
    const polkadot = Object.keys(out.metafile.inputs).filter((p) => p.includes("@polkadot/"));
    assert.equal(polkadot.length > 0, entry === "index", `${entry}: ${polkadot.length} @polkadot inputs`);
  }
});

test("a log read encodes as the Rust side pins it (protocol/logs.rs LOGS_CALL_HEX)", () => {
  const call = codec.Call.enc({
    tag: "Logs",
    value: {
      contract: new Uint8Array(32).fill(1),
      filter: {
        after: 5n,
        since: undefined,
        kinds: [{ tag: "Event", value: undefined }, { tag: "Query", value: undefined }],
        limit: 10,
        tail: true,
        wait_ms: 250,
      },
    },
  });
  const expected =
    "0x06" + "01".repeat(32) + "010500000000000000" + "00" + "080103" + "0a000000" + "01" + "fa000000";
  assert.equal(toHex(call), expected);
  const readers = codec.Call.enc({ tag: "LogReaders", value: { contract: new Uint8Array(32), readers: [] } });
  assert.equal(readers[0], 7);
  // A page decodes back into records with their index.
  const page = codec.LogPage.enc({
    records: [[3n, { contract: new Uint8Array(32), level: "info", origin: { tag: "Query", value: undefined }, seq: undefined, timestamp: 9n, message: "hi" }]],
    next: 4n,
  });
  const back = codec.LogPage.dec(page);
  assert.equal(back.records[0][0], 3n);
  assert.equal(back.records[0][1].message, "hi");
  assert.equal(back.next, 4n);
});

test("npm pack: the package holds the built library, its types and README, and imports by name", () => {
  const sdk = fileURLToPath(new URL("../../", import.meta.url));
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: sdk, encoding: "utf8" });
  const [pack] = JSON.parse(out) as { name: string; files: { path: string }[]; unpackedSize: number }[];
  assert.equal(pack.name, "@phat/sdk");
  const files = pack.files.map((f) => f.path);
  for (const needed of ["package.json", "README.md", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/core.js", "dist/src/core.d.ts"]) {
    assert.ok(files.includes(needed), `${needed} missing from ${files.join(", ")}`);
  }
  // Built code only: no tests, no TypeScript sources, no benches, no browser bundles.
  assert.ok(files.every((f) => !f.startsWith("dist/test") && !f.startsWith("src/") && !f.startsWith("bench") && !f.startsWith("dist/browser")), files.join(", "));
  // The tarball, unpacked where its dependencies resolve, imports by its name.
  const check = `${sdk}.packcheck/`;
  rmSync(check, { recursive: true, force: true });
  mkdirSync(`${check}node_modules/@phat/sdk`, { recursive: true });
  const tarball = execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", check], { cwd: sdk, encoding: "utf8" }).trim().split("\n").pop()!;
  execFileSync("tar", ["-xzf", `${check}${tarball}`, "-C", `${check}node_modules/@phat/sdk`, "--strip-components=1"]);
  const names = execFileSync(
    process.execPath,
    ["--input-type=module", "-e", "const m = await import('@phat/sdk'); const c = await import('@phat/sdk/core'); const t = await import('@phat/sdk/tee'); console.log(JSON.stringify([typeof m.PhatClient, typeof m.ContractApi, typeof c.PhatClient, typeof c.ContractApi, typeof t.teeVerifier]))"],
    { cwd: check, encoding: "utf8" },
  );
  assert.deepEqual(JSON.parse(names), ["function", "function", "function", "undefined", "function"]);
  rmSync(check, { recursive: true, force: true });
});

test("hardware reports: the DCAP sample quotes verify as in Rust, and a report they do not bind is refused", async () => {
  const { verifyQuote, verifyTeeReport, teeVerifier } = await import("../src/tee.js");
  const { codec: c, UntrustedError: Untrusted, checkWorker } = await import("../src/index.js");
  const { readFileSync } = await import("node:fs");
  const data = (name: string) => readFileSync(fileURLToPath(new URL(`../../../crates/attest/tests/data/${name}`, import.meta.url)));
  // 2025-07-01: inside both samples' collateral validity (crates/attest/tests/dcap.rs).
  const now = 1_751_328_000;
  const sgxQuote = data("sgx_quote");
  const sgxCollateral = JSON.parse(data("sgx_quote_collateral.json").toString());
  const lenient = {
    kinds: ["sgx-dcap", "tdx-dcap"] as ("sgx-dcap" | "tdx-dcap")[],
    tcb_statuses: ["UpToDate", "ConfigurationAndSWHardeningNeeded"],
    advisories: ["INTEL-SA-00289", "INTEL-SA-00615"],
  };
  // What the Rust verifier finds in the same quote.
  const v = verifyQuote(sgxQuote, sgxCollateral, now, lenient);
  assert.equal(v.kind, "sgx-dcap");
  assert.equal(v.tcbStatus, "ConfigurationAndSWHardeningNeeded");
  assert.deepEqual(v.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
  assert.equal(v.debug, false);
  assert.equal(toHex(v.measurement), toHex(sgxQuote.subarray(48 + 64, 48 + 96)), "MRENCLAVE");
  // The default policy: no kind, UpToDate only; a tampered quote fails its signature.
  assert.throws(() => verifyQuote(sgxQuote, sgxCollateral, now, {}), /kind is sgx-dcap/);
  assert.throws(() => verifyQuote(sgxQuote, sgxCollateral, now, { kinds: ["sgx-dcap"] }), /tcb_status/);
  assert.throws(() => verifyQuote(sgxQuote, sgxCollateral, now, { ...lenient, advisories: [] }), /advisory/);
  assert.throws(() => verifyQuote(sgxQuote, sgxCollateral, now, { ...lenient, sgx: { mr_enclave: ["00".repeat(32)] } }), /sgx.mr_enclave/);
  const tampered = Uint8Array.from(sgxQuote);
  tampered[48 + 320] ^= 1;
  assert.throws(() => verifyQuote(tampered, sgxCollateral, now, lenient), Untrusted);
  // The TDX sample is up to date.
  const tdx = verifyQuote(data("tdx_quote"), JSON.parse(data("tdx_quote_collateral.json").toString()), now, { kinds: ["tdx-dcap"] });
  assert.equal(tdx.kind, "tdx-dcap");
  assert.equal(tdx.tcbStatus, "UpToDate");
  // A report around the sample quote: its keys are not what the quote binds, so refused, and
  // a client with this policy refuses such a worker.
  const report = {
    provider: "sgx-dcap",
    measurement: toHex(v.measurement),
    worker_key: "0x" + "11".repeat(32),
    cluster_key: "0x" + "22".repeat(32),
    encryption: true,
    signing_key: null,
    issued_at: 1,
    signer: "0x" + "00".repeat(32),
    signature: toHex(concatEvidence(sgxQuote, data("sgx_quote_collateral.json"))),
  };
  assert.throws(() => verifyTeeReport(report, lenient, now), /does not bind this report/);
  assert.throws(() => verifyTeeReport({ ...report, measurement: "0x" + "00".repeat(32) }, lenient, now), /measurement/);
  const info = { worker_key: report.worker_key, cluster_key: report.cluster_key, encryption: true, attestation: report } as never;
  assert.throws(() => checkWorker("http://10.0.0.1:8000", info, {}), /no TEE policy/);
  assert.throws(() => checkWorker("http://10.0.0.1:8000", info, { tee: teeVerifier(lenient, { nowSecs: () => now }) }), /does not bind/);

  function concatEvidence(quote: Uint8Array, collateral: Uint8Array): Uint8Array {
    const q = c.VecU8.enc(quote);
    const col = c.VecU8.enc(collateral);
    const out = new Uint8Array(q.length + col.length);
    out.set(q);
    out.set(col, q.length);
    return out;
  }
});
