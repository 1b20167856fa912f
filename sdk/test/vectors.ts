/** Cross-implementation test vectors (`testing/vectors/{rust,ts}.json`): one side produces,
 * the other checks. Deterministic parts (key derivation, envelopes with a given ephemeral key,
 * SCALE bodies, account derivation) must match byte for byte; sr25519 signatures are random
 * and must verify. `crates/client/tests/vectors.rs` is the Rust side of the same checks. */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  codec,
  concatBytes,
  equalBytes,
  expand,
  fromHex,
  openSealed,
  seal,
  signingPayload,
  signRequest,
  Signer,
  toHex,
  utf8ToBytes,
  verify,
  type Purpose,
} from "../src/index.js";

/** Where the vector files are. */
export const VECTORS_DIR = fileURLToPath(new URL("../../../testing/vectors/", import.meta.url));

interface Message {
  counter: string;
  request_plaintext: string;
  request_ciphertext: string;
  reply_plaintext: string;
  reply_ciphertext: string;
}

interface EnvelopeVector {
  purpose: Purpose;
  recipient_secret: string;
  ephemeral_secret: string;
  ephemeral: string;
  messages: Message[];
}

/** The vector file's shape (all bytes 0x hex, all 64/128-bit numbers decimal strings). */
export interface Vectors {
  producer: string;
  kdf: { ikm: string; domain: string; parts: string[]; length: number; out: string }[];
  suri: { suri: string; public: string }[];
  request: {
    cluster: string;
    suri: string;
    dest: string;
    value: string;
    data: string;
    gas_limit: string;
    nonce: string;
    expires_at: string;
    body: string;
    signature: string;
  };
  envelopes: EnvelopeVector[];
  certificate: {
    wallet_suri: string;
    session_suri: string;
    cluster: string;
    expires_at: string;
    scope: "Queries" | "All";
    payload: string;
    signature: string;
    wrapped: boolean;
    body: string;
    request_signature: string;
  };
}

const SURIS = [
  "//Alice",
  "//Bob",
  "//Alice/stash",
  "//Alice//7",
  "bottom drive obey lake curtain smoke basket hold race lonely fit walk//phat/soft///secret",
  "0x" + "42".repeat(32) + "//x",
];

function fill(byte: number, n = 32): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

