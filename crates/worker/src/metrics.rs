//! Prometheus metrics of a worker, served at `/metrics` in the text exposition format.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of request counters: the outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    pub(crate) result: String,
}

/// Label of the refused-metadata counter: what the record claimed to be.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Record {
    pub(crate) kind: String,
}

/// Counts ledger metadata records that failed verification, by kind (a ledger writer's
/// forgeries are ignored and counted, never obeyed).
pub(crate) type Refused = Family<Record, Counter>;

/// Counts one refused record of `kind`.
pub(crate) fn refuse(refused: &Refused, kind: &str) {
    refused
        .get_or_create(&Record {
            kind: kind.to_owned(),
        })
        .inc();
}

/// The worker's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) queries: Family<Outcome, Counter>,
    pub(crate) query_seconds: Histogram,
    pub(crate) submissions: Family<Outcome, Counter>,
    pub(crate) applied: Counter,
    pub(crate) batch_size: Histogram,
    pub(crate) batch_seconds: Histogram,
    pub(crate) applied_seq: Gauge,
    /// Failed attempts to apply a batch.
    pub(crate) apply_failures: Counter,
    /// The seq the apply loop is stuck at (0 when it is not).
    pub(crate) apply_stuck_seq: Gauge,
    /// The first checkpoint seq where this worker's root is not the majority's (0: none).
    pub(crate) diverged_seq: Gauge,
    /// The first checkpoint seq where other workers differ from this one's majority (0: none).
    pub(crate) disagreement_seq: Gauge,
    /// Queries executing now.
    pub(crate) queries_running: Gauge,
    /// Memory the contract cache holds.
    pub(crate) cache_bytes: Gauge,
    /// Ledger metadata records that failed verification, by kind.
    pub(crate) refused_metadata: Refused,
    /// Query log records this worker sent to the cluster.
    pub(crate) query_log_records: Counter,
}

impl Metrics {
    pub(crate) fn new(worker: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "phat",
            [(
                std::borrow::Cow::Borrowed("worker"),
                std::borrow::Cow::Owned(worker.to_string()),
            )]
            .into_iter(),
        );
        let queries = Family::<Outcome, Counter>::default();
        registry.register("queries", "Queries answered, by outcome", queries.clone());
        let query_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "query_duration_seconds",
            "Time to answer a query (verification and execution)",
            query_seconds.clone(),
        );
        let submissions = Family::<Outcome, Counter>::default();
        registry.register(
            "command_submissions",
            "Commands submitted through this worker, by outcome",
            submissions.clone(),
        );
        let applied = Counter::default();
        registry.register(
            "commands_applied",
            "Ledger entries applied",
            applied.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register(
            "apply_batch_size",
            "Ledger entries per durable commit",
            batch_size.clone(),
        );
        let batch_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "apply_batch_duration_seconds",
            "Time to execute and commit one batch",
            batch_seconds.clone(),
        );
        let applied_seq = Gauge::default();
        registry.register(
            "applied_seq",
            "Last applied sequence number",
            applied_seq.clone(),
        );
        let apply_failures = Counter::default();
        registry.register(
            "apply_failures",
            "Failed attempts to apply a batch of ledger entries (retried)",
            apply_failures.clone(),
        );
        let apply_stuck_seq = Gauge::default();
        registry.register(
            "apply_stuck_seq",
            "The sequence number the apply loop keeps failing at (0: not stuck)",
            apply_stuck_seq.clone(),
        );
        let diverged_seq = Gauge::default();
        registry.register(
            "diverged_seq",
            "The first checkpoint seq where this worker's state root differs from the majority's (0: in agreement)",
            diverged_seq.clone(),
        );
        let disagreement_seq = Gauge::default();
        registry.register(
            "disagreement_seq",
            "The first checkpoint seq where some other worker's state root differs from this worker's majority (0: none)",
            disagreement_seq.clone(),
        );
        let queries_running = Gauge::default();
        registry.register(
            "queries_running",
            "Queries executing now (bounded by the admission limit)",
            queries_running.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "Memory the contracts' cache entries cost this worker",
            cache_bytes.clone(),
        );
        let refused_metadata = Refused::default();
        registry.register(
            "refused_metadata",
            "Ledger metadata records ignored because they failed verification, by kind",
            refused_metadata.clone(),
        );
        let query_log_records = Counter::default();
        registry.register(
            "query_log_records_sent",
            "Log records of queries this worker ran, sent to the cluster's log",
            query_log_records.clone(),
        );
        Self {
            registry,
            query_log_records,
            refused_metadata,
            cache_bytes,
            queries_running,
            apply_failures,
            apply_stuck_seq,
            diverged_seq,
            disagreement_seq,
            queries,
            query_seconds,
            submissions,
            applied,
            batch_size,
            batch_seconds,
            applied_seq,
        }
    }

    pub(crate) fn observe_batch(&self, n: usize, took: Duration) {
        self.applied.inc_by(n as u64);
        self.batch_size.observe(n as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn count(family: &Family<Outcome, Counter>, result: &str) {
        family
            .get_or_create(&Outcome {
                result: result.to_string(),
            })
            .inc();
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
