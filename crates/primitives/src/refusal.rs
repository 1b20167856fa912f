//! Every refusal a worker decides, as one enum: the kinds its receipts and API answers carry.
//!
//! A receipt's error kind is chained into the state root (`receipt_digest` in the worker), so
//! a reworded kind would fork a cluster of mixed versions. Each kind's string is written once,
//! in the table below, and pinned by the golden test at the end of this file; the worker
//! builds every refusal from a [`Refusal`], never from a string literal. The runtime's own
//! execution errors (`out_of_gas`, `trapped`, ...) are `phat_runtime::ExecError::kind`.

use crate::protocol::CallError;

/// Defines [`Refusal`], its string table and its list, from one table.
macro_rules! refusals {
    ($($(#[doc = $doc:literal])* $variant:ident => $kind:literal,)*) => {
        /// Why a worker refused a command, a proposal or a request: a stable, machine-readable
        /// kind (see the module docs for why it is an enum).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Refusal {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Refusal {
            /// Every refusal, in the table's order.
            pub const ALL: &'static [Refusal] = &[$(Refusal::$variant,)*];

            /// The refusal's stable snake_case name, as receipts and API errors carry it.
            pub const fn kind(self) -> &'static str {
                match self {
                    $(Refusal::$variant => $kind,)*
                }
            }

            /// The refusal named `kind`, if it is one.
            pub fn from_kind(kind: &str) -> Option<Self> {
                match kind {
                    $($kind => Some(Refusal::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

refusals! {
    // --- The entry itself.
    /// The entry, the request or a field of it does not decode, or is not what its kind allows.
    Malformed => "malformed",
    /// A plain command on a cluster that accepts only sealed ones.
    EncryptionRequired => "encryption_required",
    /// Sealed to the key of an epoch the cluster has not started (or not keyed yet).
    UnknownEpoch => "unknown_epoch",
    /// The envelope (or a forwarded entry) does not open with the epoch's key.
    BadEnvelope => "bad_envelope",
    /// The request's signature does not verify.
    BadSignature => "bad_signature",
    /// The request's certificate does not verify.
    BadCertificate => "bad_certificate",
    /// A query sent as a command or the other way round.
    WrongMode => "wrong_mode",
    /// The request's `expires_at` is before ledger time.
    Expired => "expired",
    /// The request's `expires_at` is further ahead than a request may live.
    ExpiryTooFar => "expiry_too_far",
    /// The request's certificate expired.
    CertificateExpired => "certificate_expired",
    /// The request's certificate is valid for longer than a certificate may be.
    CertificateTooLong => "certificate_too_long",
    /// A queries-only certificate on a command.
    CertificateScope => "certificate_scope",
    /// The nonce (or the entry) was used already and has not expired.
    Replayed => "replayed",
    /// Larger than its bound.
    TooLarge => "too_large",

    // --- Accounts and the cluster's owner.
    /// The cluster lets only its owner and the accounts it allows deploy.
    DeployNotAllowed => "deploy_not_allowed",
    /// A transfer of more than the sender holds.
    InsufficientBalance => "insufficient_balance",
    /// A cluster operation by someone other than the cluster's owner.
    NotOwner => "not_owner",
    /// More deployers than a cluster may allow.
    TooManyDeployers => "too_many_deployers",
    /// A key rotation while the last one is still being dealt.
    KeyEpochPending => "key_epoch_pending",
    /// A revocation of a worker that was revoked already.
    AlreadyRevoked => "already_revoked",

    // --- Members, votes and key epochs.
    /// A join whose attestation report does not verify under the cluster's policy.
    NotAttested => "not_attested",
    /// A join whose report binds no vote key.
    NoVoteKey => "no_vote_key",
    /// A join or a vote by a revoked worker.
    RevokedWorker => "revoked_worker",
    /// A join by a worker that is a member already.
    AlreadyMember => "already_member",
    /// A join past the cluster's member cap.
    TooManyMembers => "too_many_members",
    /// A vote made in an earlier key epoch.
    StaleEpoch => "stale_epoch",
    /// A vote by a worker that is not a member.
    NotAMember => "not_a_member",
    /// A deal while no key epoch is pending.
    NoPendingEpoch => "no_pending_epoch",
    /// A deal for another epoch than the pending one.
    WrongEpoch => "wrong_epoch",
    /// A deal whose shares are not one per member of the epoch.
    WrongShares => "wrong_shares",
    /// A deal of a key some epoch had already.
    ReusedKey => "reused_key",

    // --- Triggers: schedules, subscriptions, jobs.
    /// No contract at the address named.
    UnknownContract => "unknown_contract",
    /// A trigger change by an account other than the contract's deployer.
    NotDeployer => "not_deployer",
    /// The deployer cannot pay the trigger's storage deposit.
    StorageDeposit => "storage_deposit",
    /// A schedule definition out of its rules.
    BadSchedule => "bad_schedule",
    /// Past the per-contract or per-cluster schedule cap.
    TooManySchedules => "too_many_schedules",
    /// No schedule with that id.
    UnknownSchedule => "unknown_schedule",
    /// A schedule change a contract asked for during its call was refused.
    ScheduleRefused => "schedule_refused",
    /// The schedule already ran for that tick.
    AlreadyRun => "already_run",
    /// The tick (or the job's tick) is after ledger time.
    NotDue => "not_due",
    /// A subscription definition out of its rules.
    BadSubscription => "bad_subscription",
    /// Past the per-contract or per-cluster subscription cap.
    TooManySubscriptions => "too_many_subscriptions",
    /// No subscription with that id.
    UnknownSubscription => "unknown_subscription",
    /// A reported log that is not one the subscription asks for.
    NotMatching => "not_matching",
    /// A log at or before the subscription's cursor.
    AlreadyDelivered => "already_delivered",
    /// The worker reported this log already.
    AlreadyReported => "already_reported",
    /// A job definition out of its rules.
    BadJob => "bad_job",
    /// Past the per-contract or per-cluster job cap.
    TooManyJobs => "too_many_jobs",
    /// No job with that id.
    UnknownJob => "unknown_job",
    /// The job's tick was answered already.
    AlreadyAnswered => "already_answered",
    /// A result for a time that is not one of the job's ticks.
    NotATick => "not_a_tick",
    /// A job's result that is not what the job's query may answer.
    BadOutput => "bad_output",

    // --- Query logs.
    /// A query-log entry whose records are not what a worker's outbox makes.
    BadRecords => "bad_records",
    /// More log readers than a contract may name.
    TooManyReaders => "too_many_readers",

    // --- Answers of the HTTP API only (never in a receipt).
    /// Sent to a worker that is not the one the request names.
    WrongWorker => "wrong_worker",
    /// No code with that hash.
    UnknownCode => "unknown_code",
    /// The code is not a contract the runtime accepts.
    InvalidCode => "invalid_code",
    /// No query session with that id.
    UnknownSession => "unknown_session",
    /// The query session expired.
    SessionExpired => "session_expired",
    /// A command in a session by an account other than the session's caller.
    NotSessionCaller => "not_session_caller",
    /// Sealed to a cluster key that an epoch replaced.
    StaleClusterKey => "stale_cluster_key",
    /// No receipt at that seq (or for that request).
    UnknownReceipt => "unknown_receipt",
    /// No metadata under that key.
    UnknownMetadata => "unknown_metadata",
    /// The worker has not applied that seq yet.
    NotAppliedYet => "not_applied_yet",
    /// Reading a contract's logs without being one of its readers.
    NotLogReader => "not_log_reader",
    /// The ledger did not answer.
    LedgerUnavailable => "ledger_unavailable",
    /// Over the signer's or the address's request rate.
    RateLimited => "rate_limited",
    /// Over a storage quota (code, metadata).
    QuotaExceeded => "quota_exceeded",
    /// Every query slot is taken.
    Busy => "busy",
    /// An upload or a metadata write without the signature headers.
    Unsigned => "unsigned",
    /// An upload by an account that holds no balance.
    Unfunded => "unfunded",
    /// The worker's state diverged from the cluster's: it answers nothing.
    Diverged => "diverged",
    /// The worker was revoked from the cluster: it answers nothing.
    Revoked => "revoked",
    /// The worker failed (its store or its ledger), not the request.
    Internal => "internal",
}

impl Refusal {
    /// This refusal with its human-readable reason, as receipts and API answers carry it.
    pub fn because(self, message: impl Into<String>) -> CallError {
        CallError {
            kind: self.kind().into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl CallError {
    /// Whether this error is the refusal `r`.
    pub fn is(&self, r: Refusal) -> bool {
        self.kind == r.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden table: every kind string as receipts carry it. A reworded kind changes
    /// state roots (a cluster of mixed versions would fork), so this list only grows.
    const GOLDEN: &[&str] = &[
        "malformed",
        "encryption_required",
        "unknown_epoch",
        "bad_envelope",
        "bad_signature",
        "bad_certificate",
        "wrong_mode",
        "expired",
        "expiry_too_far",
        "certificate_expired",
        "certificate_too_long",
        "certificate_scope",
        "replayed",
        "too_large",
        "deploy_not_allowed",
        "insufficient_balance",
        "not_owner",
        "too_many_deployers",
        "key_epoch_pending",
        "already_revoked",
        "not_attested",
        "no_vote_key",
        "revoked_worker",
        "already_member",
        "too_many_members",
        "stale_epoch",
        "not_a_member",
        "no_pending_epoch",
        "wrong_epoch",
        "wrong_shares",
        "reused_key",
        "unknown_contract",
        "not_deployer",
        "storage_deposit",
        "bad_schedule",
        "too_many_schedules",
        "unknown_schedule",
        "schedule_refused",
        "already_run",
        "not_due",
        "bad_subscription",
        "too_many_subscriptions",
        "unknown_subscription",
        "not_matching",
        "already_delivered",
        "already_reported",
        "bad_job",
        "too_many_jobs",
        "unknown_job",
        "already_answered",
        "not_a_tick",
        "bad_output",
        "bad_records",
        "too_many_readers",
        "wrong_worker",
        "unknown_code",
        "invalid_code",
        "unknown_session",
        "session_expired",
        "not_session_caller",
        "stale_cluster_key",
        "unknown_receipt",
        "unknown_metadata",
        "not_applied_yet",
        "not_log_reader",
        "ledger_unavailable",
        "rate_limited",
        "quota_exceeded",
        "busy",
        "unsigned",
        "unfunded",
        "diverged",
        "revoked",
        "internal",
    ];

    #[test]
    fn every_kind_is_pinned() {
        let kinds: Vec<&str> = Refusal::ALL.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, GOLDEN);
    }

    #[test]
    fn kinds_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in Refusal::ALL {
            let k = r.kind();
            assert!(seen.insert(k), "{k} twice");
            assert!(
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{k} is not snake_case"
            );
            assert_eq!(Refusal::from_kind(k), Some(*r));
            assert_eq!(r.to_string(), k);
        }
        assert_eq!(Refusal::from_kind(""), None);
        assert_eq!(Refusal::from_kind("Malformed"), None);
    }

    #[test]
    fn because_carries_the_kind_and_the_message() {
        let e = Refusal::NotDue.because("tick 5 is after ledger time 4");
        assert_eq!(e.kind, "not_due");
        assert_eq!(e.message, "tick 5 is after ledger time 4");
        assert!(e.is(Refusal::NotDue));
        assert!(!e.is(Refusal::AlreadyRun));
    }
}
