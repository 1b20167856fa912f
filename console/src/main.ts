/** The console: cluster health, deploy a bundle, call a contract by its metadata, and follow
 * its log, all through the SDK against the origin that served the page. */
import {
  Abi,
  ApiError,
  callerOf,
  ContractApi,
  decodeAddress,
  encodeAddress,
  fromHex,
  PhatClient,
  SessionSigner,
  Signer,
  toHex,
  type LogEntry,
  type Outcome,
  type RequestSigner,
  type WorkerInfo,
} from "../../sdk/dist/src/index.js";
import { byId, el, fillFacts, short } from "./dom.js";
import { argsForm, signature, type Message } from "./forms.js";
import { callError, inWords } from "./words.js";

/** The dev accounts `phat dev` funds. */
const DEV_ACCOUNTS = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"];
/** How often the cluster table refreshes (ms). */
const CLUSTER_REFRESH_MS = 2000;
/** Log lines kept on the page. */
const MAX_LOG_LINES = 500;

/** An account of an injected wallet (the polkadot.js extension interface). */
interface InjectedAccount {
  address: string;
  name?: string;
  type?: string;
}
/** What an injected wallet's `enable` answers. */
interface Injected {
  accounts: { get(): Promise<InjectedAccount[]> };
  signer: { signRaw?(raw: { address: string; data: string; type: "bytes" }): Promise<{ signature: string }> };
}
/** A wallet extension as it announces itself in `window.injectedWeb3`. */
interface InjectedExtension {
  enable(origin: string): Promise<Injected>;
}

/** A wallet account the page may sign in with, and its session once signed in. */
interface WalletAccount {
  extension: string;
  injected: Injected;
  account: InjectedAccount;
  session?: SessionSigner;
}

const state: {
  client?: PhatClient;
  signer: RequestSigner;
  contract?: ContractApi;
  logs?: AbortController;
  wallets: Map<string, WalletAccount>;
  /** The highest seq this page saw applied: queries wait for a worker that applied it. */
  seenSeq: number;
  /** The account option requests are made as (the select goes back to it when a switch fails). */
  account: string;
} = { signer: Signer.fromSuri("//Alice"), wallets: new Map(), seenSeq: 0, account: "//Alice" };

function saw(seq: number): void {
  state.seenSeq = Math.max(state.seenSeq, seq);
}

/** Shows `e` in words at the top of the page. */
function notice(e: unknown): void {
  byId("notice-text").textContent = inWords(e);
  byId("notice").hidden = false;
}

/** Runs `f` with `button` disabled, showing what goes wrong in words. */
async function busy(button: HTMLButtonElement | null, f: () => Promise<void>): Promise<void> {
  byId("notice").hidden = true;
  if (button) button.disabled = true;
  try {
    await f();
  } catch (e) {
    notice(e);
  } finally {
    if (button) button.disabled = false;
  }
}

function client(): PhatClient {
  if (!state.client) throw new Error("The console is not connected to the cluster yet: wait a moment, or reload the page.");
  return state.client;
}

// ---- accounts ----------------------------------------------------------------------------

function setUpAccounts(): void {
  const select = byId<HTMLSelectElement>("account");
  select.replaceChildren(...DEV_ACCOUNTS.map((n) => el("option", { value: `//${n}`, text: `//${n}` })));
  select.addEventListener("change", () =>
    void busy(null, () => useAccount(select.value)).then(() => {
      // A switch that failed (a wallet prompt refused) leaves the account as it was.
      select.value = state.account;
    }),
  );
  byId<HTMLButtonElement>("wallet").addEventListener("click", (e) => void busy(e.target as HTMLButtonElement, connectWallet));
  showWhoami();
}

async function useAccount(value: string): Promise<void> {
  const wallet = state.wallets.get(value);
  if (!wallet) {
    state.signer = Signer.fromSuri(value);
  } else {
    if (!wallet.session?.valid()) wallet.session = await signIn(wallet);
    state.signer = wallet.session;
  }
  state.account = value;
  showWhoami();
}

/** The signer for the next request: a wallet session about to expire is renewed first (one
 * wallet prompt). */
async function signer(): Promise<RequestSigner> {
  const wallet = state.wallets.get(state.account);
  if (wallet && !wallet.session?.valid()) await useAccount(state.account);
  return state.signer;
}

function showWhoami(): void {
  const account = callerOf(state.signer);
  const who = byId("whoami");
  who.textContent = short(encodeAddress(account, 42));
  who.title = `requests are made as ${encodeAddress(account, 42)} (${toHex(account)})`;
}

