//! The dispatcher: [`PinkExtension`] implements the runtime's [`ChainExtension`] seam, decoding
//! pink's calls, charging gas and answering in pink's reply format.

use std::time::{Duration, Instant};

use parity_scale_codec::{Decode, DecodeLimit, Encode};
use phat_primitives::{blake2_256, AccountId, CodeHash, Gas, Mode};
use phat_runtime::{
    ChainExtension, ExtensionEnv, ExtensionError, ExtensionId, ExtensionOutput, ExtensionState,
};

use crate::config::PinkConfig;
use crate::host::PinkHost;
use crate::keys::derive_sr25519_secret;
use crate::sign::{ecdsa_sign_prehashed, ecdsa_verify_prehashed, public_key, sign, verify};
use crate::types::{
    AttestationType, CacheQuotaExceeded, HttpRequest, HttpRequestError, HttpResponse, JsCode,
    JsValue, PinkFunction, ScheduleError, ScheduleRequest, SgxQuote, SigType,
};

/// pink's extension id (the high 16 bits of the chain-extension id).
pub const PINK_EXTENSION_ID: u16 = 0;

/// Nesting limit when decoding arguments (as pallet-contracts' `MAX_DECODE_NESTING`).
const MAX_DECODE_NESTING: u32 = 256;

/// What `current_event_chain_head` answers at `block`: `(block, blake2_256(SCALE(
/// ("phat/event-chain-head", block))))`. phat has no pink event chain; the pair is a
/// deterministic stand-in that changes with every block.
pub fn event_chain_head(block: u64) -> (u64, [u8; 32]) {
    (
        block,
        blake2_256(&(b"phat/event-chain-head".as_slice(), block).encode()),
    )
}

/// pink's chain extension over a [`PinkHost`].
pub struct PinkExtension<H: PinkHost> {
    host: H,
    config: PinkConfig,
}

impl<H: PinkHost> PinkExtension<H> {
    /// The dispatcher over `host` with the default [`PinkConfig`].
    pub fn new(host: H) -> Self {
        Self::with_config(host, PinkConfig::default())
    }

    /// The dispatcher over `host` with `config`.
    pub fn with_config(host: H, config: PinkConfig) -> Self {
        Self { host, config }
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The configuration.
    pub fn config(&self) -> &PinkConfig {
        &self.config
    }
}

/// Why dispatching stopped without a reply.
enum Stop {
    /// The gas the call needs exceeds what the contract has left.
    OutOfGas,
    /// The contract traps with this error.
    Error(ExtensionError),
}

impl From<ExtensionError> for Stop {
    fn from(err: ExtensionError) -> Self {
        Stop::Error(err)
    }
}

/// Gas accounting of one call: charges accumulate and stop the call before costly work once
/// they exceed what the contract has left.
struct Meter {
    used: Gas,
    left: Gas,
}

impl Meter {
    fn charge(&mut self, gas: Gas) -> Result<(), Stop> {
        self.used = self.used.saturating_add(gas);
        if self.used > self.left {
            return Err(Stop::OutOfGas);
        }
        Ok(())
    }
}

/// A reply: status code and SCALE-encoded output.
struct Reply {
    status: u32,
    output: Vec<u8>,
}

impl Reply {
    /// Status 0 with `value` encoded.
    fn value(value: impl Encode) -> Self {
        Reply {
            status: 0,
            output: value.encode(),
        }
    }

