/** `@phat/sdk/core`: the SDK without contract metadata (no `@polkadot/*`, a fraction of the
 * browser bundle): the client, raw calls, envelopes, codecs and signers. */
export * from "./bytes.js";
export * from "./client.js";
export * as codec from "./codec.js";
export { signingPayload } from "./codec.js";
export * from "./envelope.js";
export * from "./kdf.js";
export * from "./request.js";
export * from "./signer.js";
export * from "./wallet.js";
