//! Settings of the pink dispatcher: limits, gas charges and the fixed answers it gives.

use std::time::Duration;

use phat_primitives::{blake2_256, AccountId, Gas};

/// Gas the dispatcher charges on top of the runtime's base cost of an extension call.
///
/// Commands must cost the same on every worker, so every charge depends only on the call's
/// input and its (deterministic) output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinkGas {
    /// Every pink function call.
    pub call: Gas,
    /// Each byte of input and of output.
    pub per_byte: Gas,
    /// Each key derivation, signature or verification.
    pub crypto: Gas,
    /// Each HTTP request (a batch pays for each of its requests).
    pub http: Gas,
}

impl Default for PinkGas {
    fn default() -> Self {
        Self {
            call: 1_000,
            per_byte: 1,
            crypto: 50_000,
            http: 100_000,
        }
    }
}

/// Settings of the pink dispatcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinkConfig {
    /// Most requests in one `batch_http_request`; more answer `TooManyRequests`.
    pub max_batch: usize,
    /// Longest HTTP timeout granted (further bounded by the query's time left).
    pub max_http_timeout: Duration,
    /// What `runtime_version` answers (major, minor): (1, 2), the pink runtime whose functions
    /// phat serves (Phala answers its runtime crate's version, 1.2 today).
    pub runtime_version: (u32, u32),
    /// What `system_contract_id` answers; by default [`default_system_contract_id`].
    pub system_contract: AccountId,
    /// Gas charges.
    pub gas: PinkGas,
}

impl Default for PinkConfig {
    fn default() -> Self {
        Self {
            max_batch: 5,
            max_http_timeout: Duration::from_secs(10),
            runtime_version: (1, 2),
            system_contract: default_system_contract_id(),
            gas: PinkGas::default(),
        }
    }
}

/// The id `system_contract_id` answers in a cluster without a system contract (created before
/// genesis carried one): `blake2_256(b"phat/system-contract")`, fixed so that contracts
/// comparing against it behave the same on every worker.
pub fn default_system_contract_id() -> AccountId {
    AccountId(blake2_256(b"phat/system-contract"))
}
