/** `PhatClient`: one endpoint of a cluster (a worker, or `phat dev`'s endpoint). It checks the
 * worker's attestation before sending anything, seals commands to the cluster key and queries
 * to the worker's key (in a session reused while it lasts), and opens sealed results. The
 * same rules as the Rust client (`crates/client`). */
import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2b } from "@noble/hashes/blake2.js";
import { concatBytes, equalBytes, fromHex, toHex, u64le, utf8ToBytes } from "./bytes.js";
import type { CodecType } from "scale-ts";
import * as codec from "./codec.js";
import { seal, type SessionKeys } from "./envelope.js";
import { callerOf, DEFAULT_TTL_MS, signRequest, type RequestSigner } from "./request.js";
import type { Signer } from "./signer.js";

/** An attestation report as `/v1/info` shows it (hex strings). */
export interface AttestationReport {
  provider: string;
  measurement: string;
  worker_key: string;
  cluster_key: string | null;
  encryption: boolean;
  /** The worker's ed25519 signing key (its votes are signed with it), `null` if none. */
  signing_key?: string | null;
  issued_at: number;
  signer: string;
  signature: string;
}

/** A worker's `/v1/info`. */
export interface WorkerInfo {
  worker_key: string;
  cluster_key: string;
  epoch?: number;
  envelope_key?: string;
  encryption: boolean;
  attestation: AttestationReport;
  version: string;
  name: string;
  seq: number;
  state_root: string;
  ledger_head: number;
  system_contract?: string;
  diverged?: string;
}

/** A call's outcome: output, typed error. */
export type CallResult =
  | { ok: { data: string; reverted: boolean; address: string | null } }
  | { err: { kind: string; message: string } };

/** An event a call emitted. */
export interface EventRecord {
  contract: string;
  topics: string[];
  data: string;
}

/** A query's answer. */
export interface QueryResponse {
  result: CallResult;
  gas_used: number;
  events: EventRecord[];
  debug_message: string;
  seq: number;
  state_root: string;
  /** The storage deposit the call would take from the signer (negative: give back), a
   * decimal string (absent from workers before estimates). */
  storage_deposit?: string;
}

/** What a command is estimated to cost ([`PhatClient.estimate`]). */
export interface Estimate {
  /** Gas the call used as a query. */
  gasUsed: bigint;
  /** The gas limit to send the command with: a quarter more, and a margin. */
  gasLimit: bigint;
  /** The storage deposit it would take from the signer (negative: give back). */
  storageDeposit: bigint;
  /** How the query ended. */
  result: CallResult;
}

/** Gas added to an estimate's limit besides a quarter of what the query used. */
export const ESTIMATE_MARGIN = 1_000_000n;

/** A command's receipt, identical on every worker (its result opened for the caller). */
export interface Receipt {
  seq: number;
  request: string;
  caller: string;
  timestamp: number;
  result: CallResult;
  events: EventRecord[];
  gas_used: number;
  state_root: string;
}

/** The answer to a command submission. */
export interface Submitted {
  seq: number;
  request: string;
  receipt?: Receipt | null;
}

/** A line of a contract's log. */
export interface LogEntry {
  contract: string;
  /** A pink log level (`error` … `trace`), `debug`, or `event`, `output`, `query`, `trigger`. */
  level: string;
  /** `command` or `query`. */
  origin: string;
  /** The command's seq (`null` for a query's records). */
  seq: number | null;
  /** Unix ms: ledger time for commands, wall time for queries. */
  timestamp: number;
  message: string;
  /** The record's place in the contract's log. */
  index?: number | null;
  /** For an `event` record, the event (decode it with the contract's metadata). */
  event?: EventRecord;
}

/** The kinds of log records a read can select. */
export type LogKindName = "log" | "event" | "output" | "query" | "trigger";

/** Which records of a contract's log to read (everything optional). */
export interface LogQuery {
  /** Only records with a greater index. */
  after?: number;
  /** Only records at or after this time (Unix ms). */
  since?: number;
  /** Only these kinds (every kind when absent or empty). */
  kinds?: LogKindName[];
  /** At most this many records (workers cap a page at 1,000). */
  limit?: number;
  /** The last `limit` matching records instead of the first. */
  tail?: boolean;
  /** With nothing to answer yet, wait up to this long (ms, at most 25,000) for a record. */
  waitMs?: number;
}

