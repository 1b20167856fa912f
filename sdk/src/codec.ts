/** SCALE codecs of phat's protocol types (`crates/primitives/src/protocol/`), on `scale-ts`.
 * Field order and enum indexes follow the Rust definitions exactly: the bytes are what the
 * worker decodes and what signatures cover. */
import {
  _void,
  Bytes,
  Enum,
  Option,
  Struct,
  str,
  u8,
  u32,
  u64,
  u128,
  Vector,
  Tuple,
  bool,
  type CodecType,
} from "scale-ts";
import { concatBytes, utf8ToBytes } from "./bytes.js";

/** 32 bytes: account ids, hashes, keys. */
export const H256 = Bytes(32);
/** Variable-length bytes (`Vec<u8>`). */
export const VecU8 = Bytes();

/** `Mode`: query or command. */
export const Mode = Enum({ Query: _void, Command: _void });

/** `ClusterOp`: the owner's changes to the cluster. */
export const ClusterOp = Enum({ RotateKey: _void, RevokeWorker: Struct({ worker: H256 }) });

/** `ScheduleDef` and its parts. */
export const ScheduleSpec = Enum({ Every: Struct({ ms: u64 }), Cron: Struct({ expr: str }) });
/** `MissedTicks`. */
export const MissedTicks = Enum({ Skip: _void, RunOnce: _void });
/** `ScheduleDef`. */
export const ScheduleDef = Struct({ spec: ScheduleSpec, data: VecU8, gas_limit: u64, missed: MissedTicks });
/** `ScheduleOp`. */
export const ScheduleOp = Enum({
  Add: Struct({ contract: H256, def: ScheduleDef }),
  Remove: Struct({ contract: H256, id: u32 }),
});

/** `LogKind`: what a log record is. */
export const LogKind = Enum({ Log: _void, Event: _void, Output: _void, Query: _void, Trigger: _void });
/** `LogFilter`: which records a log read returns. */
export const LogFilter = Struct({
  after: Option(u64),
  since: Option(u64),
  kinds: Vector(LogKind),
  limit: u32,
  tail: bool,
  wait_ms: u32,
});
/** `LogRecord`: a line of a contract's log. */
export const LogRecord = Struct({ contract: H256, level: str, origin: Mode, seq: Option(u64), timestamp: u64, message: str });
/** `LogPage`: the output of a log read, records with their index and the next index. */
export const LogPage = Struct({ records: Vector(Tuple(u64, LogRecord)), next: u64 });

/** `Call`: what a request asks for. Subscriptions (4) and jobs (5) are not made by the SDK;
 * the indexes after them are kept. */
export const Call = Enum(
  {
    Instantiate: Struct({ code_hash: H256, value: u128, data: VecU8, salt: VecU8, gas_limit: u64 }),
    Call: Struct({ dest: H256, value: u128, data: VecU8, gas_limit: u64 }),
    Cluster: Struct({ op: ClusterOp }),
    Schedule: Struct({ op: ScheduleOp }),
    Logs: Struct({ contract: H256, filter: LogFilter }),
    LogReaders: Struct({ contract: H256, readers: Vector(H256) }),
    Transfer: Struct({ dest: H256, value: u128 }),
    Estimate: Struct({ call: VecU8 }),
  },
  [0, 1, 2, 3, 6, 7, 8, 9],
);
/** A `Call` value. */
export type CallValue = CodecType<typeof Call>;

/** `RequestBody`'s fields before the optional certificate: the whole layout of a body without
 * one. Use [`encodeRequestBody`] to encode a body. */
export const RequestBody = Struct({ mode: Mode, call: Call, nonce: u64, expires_at: u64 });
/** A `RequestBody` value (without its certificate). */
export type RequestBodyValue = CodecType<typeof RequestBody>;

/** `CertificateScope`: what a certificate lets its session key sign. */
export const CertificateScope = Enum({ Queries: _void, All: _void });
/** A certificate's signed fields. */
export const CertificateFields = Struct({ account: H256, session: H256, cluster: H256, expires_at: u64, scope: CertificateScope });
/** `Certificate`: a wallet's authorisation of a session key (docs/ENVELOPES.md). */
export const Certificate = Struct({
  account: H256,
  session: H256,
  cluster: H256,
  expires_at: u64,
  scope: CertificateScope,
  signature: VecU8,
});
/** A `Certificate` value. */
export type CertificateValue = CodecType<typeof Certificate>;

/** The domain tag a certificate's signature covers. */
export const CERTIFICATE_DOMAIN = utf8ToBytes("phat/certificate/v1:");

/** What the wallet signs for a certificate: the domain tag and its fields. */
export function certificatePayload(c: CodecType<typeof CertificateFields>): Uint8Array {
  return concatBytes(CERTIFICATE_DOMAIN, CertificateFields.enc(c));
}

/** A `RequestBody`'s bytes: the fields, then, only with a certificate, the byte 1 and it. */
export function encodeRequestBody(body: RequestBodyValue, certificate?: CertificateValue): Uint8Array {
  const fields = RequestBody.enc(body);
  return certificate ? concatBytes(fields, Uint8Array.of(1), Certificate.enc(certificate)) : fields;
}

/** `SignedRequest`: the SCALE body, the signer and its sr25519 signature. */
export const SignedRequest = Struct({ body: VecU8, signer: H256, signature: VecU8 });
/** A `SignedRequest` value. */
export type SignedRequestValue = CodecType<typeof SignedRequest>;

/** `Sealed`: an envelope's first message. */
export const Sealed = Struct({ version: u8, ephemeral: H256, ciphertext: VecU8 });

/** `QueryOpen`: a session's first message. */
export const QueryOpen = Struct({ request: SignedRequest, min_seq: Option(u64) });
/** `SessionQuery`: a later message of a session. */
export const SessionQuery = Struct({ call: Call, min_seq: Option(u64) });

/** `CallOutput`. */
export const CallOutput = Struct({ data: VecU8, reverted: bool, address: Option(H256) });
/** `CallError`. */
export const CallError = Struct({ kind: str, message: str });
/** `CallResult`: output, typed error, or the result sealed to the caller. */
export const CallResult = Enum({ Ok: CallOutput, Err: CallError, Sealed: VecU8 });
/** A `CallResult` value. */
export type CallResultValue = CodecType<typeof CallResult>;

/** `EventRecord`. */
export const EventRecord = Struct({ contract: H256, topics: Vector(H256), data: VecU8 });

/** The domain tag of request signatures (`REQUEST_SIGNING_DOMAIN`). */
export const REQUEST_SIGNING_DOMAIN = utf8ToBytes("phat/request/v2:");

/** The bytes a caller signs: the domain tag, the cluster's envelope key, the SCALE body. */
export function signingPayload(cluster: Uint8Array, body: Uint8Array): Uint8Array {
  return concatBytes(REQUEST_SIGNING_DOMAIN, cluster, body);
}