/** Asks the first injected wallet for its accounts and signs in with the first one. */
async function connectWallet(): Promise<void> {
  const injected = (window as unknown as { injectedWeb3?: Record<string, InjectedExtension> }).injectedWeb3 ?? {};
  const names = Object.keys(injected);
  if (names.length === 0) {
    throw new Error("No wallet extension is installed in this browser. Install polkadot{.js}, Talisman or SubWallet and reload the page, or sign as a dev account.");
  }
  const extension = names[0];
  const api = await injected[extension].enable("phat console");
  // Substrate (sr25519) accounts only: wallets also offer Ethereum and ed25519 ones.
  const accounts = (await api.accounts.get()).filter((a) => !a.type || a.type === "sr25519");
  if (accounts.length === 0) throw new Error(`The ${extension} wallet shows this page no sr25519 account: add one, or allow this site in the wallet.`);
  const select = byId<HTMLSelectElement>("account");
  for (const account of accounts) {
    const key = `wallet:${account.address}`;
    if (state.wallets.has(key)) continue;
    state.wallets.set(key, { extension, injected: api, account });
    select.append(el("option", { value: key, text: `${account.name ?? short(account.address)} (${extension})` }));
  }
  await useAccount(`wallet:${accounts[0].address}`);
  select.value = state.account;
}

/** One wallet prompt: a certificate for a session key the page keeps in memory. */
async function signIn(w: WalletAccount): Promise<SessionSigner> {
  const signRaw = w.injected.signer.signRaw;
  if (!signRaw) throw new Error(`The ${w.extension} wallet cannot sign raw bytes, which sign-in needs.`);
  return SessionSigner.signIn(client().clusterId, decodeAddress(w.account.address), async (payload) => {
    const r = await signRaw.call(w.injected.signer, { address: w.account.address, data: toHex(payload), type: "bytes" });
    return fromHex(r.signature, "the wallet's signature", 64);
  });
}

// ---- cluster -----------------------------------------------------------------------------

/** A worker as `/v1/cluster` (on `phat dev`'s endpoint) describes it. */
interface Member {
  url: string;
  up: boolean;
  error?: string;
  name?: string;
  seq?: number;
  ledger_head?: number;
  state_root?: string;
  diverged?: string | null;
}

async function members(): Promise<Member[]> {
  const r = await fetch("/v1/cluster");
  if (r.ok) {
    const body = (await r.json()) as { members?: Member[] };
    if (Array.isArray(body.members)) return body.members;
  }
  // A worker serving the console itself: the cluster as this worker sees it.
  const r2 = await fetch("/v1/info");
  if (!r2.ok) return [{ url: location.origin, up: false, error: `answered ${r2.status}` }];
  const info = (await r2.json()) as WorkerInfo;
  return [{ url: location.origin, up: true, ...info }];
}

async function refreshCluster(): Promise<void> {
  const a = byId("agreement");
  const rows = byId("workers").querySelector("tbody")!;
  let ms: Member[];
  try {
    ms = await members();
  } catch (e) {
    rows.replaceChildren();
    a.textContent = `The cluster does not answer (${(e as Error).message}). Is \`phat dev\` still running?`;
    a.className = "status bad";
    return;
  }
  const up = ms.filter((m) => m.up && !m.diverged);
  const diverged = ms.filter((m) => m.up && m.diverged);
  const down = ms.filter((m) => !m.up);
  // Workers are in step when they applied everything the ledger holds.
  const head = Math.max(0, ...ms.map((m) => m.ledger_head ?? 0), ...up.map((m) => m.seq ?? 0));
  const top = Math.max(0, ...up.map((m) => m.seq ?? 0));
  const atTop = up.filter((m) => m.seq === top);
  const roots = new Set(atTop.map((m) => m.state_root));
  rows.replaceChildren(
    ...ms.map((m) => {
      const [status, cls] = !m.up
        ? [`not answering${m.error ? `: ${m.error}` : ""}`, "bad"]
        : m.diverged
          ? [`${m.diverged === "revoked" ? "revoked" : `diverged (${m.diverged})`}: answers nothing until resynced`, "bad"]
          : m.seq === head
            ? ["in step", "ok"]
            : [`catching up (${head - (m.seq ?? 0)} behind the ledger)`, "warn"];
      return el(
        "tr",
        { "data-worker": m.url },
        el("td", { text: m.name ?? "" }),
        el("td", { class: "mono", text: m.url }),
        el("td", { text: m.seq === undefined ? "" : String(m.seq) }),
        el("td", { text: m.ledger_head === undefined ? "" : String(m.ledger_head) }),
        el("td", { class: "mono", title: m.state_root ?? "", text: m.state_root ? short(m.state_root) : "" }),
        el("td", { class: cls, text: status }),
      );
    }),
  );
  const trouble = [
    ...diverged.map((m) => `${m.name ?? m.url} diverged`),
    ...down.map((m) => `${m.name ?? m.url} does not answer`),
  ];
  if (up.length === 0) {
    a.textContent = `No worker answers with the cluster's state${trouble.length ? ` (${trouble.join("; ")})` : ""}.`;
    a.className = "status bad";
  } else if (roots.size > 1) {
    a.textContent = `The workers at seq ${top} disagree on the state root: see which ones below.`;
    a.className = "status bad";
  } else if (atTop.length === ms.length && top === head) {
    a.textContent = `All ${ms.length} worker${ms.length === 1 ? "" : "s"} agree: seq ${top}, state root ${short([...roots][0] ?? "")}.`;
    a.className = "status ok";
  } else {
    const behind = top < head ? `; the ledger holds ${head - top} more entr${head - top === 1 ? "y" : "ies"} to apply` : "";
    a.textContent = `${atTop.length} of ${ms.length} workers agree at seq ${top}${behind}${trouble.length ? `; ${trouble.join("; ")}` : ""}.`;
    a.className = diverged.length || down.length ? "status bad" : "status warn";
  }
}

