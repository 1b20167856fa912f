//! Admission control: what a stranger can make one worker do at once. Queries take a permit
//! from a bounded pool (the apply loop never needs one, so queries cannot starve commands);
//! signers and client addresses have request rates; uploads have their own, slower rate.
//! A refusal is `429 Too Many Requests` with `Retry-After`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use phat_primitives::AccountId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Per-worker admission limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Queries executing at once (each holds one runtime instance and a blocking thread).
    pub max_concurrent_queries: usize,
    /// How long a query may wait for a free slot before it is refused.
    pub queue_wait: Duration,
    /// Requests (queries and commands) per second one signer may send.
    pub per_signer_rate: u32,
    /// Requests per second one client address may send.
    pub per_address_rate: u32,
    /// Code uploads per minute one signer may send.
    pub uploads_per_minute: u32,
    /// Keys tracked per limiter before idle ones are forgotten.
    pub max_tracked_keys: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_concurrent_queries: (4 * cores).max(8),
            queue_wait: Duration::from_secs(2),
            per_signer_rate: 1_000,
            per_address_rate: 2_000,
            uploads_per_minute: 30,
            max_tracked_keys: 100_000,
        }
    }
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every query slot stayed busy for the whole queue wait.
    #[error("the worker is busy: {0} queries are running; retry shortly")]
    Busy(usize),
    /// The signer or the address sends faster than its rate.
    #[error("{what} sends faster than {rate} requests per {per}")]
    Rate {
        /// `signer 0x…`, `address …` or `uploads of 0x…`.
        what: String,
        /// The allowed rate.
        rate: u32,
        /// `second` or `minute`.
        per: &'static str,
        /// When to try again.
        retry_after: Duration,
    },
}

impl Refused {
    /// When the client may try again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Refused::Busy(_) => Duration::from_secs(1),
            Refused::Rate { retry_after, .. } => *retry_after,
        }
    }
}

/// A keyed token bucket that forgets idle keys when it tracks too many.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    rate: u32,
    per: &'static str,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota, rate: u32, per: &'static str, max_keys: usize) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            rate,
            per,
            max_keys,
        }
    }

    fn check(&self, key: &K, what: impl FnOnce() -> String) -> Result<(), Refused> {
        if self.limiter.len() > self.max_keys {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| Refused::Rate {
                what: what(),
                rate: self.rate,
                per: self.per,
                retry_after: not_until
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_millis(1)),
            })
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The worker's admission state.
pub(crate) struct Admission {
    config: AdmissionConfig,
    queries: Arc<Semaphore>,
    signers: Keyed<AccountId>,
    addresses: Keyed<IpAddr>,
    uploads: Keyed<AccountId>,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        let per_second = |rate: u32| Quota::per_second(nonzero(rate)).allow_burst(nonzero(rate));
        let max = config.max_tracked_keys;
        Self {
            queries: Arc::new(Semaphore::new(config.max_concurrent_queries.max(1))),
            signers: Keyed::new(
                per_second(config.per_signer_rate),
                config.per_signer_rate,
                "second",
                max,
            ),
            addresses: Keyed::new(
                per_second(config.per_address_rate),
                config.per_address_rate,
                "second",
                max,
            ),
            uploads: Keyed::new(
                Quota::per_minute(nonzero(config.uploads_per_minute))
                    .allow_burst(nonzero(config.uploads_per_minute)),
                config.uploads_per_minute,
                "minute",
                max,
            ),
            config,
        }
    }

    /// Checks the rate of a client address (every API request).
    pub(crate) fn address(&self, ip: IpAddr) -> Result<(), Refused> {
        // `phat dev`'s endpoint forwards everyone from loopback: it is one address only in
        // name, so loopback is not rate-limited by address (signers still are).
        if ip.is_loopback() {
            return Ok(());
        }
        self.addresses.check(&ip, || format!("address {ip}"))
    }

    /// Checks the rate of a signer (queries and commands).
    pub(crate) fn signer(&self, who: &AccountId) -> Result<(), Refused> {
        self.signers.check(who, || format!("signer {who}"))
    }

    /// Checks the upload rate of a signer.
    pub(crate) fn upload(&self, who: &AccountId) -> Result<(), Refused> {
        self.uploads.check(who, || format!("uploads of {who}"))
    }

    /// Waits (up to the queue wait) for a query slot.
    pub(crate) async fn query_slot(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let wait = self.queries.clone().acquire_owned();
        match tokio::time::timeout(self.config.queue_wait, wait).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Busy(self.config.max_concurrent_queries)),
        }
    }

    /// Query slots in use.
    pub(crate) fn queries_running(&self) -> usize {
        self.config.max_concurrent_queries - self.queries.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            max_concurrent_queries: 2,
            queue_wait: Duration::from_millis(50),
            per_signer_rate: 5,
            per_address_rate: 3,
            uploads_per_minute: 2,
            max_tracked_keys: 10,
        }
    }

    #[test]
    fn signers_over_their_rate_are_told_when_to_retry() {
        let a = Admission::new(config());
        let alice = AccountId([1; 32]);
        for _ in 0..5 {
            a.signer(&alice).unwrap();
        }
        let refused = a.signer(&alice).unwrap_err();
        assert!(
            matches!(refused, Refused::Rate { rate: 5, .. }),
            "{refused:?}"
        );
        let wait = refused.retry_after();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another signer is not affected.
        a.signer(&AccountId([2; 32])).unwrap();
        // Uploads have their own, per-minute budget.
        a.upload(&alice).unwrap();
        a.upload(&alice).unwrap();
        let refused = a.upload(&alice).unwrap_err();
        assert!(
            refused.retry_after() > Duration::from_secs(1),
            "{refused:?}"
        );
    }

    #[test]
    fn addresses_are_limited_except_loopback() {
        let a = Admission::new(config());
        let far: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            a.address(far).unwrap();
        }
        assert!(a.address(far).is_err());
        for _ in 0..100 {
            a.address("127.0.0.1".parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn the_limiters_forget_idle_keys_past_their_bound() {
        let a = Admission::new(config());
        let key = |i: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            AccountId(k)
        };
        for i in 0..1000 {
            a.signer(&key(i)).unwrap();
        }
        assert!(a.signers.limiter.len() >= 1000);
        // Once their buckets are full again (5 per second: a cell every 200 ms; governor
        // forgets a key 2 cells after its last use), the next check past the
        // bound of 10 keys forgets them.
        std::thread::sleep(Duration::from_millis(500));
        a.signer(&key(5000)).unwrap();
        assert!(a.signers.limiter.len() <= 2, "{}", a.signers.limiter.len());
    }

    #[tokio::test]
    async fn queries_wait_for_a_slot_then_are_refused() {
        let a = Admission::new(config());
        let p1 = a.query_slot().await.unwrap();
        let _p2 = a.query_slot().await.unwrap();
        assert_eq!(a.queries_running(), 2);
        assert_eq!(a.query_slot().await.unwrap_err(), Refused::Busy(2));
        drop(p1);
        let _p3 = a.query_slot().await.unwrap();
    }
}
