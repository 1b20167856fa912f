/** The console in a real headless browser (Debian's chromium, driven by playwright-core: no
 * downloaded browser) against a real `phat dev` started here: deploy erc20 through the file
 * picker, transfer, see the event, the new balance and the live log line; a revert and a
 * wrong argument in words; wallet sign-in through a scripted injected wallet; and the SDK's
 * example dApp page calling the cluster from another origin. Writes a screenshot (to
 * `$PHAT_CONSOLE_SCREENSHOT` when set, for the docs). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { encodeAddress, Signer, toHex } from "../../sdk/dist/src/index.js";
import { bundleJson, Dev, freePorts, REPO } from "../../sdk/dist/test/dev.js";

/** The system browser: `$CHROMIUM`, else Debian's. */
function browserPath(): string {
  const candidates = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no chromium at ${candidates.join(", ")}: scripts/setup installs Debian's`);
  return found;
}

const charlie = Signer.fromSuri("//Charlie");

describe("the console in headless chromium", { timeout: 300_000 }, () => {
  let dev: Dev;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let dir: string;
  let bundlePath: string;
  const problems: string[] = [];
  let walletPrompts = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "phat-console-"));
    bundlePath = join(dir, "erc20.contract");
    writeFileSync(bundlePath, JSON.stringify(bundleJson("erc20")));
    dev = await Dev.start();
    browser = await chromium.launch({ executablePath: browserPath(), headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    // A scripted wallet in the polkadot.js extension interface: Charlie's account; it signs
    // raw bytes as the extension does (wrapped in <Bytes>), counting its prompts.
    await context.exposeFunction("__walletSign", (dataHex: string) => {
      walletPrompts += 1;
      const data = Buffer.from(dataHex.slice(2), "hex");
      const wrapped = Buffer.concat([Buffer.from("<Bytes>"), data, Buffer.from("</Bytes>")]);
      return toHex(charlie.sign(wrapped));
    });
    await context.addInitScript((address: string) => {
      const w = window as unknown as Record<string, unknown>;
      w.injectedWeb3 = {
        "test-wallet": {
          enable: async () => ({
            accounts: { get: async () => [{ address, name: "Charlie's wallet" }] },
            signer: {
              signRaw: async ({ data }: { data: string }) => ({
                signature: await (w.__walletSign as (d: string) => Promise<string>)(data),
              }),
            },
          }),
        },
      };
    }, encodeAddress(charlie.publicKey, 42));
    page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console error: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    dev?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The text of `message`'s result after clicking its `action` button with `args` filled in. */
  async function call(message: string, action: "query" | "send", args: Record<string, string>): Promise<string> {
    const m = page.locator(`details[data-message="${message}"]`);
    if (!(await m.evaluate((d) => (d as HTMLDetailsElement).open))) await m.locator("summary").click();
    for (const [name, value] of Object.entries(args)) await m.locator(`input[name="${name}"]`).fill(value);
    const result = m.locator("pre.result");
    await m.locator(`button[data-action="${action}"]`).click();
    await page.waitForFunction(
      (el) => !!el && !(el as HTMLElement).hidden && !(el.textContent ?? "").endsWith("…"),
      await result.elementHandle(),
      { timeout: 30_000 },
    );
    return result.innerText();
  }

  test("shows the cluster: both workers, agreeing, attested", async () => {
    await page.goto(`${dev.endpoint}/console`);
    await page.waitForSelector("body[data-ready='1']", { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector("#agreement")?.textContent?.startsWith("All 2 workers agree"), null, { timeout: 15_000 });
    assert.equal(await page.locator("#workers tbody tr").count(), 2);
    for (const url of dev.workers) {
      assert.match(await page.locator(`tr[data-worker="${url}"]`).innerText(), /in step/);
    }
    const facts = await page.locator("#cluster-facts").innerText();
    assert.match(facts, /Encryption\s+on/);
    assert.match(facts, /Attestation\s+dev/);
    assert.match(await page.locator("#whoami").innerText(), /^5GrwvaEF/); // //Alice
  });

  let address = "";

  test("deploys erc20 from the file picker and shows its keys and messages", async () => {
    await page.setInputFiles("#bundle", bundlePath);
    await page.waitForSelector("#ctor-form:not([hidden])");
    assert.match(await page.locator("#bundle-info").innerText(), /^erc20 /);
    await page.fill("#ctor-args input[name='totalSupply']", "1000000");
    await page.click("#deploy-button");
    await page.waitForFunction(() => /Deployed at 0x/.test(document.querySelector("#deploy-status")?.textContent ?? ""), null, { timeout: 60_000 });
    address = /0x[0-9a-f]{64}/.exec(await page.locator("#deploy-status").innerText())![0];
    await page.waitForSelector("#contract-view:not([hidden])");
    const facts = await page.locator("#contract-facts").innerText();
    assert.ok(facts.includes(address), facts);
    assert.match(facts, /Ethereum address\s+0x[0-9a-fA-F]{40}/);
    assert.match(facts, /Deployer\s+5GrwvaEF/);
    // The contract's keys are the worker's answer.
    const view = (await (await fetch(`${dev.endpoint}/v1/contracts/${address}`)).json()) as { keys: { ethereum_address: string } };
    assert.ok(facts.includes(view.keys.ethereum_address));
    assert.ok(await page.locator('details[data-message="transfer"]').count());
  });

  test("a transfer shows its event, the new balance and a live log line", async () => {
    const sent = await call("transfer", "send", { to: "//Charlie", value: "250" });
    assert.match(sent, /^Returned "Ok"$/m);
    assert.match(sent, /Event Transfer .*"value":250/);
    const seq = Number(/Applied at seq (\d+)/.exec(sent)![1]);
    // The event's log line arrives on the live stream, at the transfer's seq.
    await page.waitForSelector(`#log-lines li[data-seq="${seq}"]`, { timeout: 15_000 });
    // Decoded with the contract's metadata.
    assert.match(await page.locator(`#log-lines li[data-seq="${seq}"]`).first().innerText(), /event command @\d+: Transfer \{.*"value":250\}/);
    const balance = await call("balance_of", "query", { owner: "//Charlie" });
    assert.match(balance, /Returned "?250"?/);
  });

  test("a revert and a wrong argument are shown in words", async () => {
    const reverted = await call("transfer", "send", { to: "//Bob", value: "999999999" });
    assert.match(reverted, /Reverted: the contract returned an error/);
    assert.match(reverted, /InsufficientBalance/);
    await page.locator('details[data-message="transfer"] input[name="value"]').fill("lots");
    await page.locator('details[data-message="transfer"] button[data-action="send"]').click();
    await page.waitForSelector("#notice:not([hidden])");
    assert.match(await page.locator("#notice-text").innerText(), /Check the arguments: value: `lots` is not a whole number/);
    await page.click("#notice-close");
    await page.fill("#address", "0x1234");
    await page.click("#open button");
    await page.waitForSelector("#notice:not([hidden])");
    assert.match(await page.locator("#notice-text").innerText(), /is not a contract id/);
    await page.click("#notice-close");
  });

  test("wallet sign-in: one prompt, then the contract sees the wallet's account", async () => {
    await page.click("#wallet");
    await page.waitForFunction(() => (document.querySelector("#account") as HTMLSelectElement).value.startsWith("wallet:"), null, { timeout: 15_000 });
    assert.match(await page.locator("#whoami").innerText(), new RegExp(`^${encodeAddress(charlie.publicKey, 42).slice(0, 8)}`));
    // Charlie (the wallet's account) sends 100 of the 250 Alice gave him.
    const sent = await call("transfer", "send", { to: "//Bob", value: "100" });
    assert.match(sent, /Event Transfer .*"value":100/);
    const left = await call("balance_of", "query", { owner: "//Charlie" });
    assert.match(left, /Returned "?150"?/);
    assert.equal(walletPrompts, 1, "the wallet was asked once for two requests");
    // Deploying needs the account's own key: said in words, not attempted.
    await page.click("#deploy-button");
    await page.waitForSelector("#notice:not([hidden])");
    assert.match(await page.locator("#notice-text").innerText(), /wallet session does not hold/);
    await page.click("#notice-close");
    await page.selectOption("#account", "//Alice");
  });

  test("writes a screenshot", async () => {
    const path = process.env.PHAT_CONSOLE_SCREENSHOT ?? join(dir, "console.png");
    await page.screenshot({ path, fullPage: true });
    const png = readFileSync(path);
    assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from("PNG")]);
    assert.ok(png.length > 20_000, `a ${png.length}-byte screenshot is too small to show the console`);
  });

  test("the SDK's example dApp calls the cluster from another origin", async () => {
    const built = spawnSync("npm", ["run", "bundle"], { cwd: join(REPO, "sdk"), encoding: "utf8" });
    assert.equal(built.status, 0, built.stderr);
    const files: Record<string, [string, Buffer]> = {
      "/dapp.html": ["text/html", readFileSync(join(REPO, "sdk/examples/dapp.html"))],
      "/phat-sdk.js": ["text/javascript", readFileSync(join(REPO, "sdk/dist/browser/phat-sdk.js"))],
    };
    const port = await freePorts(1);
    const server: Server = createServer((req, res) => {
      const f = files[(req.url ?? "").split("?")[0]];
      res.writeHead(f ? 200 : 404, { "content-type": f?.[0] ?? "text/plain" }).end(f?.[1] ?? "");
    });
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
    try {
      const dapp = await context.newPage();
      dapp.on("pageerror", (e) => problems.push(`dapp page error: ${e.message}`));
      await dapp.goto(`http://127.0.0.1:${port}/dapp.html?endpoint=${encodeURIComponent(dev.endpoint)}&contract=${address}`);
      await dapp.waitForFunction(() => document.querySelector("#balance")?.textContent !== "…" || document.querySelector("#error")?.textContent, null, { timeout: 30_000 });
      assert.equal(await dapp.locator("#error").innerText(), "");
      assert.equal(await dapp.locator("#supply").innerText(), "1,000,000");
      assert.equal(await dapp.locator("#balance").innerText(), "100");
      await dapp.click("#send");
      await dapp.waitForFunction(() => /applied at seq/.test(document.querySelector("#sent")?.textContent ?? ""), null, { timeout: 30_000 });
      await dapp.waitForFunction(() => document.querySelector("#balance")?.textContent === "110", null, { timeout: 10_000 });
    } finally {
      server.close();
    }
  });

  test("nothing went wrong in the pages (no script errors, no refused connections)", () => {
    assert.deepEqual(problems, []);
  });
});
