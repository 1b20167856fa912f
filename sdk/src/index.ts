/** `@phat/sdk`: talk to a phat cluster from Node and the browser, byte-compatible with the
 * Rust client: attested workers (`PhatClient.connect`), sealed commands, encrypted query
 * sessions, signed uploads; SCALE codecs of the protocol types, envelopes, and sr25519
 * signers from secret URIs. */
export * from "./bytes.js";
export * from "./client.js";
export * as codec from "./codec.js";
export * from "./contract.js";
export { signingPayload } from "./codec.js";
export * from "./envelope.js";
export * from "./kdf.js";
export * from "./request.js";
export * from "./signer.js";
