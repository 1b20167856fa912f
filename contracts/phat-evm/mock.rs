//! Off-chain stand-ins for `#[ink::test]`s (feature `std`): [`MockNode`] is the pink
//! extension with a scripted Ethereum JSON-RPC endpoint and real secp256k1 keys, and
//! [`FakeChain`] is a tiny Ethereum node (ETH and one ERC-20's balances, nonces, a mempool
//! that mines at once) to script it with.
//!
//! Everything else (cache, logs, ...) is `phat_ink::mock::MockPink`'s.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ink::scale::{Decode, Encode};
use phat_ink::mock::MockPink;
use phat_ink::{HttpRequest, HttpRequestError, HttpResponse, SigType};
use serde_json::{json, Value};

use crate::{keccak256, Address, SolCall, B256, IERC20, U256};

/// What the scripted node answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `{"result": value}`.
    Result(Value),
    /// `{"error": {"code", "message"}}`.
    Error(i64, String),
    /// A raw HTTP answer.
    Raw(u16, Vec<u8>),
    /// No answer: the request fails with this reason.
    Down(HttpRequestError),
}

/// One JSON-RPC request the contract made.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Where it went.
    pub url: String,
    /// `eth_…`.
    pub method: String,
    /// Its params.
    pub params: Value,
}

type Handler = Box<dyn FnMut(&Request) -> Answer>;

/// The pink extension with a scripted JSON-RPC node behind every URL.
pub struct MockNode {
    /// Everything that is not HTTP or keys.
    pub pink: MockPink,
    handler: Handler,
    requests: Rc<RefCell<Vec<Request>>>,
}

/// The mock's derived "sr25519" secret for `salt`: 64 bytes of keccak, deterministic.
pub fn mock_derived_key(salt: &[u8]) -> Vec<u8> {
    let mut out = keccak256([b"mock-sr25519/".as_slice(), salt].concat()).to_vec();
    out.extend_from_slice(keccak256(&out).as_slice());
    out
}

fn secp() -> secp256k1::Secp256k1<secp256k1::All> {
    secp256k1::Secp256k1::new()
}

/// The compressed public key of a secp256k1 `secret`.
pub fn public_key(secret: &[u8]) -> [u8; 33] {
    let sk = secp256k1::SecretKey::from_slice(secret).expect("a secp256k1 secret");
    secp256k1::PublicKey::from_secret_key(&secp(), &sk).serialize()
}

/// The Ethereum address of a compressed public key (pure Rust, to check the extension path).
pub fn eth_address(compressed: &[u8; 33]) -> Address {
    let pk = secp256k1::PublicKey::from_slice(compressed).expect("a public key");
    Address::from_slice(&keccak256(&pk.serialize_uncompressed()[1..])[12..])
}

/// The address of the contract's Ethereum key under this mock.
pub fn contract_address() -> Address {
    eth_address(&public_key(
        &mock_derived_key(crate::ETHEREUM_KEY_SALT)[..32],
    ))
}

/// Recovers the signer of a 65-byte `r ‖ s ‖ v` signature of `hash`.
pub fn recover(signature: &[u8; 65], hash: B256) -> Option<Address> {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let id = RecoveryId::from_i32(i32::from(signature[64] % 27)).ok()?;
    let sig = RecoverableSignature::from_compact(&signature[..64], id).ok()?;
    let pk = secp()
        .recover_ecdsa(&secp256k1::Message::from_digest(hash.0), &sig)
        .ok()?;
    Some(eth_address(&pk.serialize()))
}

fn sign_prehashed(secret: &[u8], hash: [u8; 32]) -> [u8; 65] {
    let sk = secp256k1::SecretKey::from_slice(secret).expect("a secp256k1 secret");
    let (id, compact) = secp()
        .sign_ecdsa_recoverable(&secp256k1::Message::from_digest(hash), &sk)
        .serialize_compact();
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&compact);
    out[64] = id.to_i32() as u8;
    out
}

impl MockNode {
    /// A node answering every request with `handler`.
    pub fn new(handler: impl FnMut(&Request) -> Answer + 'static) -> Self {
        MockNode {
            pink: MockPink::default(),
            handler: Box::new(handler),
            requests: Default::default(),
        }
    }

    /// A node answering with `chain` (and `Down(NetworkError)` for URLs other than `url`).
    pub fn chain(url: &str, chain: &Rc<RefCell<FakeChain>>) -> Self {
        let url = url.to_string();
        let chain = chain.clone();
        Self::new(move |r| {
            if r.url != url {
                return Answer::Down(HttpRequestError::NetworkError);
            }
            chain.borrow_mut().answer(&r.method, &r.params)
        })
    }

