//! Code and metadata: signed uploads by funded accounts, and ink! metadata published per
//! account (readers ask for what a contract's deployer published).

use super::*;

pub(super) async fn upload_code(
    State(w): State<Worker>,
    headers: header::HeaderMap,
    body: BodyBytes,
) -> ApiResult<CodeUploaded> {
    if body.is_empty() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
            "the body must be the contract's wasm bytes",
        ));
    }
    let hash = phat_primitives::CodeHash::of(&body);
    let cluster = w.cluster_id();
    let signer = signed_by(&w, &headers, |exp| {
        phat_primitives::protocol::upload_payload(&cluster, &hash, exp)
    })?;
    w.inner.admission.upload(&signer)?;
    // On an owner-only cluster only who may deploy uploads: the ledger keeps every upload.
    if w.inner.genesis.deploy != crate::DeployPermission::Public {
        let deployers = w
            .inner
            .store
            .snapshot()?
            .get(&StateKey::Deployers)?
            .and_then(|raw| Vec::<AccountId>::decode(&mut &raw[..]).ok())
            .unwrap_or_default();
        if !crate::genesis::may_deploy(&w.inner.genesis, &deployers, &signer) {
            return Err(ApiErr::new(
                StatusCode::FORBIDDEN,
                Refusal::DeployNotAllowed,
                format!(
                    "this cluster lets its owner deploy, and the accounts the owner allows \
                     (phat cluster deployers); {signer} is neither"
                ),
            ));
        }
    }
    let marker = MetaKey::Uploaded(signer, hash);
    within_quota(&w, MetaPrefix::Uploaded(signer), marker, "uploads").await?;
    let rt = w.inner.runtime.clone();
    let wasm = body.to_vec();
    let wasm = tokio::task::spawn_blocking(move || rt.prepare_code(&wasm).map(|_| wasm))
        .await
        .map_err(ApiErr::internal)?
        .map_err(|e| ApiErr::new(StatusCode::BAD_REQUEST, Refusal::InvalidCode, e.to_string()))?;
    let code_hash = w.inner.ledger.put_code(wasm).await.map_err(ledger_err)?;
    w.inner
        .ledger
        .put_meta(&marker.key(), Vec::new())
        .await
        .map_err(ledger_err)?;
    Ok(Json(CodeUploaded { code_hash }))
}

/// Refuses a new `item` under `prefix` (one account's uploads or published metadata, an
/// index in the ledger's metadata) once the account holds
/// [`crate::WorkerConfig::account_quota`] of them: the ledger keeps each for good and no one
/// pays for it, so a funded account may not add without end. An item already there (the same
/// upload or document again) costs nothing new.
async fn within_quota(
    w: &Worker,
    prefix: MetaPrefix,
    item: MetaKey,
    what: &str,
) -> Result<(), ApiErr> {
    debug_assert!(item.key().starts_with(&prefix.to_string()));
    let ledger = &w.inner.ledger;
    if ledger
        .get_meta(&item.key())
        .await
        .map_err(ledger_err)?
        .is_some()
    {
        return Ok(());
    }
    let held = ledger
        .meta_keys(&prefix.to_string())
        .await
        .map_err(ledger_err)?
        .len();
    let quota = w.inner.config.account_quota;
    if held >= quota {
        return Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            Refusal::QuotaExceeded,
            format!("this account holds {held} {what}, the most one account may hold ({quota})"),
        ));
    }
    Ok(())
}

/// The account that signed an upload or a metadata write: its headers name the signer, the
/// expiry and an sr25519 signature of `payload(expiry)`. The signer must hold a balance
/// (uploads grow every worker's ledger: strangers without funds cannot).
pub(super) fn signed_by(
    w: &Worker,
    headers: &header::HeaderMap,
    payload: impl FnOnce(u64) -> Vec<u8>,
) -> Result<AccountId, ApiErr> {
    use phat_primitives::protocol::{EXPIRES_HEADER, SIGNATURE_HEADER, SIGNER_HEADER};
    let unsigned = || {
        ApiErr::new(
            StatusCode::UNAUTHORIZED,
            Refusal::Unsigned,
            format!(
                "uploads and metadata must be signed: headers {SIGNER_HEADER}, \
                 {SIGNATURE_HEADER} and {EXPIRES_HEADER} (phat-client does this)"
            ),
        )
    };
    let text = |name: &str| -> Result<&str, ApiErr> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unsigned)
    };
    let malformed = |what: &str| ApiErr::new(StatusCode::BAD_REQUEST, Refusal::Malformed, what);
    let signer: AccountId = text(SIGNER_HEADER)?
        .parse()
        .map_err(|_| malformed("x-phat-signer must be a 0x-prefixed 32-byte account"))?;
    let signature = hex::decode(text(SIGNATURE_HEADER)?.trim_start_matches("0x"))
        .map_err(|_| malformed("x-phat-signature must be hex"))?;
    let expires_at: u64 = text(EXPIRES_HEADER)?
        .parse()
        .map_err(|_| malformed("x-phat-expires must be Unix milliseconds"))?;
    let now = now_ms();
    if expires_at < now || expires_at > now + phat_primitives::protocol::MAX_REQUEST_TTL_MS {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Expired,
            format!("the signature expires at {expires_at}, now is {now}"),
        ));
    }
    if !phat_crypto::sr25519_verify(&signer, &payload(expires_at), &signature) {
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            Refusal::BadSignature,
            format!("the signature of {signer} does not match"),
        ));
    }
    let snap = w.inner.store.snapshot()?;
    // Before command 1 the genesis balances are not in the state yet.
    let funded = snap.get(&StateKey::Balance(signer))?.is_some()
        || (snap.head().seq == 0
            && w.inner
                .genesis
                .balances
                .iter()
                .any(|(who, b)| *who == signer && *b > 0));
    if !funded {
        return Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            Refusal::Unfunded,
            format!("{signer} holds no balance on this cluster: only funded accounts upload"),
        ));
    }
    Ok(signer)
}

