//! phat-evm against the mock extension and the fake chain.

use super::*;
use crate::mock::{Answer, FakeChain, MockNode};
use serde_json::json;

const URL: &str = "http://127.0.0.1:8545";

fn token() -> Address {
    Address::repeat_byte(0x70)
}

fn rpc_with(answer: Answer) -> Rpc {
    MockNode::new(move |_| answer.clone()).register();
    Rpc::new(URL)
}

#[ink::test]
fn a_known_secret_has_its_known_address() {
    MockNode::new(|_| Answer::Result(Value::Null)).register();
    let mut one = [0u8; 32];
    one[31] = 1;
    // The address of private key 1 (well known).
    let expected: Address = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        .parse()
        .unwrap();
    assert_eq!(Signer::from_secret(one).address(), expected);
}

#[ink::test]
fn the_contract_key_is_derived_with_the_ethereum_salt() {
    MockNode::new(|_| Answer::Result(Value::Null)).register();
    let me = Signer::contract();
    // The extension's path (runtime `ecdsa_to_eth_address`) and a pure computation agree.
    assert_eq!(me.address(), mock::contract_address());
    assert_eq!(
        me.public_key(),
        mock::public_key(&mock::mock_derived_key(b"ethereum")[..32])
    );
    assert_ne!(Signer::derived(b"other").address(), me.address());
}

fn transfer_tx(nonce: u64) -> Eip1559 {
    Eip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 100_000,
        max_fee_per_gas: 3_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: token(),
        value: U256::ZERO,
        input: erc20_transfer(Address::repeat_byte(0xbb), U256::from(5u8)),
    }
}

#[ink::test]
fn signing_is_deterministic_and_recovers_to_the_signer() {
    MockNode::new(|_| Answer::Result(Value::Null)).register();
    let me = Signer::contract();
    let tx = transfer_tx(7);
    let a = me.sign(&tx);
    let b = me.sign(&tx);
    assert_eq!(a, b);
    assert_eq!(a.raw[0], 2, "an EIP-2718 type 2 envelope");
    assert_eq!(a.hash, keccak256(&a.raw));
    // Decode it back: the same fields, and the signature recovers to our address.
    let signed =
        alloy_consensus::Signed::<alloy_consensus::TxEip1559>::eip2718_decode(&mut &a.raw[..])
            .unwrap();
    assert_eq!(signed.tx().nonce, 7);
    assert_eq!(signed.tx().chain_id, 31337);
    assert_eq!(signed.tx().input.as_ref(), tx.input.as_slice());
    let sig = signed.signature().as_bytes();
    assert_eq!(mock::recover(&sig, tx.signature_hash()), Some(me.address()));
    // Another nonce is another transaction.
    assert_ne!(me.sign(&transfer_tx(8)).hash, a.hash);
}

#[test]
fn transfer_call_data_is_the_erc20_abi() {
    let data = erc20_transfer(Address::repeat_byte(0xbb), U256::from(0x1234u32));
    assert_eq!(&data[..4], &[0xa9, 0x05, 0x9c, 0xbb]);
    assert_eq!(data.len(), 4 + 64);
    assert_eq!(&data[4..16], &[0u8; 12]);
    assert_eq!(&data[16..36], &[0xbb; 20]);
    assert_eq!(&data[66..68], &[0x12, 0x34]);
}