function showClusterFacts(info: WorkerInfo): void {
  fillFacts(byId("cluster-facts"), [
    ["Cluster id", info.cluster_key],
    ["Encryption", info.encryption ? "on: commands, queries and results are sealed" : "OFF: requests travel in clear"],
    ["Attestation", `${info.attestation.provider}, measurement ${short(info.attestation.measurement)}`],
    ["System contract", info.system_contract ?? "none"],
    ["Version", info.version],
  ]);
}

// ---- deploy ------------------------------------------------------------------------------

function setUpDeploy(): void {
  let bundle: Record<string, unknown> | undefined;
  let current: { ctor: Message; values: () => unknown[] } | undefined;
  const ctorSelect = byId<HTMLSelectElement>("ctor");
  let ctors: Message[] = [];
  let abi: Abi | undefined;

  const showArgs = () => {
    if (!abi) return;
    const ctor = ctors[ctorSelect.selectedIndex];
    const { form, values } = argsForm(ctor, "ctor", abi.registry);
    byId("ctor-args").replaceChildren(...form.childNodes);
    current = { ctor, values: () => values() };
  };

  byId<HTMLInputElement>("bundle").addEventListener("change", (e) =>
    void busy(null, async () => {
      byId("ctor-form").hidden = true;
      byId("deploy-status").textContent = "";
      const file = (e.target as HTMLInputElement).files?.[0];
      if (!file) return;
      const json = JSON.parse(await file.text()) as Record<string, unknown>;
      const wasm = (json.source as { wasm?: string } | undefined)?.wasm;
      if (!wasm) throw new Error(`${file.name} has no code (no source.wasm): pick the .contract bundle, not the metadata .json.`);
      abi = new Abi(json);
      bundle = json;
      ctors = abi.constructors;
      byId("bundle-info").textContent = `${abi.info.contract.name.toString()} ${abi.info.contract.version.toString()}: ${(wasm.length - 2) / 2} bytes of code, ${abi.messages.length} messages`;
      ctorSelect.replaceChildren(...ctors.map((c) => el("option", { text: signature(c) })));
      const preferred = ctors.findIndex((c) => c.method === "new");
      ctorSelect.selectedIndex = Math.max(preferred, 0);
      showArgs();
      byId("ctor-form").hidden = false;
    }),
  );
  ctorSelect.addEventListener("change", showArgs);

  byId<HTMLButtonElement>("deploy-button").addEventListener("click", (e) =>
    void busy(e.target as HTMLButtonElement, async () => {
      const status = byId("deploy-status");
      status.className = "status";
      status.textContent = "";
      if (!bundle || !current) throw new Error("Pick a .contract bundle first.");
      if (!(state.signer instanceof Signer)) {
        throw new Error("Deploying signs the code upload with the account's own key, which a wallet session does not hold: sign as a dev account to deploy, or use `phat deploy`.");
      }
      const args = current.values();
      status.textContent = "Uploading the code and instantiating it…";
      const { contract, receipt } = await ContractApi.deploy(client(), state.signer, bundle, { constructorName: current.ctor.identifier, args });
      saw(receipt.seq);
      status.textContent = `Deployed at ${contract.address} (seq ${receipt.seq}).`;
      status.className = "status ok";
      remember(contract);
      await openContract(contract);
    }).then(() => {
      const status = byId("deploy-status");
      if (!byId("notice").hidden && status.className === "status") {
        status.textContent = "Not deployed.";
        status.className = "status bad";
      }
    }),
  );
}

