//! Applying one client command: the checks every worker makes at ledger time (body, expiry,
//! replay), then the command itself (a contract call, a transfer, a change to the cluster or
//! to a trigger table).

use super::*;

/// Checks a request body against `now` and the expected mode; the same rules at submission,
/// at query time and at apply time (where `now` is ledger time).
pub(crate) fn check_body(body: &RequestBody, mode: Mode, now: u64) -> Result<(), CallError> {
    if body.mode != mode {
        return Err(Refusal::WrongMode.because(
            format!("a {:?} request was sent as a {:?}", body.mode, mode).to_lowercase(),
        ));
    }
    if body.expires_at < now {
        return Err(Refusal::Expired.because(format!(
            "the request expired at {} (now {now})",
            body.expires_at
        )));
    }
    if body.expires_at > now.saturating_add(MAX_REQUEST_TTL_MS) {
        return Err(Refusal::ExpiryTooFar.because(format!(
            "expires_at may be at most {} ms ahead (got {} ms)",
            MAX_REQUEST_TTL_MS,
            body.expires_at - now
        )));
    }
    if let Some(cert) = &body.certificate {
        use phat_primitives::protocol::{CertificateScope, MAX_CERTIFICATE_TTL_MS};
        let refuse = |kind: Refusal, message: String| Err(kind.because(message));
        if cert.expires_at < now {
            return refuse(
                Refusal::CertificateExpired,
                format!("the certificate expired at {} (now {now})", cert.expires_at),
            );
        }
        if cert.expires_at > now.saturating_add(MAX_CERTIFICATE_TTL_MS) {
            return refuse(
                Refusal::CertificateTooLong,
                format!("a certificate may be valid for at most {MAX_CERTIFICATE_TTL_MS} ms"),
            );
        }
        if mode == Mode::Command && cert.scope == CertificateScope::Queries {
            return refuse(
                Refusal::CertificateScope,
                "the certificate allows queries only".into(),
            );
        }
    }
    Ok(())
}