/** Vectors produced by this SDK. */
export function produce(): Vectors {
  const alice = Signer.fromSuri("//Alice");
  const cluster = x25519.getPublicKey(fill(7));
  const call = {
    tag: "Call" as const,
    value: { dest: fill(9), value: 1234567890123456789n, data: Uint8Array.of(1, 2, 3, 4, 5), gas_limit: 5_000_000_000n },
  };
  const nonce = 18446744073709551615n;
  const expiresAt = 1_900_000_000_000n;
  const signed = signRequest(alice, cluster, "Command", call, { nonce, expiresAt });
  const request = codec.SignedRequest.enc(signed);
  const queryOpen = codec.QueryOpen.enc({ request: signed, min_seq: 42n });
  const envelope = (purpose: Purpose, secret: number, eph: number, first: Uint8Array, later?: Uint8Array) => {
    const recipientSecret = fill(secret);
    const ephemeralSecret = fill(eph);
    const { sealed, keys } = seal(x25519.getPublicKey(recipientSecret), purpose, first, ephemeralSecret);
    const messages: Message[] = [];
    const plaintexts = later ? [first, later] : [first];
    plaintexts.forEach((p, i) => {
      const counter = BigInt(i);
      const reply = utf8ToBytes(`reply ${i} to a ${purpose}`);
      messages.push({
        counter: counter.toString(),
        request_plaintext: toHex(p),
        request_ciphertext: toHex(i === 0 ? sealed.ciphertext : keys.sealRequest(counter, p)),
        reply_plaintext: toHex(reply),
        reply_ciphertext: toHex(keys.sealReply(counter, reply)),
      });
    });
    return {
      purpose,
      recipient_secret: toHex(recipientSecret),
      ephemeral_secret: toHex(ephemeralSecret),
      ephemeral: toHex(sealed.ephemeral),
      messages,
    };
  };
  const sessionQuery = codec.SessionQuery.enc({ call, min_seq: undefined });
  // A wallet (//Alice) certifies a session key, wrapping the bytes as browser wallets do;
  // the session key signs a command carrying the certificate.
  const session = Signer.fromSuri("//session");
  const fields = {
    account: alice.publicKey,
    session: session.publicKey,
    cluster,
    expires_at: 1_900_000_000_000n,
    scope: { tag: "Queries" as const, value: undefined },
  };
  const certPayload = codec.certificatePayload(fields);
  const certSignature = alice.sign(concatBytes(utf8ToBytes("<Bytes>"), certPayload, utf8ToBytes("</Bytes>")));
  const certified = signRequest(
    { publicKey: session.publicKey, sign: (m: Uint8Array) => session.sign(m), certificate: { ...fields, signature: certSignature } },
    cluster,
    "Query",
    call,
    { nonce: 5n, expiresAt },
  );
  return {
    producer: "ts",
    kdf: [
      { ikm: toHex(fill(1)), domain: "phat/v1/storage", parts: [], length: 32, out: "" },
      { ikm: toHex(fill(2, 7)), domain: "phat/v1/envelope", parts: [toHex(utf8ToBytes("query")), toHex(fill(3)), "0x"], length: 64, out: "" },
    ].map((k) => ({ ...k, out: toHex(expand(fromHex(k.ikm), k.domain, k.parts.map((p) => fromHex(p)), k.length)) })),
    suri: SURIS.map((suri) => ({ suri, public: toHex(Signer.fromSuri(suri).publicKey) })),
    request: {
      cluster: toHex(cluster),
      suri: "//Alice",
      dest: toHex(call.value.dest),
      value: call.value.value.toString(),
      data: toHex(call.value.data),
      gas_limit: call.value.gas_limit.toString(),
      nonce: nonce.toString(),
      expires_at: expiresAt.toString(),
      body: toHex(signed.body),
      signature: toHex(signed.signature),
    },
    envelopes: [envelope("command", 7, 11, request), envelope("query", 8, 12, queryOpen, sessionQuery), envelope("handover", 9, 13, fill(0x5a))],
    certificate: {
      wallet_suri: "//Alice",
      session_suri: "//session",
      cluster: toHex(cluster),
      expires_at: fields.expires_at.toString(),
      scope: "Queries",
      payload: toHex(certPayload),
      signature: toHex(certSignature),
      wrapped: true,
      body: toHex(certified.body),
      request_signature: toHex(certified.signature),
    },
  };
}

function same(what: string, got: Uint8Array, want: string): void {
  if (!equalBytes(got, fromHex(want, what))) {
    throw new Error(`${what}: got ${toHex(got)}, want ${want}`);
  }
}

