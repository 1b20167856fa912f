//! The price feed, an oracle with no person in the loop (docs/triggers.md):
//!
//! 1. subscribed to a consumer's `PriceRequested(uint256 indexed id, string pair)` logs
//!    (`phat subscribe add … on_request`), it records each request once, in chain order;
//! 2. an off-chain job (`phat job add … work --handler on_report`) runs `work` on one worker
//!    per tick: it sends the answers already decided (the same signed bytes from any worker),
//!    reports which are mined, and fetches over HTTP the price of every pair it needs;
//! 3. the handler `on_report`, a command, turns prices into answers: `fulfill(id, price)` for
//!    each open request and `update(pair, price)` for the pushed pair, each an EIP-1559
//!    transaction with its own nonce, decided once in replicated state, so each request is
//!    answered by exactly one transaction whatever worker sends it and however often.
//!
//! It also keeps the simpler job of the jobs guide: `fetch(url)` and `on_price`.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod price_feed {
    use alloy_sol_types::{sol, SolCall, SolValue};
    use ink::prelude::format;
    use ink::prelude::string::{String, ToString};
    use ink::prelude::vec::Vec;
    use ink::storage::Mapping;
    use phat_evm::{Address, Eip1559, Rpc, SignedTx, Signer, U256};

    sol! {
        /// The consumer's answers (tools/eth/PriceConsumer.sol).
        interface IPriceConsumer {
            function fulfill(uint256 id, uint256 price) external;
            function update(string pair, uint256 price) external;
        }
    }

    /// An Ethereum address.
    pub type EthAddress = [u8; 20];

    /// Prices are fixed-point numbers with this many decimals (as Chainlink's USD feeds).
    pub const DECIMALS: u32 = 8;
    /// At most this many answers are sent (or looked up) by one run of `work`.
    pub const MAX_SEND: u64 = 16;
    /// At most this many requests are answered by one report.
    pub const MAX_ANSWER: u32 = 16;
    /// At most this many pairs are fetched by one run of `work`.
    pub const MAX_PAIRS: usize = 8;
    /// No new answer is decided while this many are not known to be mined (backpressure when
    /// the chain does not take them: no ETH for gas, fees too low).
    pub const MAX_IN_FLIGHT: u64 = 32;
    /// A pair name's longest length, in bytes.
    pub const MAX_PAIR_LEN: usize = 32;
    /// A request whose pair the API had no price for in this many reports is given up.
    pub const MAX_MISSES: u8 = 5;

    /// A request seen on Ethereum.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Request {
        /// The request's id: the log's second topic, as a number (its last 8 bytes).
        pub id: u64,
        /// The block the log is in.
        pub block_number: u64,
        /// Its index in the block.
        pub log_index: u32,
        /// The pair asked for (the log's data, an ABI string); empty when it is not one.
        pub pair: String,
        /// The nonce of the transaction answering it, once decided.
        pub answer: Option<u64>,
        /// Reports in which the API had no price for its pair; at [`MAX_MISSES`] it is given
        /// up (never answered).
        pub misses: u8,
    }

    impl Request {
        /// Whether a report may still answer it.
        pub fn open(&self) -> bool {
            self.answer.is_none() && self.misses < MAX_MISSES
        }
    }

    /// Why a call is refused.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Only the cluster delivers logs and job outputs (its trigger callers).
        NotTheCluster,
        /// The log has no id topic.
        NoId,
        /// Only the deployer configures the oracle.
        NotOwner,
        /// `configure` has not been called.
        NotConfigured,
        /// The job's output is not a report of `work`.
        BadReport,
        /// The tip is above the max fee, or the gas limit under a transfer's 21,000.
        BadFees,
    }

    /// A price a job fetched.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub struct Price {
        /// The tick it was fetched for (Unix ms).
        pub tick: u64,
        /// What the API answered.
        pub body: Vec<u8>,
    }

    /// Where the oracle answers, where it reads prices, and what its transactions pay.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Config {
        /// The node's JSON-RPC URL (stays in the contract's encrypted state).
        pub rpc_url: String,
        /// The chain (EIP-155).
        pub chain: u64,
        /// The consumer contract.
        pub consumer: EthAddress,
        /// The price API: `GET {api_url}?pair=ETH%2FUSD` answers `{"price": "3421.55"}` (a
        /// JSON string or number).
        pub api_url: String,
        /// The pair pushed with `update` on every report (none when empty).
        pub push_pair: String,
        /// Max fee per gas of new answers, wei.
        pub max_fee_per_gas: u128,
        /// Max priority fee per gas of new answers, wei.
        pub max_priority_fee_per_gas: u128,
        /// Gas limit of new answers.
        pub gas_limit: u64,
    }

    /// What an answer says.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub enum Answer {
        /// `fulfill(request, price)`.
        Fulfill {
            /// The request's id.
            request: u64,
            /// Its price (8 decimals).
            price: u128,
        },
        /// `update(pair, price)`.
        Update {
            /// The pair.
            pair: String,
            /// Its price (8 decimals).
            price: u128,
        },
    }

    /// A transaction decided by a report: everything it is built from, and whether it is mined.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Outgoing {
        /// Its nonce.
        pub nonce: u64,
        /// What it says.
        pub answer: Answer,
        /// The chain.
        pub chain: u64,
        /// The consumer it calls.
        pub to: EthAddress,
        /// Max fee per gas, wei.
        pub max_fee_per_gas: u128,
        /// Max priority fee per gas, wei.
        pub max_priority_fee_per_gas: u128,
        /// Gas limit.
        pub gas_limit: u64,
        /// Its mined receipt, once a report saw it: the block, and whether it succeeded.
        pub mined: Option<(u64, bool)>,
    }

    /// What one run of `work` saw: answers mined, and the prices fetched.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub struct Report {
        /// Nonces found mined, with their block and success.
        pub mined: Vec<(u64, u64, bool)>,
        /// Pairs and their prices (8 decimals).
        pub prices: Vec<(String, u128)>,
        /// Pairs the API has no price for (a 404, or a 200 without a price), or whose name
        /// cannot be asked for. Other failures (unreachable, 429, 5xx) are not misses.
        pub missing: Vec<String>,
    }

    /// The feed's state (replicated: changed by commands only).
    #[ink(storage)]
    pub struct PriceFeed {
        owner: AccountId,
        config: Option<Config>,
        requests: Mapping<u32, Request>,
        request_count: u32,
        /// Requests before this index all have an answer.
        first_open: u32,
        outgoing: Mapping<u64, Outgoing>,
        next_nonce: u64,
        /// Answers before this nonce are all known mined.
        first_unmined: u64,
        /// The last log delivered (block, index): a log at or before it is a repeat (the
        /// subscription re-added from an earlier block, a second subscription to the event).
        last_log: Option<(u64, u32)>,
        prices: Vec<Price>,
    }

    impl Default for PriceFeed {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A job's output as its handler receives it: the query's SCALE return value, which for
    /// an ink! 5 message is `Result<T, LangError>`.
    fn job_output<T: ink::scale::Decode>(output: &[u8]) -> Option<T> {
        match <Result<T, ink::LangError> as ink::scale::Decode>::decode(&mut &output[..]) {
            Ok(Ok(t)) => Some(t),
            _ => None,
        }
    }

    /// `pair` as it goes in a URL query (letters, digits, `-`, `_`, `.` and `/`), or `None`.
    pub fn pair_in_url(pair: &str) -> Option<String> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
        if pair.is_empty() || pair.len() > MAX_PAIR_LEN || !pair.chars().all(ok) {
            return None;
        }
        Some(pair.replace('/', "%2F"))
    }

    /// A decimal number (`3421.55`) as a fixed-point integer with [`DECIMALS`] decimals;
    /// digits past them are dropped. `None` for anything else (signs, exponents, overflow).
    pub fn parse_decimal(text: &str) -> Option<u128> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) {
            return None;
        }
        let scale = 10u128.pow(DECIMALS);
        let mut value = int.parse::<u128>().ok()?.checked_mul(scale)?;
        let mut unit = scale;
        for b in frac.bytes().take(DECIMALS as usize) {
            unit /= 10;
            value = value.checked_add(u128::from(b - b'0') * unit)?;
        }
        Some(value)
    }

    /// The price in an API answer: `{"price": "3421.55"}` or `{"price": 3421.55}`.
    pub fn parse_price(body: &[u8]) -> Option<u128> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        match v.get("price")? {
            serde_json::Value::String(s) => parse_decimal(s),
            serde_json::Value::Number(n) => parse_decimal(&n.to_string()),
            _ => None,
        }
    }

    impl PriceFeed {
        /// An empty feed owned by the caller (it records requests; it answers once configured).
        #[ink(constructor)]
        pub fn new() -> Self {
            Self {
                owner: Self::env().caller(),
                config: None,
                requests: Mapping::default(),
                request_count: 0,
                first_open: 0,
                outgoing: Mapping::default(),
                next_nonce: 0,
                first_unmined: 0,
                last_log: None,
                prices: Vec::new(),
            }
        }

        /// Sets the chain, the consumer, the price API, the pushed pair, and the nonce, fees
        /// and gas limit of new answers (owner). Answers already decided keep theirs.
        #[ink(message)]
        #[allow(clippy::too_many_arguments)]
        pub fn configure(
            &mut self,
            rpc_url: String,
            chain: u64,
            consumer: EthAddress,
            start_nonce: u64,
            api_url: String,
            push_pair: String,
            max_fee_per_gas: u128,
            max_priority_fee_per_gas: u128,
            gas_limit: u64,
        ) -> Result<(), Error> {
            if self.env().caller() != self.owner {
                return Err(Error::NotOwner);
            }
            if max_priority_fee_per_gas > max_fee_per_gas || gas_limit < 21_000 {
                return Err(Error::BadFees);
            }
            self.config = Some(Config {
                rpc_url,
                chain,
                consumer,
                api_url,
                push_pair,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                gas_limit,
            });
            if start_nonce > self.next_nonce {
                self.next_nonce = start_nonce;
                self.first_unmined = self.first_unmined.max(start_nonce);
            }
            Ok(())
        }

        /// A `PriceRequested` log, delivered by the cluster (`phat subscribe add … on_request`):
        /// only the subscription caller, blake2-256 of `phat/v1/trigger/eth-log`, may call it.
        #[ink(message)]
        pub fn on_request(
            &mut self,
            block_number: u64,
            log_index: u32,
            topics: Vec<[u8; 32]>,
            data: Vec<u8>,
        ) -> Result<(), Error> {
            if self.env().caller() != phat_ink::trigger_caller(b"eth-log") {
                return Err(Error::NotTheCluster);
            }
            if self
                .last_log
                .is_some_and(|last| (block_number, log_index) <= last)
            {
                phat_ink::info!(
                    "log {}/{} delivered again: ignored",
                    block_number,
                    log_index
                );
                return Ok(());
            }
            let topic = topics.get(1).ok_or(Error::NoId)?;
            let mut id = [0u8; 8];
            id.copy_from_slice(&topic[24..]);
            self.last_log = Some((block_number, log_index));
            // A pair too long to ask for is not stored (a stranger's request costs the
            // deployer's deposit); the request is then given up like an unknown pair.
            let pair = String::abi_decode(&data)
                .ok()
                .filter(|p| p.len() <= MAX_PAIR_LEN)
                .unwrap_or_default();
            let request = Request {
                id: u64::from_be_bytes(id),
                block_number,
                log_index,
                pair,
                answer: None,
                misses: 0,
            };
            self.requests.insert(self.request_count, &request);
            self.request_count += 1;
            Ok(())
        }

        /// The transaction an answer is: a function of the answer alone, so every worker
        /// signs the same bytes (RFC 6979) and sending it twice is harmless.
        fn signed(out: &Outgoing) -> SignedTx {
            let input = match &out.answer {
                Answer::Fulfill { request, price } => IPriceConsumer::fulfillCall {
                    id: U256::from(*request),
                    price: U256::from(*price),
                }
                .abi_encode(),
                Answer::Update { pair, price } => IPriceConsumer::updateCall {
                    pair: pair.clone(),
                    price: U256::from(*price),
                }
                .abi_encode(),
            };
            Signer::contract().sign(&Eip1559 {
                chain_id: out.chain,
                nonce: out.nonce,
                gas_limit: out.gas_limit,
                max_fee_per_gas: out.max_fee_per_gas,
                max_priority_fee_per_gas: out.max_priority_fee_per_gas,
                to: Address::from(out.to),
                value: U256::ZERO,
                input,
            })
        }

        /// The open requests this report may answer (at most [`MAX_ANSWER`], oldest first).
        fn open_requests(&self) -> Vec<(u32, Request)> {
            (self.first_open..self.request_count)
                .filter_map(|i| self.requests.get(i).map(|r| (i, r)))
                .filter(|(_, r)| r.open())
                .take(MAX_ANSWER as usize)
                .collect()
        }

        /// The job's query, run off-chain by one worker per tick (`phat job add … work
        /// --handler on_report`): sends the decided answers not known mined (looking up their
        /// receipts first), and fetches the price of each pair the open requests and the
        /// push need. What it sends changes nothing here; `on_report` commits what it saw.
        #[ink(message)]
        pub fn work(&self) -> Result<Report, Error> {
            let config = self.config.as_ref().ok_or(Error::NotConfigured)?;
            let rpc = Rpc::new(&config.rpc_url);
            let mut report = Report::default();
            let end = self
                .next_nonce
                .min(self.first_unmined.saturating_add(MAX_SEND));
            for nonce in self.first_unmined..end {
                let Some(out) = self.outgoing.get(nonce) else {
                    continue;
                };
                if out.mined.is_some() {
                    continue;
                }
                let tx = Self::signed(&out);
                match rpc.transaction_receipt(tx.hash) {
                    Ok(Some(r)) => report.mined.push((nonce, r.block_number, r.success)),
                    Ok(None) => match rpc.send_idempotent(&tx) {
                        Ok(hash) => phat_ink::info!("answer {} sent: {}", nonce, hash),
                        Err(e) => phat_ink::warn!("answer {} not sent: {:?}", nonce, e),
                    },
                    Err(e) => phat_ink::warn!("receipt of answer {}: {:?}", nonce, e),
                }
            }
            let mut pairs: Vec<String> = Vec::new();
            let wanted = core::iter::once(config.push_pair.clone())
                .chain(self.open_requests().into_iter().map(|(_, r)| r.pair));
            for pair in wanted {
                if !pair.is_empty() && !pairs.contains(&pair) && pairs.len() < MAX_PAIRS {
                    pairs.push(pair);
                }
            }
            let sep = if config.api_url.contains('?') {
                '&'
            } else {
                '?'
            };
            for pair in pairs {
                let Some(q) = pair_in_url(&pair) else {
                    phat_ink::warn!("pair {:?} cannot be asked for", pair);
                    report.missing.push(pair);
                    continue;
                };
                let r = phat_ink::http_get(&format!("{}{sep}pair={q}", config.api_url), Vec::new());
                match (r.status_code, parse_price(&r.body)) {
                    (200, Some(price)) => report.prices.push((pair, price)),
                    // The API says it has no price for the pair: a miss.
                    (200 | 404, _) => {
                        phat_ink::warn!("no price of {}: HTTP {}", pair, r.status_code);
                        report.missing.push(pair);
                    }
                    // Unreachable, rate-limited or failing: asked again next time, no miss.
                    (status, _) => phat_ink::warn!("price of {}: HTTP {}", pair, status),
                }
            }
            Ok(report)
        }

        /// Decides an answer: its nonce is the next one, its fees are the config's.
        fn decide(&mut self, config: &Config, answer: Answer) -> u64 {
            let nonce = self.next_nonce;
            let out = Outgoing {
                nonce,
                answer,
                chain: config.chain,
                to: config.consumer,
                max_fee_per_gas: config.max_fee_per_gas,
                max_priority_fee_per_gas: config.max_priority_fee_per_gas,
                gas_limit: config.gas_limit,
                mined: None,
            };
            self.outgoing.insert(nonce, &out);
            self.next_nonce = nonce + 1;
            nonce
        }

        /// The job's handler: `work`'s report for `tick`, committed once by the cluster (only
        /// the job caller, blake2-256 of `phat/v1/trigger/job`, may call it). Records what is
        /// mined, then decides an answer for each open request whose pair has a price, and an
        /// `update` of the pushed pair, while fewer than [`MAX_IN_FLIGHT`] are unmined.
        #[ink(message)]
        pub fn on_report(&mut self, tick: u64, output: Vec<u8>) -> Result<(), Error> {
            if self.env().caller() != phat_ink::trigger_caller(b"job") {
                return Err(Error::NotTheCluster);
            }
            let report = job_output::<Result<Report, Error>>(&output)
                .ok_or(Error::BadReport)?
                .map_err(|_| Error::NotConfigured)?;
            for (nonce, block, ok) in report.mined {
                if let Some(mut out) = self.outgoing.get(nonce) {
                    out.mined = Some((block, ok));
                    self.outgoing.insert(nonce, &out);
                }
            }
            while self.first_unmined < self.next_nonce
                && self
                    .outgoing
                    .get(self.first_unmined)
                    .is_some_and(|o| o.mined.is_some())
            {
                self.first_unmined += 1;
            }
            let config = self.config.clone().ok_or(Error::NotConfigured)?;
            let price_of = |pair: &str| {
                report
                    .prices
                    .iter()
                    .find(|(p, _)| p == pair)
                    .map(|(_, price)| *price)
            };
            for (i, mut request) in self.open_requests() {
                if self.next_nonce - self.first_unmined >= MAX_IN_FLIGHT {
                    return Ok(());
                }
                let Some(price) = price_of(&request.pair) else {
                    if request.pair.is_empty() || report.missing.contains(&request.pair) {
                        request.misses += 1;
                        if !request.open() {
                            phat_ink::warn!(
                                "request {} ({}) given up: no price",
                                request.id,
                                request.pair
                            );
                        }
                        self.requests.insert(i, &request);
                    }
                    continue;
                };
                let nonce = self.decide(
                    &config,
                    Answer::Fulfill {
                        request: request.id,
                        price,
                    },
                );
                phat_ink::info!(
                    "tick {}: request {} gets {} (nonce {})",
                    tick,
                    request.id,
                    price,
                    nonce
                );
                request.answer = Some(nonce);
                self.requests.insert(i, &request);
            }
            while self.first_open < self.request_count
                && self
                    .requests
                    .get(self.first_open)
                    .is_some_and(|r| !r.open())
            {
                self.first_open += 1;
            }
            if let Some(price) = price_of(&config.push_pair) {
                if self.next_nonce - self.first_unmined < MAX_IN_FLIGHT {
                    let pair = config.push_pair.clone();
                    self.decide(&config, Answer::Update { pair, price });
                }
            }
            Ok(())
        }

        /// The job's query of the jobs guide: the body `url` answers.
        #[ink(message)]
        pub fn fetch(&self, url: String) -> Vec<u8> {
            phat_ink::http_get(&url, Vec::new()).body
        }

        /// The handler of the jobs guide: what `fetch` returned for `tick`, committed by the
        /// cluster (only the job caller may call it).
        #[ink(message)]
        pub fn on_price(&mut self, tick: u64, output: Vec<u8>) -> Result<(), Error> {
            if self.env().caller() != phat_ink::trigger_caller(b"job") {
                return Err(Error::NotTheCluster);
            }
            let body = job_output::<Vec<u8>>(&output).unwrap_or(output);
            self.prices.push(Price { tick, body });
            Ok(())
        }

        /// Every price `on_price` recorded, oldest first.
        #[ink(message)]
        pub fn prices(&self) -> Vec<Price> {
            self.prices.clone()
        }

        /// Every request delivered, in chain order.
        #[ink(message)]
        pub fn requests(&self) -> Vec<Request> {
            (0..self.request_count)
                .filter_map(|i| self.requests.get(i))
                .collect()
        }

        /// How many requests were delivered.
        #[ink(message)]
        pub fn count(&self) -> u32 {
            self.request_count
        }

        /// The answers decided from nonce `from` on (at most 64), with their transaction hash.
        #[ink(message)]
        pub fn answers(&self, from: u64) -> Vec<(Outgoing, [u8; 32])> {
            (from..self.next_nonce.min(from.saturating_add(64)))
                .filter_map(|n| self.outgoing.get(n))
                .map(|o| {
                    let hash = Self::signed(&o).hash.0;
                    (o, hash)
                })
                .collect()
        }

        /// The next nonce, and the first answer not known mined.
        #[ink(message)]
        pub fn nonces(&self) -> (u64, u64) {
            (self.next_nonce, self.first_unmined)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[ink::test]
        fn only_the_cluster_delivers() {
            let mut feed = PriceFeed::new();
            let topics = vec![[0u8; 32], [7u8; 32]];
            assert_eq!(
                feed.on_request(1, 0, topics, vec![]),
                Err(Error::NotTheCluster)
            );
            assert_eq!(
                feed.on_report(1, ink::scale::Encode::encode(&Report::default())),
                Err(Error::NotTheCluster)
            );
            assert_eq!(feed.count(), 0);
        }

        #[ink::test]
        fn only_the_owner_configures() {
            let mut feed = PriceFeed::new();
            let accounts = ink::env::test::default_accounts::<ink::env::DefaultEnvironment>();
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(accounts.bob);
            let r = feed.configure("".into(), 1, [0; 20], 0, "".into(), "".into(), 1, 1, 1);
            assert_eq!(r, Err(Error::NotOwner));
        }

        #[ink::test]
        fn a_log_is_recorded_once_and_a_long_pair_is_not_stored() {
            let logs = phat_ink::mock::MockPink::default().register();
            let mut feed = PriceFeed::new();
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(phat_ink::trigger_caller(
                b"eth-log",
            ));
            let log = |feed: &mut PriceFeed, block, index, id: u8, pair: &str| {
                let mut topic = [0u8; 32];
                topic[31] = id;
                feed.on_request(
                    block,
                    index,
                    vec![[0u8; 32], topic],
                    String::from(pair).abi_encode(),
                )
            };
            assert_eq!(log(&mut feed, 5, 0, 1, "ETH/USD"), Ok(()));
            // Delivered again, or an earlier log: ignored.
            assert_eq!(log(&mut feed, 5, 0, 1, "ETH/USD"), Ok(()));
            assert_eq!(log(&mut feed, 4, 3, 9, "ETH/USD"), Ok(()));
            assert_eq!(
                log(&mut feed, 5, 1, 2, &"X".repeat(MAX_PAIR_LEN + 1)),
                Ok(())
            );
            let requests = feed.requests();
            assert_eq!(
                requests.iter().map(|r| r.id).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert_eq!(requests[0].pair, "ETH/USD");
            assert_eq!(requests[1].pair, "");
            let said = format!("{:?}", logs.borrow());
            assert!(said.contains("delivered again: ignored"), "{said}");
        }

        #[ink::test]
        fn fees_that_cannot_be_mined_are_refused() {
            let mut feed = PriceFeed::new();
            let mut configure = |tip, gas| {
                feed.configure("".into(), 1, [0; 20], 0, "".into(), "".into(), 10, tip, gas)
            };
            assert_eq!(configure(11, 100_000), Err(Error::BadFees));
            assert_eq!(configure(1, 20_999), Err(Error::BadFees));
            assert_eq!(configure(1, 21_000), Ok(()));
        }

        #[test]
        fn decimals_are_parsed_exactly() {
            assert_eq!(parse_decimal("3421.55"), Some(342_155_000_000));
            assert_eq!(parse_decimal("1"), Some(100_000_000));
            assert_eq!(parse_decimal("0.123456789"), Some(12_345_678));
            for bad in [
                "",
                ".5",
                "-1",
                "1e5",
                "1.2.3",
                "12a",
                "999999999999999999999999999999999",
            ] {
                assert_eq!(parse_decimal(bad), None, "{bad}");
            }
            assert_eq!(
                parse_price(br#"{"price": "97000.5"}"#),
                Some(9_700_050_000_000)
            );
            assert_eq!(parse_price(br#"{"price": 2.25}"#), Some(225_000_000));
            assert_eq!(parse_price(br#"{"cost": 1}"#), None);
            assert_eq!(parse_price(b"not json"), None);
        }

        #[test]
        fn pairs_go_in_urls_or_not_at_all() {
            assert_eq!(pair_in_url("ETH/USD").as_deref(), Some("ETH%2FUSD"));
            for bad in ["", "ETH USD", "a&b=c", "x#y", &"A".repeat(33)] {
                assert_eq!(pair_in_url(bad), None, "{bad}");
            }
        }

        #[test]
        fn an_abi_string_is_the_pair() {
            let data = String::from("ETH/USD").abi_encode();
            assert_eq!(String::abi_decode(&data).unwrap(), "ETH/USD");
            assert!(String::abi_decode(b"ETH/USD").is_err());
        }
    }
}
