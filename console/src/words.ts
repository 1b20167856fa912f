/** Errors in words a person understands: what went wrong, and what to do about it. */
import { ApiError, ArgumentError, SuriError, UnreachableError, UntrustedError } from "../../sdk/dist/src/index.js";

/** What the worker's error kinds (API refusals and call failures) mean. */
const KINDS: Record<string, string> = {
  // Refusals of a request.
  bad_signature: "The request's signature does not verify: the account that signed it is not the one it names.",
  bad_certificate: "The wallet's sign-in certificate does not verify. Sign in with the wallet again.",
  certificate_expired: "Your wallet sign-in has expired. Sign in with the wallet again.",
  certificate_scope: "Your wallet sign-in only allows queries. Sign in again to send transactions.",
  expired: "The request expired before the cluster took it. Check this computer's clock.",
  rate_limited: "Too many requests from here: wait a moment and try again.",
  busy: "The worker is busy: try again in a moment.",
  too_large: "That is larger than the worker accepts.",
  unknown_contract: "There is no contract at that address on this cluster.",
  unknown_code: "That code was never uploaded to this cluster.",
  unknown_metadata: "Nobody published metadata for this contract's code, so its messages cannot be shown. Deploy it from here or with `phat deploy`.",
  invalid_code: "That is not contract code this cluster runs (not valid WebAssembly, or it imports what phat does not provide).",
  ledger_unavailable: "The cluster's ledger does not answer, so nothing can be ordered right now.",
  encryption_required: "This cluster takes only encrypted requests.",
  not_applied_yet: "The worker has not applied that far yet: try again in a moment.",
  session_expired: "The query session expired: the next query opens a new one.",
  no_worker: "No worker of the cluster answers.",
  worker_failed: "The worker failed while answering: see its log.",
  // Call failures (a receipt's or query's `err`).
  trapped: "The contract trapped (it hit `unreachable`, or a host call it made was refused). Its changes were dropped.",
  panicked: "The contract panicked. Its changes were dropped.",
  out_of_gas: "The call ran out of gas. Its changes were dropped.",
  timeout: "The call ran past its time limit. Its changes were dropped.",
  stack_overflow: "The contract recursed too deep. Its changes were dropped.",
  max_call_depth: "The contract called other contracts too deep. Its changes were dropped.",
  limit_exceeded: "The call went past one of the worker's bounds (memory, storage, output or events). Its changes were dropped.",
  contract_not_found: "The call went to an address with no contract.",
  code_not_found: "The code hash is not uploaded to this cluster.",
  duplicate_contract: "A contract with this code, constructor arguments and salt already exists.",
  transfer_failed: "The transfer failed: the balance is too low.",
  decode: "The contract could not decode its input: the arguments do not fit the message.",
  reverted: "The constructor reverted: it returned an error, so nothing was deployed.",
};

/** `e` in words. */
export function inWords(e: unknown): string {
  if (e instanceof UnreachableError) return `The cluster does not answer. Is \`phat dev\` still running? (${e.message})`;
  if (e instanceof UntrustedError) return `This worker's attestation was not accepted, so nothing was sent to it: ${e.message}`;
  if (e instanceof ArgumentError) return `Check the arguments: ${e.message}`;
  if (e instanceof SuriError) return `That is not a secret URI or mnemonic: ${e.message}`;
  if (e instanceof ApiError) return callError(e.kind, e.message.replace(`${e.kind}: `, ""));
  if (e instanceof SyntaxError) return `That is not valid JSON: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/** A call failure (`{kind, message}`) in words, with the worker's own message as detail. */
export function callError(kind: string, message: string): string {
  const words = KINDS[kind];
  if (!words) return `The worker refused (${kind}): ${message}`;
  return message ? `${words} (${message})` : words;
}
