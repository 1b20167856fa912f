//! phat-evm: operate Ethereum (and EVM chains) from a phat contract.
//!
//! - [`Rpc`]: Ethereum JSON-RPC over the worker's HTTP (queries only), with typed [`Error`]s:
//!   a closed port, a timeout or a refused host is [`Error::Http`], a node's error answer is
//!   [`Error::Rpc`], an answer of the wrong shape is [`Error::Decode`]. Nothing here panics on
//!   what a node says.
//! - [`IERC20`]: the ERC-20 interface (`alloy-sol-types`' `sol!`), to encode calls and decode
//!   their answers.
//! - [`Eip1559`]: an EIP-1559 transaction, signed with the contract's secp256k1 key
//!   ([`Signer::sign`]); signing is deterministic (RFC 6979), so every worker of a cluster that
//!   signs the same transaction produces byte-identical bytes and the same hash.
//! - [`Signer::contract`]: the contract's Ethereum key. **Convention**: its secret is the first
//!   32 bytes of `phat_ink::keys::derive_sr25519_key(b"ethereum")` (the convention of Phala's
//!   `pink-web3`, which derives an ECDSA key from derived sr25519 material, here with the
//!   dedicated salt [`ETHEREUM_KEY_SALT`]). `phat info CONTRACT` shows the same address.
//!
//! ```text
//! let rpc = Rpc::new("http://127.0.0.1:8545");
//! let me = Signer::contract();
//! let nonce = rpc.transaction_count(me.address(), BlockTag::Pending)?;
//! let tx = Eip1559 { chain_id: 1, nonce, to: token, input: IERC20::transferCall { to, value }.abi_encode(), .. };
//! let hash = rpc.send_idempotent(&me.sign(&tx))?;
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

pub use alloy_primitives::{keccak256, Address, B256, U256};
pub use alloy_sol_types::{self, SolCall};
use phat_ink::{HttpRequest, HttpRequestError};
use serde_json::Value;

alloy_sol_types::sol! {
    /// The ERC-20 token interface (EIP-20).
    interface IERC20 {
        function name() external view returns (string);
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
        function totalSupply() external view returns (uint256);
        function balanceOf(address account) external view returns (uint256);
        function transfer(address to, uint256 value) external returns (bool);
        function allowance(address owner, address spender) external view returns (uint256);
        function approve(address spender, uint256 value) external returns (bool);
        function transferFrom(address from, address to, uint256 value) external returns (bool);
    }
}

/// The salt of the contract's Ethereum key (see [`Signer::contract`]).
pub const ETHEREUM_KEY_SALT: &[u8] = b"ethereum";

/// How long one JSON-RPC request may take.
pub const RPC_TIMEOUT_MS: u64 = 10_000;

/// An HTTP-level failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum HttpError {
    /// No answer: the worker's reason (connection refused, timeout, host not allowed, ...).
    Transport(HttpRequestError),
    /// An answer with this status and no JSON-RPC error in its body.
    Status(u16),
}

/// What can go wrong talking to an Ethereum node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub enum Error {
    /// The HTTP request failed or the node answered with an HTTP error.
    Http(HttpError),
    /// The node answered with a JSON-RPC error.
    Rpc {
        /// JSON-RPC error code (e.g. -32000, -32601 method not found, 3 execution reverted).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The answer is not what the call expects (not JSON-RPC, wrong type, bad ABI data).
    Decode(String),
}

impl From<alloy_sol_types::Error> for Error {
    fn from(e: alloy_sol_types::Error) -> Self {
        Error::Decode(format!("abi: {e}"))
    }
}

/// A block to read state at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockTag {
    /// The latest mined block.
    Latest,
    /// The latest block plus the node's pending transactions.
    Pending,
    /// A block number.
    Number(u64),
}

impl BlockTag {
    fn json(self) -> String {
        match self {
            BlockTag::Latest => "\"latest\"".into(),
            BlockTag::Pending => "\"pending\"".into(),
            BlockTag::Number(n) => format!("\"0x{n:x}\""),
        }
    }
}

