/** Hex and byte helpers shared by the SDK (0x-prefixed lowercase hex everywhere). */
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";

/** `bytes` as 0x-prefixed lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return "0x" + bytesToHex(bytes);
}

/** The bytes of 0x-prefixed (or bare) hex; throws a `TypeError` naming `what` when malformed. */
export function fromHex(hex: string, what = "hex", length?: number): Uint8Array {
  const bare = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (bare.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(bare)) {
    throw new TypeError(`${what}: not hex: ${hex.slice(0, 20)}`);
  }
  const out = hexToBytes(bare);
  if (length !== undefined && out.length !== length) {
    throw new TypeError(`${what}: expected ${length} bytes, got ${out.length}`);
  }
  return out;
}

/** `value` as 8 little-endian bytes. */
export function u64le(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

/** `value` as 4 little-endian bytes. */
export function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export { concatBytes, utf8ToBytes };
