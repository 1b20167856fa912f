//! Contract bundles and deploying them, and the dev accounts.

use std::path::{Path, PathBuf};

use phat_client::primitives::protocol::{Call, CallResult};
use phat_client::primitives::AccountId;
use phat_client::{Client, Contract, Signer};

use crate::{contract_manifest, run_json, wait_seq};

/// The dev account //Alice, in hex.
pub const ALICE: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
/// The dev account //Bob, in hex.
pub const BOB: &str = "0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48";

/// Builds `contracts/<name>` and returns its `.contract` bundle.
pub fn bundle(name: &str) -> PathBuf {
    let manifest = contract_manifest(name);
    let a = phat_builder::build(&phat_builder::BuildOptions::new(&manifest), |_| {})
        .unwrap_or_else(|e| panic!("building {name}: {e}"));
    a.bundle.expect("bundle")
}

/// Deploys `bundle` through `endpoint` with `phat deploy` and `extra` arguments; returns the
/// contract id (`0x…`).
pub fn deploy(endpoint: &str, bundle: &Path, extra: &[&str]) -> String {
    let mut args = vec!["deploy", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_json(endpoint, &args);
    out["contract"].as_str().expect("contract id").to_string()
}

/// Builds example contract `name` and deploys it through `endpoint` with its `new`
/// constructor (no arguments); returns the contract id (`0x…`).
pub fn deploy_new(endpoint: &str, name: &str) -> String {
    deploy(endpoint, &bundle(name), &["--constructor", "new"])
}

/// Deploys the erc20 `bundle` through the endpoint `ep` with `phat deploy` as //Alice, with a
/// total supply of `supply`; returns the contract id.
pub async fn deploy_erc20(ep: &str, bundle: &Path, supply: &str) -> String {
    let (ep, bundle, supply) = (ep.to_string(), bundle.to_path_buf(), supply.to_string());
    let args = [
        "--constructor",
        "new",
        "--args",
        &supply,
        "--suri",
        "//Alice",
    ]
    .map(String::from);
    tokio::task::spawn_blocking(move || deploy(&ep, &bundle, &crate::strs(&args)))
        .await
        .unwrap()
}

/// A deployed `contracts/counter` starting at 0.
pub struct Counter {
    /// Its metadata.
    pub contract: Contract,
    /// Its address.
    pub id: AccountId,
    /// The seq of its instantiation.
    pub deployed_at: u64,
}

/// Deploys `contracts/counter` through `client` as //Alice (with the salt `crash`).
pub async fn deploy_counter(client: &Client) -> Counter {
    deploy_counter_salted(client, b"crash").await
}

/// [`deploy_counter`] with its own `salt` (another address for the same code).
pub async fn deploy_counter_salted(client: &Client, salt: &[u8]) -> Counter {
    let contract = Contract::load(bundle("counter")).unwrap();
    let alice = Signer::from_suri("//Alice").unwrap();
    let code = client
        .upload_code(&alice, contract.wasm().unwrap().to_vec())
        .await
        .unwrap();
    let data = contract.encode_constructor("new", &["0"]).unwrap();
    let sub = client
        .submit(
            &alice,
            phat_client::instantiate(code, data, salt.to_vec()),
            true,
        )
        .await
        .unwrap();
    let receipt = sub.receipt.unwrap();
    let id = match receipt.result {
        CallResult::Ok(o) => o.address.unwrap(),
        other => panic!("deploy: {other:?}"),
    };
    Counter {
        contract,
        id,
        deployed_at: receipt.seq,
    }
}

impl Counter {
    /// The `inc(1)` message.
    pub fn inc(&self) -> Call {
        phat_client::call(
            self.id,
            self.contract.encode_message("inc", &["1"]).unwrap(),
        )
    }

    /// The `get` message.
    pub fn get_call(&self) -> Call {
        phat_client::call(self.id, self.get_call_data())
    }

    /// The call data of `get`.
    pub fn get_call_data(&self) -> Vec<u8> {
        self.contract.encode_message("get", &[] as &[&str]).unwrap()
    }

    /// (value, seq of the snapshot it was read from).
    pub async fn get(&self, client: &Client, min_seq: Option<u64>) -> (u64, u64) {
        let alice = Signer::from_suri("//Alice").unwrap();
        let data = self.contract.encode_message("get", &[] as &[&str]).unwrap();
        let r = client
            .query(&alice, phat_client::call(self.id, data), min_seq)
            .await
            .unwrap();
        let CallResult::Ok(o) = r.result else {
            panic!("get: {:?}", r.result)
        };
        let v = <Result<u64, u8> as parity_scale_codec::Decode>::decode(&mut &o.data[..])
            .unwrap()
            .unwrap();
        (v, r.seq)
    }
}

/// `account`'s free balance as the system contract `system` answers it on `worker`, once that
/// worker applied `seq`.
pub async fn free_balance(worker: &str, system: &str, account: &str, seq: u64) -> u128 {
    wait_seq(worker, seq).await;
    let r = run_json(
        worker,
        &["query", system, "System::free_balance_of", account],
    );
    let text = r["decoded"].as_str().unwrap().replace(['"', ','], "");
    text.trim_start_matches("Ok(")
        .trim_end_matches(')')
        .parse::<u128>()
        .unwrap_or_else(|e| panic!("{r}: {e}"))
}
