//! What applying one entry makes ([`Applied`]), how its receipt is made ([`Reply`]: one
//! typed refusal or one accepted output), and what of a receipt the state root commits to.

use parity_scale_codec::Encode;
use phat_primitives::protocol::{
    CallError, CallOutput, CallResult, LedgerEntry, LogRecord, Receipt, SignedRequest,
};
use phat_primitives::{blake2_256, AccountId, Hash, Refusal};
use phat_runtime::ChangeSet;

/// What applying one entry made: its receipt and what it writes.
pub(crate) struct Applied {
    /// Whether the command reached the contract (its result is then sealed to the caller).
    pub(crate) executed: bool,
    /// The receipt (its `state_root` is filled when the batch chains it).
    pub(crate) receipt: Receipt,
    /// The state writes.
    pub(crate) changes: ChangeSet,
    /// The nonce the command took: `(caller, nonce, expires_at)`.
    pub(crate) nonce: Option<(AccountId, u64, u64)>,
    /// The log records it produced.
    pub(crate) logs: Vec<LogRecord>,
    /// Changes to schedules the run made through the extension, not applied yet
    /// (`triggers::apply_schedule_requests`).
    pub(crate) schedules: Vec<phat_pink::ScheduleRequest>,
}

/// Who and what a receipt is about: the entry's seq and time, the request's hash and the
/// caller. Every receipt the worker makes without running a contract comes from one.
#[derive(Clone, Copy)]
pub(crate) struct Reply {
    /// The entry's seq.
    pub(crate) seq: u64,
    /// The entry's ledger time.
    pub(crate) timestamp: u64,
    /// The request's (or the proposal's) hash.
    pub(crate) request: Hash,
    /// The account the receipt is for.
    pub(crate) caller: AccountId,
}

impl Reply {
    /// A reply to `req` (or to an unsigned entry) at `entry`, for the request's signer.
    pub(crate) fn to(entry: &LedgerEntry, req: Option<&SignedRequest>) -> Self {
        Self {
            seq: entry.seq,
            timestamp: entry.timestamp,
            request: req.map(|r| r.hash()).unwrap_or_default(),
            caller: req.map(|r| r.signer).unwrap_or_default(),
        }
    }

    /// The same reply for the request `request` (a proposal's hash).
    pub(crate) fn about(self, request: Hash) -> Self {
        Self { request, ..self }
    }

    /// The same reply for `caller` (a certificate's account, a trigger's contract).
    pub(crate) fn for_caller(self, caller: AccountId) -> Self {
        Self { caller, ..self }
    }

    fn applied(self, result: CallResult) -> Applied {
        Applied {
            executed: false,
            receipt: Receipt {
                seq: self.seq,
                request: self.request,
                caller: self.caller,
                timestamp: self.timestamp,
                result,
                events: Vec::new(),
                gas_used: 0,
                state_root: Hash::default(),
            },
            changes: ChangeSet::new(),
            nonce: None,
            logs: Vec::new(),
            schedules: Vec::new(),
        }
    }

    /// Refused with `kind`: nothing written.
    pub(crate) fn refuse(self, kind: Refusal, message: String) -> Applied {
        self.applied(CallResult::Err(kind.because(message)))
    }

    /// Refused with an error already made (`check_body`'s): nothing written.
    pub(crate) fn refuse_with(self, error: CallError) -> Applied {
        self.applied(CallResult::Err(error))
    }

    /// Accepted, answering `data` (SCALE); the caller adds the writes.
    pub(crate) fn accept(self, data: Vec<u8>) -> Applied {
        self.applied(CallResult::Ok(CallOutput {
            data: data.into(),
            reverted: false,
            address: None,
        }))
    }
}