/** The most records one log read answers with. */
export const MAX_LOG_PAGE = 1000;

const LOG_KIND_TAGS = { log: "Log", event: "Event", output: "Output", query: "Query", trigger: "Trigger" } as const;

/** A decoded `LogRecord` at `index` as [`LogEntry`]: an `event` record with its event. */
function logEntry(index: bigint, r: CodecType<typeof codec.LogRecord>): LogEntry {
  const contract = toHex(r.contract);
  const entry: LogEntry = {
    contract,
    level: r.level,
    origin: r.origin.tag.toLowerCase(),
    seq: r.seq === undefined ? null : Number(r.seq),
    timestamp: Number(r.timestamp),
    message: r.message,
    index: Number(index),
  };
  const m = r.level === "event" ? /^topics=\[([^\]]*)\] data=(0x[0-9a-f]*)$/.exec(r.message) : null;
  if (m) entry.event = { contract, topics: m[1] ? m[1].split(",") : [], data: m[2] };
  return entry;
}

/** A contract's public keys: what it signs with, and the Ethereum address it sends from. */
export interface ContractKeys {
  sr25519: string;
  ed25519: string;
  secp256k1: string;
  /** EIP-55 checksummed. */
  ethereum_address: string;
}

/** A deployed contract as `/v1/contracts/{id}` shows it. */
export interface ContractView {
  id: string;
  code_hash: string;
  deployer: string;
  keys: ContractKeys;
}

/** What the worker said no to: its HTTP status and typed error (`kind` is stable). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(`${kind}: ${message}`);
  }
}

/** The endpoint did not answer (down, wrong address, or not a phat worker). */
export class UnreachableError extends Error {
  override name = "UnreachableError";
}

/** The worker's attestation did not satisfy this client: nothing was sent to it. */
export class UntrustedError extends Error {
  override name = "UntrustedError";
}

/** What the client trusts. */
export interface ClientOptions {
  /** The dev attestation root (ed25519 public key, 0x hex) every report must be signed by.
   * Without it, a `dev` report is accepted only from a loopback endpoint, checked against the
   * key it names itself (an integrity check that proves nothing about who made it). */
  devRoot?: string;
  /** The software measurement (0x hex) workers must report. */
  measurement?: string;
  /** Accept a cluster that does not encrypt (insecure; off by default). */
  allowUnencrypted?: boolean;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** Accept hardware workers (`sgx-dcap`, `tdx-dcap`): a verifier that throws for a report it
   * refuses, `teeVerifier(policy)` from `@phat/sdk/tee`. Without it they are refused. */
  tee?: (report: AttestationReport) => unknown;
}

const ATTESTATION_DOMAIN = utf8ToBytes("phat/attestation/v2");

/** The bytes a report's signer signs (`phat_crypto::attest::signed_payload`). */
export function reportPayload(r: AttestationReport): Uint8Array {
  const option = (hex: string | null | undefined, name: string) =>
    hex === null || hex === undefined ? Uint8Array.of(0) : concatBytes(Uint8Array.of(1), fromHex(hex, name, 32));
  return concatBytes(
    ATTESTATION_DOMAIN,
    codec.VecU8.enc(utf8ToBytes(r.provider)),
    fromHex(r.measurement, "measurement", 32),
    fromHex(r.worker_key, "worker_key", 32),
    option(r.cluster_key, "cluster_key"),
    Uint8Array.of(r.encryption ? 1 : 0),
    option(r.signing_key, "signing_key"),
    u64le(BigInt(r.issued_at)),
    fromHex(r.signer, "signer", 32),
  );
}

function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === "localhost" || host === "[::1]" || host === "::1" || /^127\./.test(host);
}

/** Whether `e` says the endpoint is down (unreachable, or a gateway or worker that cannot
 * serve now), rather than that the request was refused. */
function isDown(e: unknown): boolean {
  return e instanceof UnreachableError || (e instanceof ApiError && (e.status === 502 || e.status === 503 || e.status === 504));
}

