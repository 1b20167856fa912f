//! The operator against the mock extension and phat-evm's fake chain.

use std::cell::RefCell;
use std::rc::Rc;

use crate::erc20_operator::*;
use ink::env::DefaultEnvironment as Env;
use phat_evm::mock::{FakeChain, MockNode};
use phat_evm::{Address, U256};

const URL: &str = "http://127.0.0.1:8545";
const DEAD: &str = "http://127.0.0.1:1";
const CHAIN: u64 = 31337;
const TOKEN: [u8; 20] = [0x70; 20];
const ALICE: [u8; 20] = [0xa1; 20];
const BOB: [u8; 20] = [0xb0; 20];
const DAY: u64 = 86_400_000;

fn accounts() -> ink::env::test::DefaultAccounts<Env> {
    ink::env::test::default_accounts::<Env>()
}

fn as_owner() {
    ink::env::test::set_caller::<Env>(accounts().alice);
}

/// Configures `op` for the fake chain with `start_nonce` and the tests' usual fees and gas.
fn configure(op: &mut Erc20Operator, start_nonce: u64) {
    op.configure(
        URL.into(),
        CHAIN,
        TOKEN,
        start_nonce,
        3_000_000_000,
        1_000_000_000,
        100_000,
    )
    .unwrap();
}

/// A configured operator (start nonce 5, limit 100 per day, ALICE allowed) on a fake chain
/// where it holds 1000 tokens and 1 ETH.
fn setup() -> (Erc20Operator, Rc<RefCell<FakeChain>>) {
    let chain = FakeChain::new(CHAIN, Address::from(TOKEN)).shared();
    MockNode::chain(URL, &chain).register();
    as_owner();
    let mut op = Erc20Operator::new();
    let me = Address::from(op.address());
    chain.borrow_mut().tokens.insert(me, U256::from(1000u32));
    chain
        .borrow_mut()
        .eth
        .insert(me, U256::from(10u128.pow(18)));
    chain.borrow_mut().nonces.insert(me, 5);
    configure(&mut op, 5);
    op.set_policy(100).unwrap();
    op.allow(ALICE).unwrap();
    (op, chain)
}

#[ink::test]
fn the_address_is_the_contract_key_with_the_ethereum_salt() {
    MockNode::new(|_| phat_evm::mock::Answer::Result(serde_json::Value::Null)).register();
    let op = Erc20Operator::new();
    assert_eq!(
        Address::from(op.address()),
        phat_evm::mock::contract_address()
    );
}

#[ink::test]
fn only_the_owner_configures() {
    let (mut op, _chain) = setup();
    assert_eq!(op.owner(), accounts().alice);
    ink::env::test::set_caller::<Env>(accounts().bob);
    assert_eq!(
        op.configure(URL.into(), 1, TOKEN, 0, 1, 1, 1),
        Err(Error::NotOwner)
    );
    assert_eq!(op.set_policy(1_000_000), Err(Error::NotOwner));
    assert_eq!(op.set_rpc_url(DEAD.into()), Err(Error::NotOwner));
    assert_eq!(op.allow(BOB), Err(Error::NotOwner));
    assert_eq!(op.disallow(ALICE), Err(Error::NotOwner));
    assert_eq!(op.reprice(0, 1, 1), Err(Error::NotOwner));
    assert_eq!(op.config().unwrap().chain_id, CHAIN);
    assert_eq!(op.daily_limit(), 100);
    assert!(op.is_allowed(ALICE));
    // Anyone may request a transfer; the policy decides.
    assert_eq!(op.request_transfer(ALICE, 10), Ok(0));
}

#[ink::test]
fn nothing_works_before_configure() {
    MockNode::new(|_| phat_evm::mock::Answer::Result(serde_json::Value::Null)).register();
    let mut op = Erc20Operator::new();
    assert_eq!(op.request_transfer(ALICE, 1), Err(Error::NotConfigured));
    assert_eq!(op.set_rpc_url(URL.into()), Err(Error::NotConfigured));
    assert_eq!(op.eth_balance(), Err(Error::NotConfigured));
    assert_eq!(op.token_balance(), Err(Error::NotConfigured));
    assert_eq!(op.send(0), Err(Error::UnknownIntent));
}

#[ink::test]
fn the_policy_refuses_clearly() {
    let (mut op, _chain) = setup();
    assert_eq!(op.request_transfer(BOB, 1), Err(Error::NotAllowed));
    assert_eq!(op.request_transfer(ALICE, 0), Err(Error::ZeroAmount));
    assert_eq!(op.request_transfer(ALICE, 60), Ok(0));
    assert_eq!(op.spent_today(ALICE), 60);
    assert_eq!(
        op.request_transfer(ALICE, 41),
        Err(Error::OverDailyLimit {
            limit: 100,
            spent_today: 60,
            requested: 41
        })
    );
    assert_eq!(op.request_transfer(ALICE, 40), Ok(1));
    assert_eq!(
        op.request_transfer(ALICE, u128::MAX),
        Err(Error::OverDailyLimit {
            limit: 100,
            spent_today: 100,
            requested: u128::MAX
        })
    );
    // The next ledger day starts afresh.
    ink::env::test::set_block_timestamp::<Env>(DAY);
    assert_eq!(op.spent_today(ALICE), 0);
    assert_eq!(op.request_transfer(ALICE, 100), Ok(2));
    // Taken off the list: refused again.
    op.disallow(ALICE).unwrap();
    assert_eq!(op.request_transfer(ALICE, 1), Err(Error::NotAllowed));
    assert_eq!(op.intent_count(), 3);
}

