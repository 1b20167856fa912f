//! Triggers: a contract's schedules, Ethereum log subscriptions and off-chain jobs (read at
//! the client's read floor, changed by commands), and the runs they started.

use phat_primitives::protocol::{Call, LogEntry, LogFilter, LogKind, Submitted};
use phat_primitives::AccountId;

use crate::retry::SendRetrying;
use crate::{Client, ClientError, Signer};

impl Client {
    /// A contract's schedules.
    pub async fn schedules(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Schedule>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/schedules")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes a schedule (`signer` must be the contract's deployer); answers once
    /// the receipt exists (an added schedule's id is its output, SCALE `u32`).
    pub async fn change_schedule(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::ScheduleOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Schedule { op }, true).await
    }

    /// A contract's Ethereum log subscriptions (cursor, deliveries, pending reports).
    pub async fn subscriptions(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Subscription>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/subscriptions")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes an Ethereum log subscription (`signer` must be the contract's
    /// deployer); answers once the receipt exists (an added subscription's id is its output,
    /// SCALE `u32`).
    pub async fn change_subscription(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::SubscriptionOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Subscription { op }, true).await
    }

    /// A contract's off-chain jobs (last tick answered, runs).
    pub async fn jobs(
        &self,
        id: &AccountId,
    ) -> Result<Vec<phat_primitives::protocol::Job>, ClientError> {
        self.answer(
            self.http
                .get(self.read_url(&format!("/v1/contracts/{id}/jobs")))
                .send_retrying()
                .await,
        )
        .await
    }

    /// Adds or removes an off-chain job (`signer` must be the contract's deployer); answers
    /// once the receipt exists (an added job's id is its output, SCALE `u32`).
    pub async fn change_job(
        &self,
        signer: &Signer,
        op: phat_primitives::protocol::JobOp,
    ) -> Result<Submitted, ClientError> {
        self.submit(signer, Call::Job { op }, true).await
    }

    /// The runs triggers started for a contract (`signer` reads its log): its log records
    /// of kind `trigger` (seq, tick, outcome).
    pub async fn triggers(
        &self,
        signer: &Signer,
        id: &AccountId,
    ) -> Result<Vec<LogEntry>, ClientError> {
        let filter = LogFilter {
            kinds: vec![LogKind::Trigger],
            ..LogFilter::default()
        };
        Ok(self.read_logs(signer, id, filter).await?.0)
    }
}