    /// A non-zero status with empty output.
    fn status(status: u32) -> Self {
        Reply {
            status,
            output: Vec::new(),
        }
    }
}

fn failed(func: PinkFunction, what: impl std::fmt::Display) -> Stop {
    Stop::Error(ExtensionError::Failed(format!("{}: {what}", func.name())))
}

/// Decodes `func`'s argument tuple, the whole input and nothing else.
fn args<T: Decode>(func: PinkFunction, input: &[u8]) -> Result<T, Stop> {
    T::decode_all_with_depth_limit(MAX_DECODE_NESTING, &mut &input[..]).map_err(|e| {
        Stop::Error(ExtensionError::Failed(format!(
            "bad arguments to {}: {e}",
            func.name()
        )))
    })
}

impl<H: PinkHost> ChainExtension for PinkExtension<H> {
    fn call(
        &self,
        env: &ExtensionEnv,
        state: &dyn ExtensionState,
        id: ExtensionId,
        input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError> {
        if id.extension != PINK_EXTENSION_ID {
            return Err(ExtensionError::Unsupported);
        }
        let func = PinkFunction::from_id(id.function).ok_or(ExtensionError::Unsupported)?;
        let gas = &self.config.gas;
        let mut meter = Meter {
            used: 0,
            left: env.gas_left,
        };
        let result = meter
            .charge(
                gas.call
                    .saturating_add(gas.per_byte.saturating_mul(input.len() as Gas)),
            )
            .and_then(|()| self.dispatch(func, env, state, input, &mut meter));
        match result {
            Ok(reply) => {
                let out_gas = gas.per_byte.saturating_mul(reply.output.len() as Gas);
                Ok(ExtensionOutput {
                    status: reply.status,
                    output: reply.output,
                    gas: meter.used.saturating_add(out_gas),
                })
            }
            // Charging more than is left makes the runtime fail the call with out-of-gas.
            Err(Stop::OutOfGas) => Ok(ExtensionOutput {
                status: 0,
                output: Vec::new(),
                gas: meter.used,
            }),
            Err(Stop::Error(err)) => Err(err),
        }
    }
}

impl<H: PinkHost> PinkExtension<H> {
    fn dispatch(
        &self,
        func: PinkFunction,
        env: &ExtensionEnv,
        state: &dyn ExtensionState,
        input: &[u8],
        meter: &mut Meter,
    ) -> Result<Reply, Stop> {
        use PinkFunction as F;
        let query = env.mode == Mode::Query;
        if func.query_only() && !query {
            // Phala's fixed answers in a transaction: the same on every worker, so a ported
            // contract's own fallback runs rather than the whole command failing.
            return Ok(match func {
                F::HttpRequest => {
                    args::<HttpRequest>(func, input)?;
                    Reply::value(fixed_response(523, "API Unavailable", Vec::new()))
                }
                F::BatchHttpRequest => {
                    args::<(Vec<HttpRequest>, u64)>(func, input)?;
                    Reply::status(HttpRequestError::NotAllowed.status_code())
                }
                F::Getrandom => {
                    args::<u8>(func, input)?;
                    Reply::value(Vec::<u8>::new())
                }
                F::UntrustedMillisSinceUnixEpoch => {
                    args::<()>(func, input)?;
                    Reply::value(0u64)
                }
                F::JsEval => {
                    args::<(Vec<JsCode>, Vec<String>)>(func, input)?;
                    Reply::value(JsValue::Exception(
                        "js_eval is not available in a transaction".into(),
                    ))
                }
                _ => return Err(failed(func, "only available in queries")),
            });
        }
        let contract = &env.address;
        let gas = &self.config.gas;
        Ok(match func {
            F::HttpRequest => {
                let request: HttpRequest = args(func, input)?;
                meter.charge(gas.http)?;
                let timeout = self.http_timeout(env, self.config.max_http_timeout);
                if timeout.is_zero() {
                    return Err(failed(func, "the query has no time left"));
                }
                let response = match self.host.http_request(contract, request, timeout) {
                    Ok(r) => r,
                    // As Phala: a request that could not reach its server, or failed after,
                    // is an answer (523, 524) the contract can handle; bad input traps.
                    Err(e) => match failure_response(e) {
                        Some(r) => r,
                        None => return Err(failed(func, e)),
                    },
                };
                Reply::value(response)
            }
            F::BatchHttpRequest => {
                let (requests, timeout_ms): (Vec<HttpRequest>, u64) = args(func, input)?;
                if requests.len() > self.config.max_batch {
                    return Ok(Reply::status(
                        HttpRequestError::TooManyRequests.status_code(),
                    ));
                }
                meter.charge(gas.http.saturating_mul(requests.len() as Gas))?;
                if requests.is_empty() {
                    return Ok(Reply::value(
                        Vec::<Result<HttpResponse, HttpRequestError>>::new(),
                    ));
                }
                let wanted = Duration::from_millis(timeout_ms).min(self.config.max_http_timeout);
                let timeout = self.http_timeout(env, wanted);
                if timeout.is_zero() {
                    return Ok(Reply::status(HttpRequestError::Timeout.status_code()));
                }
                match self.host.batch_http_request(contract, requests, timeout) {
                    Ok(responses) => Reply::value(responses),
                    Err(e) => Reply::status(e.status_code()),
                }
            }
            F::Sign => {
                let (sigtype, key, message): (SigType, Vec<u8>, Vec<u8>) = args(func, input)?;
                meter.charge(gas.crypto)?;
                let entropy = match (sigtype, query) {
                    (SigType::Sr25519, true) => self.entropy(),
                    _ => [0; 32],
                };
                Reply::value(sign(sigtype, &key, &message, entropy).map_err(|e| failed(func, e))?)
            }
            F::Verify => {
                let (sigtype, pubkey, message, signature): (SigType, Vec<u8>, Vec<u8>, Vec<u8>) =
                    args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(verify(sigtype, &pubkey, &message, &signature))
            }
            F::DeriveSr25519Key => {
                let salt: Vec<u8> = args(func, input)?;
                meter.charge(gas.crypto)?;
                let secret = derive_sr25519_secret(&self.host.key_seed(), contract, &salt);
                Reply::value(secret.to_vec())
            }
            F::GetPublicKey => {
                let (sigtype, key): (SigType, Vec<u8>) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(public_key(sigtype, &key).map_err(|e| failed(func, e))?)
            }
            F::CacheSet => {
                let (key, value): (Vec<u8>, Vec<u8>) = args(func, input)?;
                let result = self.host.cache_set(contract, &key, &value);
                match result {
                    // In a command the answer may not depend on this worker's cache.
                    Err(CacheQuotaExceeded) if query => {
                        Reply::status(CacheQuotaExceeded::STATUS_CODE)
                    }
                    _ => Reply::value(()),
                }
            }
            F::CacheSetExpiration => {
                let (key, expire): (Vec<u8>, u64) = args(func, input)?;
                self.host.cache_set_expiration(contract, &key, expire);
                Reply::value(())
            }
            F::CacheGet => {
                let key: Vec<u8> = args(func, input)?;
                let value = if query {
                    self.host.cache_get(contract, &key)
                } else {
                    None
                };
                Reply::value(value)
            }
            F::CacheRemove => {
                let key: Vec<u8> = args(func, input)?;
                let old = self.host.cache_remove(contract, &key);
                Reply::value(if query { old } else { None })
            }
            F::Log => {
                let (level, message): (u8, String) = args(func, input)?;
                self.host.log(contract, env.mode, level, &message);
                Reply::value(())
            }
            F::Getrandom => {
                let len: u8 = args(func, input)?;
                let bytes = self.host.getrandom(len.into());
                if bytes.len() != usize::from(len) {
                    return Err(failed(func, "the host returned the wrong number of bytes"));
                }
                Reply::value(bytes)
            }
            F::IsInTransaction => {
                args::<()>(func, input)?;
                Reply::value(!query)
            }
            F::EcdsaSignPrehashed => {
                let (key, hash): (Vec<u8>, [u8; 32]) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(ecdsa_sign_prehashed(&key, &hash).map_err(|e| failed(func, e))?)
            }
            F::EcdsaVerifyPrehashed => {
                let (signature, hash, pubkey): ([u8; 65], [u8; 32], [u8; 33]) = args(func, input)?;
                meter.charge(gas.crypto)?;
                Reply::value(ecdsa_verify_prehashed(&signature, &hash, &pubkey))
            }
            F::SystemContractId => {
                args::<()>(func, input)?;
                Reply::value(self.config.system_contract)
            }
            F::BalanceOf => {
                let account: AccountId = args(func, input)?;
                // phat has no reserved balances: total and free are the same.
                let balance = state.balance(&account)?;
                Reply::value((balance, balance))
            }
            F::WorkerPubkey => {
                args::<()>(func, input)?;
                Reply::value(if query {
                    self.host.worker_pubkey()
                } else {
                    [0; 32]
                })
            }
            F::UntrustedMillisSinceUnixEpoch => {
                args::<()>(func, input)?;
                Reply::value(self.host.now_millis())
            }
            F::CodeExists => {
                let (hash, sidevm): ([u8; 32], bool) = args(func, input)?;
                // phat runs no SideVM programs.
                Reply::value(!sidevm && state.code_exists(&CodeHash(hash))?)
            }
            F::ImportLatestSystemCode => {
                let _payer: AccountId = args(func, input)?;
                // Phala reserves it for the system contract; phat has no chain storage to
                // import from, so the system contract gets `None` (its upgrade path is
                // `set_code`).
                if *contract != self.config.system_contract {
                    return Err(failed(func, "reserved for the system contract"));
                }
                Reply::value(None::<[u8; 32]>)
            }
            F::RuntimeVersion => {
                args::<()>(func, input)?;
                Reply::value(self.config.runtime_version)
            }
            F::CurrentEventChainHead => {
                args::<()>(func, input)?;
                Reply::value(event_chain_head(env.block_number.into()))
            }
            F::JsEval => {
                let (codes, script_args): (Vec<JsCode>, Vec<String>) = args(func, input)?;
                meter.charge(gas.http)?;
                let timeout = self.http_timeout(env, self.config.max_http_timeout);
                if timeout.is_zero() {
                    return Ok(Reply::value(JsValue::Exception(
                        "the query has no time left".into(),
                    )));
                }
                Reply::value(self.host.js_eval(contract, codes, script_args, timeout))
            }
            F::WorkerSgxQuote => {
                args::<()>(func, input)?;
                // A quote costs the TEE a round trip: priced as an HTTP request is.
                meter.charge(gas.http)?;
                // A command's answer may not depend on the worker: `None` there, as Phala's
                // answer off SGX. The report data is the worker's public key, as Phala's.
                let quote = if query {
                    let mut report_data = [0u8; 64];
                    report_data[..32].copy_from_slice(&self.host.worker_pubkey());
                    self.host.worker_sgx_quote(&report_data)
                } else {
                    None
                };
                Reply::value(quote.map(|quote| SgxQuote {
                    attestation_type: AttestationType::Dcap,
                    quote,
                }))
            }
            F::ScheduleSet => {
                let def: phat_primitives::protocol::ScheduleDef = args(func, input)?;
                let request = ScheduleRequest::Set {
                    contract: *contract,
                    def,
                };
                Reply::value(self.host.schedule(env.mode, request))
            }
            F::ScheduleClear => {
                let selector: [u8; 4] = args(func, input)?;
                let request = ScheduleRequest::Clear {
                    contract: *contract,
                    selector,
                };
                Reply::value(self.host.schedule(env.mode, request))
            }
            F::ScheduleSetFor => {
                let (target, def): (AccountId, phat_primitives::protocol::ScheduleDef) =
                    args(func, input)?;
                if *contract != self.config.system_contract {
                    return Ok(Reply::value(Err::<(), _>(ScheduleError::NotPermitted)));
                }
                let request = ScheduleRequest::Set {
                    contract: target,
                    def,
                };
                Reply::value(self.host.schedule(env.mode, request))
            }
        })
    }

