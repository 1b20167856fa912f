/** Signed requests: a `RequestBody` for one cluster, signed by a [`Signer`]. */
import { randomBytes } from "@noble/hashes/utils.js";
import { RequestBody, SignedRequest, signingPayload, type CallValue, type SignedRequestValue } from "./codec.js";
import type { Signer } from "./signer.js";

/** How long a request stays valid by default (ms), as the Rust client; workers accept at most one hour. */
export const DEFAULT_TTL_MS = 120 * 1000;

/** A fresh random request nonce. */
export function randomNonce(): bigint {
  return new DataView(randomBytes(8).buffer).getBigUint64(0, true);
}

/** Signs `call` in `mode` for the cluster whose envelope key (id) is `cluster`. */
export function signRequest(
  signer: Signer,
  cluster: Uint8Array,
  mode: "Query" | "Command",
  call: CallValue,
  options: { nonce?: bigint; expiresAt?: bigint } = {},
): SignedRequestValue {
  const body = RequestBody.enc({
    mode: { tag: mode, value: undefined },
    call,
    nonce: options.nonce ?? randomNonce(),
    expires_at: options.expiresAt ?? BigInt(Date.now() + DEFAULT_TTL_MS),
  });
  return { body, signer: signer.publicKey, signature: signer.sign(signingPayload(cluster, body)) };
}

/** The SCALE bytes of a signed request (what a sealed command or query carries). */
export function encodeSignedRequest(request: SignedRequestValue): Uint8Array {
  return SignedRequest.enc(request);
}
