//! The node's own routes: health, metrics, the OpenAPI document, worker info.

use super::*;

pub(super) async fn healthz(State(w): State<Worker>) -> Response {
    if let Some(d) = w.inner.replica.diverged() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("diverged: {d}\n")).into_response();
    }
    if let Some(seq) = w.revoked_at() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("revoked: this worker was removed from the cluster at seq {seq}\n"),
        )
            .into_response();
    }
    if let Some(s) = w.inner.stuck.lock().clone() {
        if s.attempts >= crate::apply::STUCK_AFTER {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "apply stuck at seq {} for {} s ({} attempts): {}\n",
                    s.seq,
                    s.since.elapsed().as_secs(),
                    s.attempts,
                    s.error
                ),
            )
                .into_response();
        }
    }
    match w.inner.store.head() {
        Ok(_) => match w.inner.replica.disagreement() {
            Some(d) => (
                StatusCode::OK,
                format!(
                    "ok; but {} report state root {} at seq {} where this worker has {} ({} agree)\n",
                    d.who.join(", "),
                    d.theirs,
                    d.seq,
                    d.ours,
                    d.agreeing
                ),
            )
                .into_response(),
            None => (StatusCode::OK, "ok\n").into_response(),
        },
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

pub(super) async fn metrics(State(w): State<Worker>) -> Response {
    w.inner
        .metrics
        .queries_running
        .set(w.inner.admission.queries_running() as i64);
    w.inner
        .metrics
        .cache_bytes
        .set(w.inner.pink.cache.footprint() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        w.inner.metrics.encode(),
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn info(State(w): State<Worker>) -> Response {
    let revoked = w.revoked_at().is_some();
    let mut resp = info_json(&w).into_response();
    if revoked {
        // A revoked worker's keys are not the cluster's: an endpoint asks another worker.
        resp.headers_mut().insert(
            phat_primitives::protocol::DIVERGED_HEADER,
            header::HeaderValue::from_static("1"),
        );
    }
    resp
}

fn info_json(w: &Worker) -> ApiResult<WorkerInfo> {
    let head = w.inner.store.head()?;
    let keys = w.inner.enclave.keys();
    let current = keys.current();
    let epoch = keys.held();
    Ok(Json(WorkerInfo {
        worker_key: Hash(w.worker_key()),
        cluster_key: Hash(keys.id),
        epoch,
        envelope_key: (epoch > 0).then(|| Hash(current.envelope.public())),
        encryption: w.inner.genesis.encryption,
        attestation: current.report.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        name: w.inner.config.name.clone(),
        seq: head.seq,
        state_root: head.state_root,
        ledger_head: w
            .inner
            .ledger_head
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(head.seq),
        pid: std::process::id(),
        diverged: w.inner.replica.diverged().map(|d| d.to_string()),
        // Computed once at start (hashing the system code on every request would be waste).
        system_contract: w
            .inner
            .genesis
            .system
            .is_some()
            .then_some(w.inner.pink_config.system_contract),
    }))
}