#[ink::test]
fn intents_take_consecutive_nonces_and_freeze_their_fees() {
    let (mut op, _chain) = setup();
    assert_eq!(op.request_transfer(ALICE, 10), Ok(0));
    assert_eq!(op.request_transfer(ALICE, 20), Ok(1));
    let first = op.intent(0).unwrap();
    assert_eq!(
        (
            first.nonce,
            first.amount,
            first.to,
            first.token,
            first.chain_id
        ),
        (5, 10, ALICE, TOKEN, CHAIN)
    );
    assert_eq!(op.intent(1).unwrap().nonce, 6);
    assert_eq!(op.next_nonce(), 7);
    let hash = op.tx_hash(0).unwrap();
    // New fees apply to new intents only: intent 0's transaction does not change.
    op.configure(URL.into(), CHAIN, TOKEN, 7, 9_000_000_000, 2, 50_000)
        .unwrap();
    assert_eq!(op.tx_hash(0), Ok(hash));
    assert_eq!(op.intent(0).unwrap().max_fee_per_gas, 3_000_000_000);
    assert_eq!(op.request_transfer(ALICE, 1), Ok(2));
    assert_eq!(op.intent(2).unwrap().max_fee_per_gas, 9_000_000_000);
    assert_eq!(op.intent(2).unwrap().gas_limit, 50_000);
    assert_eq!(op.intent(9), None);
    assert_eq!(op.tx_hash(9), Err(Error::UnknownIntent));
}

#[ink::test]
fn send_transfers_once_however_often_it_is_sent() {
    let (mut op, chain) = setup();
    assert_eq!(op.token_balance(), Ok(1000));
    assert_eq!(op.eth_balance(), Ok(10u128.pow(18)));
    assert_eq!(op.chain_nonce(), Ok(5));
    let id = op.request_transfer(ALICE, 25).unwrap();
    assert_eq!(op.status(id), Ok(None));
    let hash = op.send(id).unwrap();
    assert_eq!(hash, op.tx_hash(id).unwrap());
    // Again (as through another worker): the same hash, no second transfer.
    assert_eq!(op.send(id), Ok(hash));
    assert_eq!(op.send(id), Ok(hash));
    let c = chain.borrow();
    assert_eq!(c.mined.len(), 1);
    let mined = c.mined.values().next().unwrap();
    assert_eq!(mined.from, Address::from(op.address()));
    assert_eq!(mined.nonce, 5);
    assert_eq!(mined.chain_id, CHAIN);
    assert_eq!(
        mined.transfer,
        Some((Address::from(ALICE), U256::from(25u8)))
    );
    assert_eq!(c.received.len(), 3);
    assert!(c.received.iter().all(|r| r == &c.received[0]));
    drop(c);
    assert_eq!(op.balance_of(ALICE), Ok(25));
    assert_eq!(op.token_balance(), Ok(975));
    let receipt = op.status(id).unwrap().unwrap();
    assert!(receipt.success);
    assert_eq!(receipt.block_number, 1);
}

#[ink::test]
fn a_used_nonce_is_reported_and_reprice_replaces_a_pending_transaction() {
    let (mut op, chain) = setup();
    let a = op.request_transfer(ALICE, 1).unwrap();
    op.send(a).unwrap();
    // The owner sets the start nonce back by mistake: the new intent reuses nonce 5.
    configure(&mut op, 5);
    let b = op.request_transfer(ALICE, 2).unwrap();
    assert_eq!(op.send(b), Err(Error::NonceTaken { nonce: 5 }));
    assert_eq!(chain.borrow().mined.len(), 1);

    // A pending (not mined) transaction repriced: same nonce, new hash.
    chain.borrow_mut().automine = false;
    configure(&mut op, 6);
    let c = op.request_transfer(ALICE, 3).unwrap();
    let old = op.send(c).unwrap();
    op.reprice(c, 6_000_000_000, 2_000_000_000).unwrap();
    let new = op.send(c).unwrap();
    assert_ne!(old, new);
    assert_eq!(op.intent(c).unwrap().nonce, 6);
    assert_eq!(op.intent(c).unwrap().max_fee_per_gas, 6_000_000_000);
    assert_eq!(op.reprice(42, 1, 1), Err(Error::UnknownIntent));
}

#[ink::test]
fn node_trouble_comes_back_as_errors() {
    let (mut op, _chain) = setup();
    let id = op.request_transfer(ALICE, 1).unwrap();
    op.set_rpc_url(DEAD.into()).unwrap();
    assert_eq!(op.next_nonce(), 6);
    assert_eq!(op.config().unwrap().rpc_url, DEAD);
    let down = Error::Eth(phat_evm::Error::Http(phat_evm::HttpError::Transport(
        phat_ink::HttpRequestError::NetworkError,
    )));
    assert_eq!(op.send(id), Err(down.clone()));
    assert_eq!(op.eth_balance(), Err(down.clone()));
    assert_eq!(op.status(id), Err(down));

    // A node that refuses the transaction: its error, as it said it.
    MockNode::new(|r| match r.method.as_str() {
        "eth_sendRawTransaction" => phat_evm::mock::Answer::Error(
            -32000,
            "insufficient funds for gas * price + value".into(),
        ),
        _ => phat_evm::mock::Answer::Result(serde_json::Value::Null),
    })
    .register();
    assert_eq!(
        op.send(id),
        Err(Error::Eth(phat_evm::Error::Rpc {
            code: -32000,
            message: "insufficient funds for gas * price + value".into()
        }))
    );
}