/// A mined transaction's receipt (the fields a contract usually needs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
pub struct Receipt {
    /// The block it was mined in.
    pub block_number: u64,
    /// Whether it succeeded (status 1) or reverted (status 0).
    pub success: bool,
    /// Gas it used.
    pub gas_used: u64,
}

/// Suggested EIP-1559 fees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// `max_fee_per_gas`: twice the latest base fee plus the tip.
    pub max_fee_per_gas: u128,
    /// `max_priority_fee_per_gas`: the median tip of the latest block (at least 1 wei).
    pub max_priority_fee_per_gas: u128,
}

/// A JSON-RPC client of one node (queries only: HTTP is not available in commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rpc {
    url: String,
    timeout_ms: u64,
}

fn hex(bytes: &[u8]) -> String {
    alloy_primitives::hex::encode_prefixed(bytes)
}

fn quoted_hex(bytes: &[u8]) -> String {
    format!("\"{}\"", hex(bytes))
}

fn decode_err(what: &str, v: &Value) -> Error {
    let mut shown = v.to_string();
    shown.truncate(200);
    Error::Decode(format!("{what}: unexpected {shown}"))
}

/// Parses a `0x…` hex quantity.
pub fn parse_quantity(v: &Value) -> Result<U256, Error> {
    let s = v.as_str().ok_or_else(|| decode_err("quantity", v))?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| decode_err("quantity", v))?;
    if digits.is_empty() {
        return Err(decode_err("quantity", v));
    }
    U256::from_str_radix(digits, 16).map_err(|_| decode_err("quantity", v))
}

fn quantity_u64(v: &Value) -> Result<u64, Error> {
    u64::try_from(parse_quantity(v)?).map_err(|_| decode_err("u64 quantity", v))
}

fn quantity_u128(v: &Value) -> Result<u128, Error> {
    u128::try_from(parse_quantity(v)?).map_err(|_| decode_err("u128 quantity", v))
}

/// Parses `0x…` hex data.
pub fn parse_data(v: &Value) -> Result<Vec<u8>, Error> {
    let s = v.as_str().ok_or_else(|| decode_err("data", v))?;
    alloy_primitives::hex::decode(s).map_err(|_| decode_err("data", v))
}

fn parse_b256(v: &Value) -> Result<B256, Error> {
    let d = parse_data(v)?;
    if d.len() != 32 {
        return Err(decode_err("32-byte hash", v));
    }
    Ok(B256::from_slice(&d))
}

/// Decodes a JSON-RPC answer `body` (given the HTTP `status`) into its `result`.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Value, Error> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let v = match parsed {
        Ok(Value::Object(v)) => v,
        _ if !(200..300).contains(&status) => return Err(Error::Http(HttpError::Status(status))),
        _ => {
            let mut shown = String::from_utf8_lossy(body).into_owned();
            shown.truncate(200);
            return Err(Error::Decode(format!("not a JSON-RPC answer: {shown}")));
        }
    };
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let mut message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(data) = err.get("data").and_then(Value::as_str) {
            message = format!("{message} ({data})");
        }
        return Err(Error::Rpc { code, message });
    }
    if !(200..300).contains(&status) {
        return Err(Error::Http(HttpError::Status(status)));
    }
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(Error::Decode("a JSON-RPC answer without result".into())),
    }
}

impl Rpc {
    /// A client of the node at `url` (`http://` or `https://`).
    pub fn new(url: &str) -> Self {
        Rpc {
            url: url.into(),
            timeout_ms: RPC_TIMEOUT_MS,
        }
    }

