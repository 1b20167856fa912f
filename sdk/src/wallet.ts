/** Wallet sign-in: the wallet signs one certificate for a session key the SDK makes and keeps
 * in memory; the session key signs every request after that, made as the wallet's account
 * (docs/ENVELOPES.md, "Certificates"). Works with the polkadot.js extension family's
 * `signRaw` (which wraps the bytes in `<Bytes>`…`</Bytes>`; workers accept both forms). */
import { randomBytes } from "@noble/hashes/utils.js";
import * as sr25519 from "@scure/sr25519";
import { certificatePayload, type CertificateValue } from "./codec.js";
import type { RequestSigner } from "./request.js";
import type { Signer } from "./signer.js";

/** How long a certificate is valid by default (1 hour; workers accept at most 24). */
export const DEFAULT_CERTIFICATE_TTL_MS = 60 * 60 * 1000;

/** What a certificate lets the session key sign. */
export type Scope = "Queries" | "All";

/** Signs bytes as the wallet: for an injected polkadot.js signer,
 * `(p) => injector.signer.signRaw({ address, data: toHex(p), type: "bytes" }).then((r) => fromHex(r.signature))`. */
export type WalletSign = (payload: Uint8Array) => Promise<Uint8Array>;

/** A session key with the wallet's certificate: a [`RequestSigner`] whose requests are made as
 * the wallet's account. Its secret never leaves memory. */
export class SessionSigner implements RequestSigner {
  private constructor(
    private readonly secret: Uint8Array,
    readonly certificate: CertificateValue,
  ) {
    this.publicKey = sr25519.getPublicKey(secret);
  }

  /** The session key's public key (the requests' signer). */
  readonly publicKey: Uint8Array;

  /** Makes a session key and asks the wallet of `account` to certify it for `cluster` (a
   * client's `clusterId`): one wallet prompt. */
  static async signIn(
    cluster: Uint8Array,
    account: Uint8Array,
    walletSign: WalletSign,
    options: { ttlMs?: number; scope?: Scope } = {},
  ): Promise<SessionSigner> {
    const secret = sr25519.secretFromSeed(randomBytes(32));
    const fields = {
      account,
      session: sr25519.getPublicKey(secret),
      cluster,
      expires_at: BigInt(Date.now() + (options.ttlMs ?? DEFAULT_CERTIFICATE_TTL_MS)),
      scope: { tag: options.scope ?? "All", value: undefined },
    } as const;
    const signature = await walletSign(certificatePayload(fields));
    return new SessionSigner(secret, { ...fields, signature });
  }

  /** Signs `message` with the session key. */
  sign(message: Uint8Array): Uint8Array {
    return sr25519.sign(this.secret, message);
  }

  /** Whether the certificate is still valid `marginMs` from now. */
  valid(marginMs = 10_000): boolean {
    return Number(this.certificate.expires_at) > Date.now() + marginMs;
  }
}

/** A [`WalletSign`] for a secret-URI signer (dev accounts, tests, Node back-ends), wrapping
 * the bytes as the polkadot.js extensions do. */
export function walletOf(signer: Signer): WalletSign {
  const enc = new TextEncoder();
  return async (payload) => {
    const wrapped = new Uint8Array([...enc.encode("<Bytes>"), ...payload, ...enc.encode("</Bytes>")]);
    return signer.sign(wrapped);
  };
}