// ---- contracts ---------------------------------------------------------------------------

function recentKey(): string {
  return `phat-console/recent/${client().info.cluster_key}`;
}

function recent(): { address: string; name: string }[] {
  try {
    return JSON.parse(localStorage.getItem(recentKey()) ?? "[]") as { address: string; name: string }[];
  } catch {
    return [];
  }
}

function remember(c: ContractApi): void {
  const list = [{ address: c.address, name: c.abi.info.contract.name.toString() }, ...recent().filter((r) => r.address !== c.address)].slice(0, 10);
  localStorage.setItem(recentKey(), JSON.stringify(list));
  showRecent();
}

function showRecent(): void {
  byId("recent").replaceChildren(
    ...recent().map((r) =>
      el(
        "li",
        {},
        `${r.name} `,
        el("a", { href: `#${r.address}`, onclick: (e: Event) => (e.preventDefault(), void open(r.address)), text: short(r.address) }),
      ),
    ),
  );
}

function setUpOpen(): void {
  byId("open").addEventListener("submit", (e) => {
    e.preventDefault();
    void open(byId<HTMLInputElement>("address").value.trim());
  });
}

async function open(address: string): Promise<void> {
  await busy(byId("open").querySelector("button"), async () => {
    try {
      fromHex(address, "contract id", 32);
    } catch {
      throw new Error(`\`${address}\` is not a contract id: it is 0x and 64 hex digits (the address \`phat deploy\` printed).`);
    }
    const c = await ContractApi.at(client(), address);
    remember(c);
    await openContract(c);
  });
}

async function openContract(c: ContractApi): Promise<void> {
  state.contract = c;
  byId<HTMLInputElement>("address").value = c.address;
  history.replaceState(null, "", `#${c.address}`);
  const view = await client().contract(c.address);
  // Another contract was opened while this one loaded: that one is shown.
  if (state.contract !== c) return;
  const info = c.abi.info.contract;
  byId("contract-name").textContent = `${info.name.toString()} ${info.version.toString()}`;
  fillFacts(byId("contract-facts"), [
    ["Contract id", c.address],
    ["Code hash", view.code_hash],
    ["Deployer", `${encodeAddress(fromHex(view.deployer), 42)} (${short(view.deployer)})`],
    ["Ethereum address", view.keys.ethereum_address],
    ["secp256k1 key", view.keys.secp256k1],
    ["sr25519 key", view.keys.sr25519],
    ["ed25519 key", view.keys.ed25519],
  ]);
  byId("messages").replaceChildren(el("h3", { text: "Messages" }), ...c.abi.messages.map((m, i) => messageView(c, m, i)));
  byId("contract-view").hidden = false;
  void followLogs(c.address);
}

function messageView(c: ContractApi, m: Message, i: number): HTMLElement {
  const { form, values } = argsForm(m, `msg-${i}`, c.abi.registry);
  const out = el("pre", { class: "result", hidden: true });
  const run = (send: boolean) => (e: Event) =>
    void busy(e.target as HTMLButtonElement, async () => {
      const args = values();
      out.hidden = false;
      out.className = "result";
      out.textContent = send ? "Sending; waiting for the receipt…" : "Querying…";
      const who = await signer();
      if (send) {
        const r = await c.tx(who, m.identifier, args);
        saw(r.receipt.seq);
        showOutcome(out, r, `Applied at seq ${r.receipt.seq}; gas ${r.receipt.gas_used}.`);
      } else {
        // Answered by a worker that applied everything this page saw (a transfer just sent).
        const r = await c.query(who, m.identifier, args, { minSeq: state.seenSeq });
        showOutcome(out, r, `Query answered at seq ${r.response.seq}; gas ${r.response.gas_used}; nothing was stored.`);
      }
    }).then(() => {
      if (out.textContent?.endsWith("…")) out.hidden = true;
    });
  return el(
    "details",
    { class: "message", "data-message": m.identifier },
    el("summary", {}, signature(m), el("span", { class: m.isMutating ? "badge" : "badge ro", text: m.isMutating ? "changes state" : "read-only" })),
    m.docs.length ? el("p", { class: "muted", text: m.docs.join(" ") }) : null,
    form,
    el(
      "div",
      { class: "buttons" },
      el("button", { type: "button", class: m.isMutating ? "secondary" : "", "data-action": "query", onclick: run(false), text: "Query" }),
      m.isMutating ? el("button", { type: "button", "data-action": "send", onclick: run(true), text: "Send" }) : null,
    ),
    out,
  );
}