/** Checks `info`'s report under `options` for `endpoint`; throws [`UntrustedError`]. */
export function checkWorker(endpoint: string, info: WorkerInfo, options: ClientOptions = {}): void {
  const r = info.attestation;
  if (r.provider === "sgx-dcap" || r.provider === "tdx-dcap") {
    if (options.tee === undefined) {
      throw new UntrustedError(
        `the worker presents a \`${r.provider}\` attestation and no TEE policy is configured to judge it (tee: teeVerifier(policy) from @phat/sdk/tee)`,
      );
    }
    options.tee(r);
  } else if (r.provider !== "dev") {
    throw new UntrustedError(`the worker presents a \`${r.provider}\` attestation, which this SDK does not verify`);
  } else {
    checkDevReport(endpoint, r, options);
  }
  checkAnnounced(endpoint, info, options);
}

/** A `dev` report: signed by the pinned root, or, from a loopback endpoint, by the key it names. */
function checkDevReport(endpoint: string, r: AttestationReport, options: ClientOptions): void {
  if (options.devRoot !== undefined) {
    if (r.signer.toLowerCase() !== options.devRoot.toLowerCase()) {
      throw new UntrustedError(`the report is signed by ${r.signer}, not by the pinned dev root ${options.devRoot}`);
    }
  } else if (!isLoopback(endpoint)) {
    throw new UntrustedError(
      `${endpoint} presents a dev attestation and no dev root is pinned: pass devRoot (anybody can make a dev root)`,
    );
  }
  let valid = false;
  try {
    valid = ed25519.verify(fromHex(r.signature, "signature", 64), reportPayload(r), fromHex(r.signer, "signer", 32));
  } catch {
    valid = false;
  }
  if (!valid) throw new UntrustedError("the report's signature does not verify (forged or altered)");
}

/** What every report must also hold: the pinned measurement, the keys the worker announces,
 * and encryption unless plaintext is allowed. */
function checkAnnounced(endpoint: string, info: WorkerInfo, options: ClientOptions): void {
  const r = info.attestation;
  if (options.measurement !== undefined && r.measurement.toLowerCase() !== options.measurement.toLowerCase()) {
    throw new UntrustedError(`the worker runs software ${r.measurement} where ${options.measurement} is required`);
  }
  const sealing = info.envelope_key ?? info.cluster_key;
  if (r.worker_key !== info.worker_key || r.cluster_key !== sealing || r.encryption !== info.encryption) {
    throw new UntrustedError("the keys the worker announces are not the ones its report attests");
  }
  if (!info.encryption && !options.allowUnencrypted) {
    throw new UntrustedError(`${endpoint} does not encrypt: pass allowUnencrypted to talk to it anyway`);
  }
}

/** The client's half of a query session. */
interface Session {
  id: Uint8Array;
  /** The key that opened it: only requests of that signer travel in it. */
  signer: Uint8Array;
  caller: Uint8Array;
  keys: SessionKeys;
  next: bigint;
  renewAt: number;
}

/** A connection to a cluster through one of its endpoints at a time. */
export class PhatClient {
  private session: Session | undefined;
  private current = 0;

  private constructor(
    private readonly endpoints: string[],
    private worker: WorkerInfo,
    private readonly options: ClientOptions,
  ) {}

  /** Connects to `endpoint` (e.g. `http://127.0.0.1:8700`), or to the first of several
   * endpoints of one cluster that answers: reads `/v1/info` and checks the worker's
   * attestation. With several, a request whose endpoint is down (unreachable, or 502/503/504)
   * goes to the next one that answers, after its attestation is checked and it is found to
   * serve the same cluster; a command is sent again with the same signature, so it is
   * applied at most once. An endpoint whose attestation fails is never skipped over: the
   * client refuses it. */
  static async connect(endpoint: string | string[], options: ClientOptions = {}): Promise<PhatClient> {
    const list = (Array.isArray(endpoint) ? endpoint : [endpoint]).map((e) => e.replace(/\/+$/, ""));
    if (list.length === 0) throw new TypeError("no endpoint to connect to");
    const client = new PhatClient(list, undefined as never, options);
    let last: unknown;
    for (let i = 0; i < list.length; i++) {
      client.current = i;
      try {
        client.worker = await client.trustedInfo();
        return client;
      } catch (e) {
        if (!isDown(e)) throw e;
        last = e;
      }
    }
    throw last;
  }

  /** The endpoint requests go to now. */
  get endpoint(): string {
    return this.endpoints[this.current];
  }