pub(super) fn apply_one(
    worker: &Worker,
    view: &BatchView<'_>,
    nonces: &mut HashMap<(AccountId, u64), u64>,
    local: &mut Local,
    entry: &LedgerEntry,
    request: (SignedRequest, Result<RequestBody, phat_crypto::CryptoError>),
) -> Result<Applied, WorkerError> {
    let BatchView { snap, code, .. } = *view;
    let (req, body) = request;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let kind = match e {
                phat_crypto::CryptoError::BadSignature(_) => Refusal::BadSignature,
                phat_crypto::CryptoError::BadCertificate(_) => Refusal::BadCertificate,
                _ => Refusal::Malformed,
            };
            return Ok(Reply::to(entry, Some(&req)).refuse(kind, e.to_string()));
        }
    };
    // The account the command is made as: the signer, or the account its certificate
    // speaks for. Nonces, receipts and permissions are the caller's.
    let caller = body.caller(&req.signer);
    let reply = Reply::to(entry, Some(&req)).for_caller(caller);
    if let Err(e) = check_body(&body, Mode::Command, entry.timestamp) {
        return Ok(reply.refuse_with(e));
    }
    // A nonce is taken while an earlier use of it has not expired at this entry's ledger
    // time. Judged by expiry, never by whether a row was pruned yet: rows are pruned when a
    // batch commits, and where batches end differs per worker (a worker catching up batches
    // what a live one applied apart), so "a row exists" would split the cluster.
    let key = (caller, body.nonce);
    let used = match nonces.get(&key) {
        Some(expiry) => Some(*expiry),
        None => snap.nonce_expiry(&caller, body.nonce)?,
    };
    if used.is_some_and(|expiry| !nonce_expired(expiry, entry.timestamp)) {
        return Ok(reply.refuse(
            Refusal::Replayed,
            format!("nonce {} of {caller} was already used", body.nonce),
        ));
    }
    nonces.insert(key, body.expires_at);
    let nonce = Some((caller, body.nonce, body.expires_at));
    match &body.call {
        Call::Cluster { op } => {
            let mut applied = apply_cluster_op(worker, &mut local.epochs, entry, &req, caller, op);
            applied.receipt.caller = caller;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Schedule { op } => {
            let state = Layered {
                base: snap.clone(),
                pending: view.pending.clone(),
            };
            let result =
                apply_schedule_op(worker, &state, &mut local.schedules, entry, caller, op)?;
            let mut applied = match result {
                Ok((output, changes)) => {
                    let mut ok = reply.accept(output);
                    ok.changes = changes;
                    ok
                }
                Err((kind, message)) => reply.refuse(kind, message),
            };
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Subscription { op } => {
            let table = &mut local.subscriptions;
            let mut applied = trigger_table_change(
                worker,
                view,
                entry,
                caller,
                op.contract(),
                |info, payer, rules| {
                    let out = crate::triggers::subscription::change(table, info, payer, op, rules)?;
                    Ok((out.0, out.1, (StateKey::Subscriptions, table.encode())))
                },
                &reply,
            )?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Job { op } => {
            let table = &mut local.jobs;
            let mut applied = trigger_table_change(
                worker,
                view,
                entry,
                caller,
                op.contract(),
                |info, payer, rules| {
                    let out = crate::triggers::job::change(
                        table,
                        info,
                        payer,
                        op,
                        entry.timestamp,
                        rules,
                    )?;
                    Ok((out.0, out.1, (StateKey::Jobs, table.encode())))
                },
                &reply,
            )?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::LogReaders { contract, readers } => {
            let mut applied =
                logs::apply_log_readers(view, entry, caller, *contract, readers, &reply)?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Logs { .. } | Call::Estimate { .. } => {
            let mut applied = reply.refuse(
                Refusal::WrongMode,
                "reading a log or an estimate is a query, not a command".into(),
            );
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Transfer { dest, value } => {
            let mut applied = apply_transfer(view, entry, caller, *dest, *value, &reply)?;
            applied.nonce = nonce;
            return Ok(applied);
        }
        Call::Instantiate { .. }
            if worker.inner.genesis.deploy != crate::DeployPermission::Public =>
        {
            let state = Layered {
                base: snap.clone(),
                pending: view.pending.clone(),
            };
            let deployers = phat_runtime::StateRead::get(&state, &StateKey::Deployers)
                .map_err(ApplyError::state_read(entry.seq))?
                .and_then(|raw| Vec::<AccountId>::decode(&mut &raw[..]).ok())
                .unwrap_or_default();
            if !crate::genesis::may_deploy(&worker.inner.genesis, &deployers, &caller) {
                let mut applied = reply.refuse(
                    Refusal::DeployNotAllowed,
                    format!(
                        "this cluster lets its owner deploy, and the accounts the owner allows; \
                         {caller} is neither"
                    ),
                );
                applied.nonce = nonce;
                return Ok(applied);
            }
        }
        Call::Call { .. } | Call::Instantiate { .. } => {}
    }
    let code = match &body.call {
        Call::Instantiate { code_hash, .. } => code.get(code_hash).map(Vec::as_slice),
        _ => None,
    };
    let mut applied = run_command(
        worker,
        view,
        entry,
        RunAs {
            caller,
            payer: None,
        },
        req.hash(),
        body.call.clone(),
        code,
    )?;
    apply_schedule_requests(worker, view, &mut local.schedules, entry, &mut applied)?;
    drop_terminated_triggers(worker, view, local, entry, &mut applied)?;
    applied.nonce = nonce;
    Ok(applied)
}

/// Moves `value` of native balance from `from` to `to`, read through the batch's earlier
/// writes; refused (`insufficient_balance`) when `from` holds less. Balances are `u128`s in
/// replicated state, so a transfer is two writes (an account at 0 has no row).
pub(super) fn apply_transfer(
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    from: AccountId,
    to: AccountId,
    value: phat_primitives::Balance,
    reply: &Reply,
) -> Result<Applied, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let balance_of = |who: &AccountId| -> Result<u128, WorkerError> {
        Ok(
            phat_runtime::StateRead::get(&state, &StateKey::Balance(*who))
                .map_err(ApplyError::state_read(entry.seq))?
                .and_then(|raw| phat_primitives::Balance::decode(&mut &raw[..]).ok())
                .unwrap_or(0),
        )
    };
    let have = balance_of(&from)?;
    if have < value {
        return Ok(reply.refuse(
            Refusal::InsufficientBalance,
            format!("{from} holds {have}, less than the {value} it sends"),
        ));
    }
    let mut applied = reply.accept(Vec::new());
    if from != to && value > 0 {
        let after_from = have - value;
        let after_to = balance_of(&to)?.saturating_add(value);
        let row = |b: u128| (b != 0).then(|| b.encode());
        applied
            .changes
            .insert(StateKey::Balance(from), row(after_from));
        applied.changes.insert(StateKey::Balance(to), row(after_to));
    }
    Ok(applied)
}

/// Whether an earlier use of a nonce, valid until `expiry`, no longer holds the nonce at
/// ledger time `now`: the earlier request could not be applied at `now` either
/// ([`check_body`] refuses `expires_at < now`). The store prunes exactly these rows
/// (`prune_nonces_before` is a batch's last ledger time, and ledger time never goes back).
pub(crate) fn nonce_expired(expiry: u64, now: u64) -> bool {
    expiry < now
}

/// What a change to a trigger table made: the receipt's output, the deployer's new balance,
/// and the table's write.
pub(crate) type TableChange = (Vec<u8>, u128, (StateKey, Vec<u8>));

/// A deployer's change to a trigger table (subscriptions, jobs): reads the contract's info
/// and the caller's balance through the batch's writes, lets `change` decide with the
/// cluster's gas cap and deposit price, and makes the receipt with the table's and the
/// balance's writes, or the refusal.
pub(super) fn trigger_table_change(
    worker: &Worker,
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    caller: AccountId,
    contract: AccountId,
    change: impl FnOnce(
        Option<Vec<u8>>,
        crate::triggers::Payer,
        crate::triggers::Rules,
    ) -> Result<TableChange, (Refusal, String)>,
    reply: &Reply,
) -> Result<Applied, WorkerError> {
    let state = Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    };
    let read = |key: &StateKey| {
        phat_runtime::StateRead::get(&state, key).map_err(ApplyError::state_read(entry.seq))
    };
    let info = read(&StateKey::Contract(contract))?;
    let balance = read(&StateKey::Balance(caller))?
        .and_then(|raw| phat_primitives::Balance::decode(&mut &raw[..]).ok())
        .unwrap_or(0);
    let payer = crate::triggers::Payer {
        account: caller,
        balance,
    };
    Ok(
        match change(info, payer, crate::triggers::Rules::of(worker)) {
            Ok((output, balance, (key, table))) => {
                let mut ok = reply.accept(output);
                ok.changes.insert(key, Some(table));
                ok.changes.insert(
                    StateKey::Balance(caller),
                    (balance != 0).then(|| balance.encode()),
                );
                ok
            }
            Err((kind, message)) => reply.refuse(kind, message),
        },
    )
}

/// Whom a command runs as: the caller, and who pays its storage deposit when not the caller
/// (a trigger's runs are paid by the contract's deployer, or by the contract).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunAs {
    /// The account the contract sees as its caller.
    pub(crate) caller: AccountId,
    /// Who pays the storage deposit instead of the caller.
    pub(crate) payer: Option<AccountId>,
}

/// Runs `call` for `caller` as the command at `entry` on the batch's state; `payer`, when
/// given, pays its storage deposit instead of the caller (a trigger's runs).
pub(crate) fn run_command(
    worker: &Worker,
    view: &BatchView<'_>,
    entry: &LedgerEntry,
    who: RunAs,
    request: Hash,
    call: Call,
    code: Option<&[u8]>,
) -> Result<Applied, WorkerError> {
    let RunAs { caller, payer } = who;
    let state = Arc::new(Layered {
        base: view.snap.clone(),
        pending: view.pending.clone(),
    });
    let executed = crate::execute::execute(
        worker,
        crate::execute::Run {
            mode: Mode::Command,
            state,
            seq: Some(entry.seq),
            block_number: u32::try_from(entry.seq).unwrap_or(u32::MAX),
            timestamp: entry.timestamp,
            caller,
            payer,
            call,
            code,
            dry_run: false,
        },
    );
    if let Err(e) = &executed.result {
        if !e.is_deterministic() {
            // This worker's own failure (no instance slot, a store read error): retry the
            // batch rather than record a result other workers would not produce.
            return Err(ApplyError::WorkerDependent {
                seq: entry.seq,
                message: e.to_string(),
            }
            .into());
        }
    }
    let (result, changes, logs, schedules) = (
        executed.result,
        executed.changes,
        executed.logs,
        executed.schedules,
    );
    let (result, events, gas_used) = crate::execute::outcome_parts(result);
    Ok(Applied {
        executed: true,
        receipt: Receipt {
            seq: entry.seq,
            request,
            caller,
            timestamp: entry.timestamp,
            result,
            events,
            gas_used,
            state_root: Hash::default(),
        },
        changes,
        nonce: None,
        logs,
        schedules,
    })
}

/// Applies an owner's change to the cluster: starts a new key epoch (with a revocation),
/// keyed later by the first valid [`EpochDeal`](phat_primitives::protocol::EpochDeal).
pub(super) fn apply_cluster_op(
    worker: &Worker,
    epochs: &mut ClusterEpochs,
    entry: &LedgerEntry,
    req: &SignedRequest,
    caller: AccountId,
    op: &ClusterOp,
) -> Applied {
    let reply = Reply::to(entry, Some(req));
    let refuse = |kind: Refusal, message: String| reply.refuse(kind, message);
    match worker.inner.genesis.owner {
        None => {
            return refuse(
                Refusal::NotOwner,
                "this cluster has no owner (none was named at genesis): nobody may change it"
                    .into(),
            )
        }
        Some(owner) if owner != caller => {
            return refuse(
                Refusal::NotOwner,
                format!("only the cluster owner {owner} may change the cluster"),
            )
        }
        Some(_) => {}
    }
    if let ClusterOp::SetDeployers { accounts } = op {
        let mut accounts = accounts.clone();
        accounts.sort();
        accounts.dedup();
        if accounts.len() > phat_primitives::protocol::MAX_DEPLOYERS {
            return refuse(
                Refusal::TooManyDeployers,
                format!(
                    "{} deployers, more than {}",
                    accounts.len(),
                    phat_primitives::protocol::MAX_DEPLOYERS
                ),
            );
        }
        let mut applied = reply.accept((accounts.len() as u32).encode());
        applied.changes.insert(
            StateKey::Deployers,
            (!accounts.is_empty()).then(|| accounts.encode()),
        );
        return applied;
    }
    // One epoch at a time: the next starts once the last is keyed (a deal names the epoch it
    // keys, and its shares go to the members of that moment).
    if let Some(pending) = epochs.pending() {
        return refuse(
            Refusal::KeyEpochPending,
            format!("key epoch {pending} is not keyed yet; try again in a moment"),
        );
    }
    let revoked = match op {
        ClusterOp::RotateKey => None,
        ClusterOp::RevokeWorker { worker } if epochs.is_revoked(worker) => {
            return refuse(
                Refusal::AlreadyRevoked,
                format!("worker {worker} was already revoked"),
            )
        }
        ClusterOp::RevokeWorker { worker } => Some(*worker),
        ClusterOp::SetDeployers { .. } => unreachable!("answered above"),
    };
    epochs.changes.push(EpochChange {
        seq: entry.seq,
        revoked,
        dealt: None,
    });
    let mut changes = ChangeSet::new();
    changes.insert(StateKey::ClusterEpochs, Some(epochs.encode()));
    let mut applied = reply.accept(epochs.epoch().encode());
    applied.changes = changes;
    applied
}
