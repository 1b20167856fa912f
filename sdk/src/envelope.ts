/** Envelopes, format version 1 (docs/ENVELOPES.md): X25519 with a fresh ephemeral key,
 * HKDF-SHA256 into a request key and a reply key, ChaCha20-Poly1305 with the message counter
 * as nonce and `[version, purpose]` as associated data. Byte-compatible with `phat-crypto`. */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { concatBytes, u64le, utf8ToBytes } from "./bytes.js";
import { expand } from "./kdf.js";

/** The envelope format version this SDK writes and reads. */
export const ENVELOPE_VERSION = 1;

/** What an envelope carries; an envelope made for one purpose never opens as another. */
export type Purpose = "command" | "query" | "handover";

const TAGS: Record<Purpose, number> = { command: 1, query: 2, handover: 3 };

/** An envelope's first message. */
export interface Sealed {
  /** Format version (1). */
  version: number;
  /** The sender's ephemeral X25519 public key. */
  ephemeral: Uint8Array;
  /** ChaCha20-Poly1305 ciphertext with its 16-byte tag. */
  ciphertext: Uint8Array;
}

/** Thrown when an envelope does not open (wrong key, purpose, counter or tampering). */
export class EnvelopeError extends Error {
  override name = "EnvelopeError";
}

function nonce(counter: bigint): Uint8Array {
  return concatBytes(u64le(counter), new Uint8Array(4));
}

/** The two keys of one envelope exchange: messages to the recipient, and its replies. */
export class SessionKeys {
  private readonly aad: Uint8Array;

  private constructor(
    private readonly request: Uint8Array,
    private readonly reply: Uint8Array,
    private readonly purpose: Purpose,
  ) {
    this.aad = Uint8Array.of(ENVELOPE_VERSION, TAGS[purpose]);
  }

  /** These keys with the reply key bound to `salt`, the fresh randomness a worker sends back
   * with its answer to a session's opening (`SessionKeys::with_reply_salt`). */
  withReplySalt(salt: Uint8Array): SessionKeys {
    return new SessionKeys(this.request, expand(this.reply, "phat/v1/envelope/reply-salt", [salt]), this.purpose);
  }

  /** The keys for `shared` (the X25519 result) between `ephemeral` and `recipient`. */
  static derive(
    shared: Uint8Array,
    ephemeral: Uint8Array,
    recipient: Uint8Array,
    purpose: Purpose,
  ): SessionKeys {
    if (shared.every((b) => b === 0)) {
      throw new EnvelopeError("weak key: the shared secret is zero");
    }
    const okm = expand(shared, "phat/v1/envelope", [utf8ToBytes(purpose), ephemeral, recipient], 64);
    return new SessionKeys(okm.slice(0, 32), okm.slice(32), purpose);
  }

  /** Encrypts message number `counter` to the recipient. */
  sealRequest(counter: bigint, plaintext: Uint8Array): Uint8Array {
    return chacha20poly1305(this.request, nonce(counter), this.aad).encrypt(plaintext);
  }

  /** Decrypts message number `counter` from the sender. */
  openRequest(counter: bigint, ciphertext: Uint8Array): Uint8Array {
    return open(this.request, counter, this.aad, ciphertext);
  }

  /** Encrypts the reply to message number `counter`. */
  sealReply(counter: bigint, plaintext: Uint8Array): Uint8Array {
    return chacha20poly1305(this.reply, nonce(counter), this.aad).encrypt(plaintext);
  }

  /** Decrypts the reply to message number `counter`. */
  openReply(counter: bigint, ciphertext: Uint8Array): Uint8Array {
    return open(this.reply, counter, this.aad, ciphertext);
  }
}

function open(key: Uint8Array, counter: bigint, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  try {
    return chacha20poly1305(key, nonce(counter), aad).decrypt(ciphertext);
  } catch {
    throw new EnvelopeError("the envelope does not open (wrong key, counter or purpose, or tampered)");
  }
}

/** Seals `plaintext` to the X25519 key `recipient` for `purpose` with a fresh ephemeral key
 * (or `ephemeralSecret`, for test vectors). Returns the envelope and its session keys. */
export function seal(
  recipient: Uint8Array,
  purpose: Purpose,
  plaintext: Uint8Array,
  ephemeralSecret: Uint8Array = randomBytes(32),
): { sealed: Sealed; keys: SessionKeys } {
  const ephemeral = x25519.getPublicKey(ephemeralSecret);
  const keys = SessionKeys.derive(x25519.getSharedSecret(ephemeralSecret, recipient), ephemeral, recipient, purpose);
  return {
    sealed: { version: ENVELOPE_VERSION, ephemeral, ciphertext: keys.sealRequest(0n, plaintext) },
    keys,
  };
}

/** Opens `sealed` with the recipient's X25519 `secret` (a worker's side; the SDK uses it in
 * tests). Returns the plaintext and the session keys. */
export function openSealed(
  secret: Uint8Array,
  purpose: Purpose,
  sealed: Sealed,
): { plaintext: Uint8Array; keys: SessionKeys } {
  if (sealed.version !== ENVELOPE_VERSION) {
    throw new EnvelopeError(`envelope version ${sealed.version} (this SDK reads ${ENVELOPE_VERSION})`);
  }
  const recipient = x25519.getPublicKey(secret);
  const keys = SessionKeys.derive(x25519.getSharedSecret(secret, sealed.ephemeral), sealed.ephemeral, recipient, purpose);
  return { plaintext: keys.openRequest(0n, sealed.ciphertext), keys };
}