    /// Registers the mock with ink!'s off-chain environment; returns the requests made.
    pub fn register(self) -> Rc<RefCell<Vec<Request>>> {
        let requests = self.requests.clone();
        ink::env::test::register_chain_extension(self);
        requests
    }

    fn http(&mut self, req: &HttpRequest) -> Result<HttpResponse, HttpRequestError> {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let request = Request {
            url: req.url.clone(),
            method: body["method"].as_str().unwrap_or_default().to_string(),
            params: body["params"].clone(),
        };
        self.requests.borrow_mut().push(request.clone());
        let (status, body) = match (self.handler)(&request) {
            Answer::Result(v) => (
                200,
                json!({"jsonrpc": "2.0", "id": body["id"], "result": v}),
            ),
            Answer::Error(code, message) => (
                200,
                json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message}}),
            ),
            Answer::Raw(status, body) => {
                return Ok(HttpResponse {
                    status_code: status,
                    reason_phrase: String::new(),
                    headers: Vec::new(),
                    body,
                })
            }
            Answer::Down(e) => return Err(e),
        };
        Ok(HttpResponse {
            status_code: status,
            reason_phrase: "OK".into(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    }
}

impl ink::env::test::ChainExtension for MockNode {
    fn ext_id(&self) -> u16 {
        0
    }

    fn call(&mut self, func_id: u16, input: &[u8], output: &mut Vec<u8>) -> u32 {
        let raw = Vec::<u8>::decode(&mut &input[..]).expect("extension input");
        let args = &mut &raw[..];
        match func_id {
            1 => {
                assert!(!self.pink.in_transaction, "http_request in a command");
                let req = HttpRequest::decode(args).expect("http_request input");
                match self.http(&req) {
                    Ok(r) => r.encode_to(output),
                    Err(e) => panic!("http_request failed: {e:?}"),
                }
            }
            22 => {
                assert!(!self.pink.in_transaction, "batch_http_request in a command");
                let (reqs, _timeout) =
                    <(Vec<HttpRequest>, u64)>::decode(args).expect("batch input");
                let out: Vec<Result<HttpResponse, HttpRequestError>> =
                    reqs.iter().map(|r| self.http(r)).collect();
                out.encode_to(output);
            }
            4 => {
                let salt = Vec::<u8>::decode(args).expect("derive input");
                mock_derived_key(&salt).encode_to(output);
            }
            5 => {
                let (sigtype, key) = <(SigType, Vec<u8>)>::decode(args).expect("pubkey input");
                assert_eq!(sigtype, SigType::Ecdsa, "the mock has ECDSA keys only");
                public_key(&key).to_vec().encode_to(output);
            }
            13 => {
                let (key, hash) = <(Vec<u8>, [u8; 32])>::decode(args).expect("sign input");
                sign_prehashed(&key, hash).encode_to(output);
            }
            _ => {
                return ink::env::test::ChainExtension::call(&mut self.pink, func_id, input, output)
            }
        }
        0
    }
}

/// A mined transaction of the fake chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mined {
    /// Its signer.
    pub from: Address,
    /// Its nonce.
    pub nonce: u64,
    /// The token recipient of a `transfer` (`None` for other calls).
    pub transfer: Option<(Address, U256)>,
    /// Block number.
    pub block: u64,
    /// The decoded transaction.
    pub chain_id: u64,
    /// Max fee per gas.
    pub max_fee_per_gas: u128,
}

/// A tiny Ethereum node: ETH and one ERC-20 token, nonces, instant mining.
#[derive(Debug, Default)]
pub struct FakeChain {
    /// Its chain id.
    pub chain_id: u64,
    /// The ERC-20's address.
    pub token: Address,
    /// ETH balances.
    pub eth: BTreeMap<Address, U256>,
    /// Token balances.
    pub tokens: BTreeMap<Address, U256>,
    /// Next nonce per account.
    pub nonces: BTreeMap<Address, u64>,
    /// Mined transactions by hash.
    pub mined: BTreeMap<B256, Mined>,
    /// Hashes in the pool, not mined (with `automine = false`).
    pub pool: BTreeSet<B256>,
    /// Mine at once (as anvil).
    pub automine: bool,
    /// Raw transactions received, in order.
    pub received: Vec<Vec<u8>>,
}

impl FakeChain {
    /// A chain `chain_id` with the token at `token`, automining.
    pub fn new(chain_id: u64, token: Address) -> Self {
        FakeChain {
            chain_id,
            token,
            automine: true,
            ..Default::default()
        }
    }

