//! Submitting commands: sealed to the cluster key (or in the signer's open query session),
//! resealed after a key rotation, with the result sealed to the caller opened.

use std::time::Duration;

use parity_scale_codec::{DecodeAll, Encode};
use phat_crypto::Purpose;
use phat_primitives::protocol::{Call, CallResult, LedgerCommand, SignedRequest, Submitted};
use phat_primitives::{AccountId, Mode, Refusal};

use crate::retry::SendRetrying;
use crate::{sign, Client, ClientError, Signer};

/// Most times a sealed command refused with `key_epoch_pending` (the cluster dealing a new
/// key) is sealed and sent again, 250 ms apart.
const MAX_DEALING_WAITS: u32 = 40;

impl Client {
    /// Sends a signed command; with `wait`, answers once the receipt exists. The receipt is
    /// `None` when the worker ordered the command but cannot show its receipt (it restored a
    /// snapshot past it, or did not apply it within its wait): ask another worker for it.
    pub async fn submit_signed(
        &self,
        req: &SignedRequest,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        let peer = self.peer().await?;
        if !peer.info.encryption {
            let url = self.url(&format!("/v1/commands?wait={wait}"));
            let submitted: Submitted = self
                .answer(self.http.post(url).json(req).send_retrying().await)
                .await?;
            self.read_after(submitted.seq);
            return Ok(submitted);
        }
        // In the session a query opened with this worker, if there is one: no key exchange.
        if let Some(submitted) = self.session_command(&peer, req, wait).await {
            let submitted = submitted?;
            self.read_after(submitted.seq);
            return Ok(submitted);
        }
        let url = self.url(&format!("/v1/commands/sealed?wait={wait}"));
        let mut peer = peer;
        let mut refreshed = false;
        let mut dealing_waits = 0;
        let (mut submitted, keys) = loop {
            let (sealed, keys) =
                phat_crypto::seal(&peer.info.sealing_key().0, Purpose::Command, &req.encode())?;
            match self
                .answer::<Submitted>(
                    self.http
                        .post(url.clone())
                        .json(&sealed)
                        .send_retrying()
                        .await,
                )
                .await
            {
                // The cluster rotated its key since this client read it: read it again.
                Err(ClientError::Api { kind, .. })
                    if kind == Refusal::StaleClusterKey.kind() && !refreshed =>
                {
                    refreshed = true;
                    *self.peer.lock() = None;
                    peer = self.peer().await?;
                }
                // The cluster is dealing a new key (moments after a rotation or revocation):
                // wait, then seal to the key it shows.
                Err(ClientError::Api { kind, .. })
                    if kind == Refusal::KeyEpochPending.kind()
                        && dealing_waits < MAX_DEALING_WAITS =>
                {
                    dealing_waits += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    *self.peer.lock() = None;
                    peer = self.peer().await?;
                }
                other => break (other?, keys),
            }
        };
        self.read_after(submitted.seq);
        if let Some(receipt) = &mut submitted.receipt {
            open_result(|c, ct| keys.open_reply(c, ct), &mut receipt.result)?;
        }
        Ok(submitted)
    }

    /// The ledger payload `req` becomes when submitted to this cluster (sealed when the
    /// cluster encrypts), for tools that append to a ledger directly.
    pub async fn ledger_payload(&self, req: &SignedRequest) -> Result<Vec<u8>, ClientError> {
        let peer = self.peer().await?;
        Ok(if peer.info.encryption {
            let (sealed, _) =
                phat_crypto::seal(&peer.info.sealing_key().0, Purpose::Command, &req.encode())?;
            match peer.info.epoch {
                0 => LedgerCommand::Sealed(sealed),
                epoch => LedgerCommand::SealedAt { epoch, sealed },
            }
            .encode()
        } else {
            LedgerCommand::Plain(req.clone()).encode()
        })
    }

    /// Signs and sends a command; with `wait`, answers once the receipt exists.
    pub async fn submit(
        &self,
        signer: &Signer,
        call: Call,
        wait: bool,
    ) -> Result<Submitted, ClientError> {
        let cluster = self.peer().await?.info.cluster_key;
        self.submit_signed(&sign(signer, &cluster, Mode::Command, call), wait)
            .await
    }

    /// Orders a change to the cluster (`signer` must be its owner): a key rotation or a
    /// worker's revocation. Answers once the receipt exists; its result is the new epoch.
    pub async fn change_cluster(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::ClusterOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Cluster { op }, true).await
    }

    /// Sends `value` of native balance from `signer` to `dest` (an ordered command); answers
    /// once the receipt exists (`insufficient_balance` when the signer holds less).
    pub async fn transfer(
        &self,
        signer: &Signer,
        dest: AccountId,
        value: phat_primitives::Balance,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Transfer { dest, value }, true)
            .await
    }
}

/// Replaces a result sealed to the caller by its plaintext.
pub(crate) fn open_result(
    open_reply: impl Fn(u64, &[u8]) -> Result<Vec<u8>, phat_crypto::CryptoError>,
    result: &mut CallResult,
) -> Result<(), ClientError> {
    if let CallResult::Sealed(ct) = result {
        let plain = open_reply(0, ct)?;
        *result = CallResult::decode_all(&mut &plain[..])
            .map_err(|e| ClientError::Decode(format!("sealed result: {e}")))?;
    }
    Ok(())
}