#[test]
fn answers_parse_into_results_or_typed_errors() {
    assert_eq!(
        parse_response(200, br#"{"jsonrpc":"2.0","id":1,"result":"0x7a69"}"#),
        Ok(json!("0x7a69"))
    );
    assert_eq!(
        parse_response(
            200,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"insufficient funds"}}"#
        ),
        Err(Error::Rpc {
            code: -32000,
            message: "insufficient funds".into()
        })
    );
    // Some nodes answer errors with HTTP 4xx/5xx and a JSON-RPC body: the body wins.
    assert!(matches!(
        parse_response(400, br#"{"error":{"code":-32602,"message":"bad"}}"#),
        Err(Error::Rpc { code: -32602, .. })
    ));
    assert_eq!(
        parse_response(502, b"Bad Gateway"),
        Err(Error::Http(HttpError::Status(502)))
    );
    assert!(matches!(
        parse_response(200, b"<html>"),
        Err(Error::Decode(_))
    ));
    assert!(matches!(
        parse_response(200, br#"{"id":1}"#),
        Err(Error::Decode(_))
    ));
    assert_eq!(parse_quantity(&json!("0x0")), Ok(U256::ZERO));
    assert!(parse_quantity(&json!("12")).is_err());
    assert!(parse_quantity(&json!(12)).is_err());
    assert!(parse_quantity(&json!("0x")).is_err());
}

#[ink::test]
fn rpc_reads_chain_id_balances_and_fees() {
    let chain = FakeChain::new(31337, token()).shared();
    let holder = Address::repeat_byte(0x11);
    chain
        .borrow_mut()
        .eth
        .insert(holder, U256::from(10u128.pow(18)));
    chain.borrow_mut().tokens.insert(holder, U256::from(500u32));
    let requests = MockNode::chain(URL, &chain).register();
    let rpc = Rpc::new(URL);
    assert_eq!(rpc.chain_id(), Ok(31337));
    assert_eq!(
        rpc.balance(holder, BlockTag::Latest),
        Ok(U256::from(10u128.pow(18)))
    );
    assert_eq!(erc20_balance(&rpc, token(), holder), Ok(U256::from(500u32)));
    assert_eq!(rpc.transaction_count(holder, BlockTag::Pending), Ok(0));
    assert_eq!(rpc.gas_price(), Ok(2_000_000_000));
    let r = requests.borrow();
    assert_eq!(r[0].method, "eth_chainId");
    assert_eq!(r[1].params, json!([format!("{holder:#x}"), "latest"]));
    assert_eq!(r[2].method, "eth_call");
    assert_eq!(r[2].params[0]["to"], json!(format!("{:#x}", token())));
    assert_eq!(r[3].params[1], json!("pending"));
}

#[ink::test]
fn fee_history_gives_eip1559_fees() {
    let rpc = rpc_with(Answer::Result(json!({
        "oldestBlock": "0x10",
        "baseFeePerGas": ["0x3b9aca00", "0x3b9aca00"],
        "gasUsedRatio": [0.5],
        "reward": [["0x5f5e100"]]
    })));
    assert_eq!(
        rpc.suggest_fees(),
        Ok(Fees {
            max_fee_per_gas: 2 * 1_000_000_000 + 100_000_000,
            max_priority_fee_per_gas: 100_000_000
        })
    );
}

#[ink::test]
fn node_errors_and_dead_urls_are_typed() {
    let rpc = rpc_with(Answer::Error(-32601, "Method not found".into()));
    assert_eq!(
        rpc.chain_id(),
        Err(Error::Rpc {
            code: -32601,
            message: "Method not found".into()
        })
    );
    let rpc = rpc_with(Answer::Down(HttpRequestError::NetworkError));
    assert_eq!(
        rpc.block_number(),
        Err(Error::Http(HttpError::Transport(
            HttpRequestError::NetworkError
        )))
    );
    let rpc = rpc_with(Answer::Raw(503, b"unavailable".to_vec()));
    assert_eq!(rpc.gas_price(), Err(Error::Http(HttpError::Status(503))));
    let rpc = rpc_with(Answer::Result(json!({"not": "a quantity"})));
    assert!(matches!(rpc.chain_id(), Err(Error::Decode(_))));
    // A reverted eth_call (error code 3) and undecodable ABI output.
    let rpc = rpc_with(Answer::Error(3, "execution reverted".into()));
    assert!(matches!(
        erc20_balance(&rpc, token(), Address::ZERO),
        Err(Error::Rpc { code: 3, .. })
    ));
    let rpc = rpc_with(Answer::Result(json!("0x1234")));
    assert!(matches!(
        erc20_balance(&rpc, token(), Address::ZERO),
        Err(Error::Decode(_))
    ));
}

#[ink::test]
fn sending_twice_is_harmless() {
    let chain = FakeChain::new(31337, token()).shared();
    let me_address = mock::contract_address();
    chain
        .borrow_mut()
        .tokens
        .insert(me_address, U256::from(100u32));
    MockNode::chain(URL, &chain).register();
    let rpc = Rpc::new(URL);
    let me = Signer::contract();
    let signed = me.sign(&transfer_tx(0));
    assert_eq!(rpc.send_idempotent(&signed), Ok(signed.hash));
    // Mined already: the node says "already imported"; we find our hash and answer it.
    assert_eq!(rpc.send_idempotent(&signed), Ok(signed.hash));
    assert_eq!(chain.borrow().mined.len(), 1);
    assert_eq!(
        chain.borrow().tokens[&Address::repeat_byte(0xbb)],
        U256::from(5u8)
    );
    assert_eq!(
        rpc.transaction_receipt(signed.hash),
        Ok(Some(Receipt {
            block_number: 1,
            success: true,
            gas_used: 21_000
        }))
    );
    assert_eq!(rpc.transaction_receipt(B256::ZERO), Ok(None));
    // Another transaction with the used nonce: "nonce too low" and unknown hash → the error.
    let mut other = transfer_tx(0);
    other.max_fee_per_gas += 1;
    let other = me.sign(&other);
    assert_eq!(
        rpc.send_idempotent(&other),
        Err(Error::Rpc {
            code: -32003,
            message: "nonce too low".into()
        })
    );
    assert_eq!(chain.borrow().mined.len(), 1);
    assert_eq!(chain.borrow().received.len(), 3);
}

#[test]
fn duplicate_answers_of_common_nodes_are_recognised() {
    for m in [
        "already known",
        "transaction already imported",
        "nonce too low: next nonce 3, tx nonce 2",
        "Known transaction",
        "replacement transaction underpriced",
        "AlreadyKnown",
    ] {
        assert!(is_duplicate_answer(m), "{m}");
    }
    for m in [
        "insufficient funds for gas * price + value",
        "execution reverted",
    ] {
        assert!(!is_duplicate_answer(m), "{m}");
    }
}