  /** Moves to the next endpoint that answers, is trusted and serves the same cluster;
   * `false` when none does. A session is with one worker: it is opened again there. */
  private async failover(): Promise<boolean> {
    const [from, cluster] = [this.current, this.worker.cluster_key];
    for (let step = 1; step < this.endpoints.length; step++) {
      this.current = (from + step) % this.endpoints.length;
      let info: WorkerInfo;
      try {
        info = await this.trustedInfo();
      } catch (e) {
        if (isDown(e)) continue;
        this.current = from;
        throw e;
      }
      if (info.cluster_key !== cluster) {
        this.current = from;
        throw new UntrustedError(`${this.endpoints[(from + step) % this.endpoints.length]} serves another cluster (${info.cluster_key}, not ${cluster})`);
      }
      this.worker = info;
      this.session = undefined;
      return true;
    }
    this.current = from;
    return false;
  }

  /** Runs `op`, and again on the next endpoints while the one it ran on is down. */
  private async withFailover<T>(op: () => Promise<T>): Promise<T> {
    for (let tried = 1; ; tried++) {
      try {
        return await op();
      } catch (e) {
        if (!isDown(e) || tried >= this.endpoints.length || !(await this.failover())) throw e;
      }
    }
  }

  /** The worker's info as checked at connection. */
  get info(): WorkerInfo {
    return this.worker;
  }

  /** The cluster's id (epoch 0's envelope key), which requests sign. */
  get clusterId(): Uint8Array {
    return fromHex(this.worker.cluster_key, "cluster_key", 32);
  }

