//! Queries: the worker's info, signed queries (in an encrypted session when the cluster
//! encrypts), cost estimates, receipts and contracts.

use parity_scale_codec::Encode;
use phat_primitives::protocol::{
    Bytes, Call, CallResult, ContractView, QueryRequest, QueryResponse, Receipt, Seq,
    SignedRequest, WorkerInfo,
};
use phat_primitives::{AccountId, Gas, Mode};

use crate::retry::SendRetrying;
use crate::{sign, Client, ClientError, Signer};

/// Gas added to an estimate's suggested limit, besides a quarter of what the query used.
pub const ESTIMATE_MARGIN: Gas = 1_000_000;

/// What a command is estimated to cost ([`Client::estimate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Gas the call used as a query.
    pub gas_used: Gas,
    /// The gas limit to send the command with.
    pub gas_limit: Gas,
    /// The storage deposit it would take from the signer (negative: give back).
    pub storage_deposit: i128,
    /// How the query ended (a command that would fail fails the same way, as a rule).
    pub result: CallResult,
}

impl Client {
    /// The worker's info (through `phat dev`, of whichever worker answered).
    pub async fn info(&self) -> Result<WorkerInfo, ClientError> {
        self.answer(self.http.get(self.url("/v1/info")).send_retrying().await)
            .await
    }

    /// Sends a signed query, answered after the worker applied `min_seq` when given.
    pub async fn query_signed(
        &self,
        req: &SignedRequest,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let peer = self.peer().await?;
        if !peer.info.encryption {
            let body = QueryRequest {
                request: req.clone(),
                min_seq,
            };
            return self.post_json("/v1/query", &body).await;
        }
        self.open_session(&peer, req, min_seq).await
    }

    /// Signs and sends a query.
    pub async fn query(
        &self,
        signer: &Signer,
        call: Call,
        min_seq: Option<Seq>,
    ) -> Result<QueryResponse, ClientError> {
        let peer = self.peer().await?;
        if peer.info.encryption {
            if let Some(r) = self.session_query(&peer, signer, &call, min_seq).await {
                return r;
            }
        }
        let cluster = self.peer().await?.info.cluster_key;
        self.query_signed(&sign(signer, &cluster, Mode::Query, call), min_seq)
            .await
    }

    /// What a command of `call` by `signer` is estimated to cost: `call` run as a dry query
    /// (`Call::Estimate`: its cache writes and log lines dropped) with the cluster's largest
    /// gas limit. `gas_limit` is the limit to send it with: the gas the
    /// query used and a quarter more (state may change before the command runs). `call`'s
    /// own gas limit is ignored.
    pub async fn estimate(&self, signer: &Signer, call: Call) -> Result<Estimate, ClientError> {
        let mut call = call;
        match &mut call {
            Call::Call { gas_limit, .. } | Call::Instantiate { gas_limit, .. } => {
                *gas_limit = Gas::MAX
            }
            _ => {
                return Err(ClientError::Invalid(
                    "only a call or an instantiation has a cost to estimate".into(),
                ))
            }
        }
        let estimate = Call::Estimate {
            call: Bytes(call.encode()),
        };
        let answer = self.query(signer, estimate, None).await?;
        let gas_used = answer.gas_used;
        Ok(Estimate {
            gas_limit: gas_used
                .saturating_add(gas_used / 4)
                .saturating_add(ESTIMATE_MARGIN),
            gas_used,
            storage_deposit: answer.storage_deposit.0,
            result: answer.result,
        })
    }

    /// The receipt of command `seq`.
    pub async fn receipt(&self, seq: Seq) -> Result<Receipt, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/receipts/{seq}")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// A contract's code hash and deployer.
    pub async fn contract(&self, id: &AccountId) -> Result<ContractView, ClientError> {
        self.answer(
            self.http
                .get(self.url(&format!("/v1/contracts/{id}")))
                .send_retrying()
                .await,
        )
        .await
    }
}