    /// The same client with another request timeout.
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with `params` (a JSON array's text) and returns the `result`.
    pub fn request(&self, method: &str, params: &str) -> Result<Value, Error> {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
        let request = HttpRequest {
            url: self.url.clone(),
            method: "POST".into(),
            headers: alloc::vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        };
        // A batch of one: unlike `http_request`, its failures come back as values.
        let mut answers = phat_ink::batch_http_request(alloc::vec![request], self.timeout_ms)
            .map_err(|e| Error::Http(HttpError::Transport(e)))?;
        if answers.len() != 1 {
            return Err(Error::Decode(
                "the worker answered a batch of one badly".into(),
            ));
        }
        let response = answers
            .pop()
            .expect("one answer")
            .map_err(|e| Error::Http(HttpError::Transport(e)))?;
        parse_response(response.status_code, &response.body)
    }

    /// `eth_chainId`.
    pub fn chain_id(&self) -> Result<u64, Error> {
        quantity_u64(&self.request("eth_chainId", "[]")?)
    }

    /// `eth_blockNumber`.
    pub fn block_number(&self) -> Result<u64, Error> {
        quantity_u64(&self.request("eth_blockNumber", "[]")?)
    }

    /// `eth_getBalance`: `address`'s balance in wei.
    pub fn balance(&self, address: Address, block: BlockTag) -> Result<U256, Error> {
        let params = format!("[{},{}]", quoted_hex(address.as_slice()), block.json());
        parse_quantity(&self.request("eth_getBalance", &params)?)
    }

    /// `eth_getTransactionCount`: the next nonce of `address` (use [`BlockTag::Pending`] to
    /// count transactions waiting in the node's pool).
    pub fn transaction_count(&self, address: Address, block: BlockTag) -> Result<u64, Error> {
        let params = format!("[{},{}]", quoted_hex(address.as_slice()), block.json());
        quantity_u64(&self.request("eth_getTransactionCount", &params)?)
    }

    /// `eth_call`: runs `data` against contract `to` without a transaction; returns its output.
    pub fn call(
        &self,
        from: Option<Address>,
        to: Address,
        data: &[u8],
        block: BlockTag,
    ) -> Result<Vec<u8>, Error> {
        let from = from
            .map(|f| format!(r#""from":{},"#, quoted_hex(f.as_slice())))
            .unwrap_or_default();
        let params = format!(
            r#"[{{{from}"to":{},"input":{}}},{}]"#,
            quoted_hex(to.as_slice()),
            quoted_hex(data),
            block.json()
        );
        parse_data(&self.request("eth_call", &params)?)
    }

    /// `eth_call` of a typed Solidity call, decoding its return value.
    pub fn call_sol<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return, Error> {
        let out = self.call(None, to, &call.abi_encode(), BlockTag::Latest)?;
        Ok(C::abi_decode_returns(&out)?)
    }

    /// `eth_estimateGas` of a call from `from` to `to` with `data` and `value` wei.
    pub fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        data: &[u8],
        value: U256,
    ) -> Result<u64, Error> {
        let params = format!(
            r#"[{{"from":{},"to":{},"input":{},"value":"0x{:x}"}}]"#,
            quoted_hex(from.as_slice()),
            quoted_hex(to.as_slice()),
            quoted_hex(data),
            value
        );
        quantity_u64(&self.request("eth_estimateGas", &params)?)
    }

    /// `eth_gasPrice` in wei.
    pub fn gas_price(&self) -> Result<u128, Error> {
        quantity_u128(&self.request("eth_gasPrice", "[]")?)
    }

    /// `eth_feeHistory` of the latest block: suggested EIP-1559 fees.
    pub fn suggest_fees(&self) -> Result<Fees, Error> {
        let v = self.request("eth_feeHistory", r#"["0x1","latest",[50]]"#)?;
        let base = v
            .get("baseFeePerGas")
            .and_then(Value::as_array)
            .and_then(|a| a.last())
            .ok_or_else(|| decode_err("feeHistory", &v))?;
        let base = quantity_u128(base)?;
        let tip = match v
            .get("reward")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(Value::as_array)
            .and_then(|r| r.first())
        {
            Some(t) => quantity_u128(t)?,
            None => 0,
        }
        .max(1);
        Ok(Fees {
            max_fee_per_gas: base.saturating_mul(2).saturating_add(tip),
            max_priority_fee_per_gas: tip,
        })
    }

    /// `eth_sendRawTransaction`: the hash the node gives the transaction.
    pub fn send_raw_transaction(&self, raw: &[u8]) -> Result<B256, Error> {
        let params = format!("[{}]", quoted_hex(raw));
        parse_b256(&self.request("eth_sendRawTransaction", &params)?)
    }

    /// `eth_getTransactionReceipt`: `None` while the transaction is not mined (or unknown).
    pub fn transaction_receipt(&self, hash: B256) -> Result<Option<Receipt>, Error> {
        let params = format!("[{}]", quoted_hex(hash.as_slice()));
        let v = self.request("eth_getTransactionReceipt", &params)?;
        if v.is_null() {
            return Ok(None);
        }
        let field = |name: &str| v.get(name).ok_or_else(|| decode_err(name, &v));
        Ok(Some(Receipt {
            block_number: quantity_u64(field("blockNumber")?)?,
            success: quantity_u64(field("status")?)? == 1,
            gas_used: quantity_u64(field("gasUsed")?)?,
        }))
    }

    /// `eth_getTransactionByHash`: whether the node knows the transaction (pending or mined).
    pub fn transaction_known(&self, hash: B256) -> Result<bool, Error> {
        let params = format!("[{}]", quoted_hex(hash.as_slice()));
        Ok(!self.request("eth_getTransactionByHash", &params)?.is_null())
    }

    /// Sends a signed transaction so that sending it again is harmless: when the node answers
    /// that it has it already ("already known", "already imported"), that its nonce is used
    /// ("nonce too low": mined already) or that it would be a replacement, the transaction's own
    /// hash is looked up, and if the node knows it, that hash is the answer. Only when the
    /// node does not know our transaction does the node's error come back.
    pub fn send_idempotent(&self, tx: &SignedTx) -> Result<B256, Error> {
        match self.send_raw_transaction(&tx.raw) {
            Ok(_) => Ok(tx.hash),
            Err(Error::Rpc { code, message }) if is_duplicate_answer(&message) => {
                if self.transaction_known(tx.hash)? {
                    Ok(tx.hash)
                } else {
                    Err(Error::Rpc { code, message })
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether a node's error message may mean "this transaction (or its nonce) is there already"
/// (geth, anvil, reth, nethermind, besu, erigon wordings).
pub fn is_duplicate_answer(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "already known",
        "already imported",
        "known transaction",
        "alreadyknown",
        "nonce too low",
        "nonce is too low",
        "oldnonce",
        "replacement transaction underpriced",
        "replacement underpriced",
        "already exists",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// An EIP-1559 (type 2) transaction without access list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eip1559 {
    /// Chain id (EIP-155 replay protection).
    pub chain_id: u64,
    /// The sender's nonce.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Max total fee per gas, wei.
    pub max_fee_per_gas: u128,
    /// Max tip per gas, wei.
    pub max_priority_fee_per_gas: u128,
    /// The recipient (a contract creation is not supported).
    pub to: Address,
    /// Wei sent along.
    pub value: U256,
    /// Call data.
    pub input: Vec<u8>,
}

impl Eip1559 {
    fn consensus(&self) -> alloy_consensus::TxEip1559 {
        alloy_consensus::TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: alloy_primitives::TxKind::Call(self.to),
            value: self.value,
            access_list: Default::default(),
            input: self.input.clone().into(),
        }
    }

    /// The hash to sign: keccak256(0x02 ‖ rlp([chain_id, nonce, tip, max_fee, gas, to, value,
    /// input, access_list])).
    pub fn signature_hash(&self) -> B256 {
        use alloy_consensus::SignableTransaction;
        self.consensus().signature_hash()
    }

    /// The signed transaction's bytes from a 65-byte `r ‖ s ‖ v` signature (v in {0, 1, 27,
    /// 28}); `None` for a malformed `v`.
    pub fn with_signature(&self, signature: &[u8; 65]) -> Option<SignedTx> {
        use alloy_consensus::SignableTransaction;
        let sig = alloy_primitives::Signature::from_raw_array(signature).ok()?;
        let signed = self.consensus().into_signed(sig);
        let mut raw = Vec::with_capacity(signed.eip2718_encoded_length());
        signed.eip2718_encode(&mut raw);
        Some(SignedTx {
            hash: *signed.hash(),
            raw,
        })
    }
}

/// A signed transaction ready for `eth_sendRawTransaction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// EIP-2718 bytes (0x02 ‖ rlp(...)).
    pub raw: Vec<u8>,
    /// Its hash, keccak256(raw): the transaction's id on the chain.
    pub hash: B256,
}

/// A secp256k1 key held by the contract (the secret never leaves the worker's enclave).
#[derive(Clone, PartialEq, Eq)]
pub struct Signer {
    secret: [u8; 32],
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signer({})", self.address())
    }
}

impl Signer {
    /// The contract's Ethereum key: the first 32 bytes of
    /// `derive_sr25519_key(b"ethereum")`. The same on every worker of the cluster, different
    /// for every contract.
    pub fn contract() -> Self {
        Self::derived(ETHEREUM_KEY_SALT)
    }

    /// A key derived with another `salt` (the first 32 bytes of `derive_sr25519_key(salt)`).
    pub fn derived(salt: &[u8]) -> Self {
        let material = phat_ink::keys::derive_sr25519_key(salt);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&material[..32]);
        Signer { secret }
    }

    /// A key from a given secret (tests, imported keys).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Signer { secret }
    }

    /// The 33-byte compressed public key.
    pub fn public_key(&self) -> [u8; 33] {
        let key = phat_ink::keys::public_key(phat_ink::SigType::Ecdsa, &self.secret);
        let mut out = [0u8; 33];
        out.copy_from_slice(&key[..33]);
        out
    }

    /// The Ethereum address: the last 20 bytes of keccak256 of the uncompressed public key.
    pub fn address(&self) -> Address {
        address_of(&self.public_key())
    }

    /// A 65-byte recoverable signature (`r ‖ s ‖ v`, v in {0, 1}) of a 32-byte hash.
    pub fn sign_hash(&self, hash: B256) -> [u8; 65] {
        phat_ink::keys::ecdsa_sign_prehashed(&self.secret, hash.0)
    }

    /// Signs `tx`: deterministic (RFC 6979), so every worker produces the same bytes.
    pub fn sign(&self, tx: &Eip1559) -> SignedTx {
        let signature = self.sign_hash(tx.signature_hash());
        tx.with_signature(&signature)
            .expect("the extension answers v in {0, 1}")
    }
}

/// The Ethereum address of a compressed secp256k1 public key (decompressed by the runtime's
/// `ecdsa_to_eth_address`, so the contract carries no curve arithmetic).
pub fn address_of(compressed: &[u8; 33]) -> Address {
    let mut out = [0u8; 20];
    // Fails only for bytes that are no curve point, which a public key of the extension is not.
    ink::env::ecdsa_to_eth_address(compressed, &mut out).expect("a valid public key");
    Address::from(out)
}

/// `transfer(to, amount)` call data of an ERC-20.
pub fn erc20_transfer(to: Address, amount: U256) -> Vec<u8> {
    IERC20::transferCall { to, value: amount }.abi_encode()
}

/// An ERC-20 `balanceOf(holder)` of `token`.
pub fn erc20_balance(rpc: &Rpc, token: Address, holder: Address) -> Result<U256, Error> {
    rpc.call_sol(token, &IERC20::balanceOfCall { account: holder })
}

#[cfg(feature = "std")]
pub mod mock;

#[cfg(test)]
mod tests;