  private async http(path: string, init?: RequestInit): Promise<Response> {
    const f = this.options.fetch ?? fetch;
    try {
      return await f(this.endpoint + path, init);
    } catch (e) {
      throw new UnreachableError(`${this.endpoint} does not answer (${(e as Error).message})`);
    }
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    const resp = await this.http(path, init);
    const text = await resp.text();
    let body: unknown;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      throw new UnreachableError(`${this.endpoint}${path} answered ${resp.status} with something that is not JSON`);
    }
    if (!resp.ok) {
      const err = (body as { error?: { kind?: string; message?: string } } | null)?.error;
      throw new ApiError(resp.status, err?.kind ?? "http_error", err?.message ?? text.slice(0, 200));
    }
    return body as T;
  }

  private post<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  }

  /** The worker's info, checked again. */
  async trustedInfo(): Promise<WorkerInfo> {
    const info = await this.json<WorkerInfo>("/v1/info");
    checkWorker(this.endpoint, info, this.options);
    return info;
  }

  /** Runs `call` as a query signed by `signer` (sealed in a session when the cluster
   * encrypts); answered once the worker applied `minSeq` when given. */
  query(signer: RequestSigner, call: codec.CallValue, options: { minSeq?: number } = {}): Promise<QueryResponse> {
    return this.withFailover(() => this.queryOnce(signer, call, options));
  }

  private async queryOnce(signer: RequestSigner, call: codec.CallValue, options: { minSeq?: number }): Promise<QueryResponse> {
    const minSeq = options.minSeq === undefined ? undefined : BigInt(options.minSeq);
    if (!this.worker.encryption) {
      const req = signRequest(signer, this.clusterId, "Query", call);
      return this.post<QueryResponse>("/v1/query", { ...jsonRequest(req), min_seq: options.minSeq ?? null });
    }
    const s = this.session;
    // A session speaks for the signer (and certificate) that opened it: reuse it only for that.
    if (s !== undefined && s.renewAt > Date.now() && equalBytes(s.signer, signer.publicKey) && equalBytes(s.caller, callerOf(signer))) {
      const counter = s.next++;
      const plain = codec.SessionQuery.enc({ call, min_seq: minSeq });
      try {
        return await this.sealedQuery(s, counter, s.keys.sealRequest(counter, plain));
      } catch (e) {
        if (!(e instanceof ApiError && (e.kind === "unknown_session" || e.kind === "session_expired"))) throw e;
      }
    }
    const req = signRequest(signer, this.clusterId, "Query", call);
    const plain = codec.QueryOpen.enc({ request: req, min_seq: minSeq });
    const { sealed, keys } = seal(fromHex(this.worker.worker_key, "worker_key", 32), "query", plain);
    // The worker ends the session when the request, or its certificate, expires.
    const bodyExpiry = Number(codec.RequestBody.dec(req.body).expires_at);
    const expiresAt = Math.min(bodyExpiry, Number(signer.certificate?.expires_at ?? bodyExpiry));
    const session: Session = {
      id: sealed.ephemeral,
      signer: signer.publicKey,
      caller: callerOf(signer),
      keys,
      next: 1n,
      renewAt: expiresAt - 10_000,
    };
    const response = await this.sealedQuery(session, 0n, sealed.ciphertext);
    this.session = session;
    return response;
  }

  /** Sends message `counter` of `s` and opens the answer; the answer to an opening carries
   * the worker's salt, which `s`'s reply key is bound to from then on. */
  private async sealedQuery(s: Session, counter: bigint, ciphertext: Uint8Array): Promise<QueryResponse> {
    const reply = await this.post<{ counter: number; ciphertext: string; salt?: string }>("/v1/query/sealed", {
      worker: this.worker.worker_key,
      session: toHex(s.id),
      counter: Number(counter),
      ciphertext: toHex(ciphertext),
    });
    if (BigInt(reply.counter) !== counter) {
      throw new UnreachableError(`the worker answered message ${reply.counter} for message ${counter}`);
    }
    if (counter === 0n) {
      if (reply.salt === undefined) throw new UnreachableError("the answer to a session's opening carries no salt");
      s.keys = s.keys.withReplySalt(fromHex(reply.salt, "salt", 32));
    }
    const answer = JSON.parse(new TextDecoder().decode(s.keys.openReply(counter, fromHex(reply.ciphertext)))) as
      | { ok: QueryResponse }
      | { err: { status: number; error: { kind: string; message: string } } };
    if ("err" in answer) throw new ApiError(answer.err.status, answer.err.error.kind, answer.err.error.message);
    return answer.ok;
  }

  /** Signs `call` as a command of `signer` and submits it; with `wait` (the default),
   * answers once its receipt exists, the result opened. */
  submit(signer: RequestSigner, call: codec.CallValue, options: { wait?: boolean } = {}): Promise<Submitted> {
    const wait = options.wait ?? true;
    // Signed once: sent again to another endpoint, it is the same command (its nonce makes a
    // second copy a replay), never a second one.
    const req = signRequest(signer, this.clusterId, "Command", call);
    return this.withFailover(() => this.submitOnce(req, wait));
  }

  private async submitOnce(req: codec.SignedRequestValue, wait: boolean): Promise<Submitted> {
    if (!this.worker.encryption) {
      return this.post<Submitted>(`/v1/commands?wait=${wait}`, jsonRequest(req));
    }
    for (let attempt = 0; ; attempt++) {
      const key = this.worker.envelope_key ?? this.worker.cluster_key;
      const { sealed, keys } = seal(fromHex(key, "cluster key", 32), "command", codec.SignedRequest.enc(req));
      try {
        const submitted = await this.post<Submitted>(`/v1/commands/sealed?wait=${wait}`, {
          version: sealed.version,
          ephemeral: toHex(sealed.ephemeral),
          ciphertext: toHex(sealed.ciphertext),
        });
        if (submitted.receipt) submitted.receipt.result = openResult(keys, submitted.receipt.result as SealedOr);
        return submitted;
      } catch (e) {
        // The cluster rotated its key since this client read it: read it again, once.
        if (e instanceof ApiError && e.kind === "stale_cluster_key" && attempt === 0) {
          this.worker = await this.trustedInfo();
          continue;
        }
        // The cluster is dealing a new key (moments after a rotation or revocation): wait,
        // then seal to the key it shows.
        if (e instanceof ApiError && e.kind === "key_epoch_pending" && attempt < 40) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          this.worker = await this.trustedInfo();
          continue;
        }
        throw e;
      }
    }
  }

  /** The headers of an upload or metadata write: `signer` signs `domain`, the cluster, `parts`
   * and an expiry. */
  private signedHeaders(signer: Signer, domain: string, parts: Uint8Array[]): Record<string, string> {
    const expiresAt = BigInt(Date.now() + DEFAULT_TTL_MS);
    const payload = concatBytes(utf8ToBytes(domain), this.clusterId, ...parts, u64le(expiresAt));
    return {
      "x-phat-signer": toHex(signer.publicKey),
      "x-phat-signature": toHex(signer.sign(payload)),
      "x-phat-expires": expiresAt.toString(),
    };
  }

  /** Uploads contract code signed by `signer` (a funded account); returns its code hash. */
  async uploadCode(signer: Signer, wasm: Uint8Array): Promise<string> {
    const codeHash = blake2b(wasm, { dkLen: 32 });
    const r = await this.withFailover(() =>
      this.json<{ code_hash: string }>("/v1/code", {
        method: "POST",
        headers: { "content-type": "application/octet-stream", ...this.signedHeaders(signer, "phat/upload/v1", [codeHash]) },
        body: wasm as unknown as BodyInit,
      }),
    );
    return r.code_hash;
  }

  /** Publishes the ink! metadata of uploaded code under `signer`'s account (readers ask for
   * what a contract's deployer published, so publish with the deployer). */
  async putMetadata(signer: Signer, codeHash: string, metadata: Record<string, unknown>): Promise<void> {
    const body = utf8ToBytes(JSON.stringify(metadata));
    const parts = [fromHex(codeHash, "code hash", 32), blake2b(body, { dkLen: 32 })];
    await this.withFailover(() =>
      this.json<null>(`/v1/code/${codeHash}/metadata`, {
        method: "POST",
        headers: { "content-type": "application/json", ...this.signedHeaders(signer, "phat/metadata/v1", parts) },
        body: body as unknown as BodyInit,
      }),
    );
  }

  /** The ink! metadata `publisher` published for code `codeHash`. */
  metadata(codeHash: string, publisher: string): Promise<Record<string, unknown>> {
    return this.withFailover(() => this.json(`/v1/code/${codeHash}/metadata?publisher=${publisher}`));
  }

  /** The receipt of command `seq` (a sealed result stays sealed: only its sender opens it). */
  receipt(seq: number): Promise<Receipt> {
    return this.withFailover(() => this.json<Receipt>(`/v1/receipts/${seq}`));
  }

  /** One page of a contract's log, read as its deployer or a reader it allowed (a signed
   * query, sealed when the cluster encrypts): the records `q` selects, oldest first, and the
   * index the contract's next record will get. */
  async readLogs(signer: RequestSigner, contract: string, q: LogQuery = {}): Promise<{ entries: LogEntry[]; next: number }> {
    const filter = {
      after: q.after === undefined ? undefined : BigInt(q.after),
      since: q.since === undefined ? undefined : BigInt(q.since),
      kinds: (q.kinds ?? []).map((k) => {
        const tag = LOG_KIND_TAGS[k];
        if (!tag) throw new TypeError(`${k} is not a kind of log record (${Object.keys(LOG_KIND_TAGS).join(", ")})`);
        return { tag, value: undefined };
      }),
      limit: q.limit ?? 0,
      tail: q.tail ?? false,
      wait_ms: q.waitMs ?? 0,
    };
    const call: codec.CallValue = { tag: "Logs", value: { contract: fromHex(contract, "contract", 32), filter } };
    const r = await this.query(signer, call);
    if ("err" in r.result) throw new ApiError(400, r.result.err.kind, r.result.err.message);
    const page = codec.LogPage.dec(fromHex(r.result.ok.data, "log page"));
    if (page.records.length > MAX_LOG_PAGE) throw new Error(`a log page of ${page.records.length} records`);
    return { entries: page.records.map(([i, rec]) => logEntry(i, rec)), next: Number(page.next) };
  }

  /** The first page of a contract's log (up to 1,000 records, oldest first; `q` selects). */
  async logs(signer: RequestSigner, contract: string, q: LogQuery = {}): Promise<LogEntry[]> {
    return (await this.readLogs(signer, contract, q)).entries;
  }

  /** The records `q` selects, then new ones as they are stored (each read waits up to 20 s),
   * until `signal` aborts. */
  async *followLogs(signer: RequestSigner, contract: string, options: { query?: LogQuery; signal?: AbortSignal } = {}): AsyncGenerator<LogEntry> {
    const { signal } = options;
    const aborted = new Promise<null>((resolve) => {
      if (signal?.aborted) resolve(null);
      signal?.addEventListener("abort", () => resolve(null), { once: true });
    });
    let q: LogQuery = { ...options.query };
    while (!signal?.aborted) {
      const page = await Promise.race([this.readLogs(signer, contract, q), aborted]);
      if (page === null || signal?.aborted) return;
      const last = page.entries.at(-1)?.index;
      const after = last ?? (page.next > 0 ? page.next - 1 : q.after);
      q = { ...q, after: after ?? undefined, tail: false, waitMs: 20_000 };
      for (const e of page.entries) yield e;
    }
  }

  /** What a command of `call` by `signer` is estimated to cost: `call` run as a dry query
   * (its cache writes and log lines dropped) with the cluster's largest gas limit (its own
   * limit is ignored). */
  async estimate(signer: RequestSigner, call: codec.CallValue): Promise<Estimate> {
    if (call.tag !== "Call" && call.tag !== "Instantiate") throw new TypeError("only a call or an instantiation has a cost to estimate");
    const unbounded = { ...call, value: { ...call.value, gas_limit: 0xffff_ffff_ffff_ffffn } } as codec.CallValue;
    // A dry run: the worker drops its cache writes and log lines.
    const r = await this.query(signer, { tag: "Estimate", value: { call: codec.Call.enc(unbounded) } });
    const gasUsed = BigInt(r.gas_used);
    return { gasUsed, gasLimit: gasUsed + gasUsed / 4n + ESTIMATE_MARGIN, storageDeposit: BigInt(r.storage_deposit ?? "0"), result: r.result };
  }

  /** Sends `value` of native balance from `signer` to `dest` (hex account), as a command. */
  transfer(signer: RequestSigner, dest: string, value: bigint): Promise<Submitted> {
    return this.submit(signer, { tag: "Transfer", value: { dest: fromHex(dest, "dest", 32), value } });
  }

  /** Sets who besides the deployer (`signer`) may read a contract's log (at most 16 accounts,
   * hex; none for the deployer alone). */
  setLogReaders(signer: RequestSigner, contract: string, readers: string[]): Promise<Submitted> {
    return this.submit(signer, {
      tag: "LogReaders",
      value: { contract: fromHex(contract, "contract", 32), readers: readers.map((r) => fromHex(r, "reader", 32)) },
    });
  }

  /** A contract's code hash, deployer, and public keys (derived in the enclave). */
  contract(contract: string): Promise<ContractView> {
    return this.withFailover(() => this.json(`/v1/contracts/${contract}`));
  }
}