/** ink! 4/5 answer `Result<T, LangError>`: show `T` when the message was dispatched. */
function unwrapOk(v: unknown): unknown {
  if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "Ok" in v) return (v as { Ok: unknown }).Ok;
  return v;
}

function showOutcome(out: HTMLElement, r: Outcome, where: string): void {
  const lines: string[] = [];
  if (r.error) {
    lines.push(`Failed: ${callError(r.error.kind, r.error.message)}`);
    out.className = "result bad";
  } else if (r.reverted) {
    lines.push("Reverted: the contract returned an error, and its changes were dropped.");
    lines.push(`Returned ${JSON.stringify(unwrapOk(r.output?.text), null, 2)}`);
    out.className = "result warn";
  } else {
    lines.push(`Returned ${r.output?.text === null ? "nothing" : JSON.stringify(unwrapOk(r.output?.text), null, 2)}`);
    out.className = "result ok";
  }
  for (const e of r.events) lines.push(`Event ${e.name} ${JSON.stringify(e.args)}`);
  lines.push(where);
  out.textContent = lines.join("\n");
}

// ---- logs --------------------------------------------------------------------------------

async function followLogs(address: string): Promise<void> {
  state.logs?.abort();
  const ac = new AbortController();
  state.logs = ac;
  const list = byId("log-lines");
  list.replaceChildren();
  byId("logs-state").textContent = `of ${short(address)}: live`;
  try {
    // The log is its deployer's and the readers it allows: read as the chosen account.
    const reader = await signer();
    const query = { tail: true, limit: MAX_LOG_LINES };
    for await (const entry of client().followLogs(reader, address, { query, signal: ac.signal })) appendLog(list, entry);
    if (!ac.signal.aborted) byId("logs-state").textContent = `of ${short(address)}: following ended (reopen the contract to follow again)`;
  } catch (e) {
    if (ac.signal.aborted) return;
    if (e instanceof ApiError && e.kind === "not_log_reader") {
      byId("logs-state").textContent = `of ${short(address)}: only its deployer and the readers it allows read it (choose that account)`;
      return;
    }
    byId("logs-state").textContent = `of ${short(address)}: reading it failed`;
    notice(e);
  }
}

/** An event's log line decoded with the open contract's metadata (the raw line otherwise). */
function eventText(e: LogEntry): string {
  const m = /^topics=\[([^\]]*)\] data=(0x[0-9a-f]*)$/.exec(e.message);
  const c = state.contract;
  if (!m || !c || c.address !== e.contract) return e.message;
  try {
    const d = c.decodeEvent({ contract: e.contract, topics: m[1] ? m[1].split(",") : [], data: m[2] });
    return `${d.name} ${JSON.stringify(d.args)}`;
  } catch {
    return e.message;
  }
}

function appendLog(list: HTMLElement, e: LogEntry): void {
  const time = new Date(e.timestamp).toISOString().slice(11, 23);
  list.append(
    el(
      "li",
      { "data-seq": e.seq === null ? "" : String(e.seq) },
      el("span", { class: "muted", text: `${time} ` }),
      el("span", { class: `lvl ${e.level === "error" ? "bad" : e.level === "warn" ? "warn" : ""}`, text: e.level }),
      ` ${e.origin}${e.seq === null ? "" : ` @${e.seq}`}: ${e.level === "event" ? eventText(e) : e.message}`,
    ),
  );
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

// ---- start -------------------------------------------------------------------------------

async function main(): Promise<void> {
  byId("endpoint").textContent = location.origin;
  byId("notice-close").addEventListener("click", () => (byId("notice").hidden = true));
  setUpAccounts();
  setUpDeploy();
  setUpOpen();
  void refreshCluster();
  setInterval(() => void refreshCluster(), CLUSTER_REFRESH_MS);
  try {
    state.client = await PhatClient.connect(location.origin);
  } catch (e) {
    notice(e);
    return;
  }
  showClusterFacts(state.client.info);
  showRecent();
  const hash = location.hash.slice(1);
  if (hash.startsWith("0x")) await open(hash);
  document.body.dataset.ready = "1";
}

void main();