/// What the state root commits to of a receipt: all of it, but with error messages left out.
/// Messages are for people and may be reworded (or come from wasmtime, whose wording changes
/// between versions); the error kind is stable, so workers of different versions agree.
pub(crate) fn receipt_digest(r: &Receipt) -> [u8; 32] {
    let result = match &r.result {
        CallResult::Err(e) => std::borrow::Cow::Owned(CallResult::Err(CallError {
            kind: e.kind.clone(),
            message: String::new(),
        })),
        other => std::borrow::Cow::Borrowed(other),
    };
    blake2_256(
        &(
            r.seq,
            r.request,
            r.caller,
            r.timestamp,
            result.as_ref(),
            &r.events,
            r.gas_used,
        )
            .encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(kind: &str, message: &str) -> Receipt {
        Receipt {
            seq: 3,
            request: Hash([1; 32]),
            caller: AccountId([2; 32]),
            timestamp: 4,
            result: CallResult::Err(CallError {
                kind: kind.into(),
                message: message.into(),
            }),
            events: Vec::new(),
            gas_used: 5,
            state_root: Hash::default(),
        }
    }

    #[test]
    fn the_root_commits_to_error_kinds_not_their_wording() {
        // Two worker versions word the same trap differently: same root.
        let a = receipt("trapped", "wasm trap: out of bounds memory access");
        let b = receipt("trapped", "memory access out of bounds");
        assert_eq!(receipt_digest(&a), receipt_digest(&b));
        // A different kind is a different outcome.
        let c = receipt("panicked", "wasm trap: out of bounds memory access");
        assert_ne!(receipt_digest(&a), receipt_digest(&c));
        // Everything else still counts.
        let mut d = a.clone();
        d.gas_used += 1;
        assert_ne!(receipt_digest(&a), receipt_digest(&d));
        let ok = Receipt {
            result: CallResult::Ok(CallOutput {
                data: vec![1].into(),
                reverted: false,
                address: None,
            }),
            ..a.clone()
        };
        let other = Receipt {
            result: CallResult::Ok(CallOutput {
                data: vec![2].into(),
                reverted: false,
                address: None,
            }),
            ..a
        };
        assert_ne!(receipt_digest(&ok), receipt_digest(&other));
    }

    #[test]
    fn a_reply_refuses_with_its_kind_and_accepts_with_its_output() {
        let entry = LedgerEntry {
            seq: 9,
            timestamp: 77,
            payload: Vec::new(),
        };
        let reply = Reply::to(&entry, None).for_caller(AccountId([5; 32]));
        let refused = reply.refuse(Refusal::NotDue, "later".into());
        assert!(!refused.executed);
        assert_eq!((refused.receipt.seq, refused.receipt.timestamp), (9, 77));
        assert_eq!(refused.receipt.caller, AccountId([5; 32]));
        assert!(matches!(&refused.receipt.result, CallResult::Err(e) if e.is(Refusal::NotDue)));
        let accepted = reply.about(Hash([8; 32])).accept(vec![1, 2]);
        assert_eq!(accepted.receipt.request, Hash([8; 32]));
        assert!(
            matches!(&accepted.receipt.result, CallResult::Ok(o) if o.data.0 == [1, 2] && !o.reverted)
        );
        assert!(accepted.changes.is_empty());
    }

    /// The command path names its refusals only through [`Refusal`]: no source file of it
    /// spells a kind as a string literal (a typo there would be a new kind, and a fork).
    #[test]
    fn no_refusal_kind_is_spelled_as_a_string_on_the_command_path() {
        let sources = [
            ("apply/mod.rs", include_str!("mod.rs")),
            ("apply/receipt.rs", include_str!("receipt.rs")),
            ("apply/members.rs", include_str!("members.rs")),
            ("apply/logs.rs", include_str!("logs.rs")),
            ("apply/forward.rs", include_str!("forward.rs")),
            ("triggers/mod.rs", include_str!("../triggers/mod.rs")),
            (
                "triggers/schedule.rs",
                include_str!("../triggers/schedule.rs"),
            ),
            (
                "triggers/subscription.rs",
                include_str!("../triggers/subscription.rs"),
            ),
            ("triggers/job.rs", include_str!("../triggers/job.rs")),
            (
                "triggers/proposer.rs",
                include_str!("../triggers/proposer.rs"),
            ),
            (
                "triggers/eth_rpc.rs",
                include_str!("../triggers/eth_rpc.rs"),
            ),
            ("api/mod.rs", include_str!("../api/mod.rs")),
            ("api/commands.rs", include_str!("../api/commands.rs")),
            ("api/queries.rs", include_str!("../api/queries.rs")),
            ("api/code.rs", include_str!("../api/code.rs")),
        ];
        for (name, source) in sources {
            let code = source.split("#[cfg(test)]").next().unwrap_or(source);
            for r in Refusal::ALL {
                let quoted = format!("\"{}\"", r.kind());
                assert!(
                    !code.contains(&quoted),
                    "{name} spells the refusal {quoted} as a string: use Refusal::{r:?}"
                );
            }
        }
    }
}
