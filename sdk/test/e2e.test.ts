/** The SDK against a real `phat dev` started here (two workers, embedded ledger): deploy
 * flipper and erc20, commands and queries on both workers, a reverted call, logs, and the
 * refusals (an unreachable endpoint, a forged attestation, an unpinned remote, an unencrypted
 * cluster). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { u128 as scaleU128 } from "scale-ts";
import { privateKeyToAccount } from "viem/accounts";
import {
  ApiError,
  ArgumentError,
  callerOf,
  callOf,
  certificateTypedData,
  evmAccount,
  ContractApi,
  concatBytes,
  fromHex,
  instantiateOf,
  PhatClient,
  Signer,
  toHex,
  UnreachableError,
  UntrustedError,
  SessionSigner,
  signInWithEthereum,
  walletOf,
  type WorkerInfo,
} from "../src/index.js";
import { bundle, bundleJson, Dev, freePorts, phalaFlip } from "./dev.js";

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
    // The log is the deployer's (alice's): bob is refused until alice allows him.
    const logs = await client.logs(alice, id);
    assert.ok(logs.some((l) => l.level === "event" && l.seq === sent.seq && l.event?.contract === id), JSON.stringify(logs));
    await assert.rejects(client.logs(bob, id), (e: unknown) => e instanceof ApiError && e.kind === "not_log_reader");
    const allowed = await client.setLogReaders(alice, id, [toHex(bob.publicKey)]);
    assert.ok("ok" in allowed.receipt!.result, JSON.stringify(allowed.receipt));
    assert.equal((await client.logs(bob, id, { kinds: ["event"] })).length, logs.filter((l) => l.level === "event").length);
    // Following: stored records first, then a new command's event as it applies.
    const stop = new AbortController();
    const stream = client.followLogs(alice, id, { signal: stop.signal });
    const until = async (seq: number) => {
      for (;;) {
        const n = await stream.next();
        assert.ok(!n.done, "the stream ended");
        if (n.value.seq === seq) return n.value;
      }
    };
    assert.equal((await until(sent.seq)).level, "event");
    const later = await client.submit(alice, callOf(id, concatBytes(erc20.selectors.transfer, bob.publicKey, u128(1n))));
    assert.equal((await until(later.seq)).level, "event", "the new event arrives live");
    stop.abort();
    assert.equal((await stream.next()).done, true, "aborting ends the stream");
    // An estimate, and a transfer of native balance.
    const e = await client.estimate(alice, callOf(id, concatBytes(erc20.selectors.transfer, bob.publicKey, u128(1n))));
    assert.ok(e.gasUsed > 0n && e.gasLimit > e.gasUsed, JSON.stringify({ used: String(e.gasUsed), limit: String(e.gasLimit) }));
    assert.ok("ok" in e.result && !e.result.ok.reverted, JSON.stringify(e.result));
    const moved = await client.transfer(alice, toHex(bob.publicKey), 5n);
    assert.ok("ok" in moved.receipt!.result, JSON.stringify(moved.receipt));
    const overdrawn = await client.transfer(Signer.fromSuri("//Nobody"), toHex(bob.publicKey), 1n);
    assert.ok("err" in overdrawn.receipt!.result && overdrawn.receipt!.result.err.kind === "insufficient_balance", JSON.stringify(overdrawn.receipt));
    // A receipt read back later keeps the result sealed: only the sender opened it.
    const stored = await client.receipt(sent.seq);
    assert.ok("sealed" in stored.result, JSON.stringify(stored.result));
  });

  test("contracts by message name: erc20 (ink! 5) and Phala's flip (ink! 3), typed values", async () => {
    const { contract: token } = await ContractApi.deploy(client, alice, bundleJson("erc20"), { args: [1000] });
    const bobHex = toHex(bob.publicKey);
    const sent = await token.tx(alice, "transfer", [bobHex, 25]);
    assert.deepEqual(sent.output?.value, { ok: { ok: null } });
    assert.equal(sent.reverted, false);
    assert.equal(sent.events.length, 1);
    assert.equal(sent.events[0].name, "Transfer");
    assert.equal(sent.events[0].args.value, 25);
    // Bob sends more than he has: the contract's own error, decoded, and a revert.
    const refused = await token.tx(bob, "transfer", [toHex(alice.publicKey), 26]);
    assert.equal(refused.reverted, true);
    assert.deepEqual(refused.output?.value, { ok: { err: "InsufficientBalance" } });
    // Any worker answers; `balanceOf` and `balance_of` name the same message.
    for (const w of dev.workers) {
      const at = await ContractApi.at(await PhatClient.connect(w), token.address);
      const balance = await at.query(bob, "balanceOf", [bobHex], { minSeq: refused.receipt.seq });
      assert.deepEqual(balance.output?.value, { ok: 25 }, w);
    }
    // A wrong argument is refused before anything is sent.
    await assert.rejects(token.tx(alice, "transfer", ["not an account", 1]), ArgumentError);
    await assert.rejects(token.query(alice, "transfer", [bobHex]), /takes 2 argument/);
    await assert.rejects(token.query(alice, "mint", []), /no message or constructor `mint`/);

    const { contract: flip } = await ContractApi.deploy(client, alice, phalaFlip(), { args: [true] });
    assert.equal((await flip.query(alice, "get")).output?.value, true);
    const flipped = await flip.tx(alice, "flip");
    // Read where the flip is applied: the endpoint may answer from a worker a moment behind.
    assert.equal((await flip.query(alice, "get", [], { minSeq: flipped.receipt.seq })).output?.value, false);
    assert.deepEqual((await flip.query(alice, "echo", [42, 24])).output?.value, [42, 24]);
  });

  test("wallet sign-in: one signature, then a session key acts as the wallet's account", async () => {
    const { contract: token } = await ContractApi.deploy(client, alice, bundleJson("erc20"), { args: [500] });
    // A scripted injected signer: wraps the bytes in <Bytes>…</Bytes> as the polkadot.js
    // extensions' signRaw does, and counts the prompts.
    let prompts = 0;
    const wallet = walletOf(alice);
    const session = await SessionSigner.signIn(client.clusterId, alice.publicKey, async (payload, fields) => {
      prompts++;
      return wallet(payload, fields);
    });
    const bobHex = toHex(bob.publicKey);
    const sent = await token.tx(session, "transfer", [bobHex, 3]);
    assert.deepEqual(sent.output?.value, { ok: { ok: null } });
    assert.equal(sent.receipt.caller, toHex(alice.publicKey), "the command is Alice's");
    // A query made as Alice: she can send 497 more, the session key alone has nothing.
    const can = await token.query(session, "transfer", [bobHex, 497]);
    assert.deepEqual(can.output?.value, { ok: { ok: null } });
    const cannot = await token.query(session, "transfer", [bobHex, 498]);
    assert.deepEqual(cannot.output?.value, { ok: { err: "InsufficientBalance" } });
    assert.equal(prompts, 1, "one wallet prompt for all of it");
    // A queries-only certificate may not send commands.
    const reader = await SessionSigner.signIn(client.clusterId, alice.publicKey, wallet, { scope: "Queries" });
    await assert.rejects(token.tx(reader, "transfer", [bobHex, 1]), (e: unknown) => e instanceof ApiError && e.kind === "certificate_scope");
    // A certificate the wallet did not sign (Bob's key signs for Alice's account).
    const forged = await SessionSigner.signIn(client.clusterId, alice.publicKey, walletOf(bob));
    await assert.rejects(token.query(forged, "balance_of", [bobHex]), (e: unknown) => e instanceof ApiError && e.kind === "bad_certificate");
  });

  test("Ethereum sign-in: an EIP-1193 wallet's typed-data signature makes requests as its mapped account", async () => {
    const { contract: token } = await ContractApi.deploy(client, alice, bundleJson("erc20"), { args: [100] });
    // A scripted EIP-1193 wallet (what MetaMask is to a page), signing with viem.
    const eth = privateKeyToAccount(`0x${"11".repeat(32)}`);
    let prompts = 0;
    const provider = {
      async request({ method, params }: { method: string; params?: unknown[] }): Promise<unknown> {
        if (method === "eth_requestAccounts") return [eth.address];
        if (method === "eth_signTypedData_v4") {
          prompts++;
          assert.equal((params as string[])[0], eth.address);
          const typed = JSON.parse((params as string[])[1]);
          const { EIP712Domain: _domain, ...types } = typed.types;
          return eth.signTypedData({
            domain: typed.domain,
            types,
            primaryType: typed.primaryType,
            message: { ...typed.message, expiresAt: BigInt(typed.message.expiresAt) },
          });
        }
        throw new Error(`unexpected ${method}`);
      },
    };
    const session = await signInWithEthereum(client.clusterId, provider);
    const account = toHex(evmAccount(eth.address));
    assert.equal(toHex(callerOf(session)), account, "Phala's mapping: the address, then @evm_address");
    await token.tx(alice, "transfer", [account, 7]);
    // It pays its storage deposits: Alice funds it with a transfer.
    await client.transfer(alice, account, 10n ** 18n);
    const bobHex = toHex(bob.publicKey);
    const sent = await token.tx(session, "transfer", [bobHex, 2]);
    assert.deepEqual(sent.output?.value, { ok: { ok: null } }, JSON.stringify(sent.error ?? sent.receipt));
    assert.equal(sent.receipt.caller, account, "the command is the Ethereum account's");
    assert.deepEqual((await token.query(session, "balance_of", [account])).output?.value, { ok: 5 });
    assert.equal(prompts, 1);
    // Another wallet's signature for this account is refused.
    const other = privateKeyToAccount(`0x${"22".repeat(32)}`);
    const forged = await SessionSigner.signIn(client.clusterId, evmAccount(eth.address), async (_p, fields) => {
      const typed = JSON.parse(JSON.stringify(certificateTypedData(fields)));
      const { EIP712Domain: _d, ...types } = typed.types;
      const sig = await other.signTypedData({ domain: typed.domain, types, primaryType: typed.primaryType, message: { ...typed.message, expiresAt: BigInt(typed.message.expiresAt) } });
      return fromHex(sig);
    });
    await assert.rejects(token.query(forged, "balance_of", [account]), (e: unknown) => e instanceof ApiError && e.kind === "bad_certificate");
  });

  test("several endpoints: a dead one is skipped, and a worker that goes down is failed over", async () => {
    const [w0, w1] = dev.workers;
    let down = "";
    const flaky: typeof fetch = (input, init) =>
      down !== "" && String(input).startsWith(down) ? Promise.reject(new TypeError("connection refused")) : fetch(input, init);
    const c = await PhatClient.connect(["http://127.0.0.1:1", w0, w1], { fetch: flaky });
    assert.equal(c.endpoint, w0, "the dead endpoint is skipped");
    const code = await c.uploadCode(alice, flipper.wasm);
    const made = await c.submit(alice, instantiateOf(code, concatBytes(flipper.selectors.new, Uint8Array.of(0)), { salt: Uint8Array.of(7) }));
    const id = (made.receipt!.result as { ok: { address: string } }).ok.address;
    assert.deepEqual(inkOk((await c.query(alice, callOf(id, flipper.selectors.get))).result), Uint8Array.of(0));
    // w0 goes down: the query and the command go to w1, in a new session with it.
    down = w0;
    const flipped = await c.submit(alice, callOf(id, flipper.selectors.flip));
    assert.ok("ok" in flipped.receipt!.result, JSON.stringify(flipped.receipt));
    assert.equal(c.endpoint, w1);
    const r = await c.query(alice, callOf(id, flipper.selectors.get), { minSeq: flipped.seq });
    assert.deepEqual(inkOk(r.result), Uint8Array.of(1));
    // With every endpoint down, the error says so.
    down = "http://127.0.0.1";
    await assert.rejects(c.query(alice, callOf(id, flipper.selectors.get)), (e: unknown) => e instanceof UnreachableError);
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
