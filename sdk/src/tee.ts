/** Hardware attestation (`@phat/sdk/tee`): checks a worker's `sgx-dcap` or `tdx-dcap` report
 * as the Rust client does (`phat_crypto::attest::DcapEvidence::verify`): the DCAP quote and
 * its Intel collateral with `@phala/dcap-qvl` (Intel's root CA built in), the TEE policy (the
 * same JSON as `phat --tee-policy`), the report's measurement against the quote's, and the
 * quote's report data binding the report (worker keys, cluster key, encryption).
 *
 * A separate entry point, so that pages that talk to dev clusters only do not carry the DCAP
 * verifier: pass `tee: teeVerifier(policy)` to `PhatClient.connect`. */
import { verify as dcapVerify } from "@phala/dcap-qvl";
import { blake2b } from "@noble/hashes/blake2.js";
import { Struct } from "scale-ts";
import { bytesToHex } from "@noble/hashes/utils.js";
import { concatBytes, fromHex, utf8ToBytes } from "./bytes.js";
import { UntrustedError, reportPayload, type AttestationReport } from "./client.js";
import { VecU8 } from "./codec.js";

/** What a client accepts from a TEE: the JSON of `phat --tee-policy` (docs/ENVELOPES.md).
 * Strict by default: no kind until listed, `UpToDate` only, no advisory, no debug TEE. */
export interface TeePolicy {
  kinds?: ("sgx-dcap" | "tdx-dcap")[];
  sgx?: { mr_enclave?: string[]; mr_signer?: string; isv_prod_id?: number; min_isv_svn?: number };
  tdx?: { mr_td?: string[]; rtmr?: (string | null)[] };
  tcb_statuses?: string[];
  advisories?: string[];
  allow_debug?: boolean;
}

/** What a verified quote proves. */
export interface TeeVerified {
  kind: "sgx-dcap" | "tdx-dcap";
  /** The TCB status Intel's collateral gives the platform. */
  tcbStatus: string;
  advisories: string[];
  debug: boolean;
  /** The measurement reports carry: MRENCLAVE (SGX), or blake2b-256 of MRTD and RTMR0..3 (TDX). */
  measurement: Uint8Array;
}

/** `DcapEvidence`: what a hardware report's `signature` holds (SCALE). */
const DcapEvidence = Struct({ quote: VecU8, collateral_json: VecU8 });

const REPORT_DATA_DOMAIN = utf8ToBytes("phat/tee-report-data/v1");
const TDX_MEASUREMENT_DOMAIN = utf8ToBytes("phat/tdx-measurement/v1");

/** The report data a quote must carry for `payload` (`phat_attest::report_data_for`). */
export function reportDataFor(payload: Uint8Array): Uint8Array {
  return blake2b(concatBytes(REPORT_DATA_DOMAIN, payload), { dkLen: 64 });
}

const sameHex = (want: string, got: Uint8Array) => want.replace(/^0x/, "").toLowerCase() === bytesToHex(got);

function refuse(field: string, want: string, got: string): never {
  throw new UntrustedError(`attestation policy: ${field} is ${got}, the policy accepts ${want}`);
}

/** Verifies `quote` against `collateral` at `nowSecs` and applies `policy`; answers what the
 * quote proves and its report data. Throws [`UntrustedError`]. */