    /// Shares it for [`MockNode::chain`].
    pub fn shared(self) -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(self))
    }

    fn block(&self) -> u64 {
        self.mined.len() as u64
    }

    /// Answers one JSON-RPC request.
    pub fn answer(&mut self, method: &str, params: &Value) -> Answer {
        let quantity = |v: U256| Answer::Result(json!(format!("0x{v:x}")));
        let addr =
            |v: &Value| -> Address { v.as_str().unwrap_or_default().parse().unwrap_or_default() };
        let hash_of =
            |v: &Value| -> B256 { v.as_str().unwrap_or_default().parse().unwrap_or_default() };
        match method {
            "eth_chainId" => quantity(U256::from(self.chain_id)),
            "eth_blockNumber" => quantity(U256::from(self.block())),
            "eth_getBalance" => {
                quantity(self.eth.get(&addr(&params[0])).copied().unwrap_or_default())
            }
            "eth_getTransactionCount" => quantity(U256::from(
                self.nonces
                    .get(&addr(&params[0]))
                    .copied()
                    .unwrap_or_default(),
            )),
            "eth_gasPrice" => quantity(U256::from(2_000_000_000u64)),
            "eth_call" => {
                if addr(&params[0]["to"]) != self.token {
                    return Answer::Result(json!("0x"));
                }
                let input =
                    alloy_primitives::hex::decode(params[0]["input"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                match IERC20::balanceOfCall::abi_decode(&input) {
                    Ok(c) => {
                        let b = self.tokens.get(&c.account).copied().unwrap_or_default();
                        Answer::Result(json!(alloy_primitives::hex::encode_prefixed(
                            IERC20::balanceOfCall::abi_encode_returns(&b)
                        )))
                    }
                    Err(_) => Answer::Error(3, "execution reverted".into()),
                }
            }
            "eth_sendRawTransaction" => {
                let raw = alloy_primitives::hex::decode(params[0].as_str().unwrap_or_default())
                    .unwrap_or_default();
                self.received.push(raw.clone());
                self.submit(&raw)
            }
            "eth_getTransactionByHash" => {
                let h = hash_of(&params[0]);
                if self.mined.contains_key(&h) || self.pool.contains(&h) {
                    Answer::Result(json!({"hash": format!("{h}")}))
                } else {
                    Answer::Result(Value::Null)
                }
            }
            "eth_getTransactionReceipt" => match self.mined.get(&hash_of(&params[0])) {
                Some(m) => Answer::Result(json!({
                    "blockNumber": format!("0x{:x}", m.block),
                    "status": "0x1",
                    "gasUsed": "0x5208",
                })),
                None => Answer::Result(Value::Null),
            },
            _ => Answer::Error(-32601, format!("Method not found: {method}")),
        }
    }

    fn submit(&mut self, raw: &[u8]) -> Answer {
        type Signed = alloy_consensus::Signed<alloy_consensus::TxEip1559>;
        let Ok(signed) = Signed::eip2718_decode(&mut &raw[..]) else {
            return Answer::Error(-32602, "failed to decode signed transaction".into());
        };
        let hash = *signed.hash();
        if self.mined.contains_key(&hash) || self.pool.contains(&hash) {
            return Answer::Error(-32003, "transaction already imported".into());
        }
        let tx = signed.tx();
        if tx.chain_id != self.chain_id {
            return Answer::Error(-32003, "invalid chain id for signer".into());
        }
        use alloy_consensus::SignableTransaction;
        let sig = signed.signature().as_bytes();
        let Some(from) = recover(&sig, tx.signature_hash()) else {
            return Answer::Error(-32003, "invalid signature".into());
        };
        let next = self.nonces.get(&from).copied().unwrap_or_default();
        if tx.nonce < next {
            return Answer::Error(-32003, "nonce too low".into());
        }
        if !self.automine {
            self.pool.insert(hash);
            return Answer::Result(json!(format!("{hash}")));
        }
        if tx.nonce > next {
            // A gap: a real node keeps it queued; the fake one refuses.
            return Answer::Error(-32003, "nonce too high".into());
        }
        self.nonces.insert(from, next + 1);
        let transfer = alloy_primitives::TxKind::Call(self.token)
            .eq(&tx.to)
            .then(|| IERC20::transferCall::abi_decode(&tx.input).ok())
            .flatten()
            .map(|c| (c.to, c.value));
        if let Some((to, value)) = transfer {
            let have = self.tokens.get(&from).copied().unwrap_or_default();
            if have >= value {
                self.tokens.insert(from, have - value);
                *self.tokens.entry(to).or_default() += value;
            }
        }
        let block = self.block() + 1;
        self.mined.insert(
            hash,
            Mined {
                from,
                nonce: tx.nonce,
                transfer,
                block,
                chain_id: tx.chain_id,
                max_fee_per_gas: tx.max_fee_per_gas,
            },
        );
        Answer::Result(json!(format!("{hash}")))
    }
}
