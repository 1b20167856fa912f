/** Contracts by message name with typed JS values: `ContractApi` encodes arguments and
 * decodes results and events from ink! 3/4/5 metadata with `@polkadot/api-contract`'s `Abi`,
 * over a [`PhatClient`]. */
import { Abi } from "@polkadot/api-contract";
import type { AbiMessage } from "@polkadot/api-contract/types";
import { compactStripLength } from "@polkadot/util";
import { fromHex } from "./bytes.js";
import {
  ApiError,
  callOf,
  instantiateOf,
  type CallResult,
  type EventRecord,
  type PhatClient,
  type QueryResponse,
  type Receipt,
  type Submitted,
} from "./client.js";
import type { RequestSigner } from "./request.js";
import type { Signer } from "./signer.js";

/** The receipt a submission answered with. A command the worker ordered but cannot show a
 * receipt for (it restored a snapshot past it, or did not apply it within its wait) is an
 * `ApiError` naming its seq: it is in the log, and any worker that applied it has the receipt. */
function receiptOf(submitted: Submitted): Receipt {
  if (submitted.receipt) return submitted.receipt;
  throw new ApiError(
    200,
    "no_receipt",
    `the command is ordered at seq ${submitted.seq}, but this worker cannot show its receipt: read it with receipt(${submitted.seq}) from any worker`,
  );
}

/** An argument does not fit the message's type (nothing was sent). */
export class ArgumentError extends Error {
  override name = "ArgumentError";
}

/** A decoded value: `value` as JSON (numbers that may not fit a double are strings), `text`
 * as people read it. */
export interface Decoded {
  value: unknown;
  text: unknown;
}

/** A decoded event. */
export interface DecodedEvent {
  /** The event's name in the metadata (e.g. `Transfer`). */
  name: string;
  /** Its fields by name, as JSON. */
  args: Record<string, unknown>;
}

/** What a call did, decoded. */
export interface Outcome {
  /** The message's return value (for ink! 4/5: the `Result<T, LangError>` it answers), when
   * the call ran; `undefined` when it failed (see `error`). */
  output?: Decoded;
  /** The contract reverted (its writes were dropped; ink! reverts when a message returns `Err`). */
  reverted: boolean;
  /** Why the call did not run to completion (`trapped`, `out_of_gas`, …). */
  error?: { kind: string; message: string };
  /** The events it emitted, decoded (a query's are what it would have emitted). */
  events: DecodedEvent[];
}

/** The metadata of a bundle or metadata file: a `.contract` bundle's `source.wasm` removed. */
function metadataOf(json: Record<string, unknown>): Record<string, unknown> {
  const source = { ...(json.source as Record<string, unknown>) };
  delete source.wasm;
  return { ...json, source };
}

/** A deployed contract, called by message name. */
export class ContractApi {
  /** The contract's ABI. */
  readonly abi: Abi;

  /** `address`'s contract on `client`, described by `metadata` (a `.contract` bundle or
   * metadata JSON, parsed or not). */
  constructor(
    readonly client: PhatClient,
    metadata: Record<string, unknown> | string,
    readonly address: string,
  ) {
    this.abi = new Abi(metadata);
  }

  /** Uploads the bundle's code and metadata, and instantiates it with `constructorName(args)`
   * (default: `new`, else the first constructor). Throws [`ApiError`] when the
   * instantiation does not succeed. */
  static async deploy(
    client: PhatClient,
    signer: Signer,
    bundle: Record<string, unknown> | string,
    options: { constructorName?: string; args?: unknown[]; salt?: Uint8Array; value?: bigint; gasLimit?: bigint } = {},
  ): Promise<{ contract: ContractApi; receipt: Receipt }> {
    const json = (typeof bundle === "string" ? JSON.parse(bundle) : bundle) as Record<string, unknown>;
    const wasm = (json.source as { wasm?: string } | undefined)?.wasm;
    if (!wasm) throw new ArgumentError("the bundle has no source.wasm (deploy a .contract bundle)");
    const abi = new Abi(json);
    const ctor = find(abi.constructors, options.constructorName ?? (abi.constructors.some((c) => c.method === "new") ? "new" : abi.constructors[0]?.method));
    const data = encodeArgs(ctor, options.args ?? []);
    const codeHash = await client.uploadCode(signer, fromHex(wasm, "source.wasm"));
    await client.putMetadata(signer, codeHash, metadataOf(json));
    const submitted = await client.submit(signer, instantiateOf(codeHash, data, options));
    const receipt = receiptOf(submitted);
    const result = receipt.result;
    if ("err" in result) throw new ApiError(200, result.err.kind, result.err.message);
    if (result.ok.reverted || !result.ok.address) {
      throw new ApiError(200, "reverted", `the constructor ${ctor.method} reverted: ${result.ok.data}`);
    }
    return { contract: new ContractApi(client, json, result.ok.address), receipt };
  }

