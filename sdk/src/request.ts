/** Signed requests: a `RequestBody` for one cluster, signed by a [`Signer`]. */
import { randomBytes } from "@noble/hashes/utils.js";
import { encodeRequestBody, SignedRequest, signingPayload, type CallValue, type CertificateValue, type SignedRequestValue } from "./codec.js";

/** What signs requests: a key pair, and for a session key the wallet's certificate that lets
 * it speak for the wallet's account ([`Signer`], [`SessionSigner`]). */
export interface RequestSigner {
  /** The signing key's sr25519 public key. */
  readonly publicKey: Uint8Array;
  /** Signs `message` in the `substrate` context. */
  sign(message: Uint8Array): Uint8Array;
  /** A wallet's certificate for this key: requests are then made as its account. */
  readonly certificate?: CertificateValue;
}

/** The account `signer`'s requests are made as. */
export function callerOf(signer: RequestSigner): Uint8Array {
  return signer.certificate?.account ?? signer.publicKey;
}

/** How long a request stays valid by default (ms), as the Rust client; workers accept at most one hour. */
export const DEFAULT_TTL_MS = 120 * 1000;

/** A fresh random request nonce. */
export function randomNonce(): bigint {
  return new DataView(randomBytes(8).buffer).getBigUint64(0, true);
}

/** Signs `call` in `mode` for the cluster whose envelope key (id) is `cluster`. */
export function signRequest(
  signer: RequestSigner,
  cluster: Uint8Array,
  mode: "Query" | "Command",
  call: CallValue,
  options: { nonce?: bigint; expiresAt?: bigint } = {},
): SignedRequestValue {
  const body = encodeRequestBody(
    {
      mode: { tag: mode, value: undefined },
      call,
      nonce: options.nonce ?? randomNonce(),
      expires_at: options.expiresAt ?? BigInt(Date.now() + DEFAULT_TTL_MS),
    },
    signer.certificate,
  );
  return { body, signer: signer.publicKey, signature: signer.sign(signingPayload(cluster, body)) };
}

/** The SCALE bytes of a signed request (what a sealed command or query carries). */
export function encodeSignedRequest(request: SignedRequestValue): Uint8Array {
  return SignedRequest.enc(request);
}
