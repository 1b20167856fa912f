/** sr25519 signers from Substrate secret URIs (`//Alice`, a mnemonic with `//hard/soft`
 * junctions and `///password`, or a 0x seed), signing in the `substrate` context as phat's
 * workers verify (schnorrkel, through `@scure/sr25519`). */
import { blake2b } from "@noble/hashes/blake2.js";
import { pbkdf2 } from "@noble/hashes/pbkdf2.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { mnemonicToEntropy } from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import * as sr25519 from "@scure/sr25519";
import { concatBytes, fromHex, u64le, utf8ToBytes } from "./bytes.js";

/** The phrase of Substrate's well-known development accounts (`//Alice`, `//Bob`, …). */
export const DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/** Thrown for a secret URI that does not parse. */
export class SuriError extends Error {
  override name = "SuriError";
}

/** SCALE compact encoding of a length (enough for junction names). */
function compactLength(n: number): Uint8Array {
  if (n < 1 << 6) return Uint8Array.of(n << 2);
  if (n < 1 << 14) return Uint8Array.of(((n << 2) | 1) & 0xff, n >> 6);
  throw new SuriError("junction name too long");
}

/** A junction's 32-byte chain code: a number as u64 LE, else the SCALE string; longer than
 * 32 bytes, its BLAKE2b-256 hash. */
function chainCode(junction: string): Uint8Array {
  const encoded = /^\d+$/.test(junction)
    ? u64le(BigInt(junction))
    : concatBytes(compactLength(utf8ToBytes(junction).length), utf8ToBytes(junction));
  if (encoded.length > 32) return blake2b(encoded, { dkLen: 32 });
  const out = new Uint8Array(32);
  out.set(encoded);
  return out;
}

/** Someone who signs requests: an sr25519 key pair. */
export class Signer {
  private constructor(private readonly secret: Uint8Array) {
    this.publicKey = sr25519.getPublicKey(secret);
  }

  /** The account: the sr25519 public key. */
  readonly publicKey: Uint8Array;

  /** The signer of secret URI `suri`: `//Alice`, `PHRASE//hard/soft///password`, `0xSEED…`. */
  static fromSuri(suri: string): Signer {
    const match = /^([^/]*)((?:\/\/?[^/]+)*)(?:\/\/\/(.*))?$/.exec(suri.trim());
    if (!match) throw new SuriError(`not a secret URI: ${suri}`);
    const phrase = match[1] === "" ? DEV_PHRASE : match[1];
    const password = match[3] ?? "";
    let seed: Uint8Array;
    if (phrase.startsWith("0x")) {
      seed = fromHex(phrase, "seed", 32);
    } else {
      let entropy: Uint8Array;
      try {
        entropy = mnemonicToEntropy(phrase, wordlist);
      } catch (e) {
        throw new SuriError(`not a valid mnemonic: ${(e as Error).message}`);
      }
      seed = pbkdf2(sha512, entropy, utf8ToBytes("mnemonic" + password), { c: 2048, dkLen: 64 }).slice(0, 32);
    }
    let secret: Uint8Array = sr25519.secretFromSeed(seed);
    for (const [, kind, name] of match[2].matchAll(/(\/\/?)([^/]+)/g)) {
      const code = chainCode(name);
      secret = kind === "//" ? sr25519.HDKD.secretHard(secret, code) : sr25519.HDKD.secretSoft(secret, code);
    }
    return new Signer(secret);
  }

  /** Signs `message` in the `substrate` context (64 bytes). */
  sign(message: Uint8Array): Uint8Array {
    return sr25519.sign(this.secret, message);
  }
}

/** Whether `signature` is `publicKey`'s sr25519 signature of `message` (`substrate` context). */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return sr25519.verify(message, signature, publicKey);
  } catch {
    return false;
  }
}
