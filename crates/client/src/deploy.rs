//! Deploying: signed code uploads and the ink! metadata published for uploaded code.

use phat_primitives::protocol::CodeUploaded;
use phat_primitives::{AccountId, CodeHash};

use crate::retry::SendRetrying;
use crate::{now_ms, Client, ClientError, Signer, DEFAULT_TTL};

impl Client {
    /// Uploads a contract's wasm to the cluster; returns its code hash.
    ///
    /// Uploads are signed by a funded account of the cluster (the signature binds the
    /// cluster, the code and an expiry).
    pub async fn upload_code(
        &self,
        signer: &Signer,
        wasm: Vec<u8>,
    ) -> Result<CodeHash, ClientError> {
        let cluster = self.peer().await?.info.cluster_key;
        let hash = CodeHash::of(&wasm);
        let expires_at = now_ms() + DEFAULT_TTL.as_millis() as u64;
        let signature = signer.sign(&phat_primitives::protocol::upload_payload(
            &cluster, &hash, expires_at,
        ));
        let r: CodeUploaded = self
            .answer(
                signed_headers(
                    self.http.post(self.url("/v1/code")),
                    signer,
                    &signature,
                    expires_at,
                )
                .header("content-type", "application/octet-stream")
                .body(wasm)
                .send_retrying()
                .await,
            )
            .await?;
        Ok(r.code_hash)
    }

    /// Stores the ink! metadata of uploaded code on the cluster.
    ///
    /// The metadata is published under `signer`'s account: readers ask for the metadata a
    /// contract's deployer published, so deploy with the same signer.
    pub async fn put_metadata(
        &self,
        signer: &Signer,
        code_hash: &CodeHash,
        metadata: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let cluster = self.peer().await?.info.cluster_key;
        let body = serde_json::to_vec(metadata).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let expires_at = now_ms() + DEFAULT_TTL.as_millis() as u64;
        let payload = phat_primitives::protocol::metadata_payload(
            &cluster,
            code_hash,
            &phat_primitives::blake2_256(&body),
            expires_at,
        );
        let signature = signer.sign(&payload);
        let resp = signed_headers(
            self.http
                .post(self.url(&format!("/v1/code/{code_hash}/metadata"))),
            signer,
            &signature,
            expires_at,
        )
        .header("content-type", "application/json")
        .body(body)
        .send_retrying()
        .await
        .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self
            .answer::<()>(Ok(resp))
            .await
            .err()
            .unwrap_or_else(|| ClientError::Decode("error status without an error body".into())))
    }

    /// The ink! metadata `publisher` published for code (pass a contract's deployer), or
    /// with `None` metadata stored before publishing was signed.
    pub async fn metadata(
        &self,
        code_hash: &CodeHash,
        publisher: Option<&AccountId>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut url = self.url(&format!("/v1/code/{code_hash}/metadata"));
        if let Some(p) = publisher {
            url.push_str(&format!("?publisher={p}"));
        }
        self.answer(self.http.get(url).send_retrying().await).await
    }

    /// The ink! metadata of a contract: what its deployer published for its code.
    pub async fn contract_metadata(
        &self,
        id: &AccountId,
    ) -> Result<serde_json::Value, ClientError> {
        let view = self.contract(id).await?;
        match self.metadata(&view.code_hash, Some(&view.deployer)).await {
            Err(ClientError::Api { status: 404, .. }) => self.metadata(&view.code_hash, None).await,
            r => r,
        }
    }
}

/// Adds the signer, signature and expiry headers of a signed upload or metadata write.
fn signed_headers(
    rb: reqwest::RequestBuilder,
    signer: &Signer,
    signature: &[u8; 64],
    expires_at: u64,
) -> reqwest::RequestBuilder {
    use phat_primitives::protocol::{EXPIRES_HEADER, SIGNATURE_HEADER, SIGNER_HEADER};
    rb.header(SIGNER_HEADER, signer.account().to_string())
        .header(SIGNATURE_HEADER, format!("0x{}", hex::encode(signature)))
        .header(EXPIRES_HEADER, expires_at.to_string())
}
