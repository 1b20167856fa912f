/** `@phat/sdk`: talk to a phat cluster from Node and the browser, byte-compatible with the
 * Rust client: attested workers (`PhatClient.connect`), sealed commands, encrypted query
 * sessions, signed uploads, contracts by message name (`ContractApi`); SCALE codecs of the
 * protocol types, envelopes, and sr25519 signers from secret URIs. `@phat/sdk/core` is the
 * same without contract metadata (and without `@polkadot/*`). */
export * from "./core.js";
export * from "./contract.js";
export { Abi } from "@polkadot/api-contract";
/** SS58 account addresses (as wallets show them) to and from bytes. */
export { decodeAddress, encodeAddress } from "@polkadot/util-crypto";
