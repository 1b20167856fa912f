//! A price oracle: fetches `{"usd": <price>}` JSON from a web API in a query, caches the price
//! on the worker, and answers it in cents. The example of `phat-ink`'s off-chain powers.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

/// Reads the `"usd"` number of a JSON body as cents (two decimals; more are cut).
pub fn parse_usd_cents(body: &[u8]) -> Option<u128> {
    let key = b"\"usd\"";
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[at..];
    let colon = rest.iter().position(|b| *b == b':')?;
    if !rest[..colon].iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let rest = &rest[colon + 1..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &rest[start..];
    let mut cents: u128 = 0;
    let mut decimals: Option<u32> = None;
    let mut digits = 0;
    for b in rest {
        match b {
            b'0'..=b'9' => {
                if decimals.is_some_and(|d| d >= 2) {
                    continue;
                }
                cents = cents.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
                digits += 1;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => break,
        }
    }
    if digits == 0 {
        return None;
    }
    for _ in decimals.unwrap_or(0)..2 {
        cents = cents.checked_mul(10)?;
    }
    Some(cents)
}

#[ink::contract]
mod price_oracle {
    use ink::prelude::string::String;
    use ink::prelude::vec::Vec;
    use phat_ink::schedule::{self, Missed, Spec};
    use phat_ink::{cache, HttpRequest, HttpRequestError};

    /// The price lives in the worker cache; the replicated state counts the oracle's own
    /// scheduled ticks.
    #[ink(storage)]
    #[derive(Default)]
    pub struct PriceOracle {
        ticks: u64,
    }

    /// What can go wrong.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// The API answered with a status other than 200.
        HttpStatus(u16),
        /// The body holds no `"usd"` number.
        BadJson,
        /// The contract's cache quota is used up.
        CacheFull,
        /// A batch failed as a whole.
        Batch(HttpRequestError),
        /// Refused on purpose (`remember_then_refuse`).
        Refused,
        /// `tick` is called by the oracle's own schedule only.
        NotScheduled,
        /// The cluster refused the schedule change at once.
        Schedule(schedule::Error),
    }

    /// Gas each scheduled `tick` may use.
    const TICK_GAS: u64 = 1_000_000_000;

    const KEY: &[u8] = b"usd";

    impl PriceOracle {
        /// An oracle (payable: its balance pays for its own schedule).
        #[ink(constructor, payable)]
        pub fn new() -> Self {
            Self::default()
        }

        /// Has the cluster call `tick` every `every_ms` ms, as this contract, the schedule's
        /// deposit paid from the oracle's balance (deploy it with `--value`).
        #[ink(message)]
        pub fn start_ticking(&mut self, every_ms: u64) -> Result<(), Error> {
            let tick = ink::selector_bytes!("tick").to_vec();
            schedule::set(Spec::Every { ms: every_ms }, tick, TICK_GAS, Missed::Skip)
                .map_err(Error::Schedule)
        }

        /// Stops the ticks (the deposit comes back to the oracle).
        #[ink(message)]
        pub fn stop_ticking(&mut self) -> Result<(), Error> {
            schedule::clear(ink::selector_bytes!("tick")).map_err(Error::Schedule)
        }

        /// One scheduled tick: counts it. Anyone else calling it is refused.
        #[ink(message)]
        pub fn tick(&mut self) -> Result<u64, Error> {
            if self.env().caller() != self.env().account_id() {
                return Err(Error::NotScheduled);
            }
            self.ticks += 1;
            Ok(self.ticks)
        }

        /// Ticks so far.
        #[ink(message)]
        pub fn ticks(&self) -> u64 {
            self.ticks
        }

        /// Fetches the price (a query), caches it on this worker and returns it in cents.
        #[ink(message)]
        pub fn fetch(&self, url: String) -> Result<u128, Error> {
            let resp = phat_ink::http_get(&url, Vec::new());
            if resp.status_code != 200 {
                phat_ink::warn!("{} answered {}", url, resp.status_code);
                return Err(Error::HttpStatus(resp.status_code));
            }
            let cents = crate::parse_usd_cents(&resp.body).ok_or(Error::BadJson)?;
            cache::set(KEY, &cents.to_le_bytes()).map_err(|_| Error::CacheFull)?;
            cache::set_expiration(KEY, 600);
            phat_ink::info!("price {} cents from {}", cents, url);
            Ok(cents)
        }

        /// Caches `cents` on every worker (a command: each worker applies it to its own cache).
        #[ink(message)]
        pub fn remember(&mut self, cents: u128) -> Result<(), Error> {
            cache::set(KEY, &cents.to_le_bytes()).map_err(|_| Error::CacheFull)
        }

        /// Caches `cents`, then fails: the command reverts, and its cache write with it.
        #[ink(message)]
        pub fn remember_then_refuse(&mut self, cents: u128) -> Result<(), Error> {
            cache::set(KEY, &cents.to_le_bytes()).map_err(|_| Error::CacheFull)?;
            Err(Error::Refused)
        }

        /// The price this worker cached last, in cents.
        #[ink(message)]
        pub fn cached(&self) -> Option<u128> {
            let raw = cache::get(KEY)?;
            Some(u128::from_le_bytes(raw.try_into().ok()?))
        }

        /// Fetches every URL at once; returns each one's status (0 for a failed request).
        #[ink(message)]
        pub fn statuses(&self, urls: Vec<String>) -> Result<Vec<u16>, Error> {
            let requests = urls
                .into_iter()
                .map(|url| HttpRequest {
                    url,
                    method: "GET".into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                })
                .collect();
            let results = phat_ink::batch_http_request(requests, 5_000).map_err(Error::Batch)?;
            Ok(results
                .into_iter()
                .map(|r| r.map(|resp| resp.status_code).unwrap_or(0))
                .collect())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use phat_ink::mock::MockPink;

        #[ink::test]
        fn fetches_parses_and_caches() {
            let logs = MockPink::default()
                .respond("https://api.test/price", br#"{"usd": 42.5}"#)
                .register();
            let oracle = PriceOracle::new();
            assert_eq!(oracle.cached(), None);
            assert_eq!(oracle.fetch("https://api.test/price".into()), Ok(4250));
            assert_eq!(oracle.cached(), Some(4250));
            assert_eq!(
                oracle.fetch("https://api.test/missing".into()),
                Err(Error::HttpStatus(404))
            );
            assert!(logs.borrow().iter().any(|(_, l)| l.contains("4250")));
        }

        #[ink::test]
        fn only_its_own_schedule_ticks_it() {
            MockPink::default().register();
            let mut oracle = PriceOracle::new();
            assert_eq!(oracle.start_ticking(1_000), Ok(()));
            // Another account than the contract calls it.
            let stranger = AccountId::from([9; 32]);
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(stranger);
            assert_eq!(oracle.tick(), Err(Error::NotScheduled));
            let me = ink::env::account_id::<ink::env::DefaultEnvironment>();
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(me);
            assert_eq!(oracle.tick(), Ok(1));
            assert_eq!(oracle.ticks(), 1);
            assert_eq!(oracle.stop_ticking(), Ok(()));
        }

        #[ink::test]
        fn batch_limits_come_back_as_errors() {
            MockPink::default().register();
            let oracle = PriceOracle::new();
            let urls: Vec<String> = (0..6)
                .map(|i| ink::prelude::format!("https://x/{i}"))
                .collect();
            assert_eq!(
                oracle.statuses(urls),
                Err(Error::Batch(HttpRequestError::TooManyRequests))
            );
            assert_eq!(
                oracle.statuses(Vec::from([String::from("https://x/1")])),
                Ok(Vec::from([404]))
            );
        }

        #[test]
        fn parses_prices() {
            assert_eq!(crate::parse_usd_cents(br#"{"usd":1}"#), Some(100));
            assert_eq!(
                crate::parse_usd_cents(br#"{"eur": 2, "usd" : 3.456}"#),
                Some(345)
            );
            assert_eq!(crate::parse_usd_cents(br#"{"usd": "x"}"#), None);
            assert_eq!(crate::parse_usd_cents(br#"{}"#), None);
        }
    }
}