  /** A contract already deployed at `address`, with the metadata its deployer published. */
  static async at(client: PhatClient, address: string): Promise<ContractApi> {
    const view = await client.contract(address);
    const meta = await client.metadata(view.code_hash, view.deployer);
    return new ContractApi(client, meta, address);
  }

  /** The message named `name` (its label, `balance_of`, or method, `balanceOf`). */
  message(name: string): AbiMessage {
    return find(this.abi.messages, name);
  }

  /** The call data of `message(args)`: selector and SCALE arguments. */
  encode(message: string, args: unknown[] = []): Uint8Array {
    return encodeArgs(this.message(message), args);
  }

  /** Runs `message(args)` as a query of `signer`. */
  async query(signer: RequestSigner, message: string, args: unknown[] = [], options: { minSeq?: number; value?: bigint } = {}): Promise<Outcome & { response: QueryResponse }> {
    const m = this.message(message);
    const response = await this.client.query(signer, callOf(this.address, encodeArgs(m, args), options), options);
    return { ...this.outcome(m, response.result, response.events), response };
  }

  /** Submits `message(args)` as a command of `signer` and waits for its receipt. Without a
   * `gasLimit`, the call is estimated first (a query) and sent with the estimate's limit. */
  async tx(signer: RequestSigner, message: string, args: unknown[] = [], options: { value?: bigint; gasLimit?: bigint } = {}): Promise<Outcome & { receipt: Receipt }> {
    const m = this.message(message);
    const data = encodeArgs(m, args);
    let gasLimit = options.gasLimit;
    if (gasLimit === undefined) {
      const e = await this.client.estimate(signer, callOf(this.address, data, options)).catch(() => undefined);
      if (e && "ok" in e.result && !e.result.ok.reverted) gasLimit = e.gasLimit;
    }
    const submitted = await this.client.submit(signer, callOf(this.address, data, { ...options, gasLimit }));
    const receipt = receiptOf(submitted);
    return { ...this.outcome(m, receipt.result, receipt.events), receipt };
  }

  private outcome(m: AbiMessage, result: CallResult, events: EventRecord[]): Outcome {
    const decoded = events.filter((e) => e.contract === this.address).flatMap((e) => {
      try {
        return [this.decodeEvent(e)];
      } catch {
        return [];
      }
    });
    if ("err" in result) return { reverted: false, error: result.err, events: decoded };
    return { output: this.decodeOutput(m, fromHex(result.ok.data)), reverted: result.ok.reverted, events: decoded };
  }

  /** `data` decoded as `message`'s return type. */
  decodeOutput(m: AbiMessage, data: Uint8Array): Decoded {
    if (!m.returnType) return { value: null, text: null };
    const v = this.abi.registry.createTypeUnsafe(m.returnType.lookupName || m.returnType.type, [data], { isPedantic: true });
    return { value: v.toJSON(), text: v.toHuman() };
  }

  /** An event of this contract, decoded by its signature topic (ink! 5) or index (ink! 3/4). */
  decodeEvent(e: EventRecord): DecodedEvent {
    const data = fromHex(e.data);
    const topics = e.topics.map((t) => ({ toHex: () => t }));
    const record = { topics, event: { data: [undefined, data, topics] } };
    const d = this.abi.decodeEvent(record as never);
    const args: Record<string, unknown> = {};
    d.event.args.forEach((a, i) => (args[a.name] = d.args[i].toJSON()));
    return { name: d.event.identifier.split("::").pop() ?? d.event.identifier, args };
  }
}

function find(list: AbiMessage[], name: string | undefined): AbiMessage {
  const m = list.find((x) => x.identifier === name || x.method === name);
  if (!m) throw new ArgumentError(`no message or constructor \`${name}\` (have: ${list.map((x) => x.identifier).join(", ")})`);
  return m;
}

function encodeArgs(m: AbiMessage, args: unknown[]): Uint8Array {
  if (args.length !== m.args.length) {
    throw new ArgumentError(`${m.identifier} takes ${m.args.length} argument(s) (${m.args.map((a) => a.name).join(", ")}), got ${args.length}`);
  }
  let encoded: Uint8Array;
  try {
    encoded = m.toU8a(args);
  } catch (e) {
    throw new ArgumentError(`${m.identifier}(${m.args.map((a) => `${a.name}: ${a.type.type}`).join(", ")}): ${(e as Error).message}`);
  }
  return compactStripLength(encoded)[1];
}
