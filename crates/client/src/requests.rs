//! Building and signing requests: default calls and instantiations, signed for a cluster with
//! a fresh nonce and expiry, by a key or a certified session key.

use phat_primitives::protocol::{Bytes, Call, RequestBody, SignedRequest};
use phat_primitives::{AccountId, CodeHash, Mode};

use crate::{now_ms, Signer, DEFAULT_GAS_LIMIT, DEFAULT_TTL};

/// A message call with the default gas limit and no value.
pub fn call(dest: AccountId, data: Vec<u8>) -> Call {
    Call::Call {
        dest,
        value: 0,
        data: Bytes(data),
        gas_limit: DEFAULT_GAS_LIMIT,
    }
}

/// An instantiation with the default gas limit and no value.
pub fn instantiate(code_hash: CodeHash, data: Vec<u8>, salt: Vec<u8>) -> Call {
    Call::Instantiate {
        code_hash,
        value: 0,
        data: Bytes(data),
        salt: Bytes(salt),
        gas_limit: DEFAULT_GAS_LIMIT,
    }
}

/// Signs `call` for `mode` on the cluster whose envelope key is `cluster` (a worker's
/// `cluster_key`), with a fresh random nonce, valid for [`DEFAULT_TTL`].
pub fn sign(
    signer: &Signer,
    cluster: &phat_primitives::Hash,
    mode: Mode,
    call: Call,
) -> SignedRequest {
    sign_certified(signer, None, cluster, mode, call)
}

/// Like [`sign`], by a session key that `certificate` (a wallet's, from
/// [`Signer::certify`]) lets speak for the wallet's account: the request is made as that
/// account (docs/ENVELOPES.md, "Certificates").
pub fn sign_certified(
    session: &Signer,
    certificate: Option<&phat_primitives::protocol::Certificate>,
    cluster: &phat_primitives::Hash,
    mode: Mode,
    call: Call,
) -> SignedRequest {
    session.sign_request(
        cluster,
        &RequestBody {
            mode,
            call,
            nonce: rand::random(),
            expires_at: now_ms() + DEFAULT_TTL.as_millis() as u64,
            certificate: certificate.cloned(),
        },
    )
}
