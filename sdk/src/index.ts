/** `@phat/sdk`: talk to a phat cluster from Node and the browser. This release has the
 * protocol core, byte-compatible with the Rust client: SCALE codecs of the protocol types,
 * envelopes (sealed commands, query sessions), sr25519 signers from secret URIs, and signed
 * requests. */
export * from "./bytes.js";
export * as codec from "./codec.js";
export { signingPayload } from "./codec.js";
export * from "./envelope.js";
export * from "./kdf.js";
export * from "./request.js";
export * from "./signer.js";