type SealedOr = CallResult | { sealed: string };

/** A result sealed to the caller, opened with the command's envelope keys. */
function openResult(keys: SessionKeys, result: SealedOr): CallResult {
  if (!("sealed" in result)) return result;
  const r = codec.CallResult.dec(keys.openReply(0n, fromHex(result.sealed)));
  switch (r.tag) {
    case "Ok":
      return { ok: { data: toHex(r.value.data), reverted: r.value.reverted, address: r.value.address ? toHex(r.value.address) : null } };
    case "Err":
      return { err: r.value };
    default:
      throw new UnreachableError("a sealed result sealed again");
  }
}

function jsonRequest(req: codec.SignedRequestValue): { body: string; signer: string; signature: string } {
  return { body: toHex(req.body), signer: toHex(req.signer), signature: toHex(req.signature) };
}

/** A `Call` of message data `data` (selector and SCALE arguments) on `contract`. */
export function callOf(contract: string, data: Uint8Array, options: { value?: bigint; gasLimit?: bigint } = {}): codec.CallValue {
  return {
    tag: "Call",
    value: { dest: fromHex(contract, "contract", 32), value: options.value ?? 0n, data, gas_limit: options.gasLimit ?? 5_000_000_000n },
  };
}

/** An `Instantiate` of uploaded code `codeHash` with constructor data `data`. */
export function instantiateOf(
  codeHash: string,
  data: Uint8Array,
  options: { salt?: Uint8Array; value?: bigint; gasLimit?: bigint } = {},
): codec.CallValue {
  return {
    tag: "Instantiate",
    value: {
      code_hash: fromHex(codeHash, "code hash", 32),
      value: options.value ?? 0n,
      data,
      salt: options.salt ?? crypto.getRandomValues(new Uint8Array(16)),
      gas_limit: options.gasLimit ?? 5_000_000_000n,
    },
  };
}
