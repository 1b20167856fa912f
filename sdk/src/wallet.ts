/** Wallet sign-in: the wallet signs one certificate for a session key the SDK makes and keeps
 * in memory; the session key signs every request after that, made as the wallet's account
 * (docs/ENVELOPES.md, "Certificates"). Works with the polkadot.js extension family's
 * `signRaw` (which wraps the bytes in `<Bytes>`…`</Bytes>`; workers accept both forms). */
import { keccak_256 } from "@noble/hashes/sha3.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { fromHex, toHex, utf8ToBytes } from "./bytes.js";
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
export type WalletSign = (payload: Uint8Array, fields: Omit<CertificateValue, "signature">) => Promise<Uint8Array>;

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
    const signature = await walletSign(certificatePayload(fields), fields);
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

/** An EIP-1193 provider (MetaMask's `window.ethereum`, or any wallet that speaks the same). */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

/** What an EVM address's account ends with: Phala's mapping (address, then `@evm_address`). */
export const EVM_ACCOUNT_SUFFIX = utf8ToBytes("@evm_address");

/** The phat account an Ethereum address (`0x…`, 20 bytes) speaks for. */
export function evmAccount(address: string): Uint8Array {
  const out = new Uint8Array(32);
  out.set(fromHex(address, "address", 20));
  out.set(EVM_ACCOUNT_SUFFIX, 20);
  return out;
}

/** The sentence the wallet shows above the certificate (workers hash the same). */
export const EVM_CERTIFICATE_DESCRIPTION =
  "Sign in to a phat cluster: the session key below may sign requests as your account on this cluster until the time below.";

/** The EIP-712 typed data an Ethereum wallet signs for a certificate (`eth_signTypedData_v4`). */
export function certificateTypedData(fields: Omit<CertificateValue, "signature">) {
  return {
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "salt", type: "bytes32" },
      ],
      PhatCertificate: [
        { name: "description", type: "string" },
        { name: "cluster", type: "bytes32" },
        { name: "session", type: "bytes32" },
        { name: "expiresAt", type: "uint64" },
        { name: "scope", type: "string" },
      ],
    },
    primaryType: "PhatCertificate",
    domain: { name: "phat", version: "1", salt: toHex(keccak_256(utf8ToBytes("phat/certificate/v1"))) },
    message: {
      description: EVM_CERTIFICATE_DESCRIPTION,
      cluster: toHex(fields.cluster),
      session: toHex(fields.session),
      expiresAt: fields.expires_at.toString(),
      scope: fields.scope.tag === "All" ? "all" : "queries",
    },
  } as const;
}

/** Signs a session key in with an Ethereum wallet: asks `provider` for its account, then one
 * `eth_signTypedData_v4` prompt; requests are then made as the account the wallet's address
 * maps to ([`evmAccount`]). */
export async function signInWithEthereum(
  cluster: Uint8Array,
  provider: Eip1193Provider,
  options: { ttlMs?: number; scope?: Scope } = {},
): Promise<SessionSigner> {
  const accounts = (await provider.request({ method: "eth_requestAccounts" })) as string[];
  const address = accounts?.[0];
  if (typeof address !== "string") throw new Error("the wallet named no account");
  return SessionSigner.signIn(cluster, evmAccount(address), async (_payload, fields) => {
    const typed = certificateTypedData(fields);
    const signature = (await provider.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(typed)] })) as string;
    return fromHex(signature, "signature", 65);
  }, options);
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