/** Checks `v` (from either producer) against this SDK; throws naming the first mismatch. */
export function check(v: Vectors): void {
  checkCertificate(v);
  for (const k of v.kdf) {
    same(`kdf ${k.domain}`, expand(fromHex(k.ikm), k.domain, k.parts.map((p) => fromHex(p)), k.length), k.out);
  }
  for (const s of v.suri) {
    same(`account of ${s.suri}`, Signer.fromSuri(s.suri).publicKey, s.public);
  }
  const r = v.request;
  const body = codec.RequestBody.enc({
    mode: { tag: "Command", value: undefined },
    call: { tag: "Call", value: { dest: fromHex(r.dest), value: BigInt(r.value), data: fromHex(r.data), gas_limit: BigInt(r.gas_limit) } },
    nonce: BigInt(r.nonce),
    expires_at: BigInt(r.expires_at),
  });
  same("request body", body, r.body);
  const signer = Signer.fromSuri(r.suri).publicKey;
  if (!verify(signer, signingPayload(fromHex(r.cluster), body), fromHex(r.signature))) {
    throw new Error(`the ${v.producer} request signature does not verify`);
  }
  for (const e of v.envelopes) {
    const recipientSecret = fromHex(e.recipient_secret);
    const first = e.messages[0];
    const { sealed, keys } = seal(x25519.getPublicKey(recipientSecret), e.purpose, fromHex(first.request_plaintext), fromHex(e.ephemeral_secret));
    same(`${e.purpose} ephemeral key`, sealed.ephemeral, e.ephemeral);
    same(`${e.purpose} first message`, sealed.ciphertext, first.request_ciphertext);
    const opened = openSealed(recipientSecret, e.purpose, {
      version: 1,
      ephemeral: fromHex(e.ephemeral),
      ciphertext: fromHex(first.request_ciphertext),
    });
    same(`${e.purpose} opened`, opened.plaintext, first.request_plaintext);
    for (const m of e.messages) {
      const counter = BigInt(m.counter);
      same(`${e.purpose} message ${counter}`, keys.sealRequest(counter, fromHex(m.request_plaintext)), m.request_ciphertext);
      same(`${e.purpose} reply ${counter} (sealed)`, keys.sealReply(counter, fromHex(m.reply_plaintext)), m.reply_ciphertext);
      same(`${e.purpose} reply ${counter} (opened)`, keys.openReply(counter, fromHex(m.reply_ciphertext)), m.reply_plaintext);
    }
    // The plaintexts are the protocol's: they decode, and signed requests inside verify.
    const requestIn = (bytes: Uint8Array) => {
      const req = codec.SignedRequest.dec(bytes);
      if (!verify(req.signer, signingPayload(fromHex(r.cluster), req.body), req.signature)) {
        throw new Error(`the request inside the ${v.producer} ${e.purpose} envelope does not verify`);
      }
    };
    if (e.purpose === "command") requestIn(opened.plaintext);
    if (e.purpose === "query") {
      const open = codec.QueryOpen.dec(opened.plaintext);
      requestIn(codec.SignedRequest.enc(open.request));
      codec.SessionQuery.dec(fromHex(e.messages[1].request_plaintext));
    }
  }
}

function checkCertificate(v: Vectors): void {
  const c = v.certificate;
  const wallet = Signer.fromSuri(c.wallet_suri).publicKey;
  const session = Signer.fromSuri(c.session_suri).publicKey;
  const fields = {
    account: wallet,
    session,
    cluster: fromHex(c.cluster),
    expires_at: BigInt(c.expires_at),
    scope: { tag: c.scope, value: undefined },
  };
  const payload = codec.certificatePayload(fields);
  same("certificate payload", payload, c.payload);
  const signed = c.wrapped ? concatBytes(utf8ToBytes("<Bytes>"), payload, utf8ToBytes("</Bytes>")) : payload;
  if (!verify(wallet, signed, fromHex(c.signature))) {
    throw new Error(`the ${v.producer} certificate signature does not verify`);
  }
  const r = v.request;
  const body = codec.encodeRequestBody(
    {
      mode: { tag: "Query", value: undefined },
      call: { tag: "Call", value: { dest: fromHex(r.dest), value: BigInt(r.value), data: fromHex(r.data), gas_limit: BigInt(r.gas_limit) } },
      nonce: 5n,
      expires_at: BigInt(r.expires_at),
    },
    { ...fields, signature: fromHex(c.signature) },
  );
  same("certified request body", body, c.body);
  if (!verify(session, signingPayload(fromHex(c.cluster), body), fromHex(c.request_signature))) {
    throw new Error(`the ${v.producer} certified request's signature does not verify`);
  }
}

/** Reads `testing/vectors/<producer>.json`. */
export function load(producer: string): Vectors {
  return JSON.parse(readFileSync(VECTORS_DIR + producer + ".json", "utf8")) as Vectors;
}

// `node dist/test/vectors.js write` refreshes ts.json.
if (process.argv[2] === "write") {
  writeFileSync(VECTORS_DIR + "ts.json", JSON.stringify(produce(), null, 1) + "\n");
  console.log("wrote", VECTORS_DIR + "ts.json");
}
