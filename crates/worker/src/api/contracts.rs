//! Contracts: their public view (keys, Ethereum address) and their trigger tables. Their log
//! is read with a signed query (`Call::Logs`, `crate::logs`).

use super::*;

pub(super) async fn contract(
    State(w): State<Worker>,
    Path(id): Path<String>,
) -> ApiResult<ContractView> {
    let id = parse_id(&id)?;
    let info = known_contract(&w, &id).await?;
    let seed = *w.inner.enclave.keys().contract_seed.expose();
    let keys = phat_pink::contract_public_keys(&seed, &id);
    Ok(Json(ContractView {
        id,
        code_hash: info.code_hash,
        deployer: info.deployer,
        keys: ContractKeys {
            sr25519: Hash(keys.sr25519),
            ed25519: Hash(keys.ed25519),
            secp256k1: keys.ecdsa.to_vec().into(),
            ethereum_address: eip55(&keys.ethereum_address),
        },
    }))
}

/// `?min_seq=N` on a read: answer once this worker applied seq `N` (read your own writes
/// through an endpoint that spreads reads over workers).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReadAfter {
    min_seq: Option<Seq>,
}

impl ReadAfter {
    /// Waits (at most the worker's wait timeout) until `min_seq` is applied.
    async fn wait(&self, w: &Worker) -> Result<(), ApiErr> {
        match self.min_seq {
            Some(min) if w.applied_seq() < min => wait_applied(w, min).await,
            _ => Ok(()),
        }
    }
}

/// The contract's schedules, with their last tick and runs so far.
pub(super) async fn schedules(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Schedule>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::triggers::schedule::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .schedules
            .into_iter()
            .filter(|s| s.contract == id)
            .collect(),
    ))
}

/// The contract's Ethereum log subscriptions, with their cursor, deliveries and pending
/// reports (RPC URLs shortened to scheme, host and port).
pub(super) async fn subscriptions(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Subscription>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::triggers::subscription::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .subscriptions
            .into_iter()
            .filter(|s| s.contract == id)
            .map(|mut s| {
                // The endpoint's address may hold its API key: shown without path or query.
                s.def.rpc_url = crate::triggers::eth_rpc::public_url(&s.def.rpc_url);
                s
            })
            .collect(),
    ))
}

/// The contract's off-chain jobs, with their last tick answered and runs so far.
pub(super) async fn jobs(
    State(w): State<Worker>,
    Path(id): Path<String>,
    Query(after): Query<ReadAfter>,
) -> ApiResult<Vec<phat_primitives::protocol::Job>> {
    let id = parse_id(&id)?;
    after.wait(&w).await?;
    known_contract(&w, &id).await?;
    let snap = w.inner.store.snapshot()?;
    let table = crate::triggers::job::stored(&snap).map_err(ApiErr::internal)?;
    Ok(Json(
        table
            .jobs
            .into_iter()
            .filter(|j| j.contract == id)
            .collect(),
    ))
}

/// An Ethereum address in EIP-55 mixed-case checksum form.
pub(super) fn eip55(address: &[u8; 20]) -> String {
    use sha3::Digest;
    let lower = hex::encode(address);
    let hash = sha3::Keccak256::digest(lower.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn eip55_checksums_match_the_spec_vectors() {
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        ] {
            let bytes: [u8; 20] = hex::decode(&addr[2..]).unwrap().try_into().unwrap();
            assert_eq!(super::eip55(&bytes), addr);
        }
    }
}
