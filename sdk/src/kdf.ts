/** phat's key derivation: HKDF-SHA256, salt `phat`, the domain and each part length-prefixed
 * (u32 LE) into the info string (docs/ENVELOPES.md, "Keys"). */
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, u32le, utf8ToBytes } from "./bytes.js";

/** `length` bytes derived from `ikm` for `domain` and `parts`. */
export function expand(
  ikm: Uint8Array,
  domain: string,
  parts: Uint8Array[],
  length = 32,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of [utf8ToBytes(domain), ...parts]) {
    chunks.push(u32le(p.length), p);
  }
  return hkdf(sha256, ikm, utf8ToBytes("phat"), concatBytes(...chunks), length);
}
