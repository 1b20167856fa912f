//! Joining a cluster and handing its secret over: the join entry, the wait for a handover,
//! serving joiners, and the verdicts on who the ledger's metadata names.

use super::*;

impl Enclave {
    /// Appends this worker's `Join` entry (its report, with its vote key) to the ledger: once
    /// applied, the worker is a member in replicated state.
    pub(crate) async fn append_join(
        &self,
        ledger: &dyn Ledger,
        genesis: &Genesis,
    ) -> Result<(), WorkerError> {
        let entry =
            phat_primitives::protocol::LedgerCommand::Join(phat_primitives::protocol::JoinEntry {
                report: self.report(None, genesis.encryption)?,
            });
        ledger.append(entry.encode()).await?;
        tracing::info!(worker_key = %Hash(self.identity.public()), "asked to join the cluster's members");
        Ok(())
    }

    /// Gets the cluster secret: unsealed from disk, created (first worker) or handed over
    /// through the ledger by an existing worker (with the secrets of later epochs). A worker
    /// that gets it from another appends its `Join` first (the secret goes to members only),
    /// and the creator right after creating it; `Ok(true)` when this call appended one.
    pub(crate) async fn join(
        &self,
        dir: &Path,
        ledger: &dyn Ledger,
        genesis: &Genesis,
    ) -> Result<bool, WorkerError> {
        let record = get_record(ledger).await?;
        let policy = self.policy(genesis);
        if let Some(bytes) = read_sealed(dir, "cluster", &sealing_key())? {
            if bytes.len() != 64 {
                return Err(WorkerError::Enclave(format!(
                    "{}/cluster.sealed has {} bytes (expected the secret and the genesis digest)",
                    dir.display(),
                    bytes.len()
                )));
            }
            // The genesis (funds, encryption, the dev root joiners are checked against) must
            // be the one this worker joined under: the ledger's metadata is not trusted.
            if bytes[32..] != genesis.digest() {
                return Err(WorkerError::Enclave(
                    "the cluster genesis in the ledger differs from the one this worker joined \
                     under; refusing to start"
                        .into(),
                ));
            }
            let secret = ClusterSecret::from_bytes(*to_secret(&bytes[..32])?.expose());
            let cluster_key = secret.envelope_secret().public();
            if let Some(r) = &record {
                if r.cluster_key.0 != cluster_key {
                    return Err(WorkerError::Enclave(format!(
                        "{} holds the secret of another cluster (key {}, the ledger's is {})",
                        dir.display(),
                        Hash(cluster_key),
                        r.cluster_key
                    )));
                }
            }
            return self.install(dir, secret, &[], genesis).map(|()| false);
        }
        if let Some(r) = &record {
            check_record(&policy, r)?;
        }
        if record.is_none() {
            let secret = ClusterSecret::generate();
            let cluster_key = secret.envelope_secret().public();
            let record = ClusterRecord {
                cluster_key: Hash(cluster_key),
                creator: self.report(Some(cluster_key), genesis.encryption)?,
            };
            if ledger
                .create_meta(CLUSTER_KEY, record.encode())
                .await
                .map_err(WorkerError::Ledger)?
            {
                tracing::info!(cluster_key = %record.cluster_key, "created the cluster secret");
                self.install(dir, secret, &[], genesis)?;
                // The creator asks to be a member at once, so a key epoch dealt early has a
                // share for it (a deal seals to the members of its moment only).
                return match self.append_join(ledger, genesis).await {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        tracing::warn!("asking for membership (retried once caught up): {e}");
                        Ok(false)
                    }
                };
            }
        }
        // Join: publish the report, wait for an existing worker to hand the secret over.
        let me = Hash(self.identity.public());
        ledger
            .put_meta(
                &MetaKey::Join(me).key(),
                self.report(None, genesis.encryption)?.encode(),
            )
            .await?;
        self.append_join(ledger, genesis).await?;
        tracing::info!(worker_key = %me, "joining the cluster: waiting for the cluster secret");
        let mut waited = 0u32;
        loop {
            if let Some(raw) = ledger.get_meta(&MetaKey::Handover(me).key()).await? {
                let handover = Handover::decode(&mut &raw[..])
                    .map_err(|e| WorkerError::Enclave(format!("malformed handover: {e}")))?;
                let record = get_record(ledger)
                    .await?
                    .ok_or_else(|| WorkerError::Enclave("the cluster record disappeared".into()))?;
                check_record(&policy, &record)?;
                // The sender must be another attested worker that serves this cluster key.
                policy
                    .verify(&handover.from)
                    .map_err(|e| WorkerError::Enclave(format!("handover from: {e}")))?;
                if handover.from.cluster_key != Some(record.cluster_key)
                    || handover.from.worker_key == me
                {
                    return Err(WorkerError::Enclave(
                        "the handover does not come from a worker of this cluster".into(),
                    ));
                }
                let (bytes, _) = self
                    .identity
                    .open(Purpose::Handover, &handover.sealed)
                    .map_err(|e| WorkerError::Enclave(format!("handover: {e}")))?;
                if bytes.len() < 32 || !bytes.len().is_multiple_of(32) {
                    return Err(WorkerError::Enclave(format!(
                        "a handover holds {} bytes (32 per key epoch)",
                        bytes.len()
                    )));
                }
                let secret = ClusterSecret::from_bytes(*to_secret(&bytes[..32])?.expose());
                let record = get_record(ledger)
                    .await?
                    .ok_or_else(|| WorkerError::Enclave("the cluster record disappeared".into()))?;
                if record.cluster_key.0 != secret.envelope_secret().public() {
                    return Err(WorkerError::Enclave(
                        "the handed-over secret is not the cluster's".into(),
                    ));
                }
                tracing::info!(cluster_key = %record.cluster_key, "received the cluster secret");
                return self
                    .install(dir, secret, &bytes[32..], genesis)
                    .map(|()| true);
            }
            if let Some(reason) = ledger.get_meta(&MetaKey::JoinRefused(me).key()).await? {
                return Err(WorkerError::Enclave(format!(
                    "the cluster refused this worker: {}",
                    String::from_utf8_lossy(&reason)
                )));
            }
            waited += 1;
            if waited.is_multiple_of(40) {
                tracing::warn!(
                    "still waiting for a running worker to hand over the cluster secret"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The attested workers of the cluster as the ledger's metadata shows them (see
    /// [`Members`]) with the vote keys their reports attest: the creator of the cluster record
    /// and every worker handed the secret whose join report verifies, minus the workers
    /// revoked in this worker's applied state. For a worker that has no applied state yet (it
    /// is restoring a snapshot); names that fail are counted in `refused`.
    pub(crate) async fn attested_workers(
        &self,
        ledger: &dyn Ledger,
        genesis: &Genesis,
        refused: &crate::metrics::Refused,
    ) -> Result<Vec<(Hash, Option<Hash>)>, WorkerError> {
        let policy = self.policy(genesis);
        let mut members = self
            .members
            .lock()
            .await
            .refresh(ledger, &policy, refused)
            .await?;
        if let Some(record) = get_record(ledger).await? {
            let creator = &record.creator;
            if check_record(&policy, &record).is_ok()
                && !members.iter().any(|(w, _)| *w == creator.worker_key)
            {
                members.push((creator.worker_key, creator.signing_key));
            }
        }
        let revoked = self.revoked.lock().clone();
        members.retain(|(w, _)| !revoked.contains(w));
        Ok(members)
    }

    /// Hands the cluster secret to every joiner whose report verifies and whose `Join` the
    /// applied state admitted, and each later epoch's secret to every member (runs until
    /// dropped). `members` reads the member table of the applied state.
    pub(crate) async fn serve_joiners(
        self: Arc<Self>,
        ledger: Arc<dyn Ledger>,
        genesis: Genesis,
        members: StateMembers,
    ) {
        let policy = self.policy(&genesis);
        // Joins answered (by any worker): their answer is written once and never changes.
        let mut settled = std::collections::HashSet::new();
        loop {
            match members() {
                Ok((table, keyed)) => {
                    if let Err(e) = self
                        .hand_over_once(&*ledger, &policy, (&table, keyed), &mut settled)
                        .await
                    {
                        tracing::warn!("cluster handover: {e}");
                    }
                }
                Err(e) => tracing::warn!("reading the member table: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(super) async fn hand_over_once(
        &self,
        ledger: &dyn Ledger,
        policy: &AttestationPolicy,
        (table, keyed): (&MemberTable, u32),
        settled: &mut std::collections::HashSet<Hash>,
    ) -> Result<(), WorkerError> {
        // The member table and the keyed epoch come from one applied state: a joiner admitted
        // after an epoch's deal has no share in it and must get that epoch here, so nothing is
        // handed over until this worker holds every epoch that state keyed.
        if self.keys().held() < keyed {
            return Ok(());
        }
        for key in ledger.meta_keys(&MetaPrefix::Join.to_string()).await? {
            // Anything else a metadata writer planted under the prefix is nobody's join.
            let Some(MetaKey::Join(who)) = MetaKey::parse(&key) else {
                continue;
            };
            if settled.contains(&who) {
                continue;
            }
            let done = ledger
                .get_meta(&MetaKey::Handover(who).key())
                .await?
                .is_some()
                || ledger
                    .get_meta(&MetaKey::JoinRefused(who).key())
                    .await?
                    .is_some();
            if done {
                settled.insert(who);
                continue;
            }
            let Some(raw) = ledger.get_meta(&key).await? else {
                continue;
            };
            let revoked = self.revoked.lock().contains(&who);
            let verdict = AttestationReport::decode(&mut &raw[..])
                .map_err(|e| phat_crypto::CryptoError::Attestation(format!("malformed: {e}")))
                .and_then(|r| {
                    if revoked {
                        return Err(phat_crypto::CryptoError::Attestation(
                            "this worker was revoked from the cluster".into(),
                        ));
                    }
                    policy.verify(&r)?;
                    if r.worker_key != who {
                        return Err(phat_crypto::CryptoError::Attestation(
                            "the report is for another worker key".into(),
                        ));
                    }
                    Ok(r)
                });
            match verdict {
                // Not admitted by an applied `Join` yet: asked again next round (the joiner
                // appended its `Join` with its report; this worker may not have applied it).
                Ok(report) if table.get(&report.worker_key).is_none() => continue,
                Ok(report) => {
                    let keys = self.keys();
                    let epoch0 = keys.epoch(0).unwrap_or_else(|| keys.current());
                    let (sealed, _) = phat_crypto::seal(
                        &report.worker_key.0,
                        Purpose::Handover,
                        &keys.keyring(keyed),
                    )
                    .map_err(|e| WorkerError::Enclave(e.to_string()))?;
                    let handover = Handover {
                        sealed,
                        from: epoch0.report.clone(),
                    };
                    if ledger
                        .create_meta(&MetaKey::Handover(who).key(), handover.encode())
                        .await?
                    {
                        tracing::info!(worker_key = %who, "handed the cluster secret over");
                    }
                }
                Err(e) => {
                    tracing::warn!(worker_key = %who, "refusing to hand over: {e}");
                    ledger
                        .create_meta(&MetaKey::JoinRefused(who).key(), e.to_string().into_bytes())
                        .await?;
                }
            }
            settled.insert(who);
        }
        Ok(())
    }
}

/// The workers of the cluster as far as the ledger's metadata can show them: each key named
/// under `cluster-key/` counts only if its `cluster-join/` report verifies under the cluster's
/// policy and names that key. The metadata is writable by anyone holding ledger credentials
/// (every worker, a revoked one included): a name alone is no member, or a key planted there
/// would be sent every later epoch's secret.
#[derive(Default)]
pub(crate) struct Members {
    /// Verdicts so far, by key: the vote key its report attests (`Some(None)`: a worker of
    /// an older version), `None` when the report fails. A report, once written, never changes
    /// (`create_meta`).
    verdicts: HashMap<Hash, Option<Option<Hash>>>,
}

impl Members {
    /// The members found now (verifying the reports not judged yet; refusals counted in
    /// `refused`).
    pub(super) async fn refresh(
        &mut self,
        ledger: &dyn Ledger,
        policy: &AttestationPolicy,
        refused: &crate::metrics::Refused,
    ) -> Result<Vec<(Hash, Option<Hash>)>, WorkerError> {
        // A metadata writer can plant any number of names: each is judged once (the verdict is
        // kept), and only a worker with no applied state asks at all (`replica::voters`).
        let named: Vec<Hash> = ledger
            .meta_keys(&MetaPrefix::Handover.to_string())
            .await?
            .iter()
            .filter_map(|k| match MetaKey::parse(k) {
                Some(MetaKey::Handover(w)) => Some(w),
                _ => None,
            })
            .collect();
        let mut members = Vec::with_capacity(named.len());
        for w in named {
            let verdict = match self.verdicts.get(&w) {
                Some(v) => *v,
                None => {
                    let report = ledger.get_meta(&MetaKey::Join(w).key()).await?;
                    let verdict = match report.map(|r| AttestationReport::decode(&mut &r[..])) {
                        Some(Ok(r)) => match policy.verify(&r) {
                            Ok(()) if r.worker_key == w => Some(r.signing_key),
                            Ok(()) => {
                                tracing::warn!(worker_key = %w, "ignoring a cluster key whose join report names another key");
                                None
                            }
                            Err(e) => {
                                tracing::warn!(worker_key = %w, "ignoring a cluster key whose join report does not verify: {e}");
                                None
                            }
                        },
                        Some(Err(e)) => {
                            tracing::warn!(worker_key = %w, "ignoring a cluster key with a malformed join report: {e}");
                            None
                        }
                        None => {
                            tracing::warn!(worker_key = %w, "ignoring a cluster key with no join report");
                            None
                        }
                    };
                    if verdict.is_none() {
                        crate::metrics::refuse(refused, "cluster-key");
                    }
                    self.verdicts.insert(w, verdict);
                    verdict
                }
            };
            if let Some(vote_key) = verdict {
                members.push((w, vote_key));
            }
        }
        Ok(members)
    }
}

/// Reads the member table of a worker's applied state.
pub(crate) type StateMembers =
    Arc<dyn Fn() -> Result<(MemberTable, u32), WorkerError> + Send + Sync>;

/// Checks that the cluster record was made by an attested worker for its own cluster key.
pub(super) fn check_record(
    policy: &AttestationPolicy,
    record: &ClusterRecord,
) -> Result<(), WorkerError> {
    policy
        .verify(&record.creator)
        .map_err(|e| WorkerError::Enclave(format!("the cluster record's creator: {e}")))?;
    if record.creator.cluster_key != Some(record.cluster_key) {
        return Err(WorkerError::Enclave(
            "the cluster record's key is not the one its creator attests".into(),
        ));
    }
    Ok(())
}

pub(super) async fn get_record(ledger: &dyn Ledger) -> Result<Option<ClusterRecord>, WorkerError> {
    match ledger.get_meta(CLUSTER_KEY).await? {
        Some(raw) => ClusterRecord::decode(&mut &raw[..])
            .map(Some)
            .map_err(|e| WorkerError::Enclave(format!("malformed cluster record: {e}"))),
        None => Ok(None),
    }
}