export function verifyQuote(quote: Uint8Array, collateral: unknown, nowSecs: number, policy: TeePolicy): TeeVerified & { reportData: Uint8Array } {
  let v: ReturnType<typeof dcapVerify>;
  try {
    v = dcapVerify(quote, collateral as Parameters<typeof dcapVerify>[1], nowSecs);
  } catch (e) {
    throw new UntrustedError(`quote verification failed: ${(e as Error).message}`);
  }
  const report = v.report;
  const sgx = report.type === "sgx" ? (report.data as import("@phala/dcap-qvl").EnclaveReport) : null;
  const tdx = report.type !== "sgx" ? (report.data as import("@phala/dcap-qvl").TDReport10) : null;
  const kind = sgx ? "sgx-dcap" : "tdx-dcap";
  const debug = sgx ? (sgx.attributes[0] & 0x02) !== 0 : (tdx!.tdAttributes[0] & 0x01) !== 0;
  const rtmr = tdx ? [tdx.rtMr0, tdx.rtMr1, tdx.rtMr2, tdx.rtMr3] : [];
  const measurement = sgx
    ? Uint8Array.from(sgx.mrEnclave)
    : blake2b(concatBytes(TDX_MEASUREMENT_DOMAIN, tdx!.mrTd, ...rtmr), { dkLen: 32 });
  const kinds = policy.kinds ?? [];
  if (!kinds.includes(kind)) refuse("kind", kinds.join(", ") || "none", kind);
  if (debug && !policy.allow_debug) refuse("debug", "production enclaves only", "a debug enclave");
  const statuses = policy.tcb_statuses ?? ["UpToDate"];
  if (!statuses.includes(v.status)) refuse("tcb_status", statuses.join(", "), v.status);
  const allowed = policy.advisories ?? [];
  const extra = v.advisory_ids.find((a) => !allowed.includes(a));
  if (extra !== undefined) refuse("advisory", allowed.join(", ") || "no advisory", extra);
  if (sgx) {
    const p = policy.sgx ?? {};
    if (p.mr_enclave?.length && !p.mr_enclave.some((m) => sameHex(m, sgx.mrEnclave))) refuse("sgx.mr_enclave", p.mr_enclave.join(", "), bytesToHex(sgx.mrEnclave));
    if (p.mr_signer !== undefined && !sameHex(p.mr_signer, sgx.mrSigner)) refuse("sgx.mr_signer", p.mr_signer, bytesToHex(sgx.mrSigner));
    if (p.isv_prod_id !== undefined && p.isv_prod_id !== sgx.isvProdId) refuse("sgx.isv_prod_id", String(p.isv_prod_id), String(sgx.isvProdId));
    if (p.min_isv_svn !== undefined && sgx.isvSvn < p.min_isv_svn) refuse("sgx.isv_svn", `at least ${p.min_isv_svn}`, String(sgx.isvSvn));
  } else {
    const p = policy.tdx ?? {};
    if (p.mr_td?.length && !p.mr_td.some((m) => sameHex(m, tdx!.mrTd))) refuse("tdx.mr_td", p.mr_td.join(", "), bytesToHex(tdx!.mrTd));
    (p.rtmr ?? []).forEach((want, i) => {
      if (want && !sameHex(want, rtmr[i])) refuse(`tdx.rtmr${i}`, want, bytesToHex(rtmr[i]));
    });
  }
  const reportData = Uint8Array.from(sgx ? sgx.reportData : tdx!.reportData);
  return { kind, tcbStatus: v.status, advisories: v.advisory_ids, debug, measurement, reportData };
}

/** Verifies a worker's hardware report under `policy` at `nowSecs`. Throws [`UntrustedError`]. */
export function verifyTeeReport(r: AttestationReport, policy: TeePolicy, nowSecs = Date.now() / 1000): TeeVerified {
  if (r.provider !== "sgx-dcap" && r.provider !== "tdx-dcap") throw new UntrustedError(`\`${r.provider}\` is not a DCAP provider`);
  let evidence: { quote: Uint8Array; collateral_json: Uint8Array };
  let collateral: unknown;
  try {
    evidence = DcapEvidence.dec(fromHex(r.signature, "evidence"));
    collateral = JSON.parse(new TextDecoder().decode(evidence.collateral_json));
  } catch (e) {
    throw new UntrustedError(`malformed DCAP evidence: ${(e as Error).message}`);
  }
  const v = verifyQuote(evidence.quote, collateral, nowSecs, policy);
  if (v.kind !== r.provider) throw new UntrustedError(`the report says ${r.provider} but its quote is ${v.kind}`);
  if (!sameHex(r.measurement, v.measurement)) {
    throw new UntrustedError(`the report's measurement ${r.measurement} is not its quote's 0x${bytesToHex(v.measurement)}`);
  }
  if (bytesToHex(v.reportData) !== bytesToHex(reportDataFor(reportPayload(r)))) {
    throw new UntrustedError("the quote's report data does not bind this report (its keys are not the quoted TEE's)");
  }
  const { reportData: _bound, ...verified } = v;
  return verified;
}

/** The `tee` option of `PhatClient.connect`: accept hardware workers that satisfy `policy`. */
export function teeVerifier(policy: TeePolicy, options: { nowSecs?: () => number } = {}): (r: AttestationReport) => TeeVerified {
  return (r) => verifyTeeReport(r, policy, options.nowSecs?.() ?? Date.now() / 1000);
}
