//! phat-pink: Phala's pink chain extension, the dispatcher that gives contracts their off-chain powers.
//!
//! Contracts written against `pink-extension` call `call_chain_extension` with extension id 0
//! and one of pink's function ids; [`PinkExtension`] implements the runtime's
//! [`phat_runtime::ChainExtension`] seam, decodes the SCALE arguments exactly as pink's runtime
//! does, runs the function and encodes the answer in pink's format. Everything that reaches
//! outside the runtime (HTTP, the worker's cache, logs, randomness, the clock, the worker's key,
//! the cluster's key seed) goes through the embedder's [`PinkHost`].
//!
//! ```text
//! types     pink's wire types (HttpRequest, SigType, …) and the function ids
//! host      PinkHost: the outside effects, implemented by the worker
//! config    PinkConfig / PinkGas: limits, gas charges, fixed answers
//! dispatch  PinkExtension: the ChainExtension the runtime calls
//! sign      sign / verify / get_public_key in sp-core's formats
//! keys      a contract's own keys, from phat-crypto's derivation
//! ```
//!
//! Reply format (pink's `handle_status` flag): functions whose pink type is
//! `Result<T, E: CodableError>` (6 `cache_set`, 22 `batch_http_request`) answer status 0 with
//! `T` encoded, or the error's status code (`HttpRequestError` discriminant + 1,
//! `CacheQuotaExceeded` 1) with empty output; all others answer status 0 and their SCALE value.
//! Malformed arguments, bad keys and failures pink's types cannot express make the contract trap
//! with [`phat_runtime::ExtensionError::Failed`].
//!
//! Queries and commands (Phala's answers, with every command answer identical on every worker):
//!
//! | function | query | command |
//! | --- | --- | --- |
//! | `http_request` | host (an unreachable server answers 523, a failed exchange 524) | 523 `API Unavailable` |
//! | `batch_http_request` | host | `Err(NotAllowed)` |
//! | `getrandom`, `untrusted_millis_since_unix_epoch` | host | no bytes, 0 |
//! | `js_eval` | host | `Exception` |
//! | `cache_set`, `cache_set_expiration` | host | host; `cache_set` always answers `Ok(())` |
//! | `cache_get` | host | `None`, host not asked |
//! | `cache_remove` | host | host removes; answers `None` |
//! | `worker_pubkey` | host | 32 zero bytes (as Phala) |
//! | `sign` sr25519 | hedged nonce (host randomness) | deterministic nonce (Phala answers `[]`) |
//! | everything else | same | same |
//!
//! Keys: a contract's secrets derive from the cluster-wide [`PinkHost::key_seed`] and the
//! contract id, domain-separated (HKDF-SHA256 under `phat/v1/contract-key` with the kind,
//! contract and salt, in [`phat_crypto::contract_key_material`]), so every worker derives the
//! same keys and no two contracts share one. A contract's Ethereum key is the first 32 bytes of
//! `derive_sr25519_key("ethereum")`. Only `derive_sr25519_key` hands a derived secret to the
//! contract, as pink does: a 64-byte schnorrkel secret key (32-byte scalar ‖ 32-byte nonce).
//! Key formats follow sp-core, which pink uses: sr25519 secrets are 32-byte mini secrets
//! (expanded in ed25519 mode) or 64-byte secret keys, signatures 64 bytes in the `substrate`
//! signing context; ed25519 secrets are 32-byte seeds; ecdsa (secp256k1) secrets are 32 bytes,
//! public keys 33 bytes compressed, signatures 65 bytes `r ‖ s ‖ v` over `blake2_256(message)`
//! (or the given prehash).
//!
//! 24 `js_eval` runs JavaScript through the host ([`PinkHost::js_eval`]; the worker's is
//! QuickJS, in `phat-js`), in queries only (a command gets Phala's exception). Functions phat does not provide answer "not
//! supported" in the reply type where it allows: 25 `worker_sgx_quote` → `None`. 20
//! `import_latest_system_code` is the system contract's alone (others trap, as on Phala); it
//! answers `None`, phat having no chain storage to import from.

#![warn(missing_docs)]

mod config;
mod dispatch;
mod host;
mod keys;
mod sign;
mod types;

#[cfg(test)]
mod tests;

pub use config::{default_system_contract_id, PinkConfig, PinkGas};
pub use dispatch::{event_chain_head, PinkExtension, PINK_EXTENSION_ID};
pub use host::PinkHost;
pub use keys::{
    contract_ethereum_key, contract_public_keys, derive_key_material, derive_sr25519_secret,
    ContractPublicKeys, KeyKind, ETHEREUM_KEY_SALT,
};
pub use types::{
    AttestationType, BatchHttpResult, CacheQuotaExceeded, HttpRequest, HttpRequestError,
    HttpResponse, JsCode, JsValue, PinkFunction, ScheduleError, ScheduleRequest, SgxQuote, SigType,
};