    /// `wanted`, bounded by the query's time left.
    fn http_timeout(&self, env: &ExtensionEnv, wanted: Duration) -> Duration {
        match env.deadline {
            Some(deadline) => wanted.min(deadline.saturating_duration_since(Instant::now())),
            None => wanted,
        }
    }

    /// 32 bytes from the host's randomness (queries only), zero-padded if it gives fewer.
    fn entropy(&self) -> [u8; 32] {
        let mut out = [0; 32];
        for (o, b) in out.iter_mut().zip(self.host.getrandom(32)) {
            *o = b;
        }
        out
    }
}

/// A response made up by the worker rather than a server.
fn fixed_response(status_code: u16, reason: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status_code,
        reason_phrase: reason.into(),
        headers: Vec::new(),
        body,
    }
}

/// What Phala answers for a failed `http_request` in a query: 523 when the server could not
/// be reached (or the egress rules refuse it), 524 when the exchange failed after; `None` for
/// failures that trap (bad input, a timeout).
pub(crate) fn failure_response(e: HttpRequestError) -> Option<HttpResponse> {
    match e {
        HttpRequestError::NetworkError | HttpRequestError::NotAllowed => Some(fixed_response(
            523,
            "Unreachable",
            e.to_string().into_bytes(),
        )),
        HttpRequestError::ResponseTooLarge => {
            Some(fixed_response(524, "IO Error", e.to_string().into_bytes()))
        }
        _ => None,
    }
}