pub(super) fn parse_code_hash(hash: &str) -> Result<phat_primitives::CodeHash, ApiErr> {
    hash.parse().map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
            format!("code hash `{hash}`: {e}"),
        )
    })
}

/// Stores the ink! metadata (JSON ABI) of uploaded code as published by its signer. Readers
/// ask for the metadata a contract's deployer published, so nobody can swap the ABI that
/// other people's calls are encoded with.
pub(super) async fn put_metadata(
    State(w): State<Worker>,
    Path(hash): Path<String>,
    headers: header::HeaderMap,
    body: BodyBytes,
) -> Result<StatusCode, ApiErr> {
    let hash = parse_code_hash(&hash)?;
    let metadata: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
            format!("metadata: {e}"),
        )
    })?;
    if !metadata.is_object() {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            Refusal::Malformed,
            "metadata must be a JSON object",
        ));
    }
    let cluster = w.cluster_id();
    let digest = phat_primitives::blake2_256(&body);
    let signer = signed_by(&w, &headers, |exp| {
        phat_primitives::protocol::metadata_payload(&cluster, &hash, &digest, exp)
    })?;
    w.inner.admission.upload(&signer)?;
    if w.inner
        .ledger
        .get_code(&hash)
        .await
        .map_err(ledger_err)?
        .is_none()
    {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            Refusal::UnknownCode,
            format!("code {hash} was never uploaded"),
        ));
    }
    let marker = MetaKey::Published(signer, hash);
    within_quota(
        &w,
        MetaPrefix::Published(signer),
        marker,
        "metadata documents",
    )
    .await?;
    w.inner
        .ledger
        .put_meta(&MetaKey::Metadata(hash, signer).key(), body.to_vec())
        .await
        .map_err(ledger_err)?;
    w.inner
        .ledger
        .put_meta(&marker.key(), Vec::new())
        .await
        .map_err(ledger_err)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(super) struct MetadataParams {
    /// Whose published metadata (a contract's deployer).
    publisher: Option<String>,
}

/// The ink! metadata `?publisher=0x…` published for code (without it: metadata stored before
/// uploads were signed, if any).
pub(super) async fn get_metadata(
    State(w): State<Worker>,
    Path(hash): Path<String>,
    Query(params): Query<MetadataParams>,
) -> Result<Response, ApiErr> {
    let hash = parse_code_hash(&hash)?;
    let key = match &params.publisher {
        Some(p) => {
            let who: AccountId = p.parse().map_err(|_| {
                ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    Refusal::Malformed,
                    "publisher must be a 0x-prefixed 32-byte account",
                )
            })?;
            MetaKey::Metadata(hash, who).key()
        }
        None => MetaKey::LegacyMetadata(hash).key(),
    };
    let stored = w.inner.ledger.get_meta(&key).await.map_err(ledger_err)?;
    // The system contract's metadata ships with the worker: nobody publishes it.
    let stored = stored.or_else(|| {
        let system = w.inner.genesis.system.as_ref()?;
        (system.code == phat_system::SYSTEM_WASM && system.code_hash() == hash)
            .then(|| phat_system::SYSTEM_METADATA.as_bytes().to_vec())
    });
    match stored {
        Some(bytes) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        None => Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            Refusal::UnknownMetadata,
            match &params.publisher {
                Some(p) => format!("{p} published no metadata for code {hash}"),
                None => format!("no metadata stored for code {hash}"),
            },
        )),
    }
}
