//! The price feed: subscribed to an Ethereum consumer's `PriceRequested(uint256 indexed id, …)`
//! logs (`phat subscribe add`), it records each request once, in chain order, whatever the
//! number of workers; and an off-chain job (`phat job add … fetch URL --handler on_price`)
//! fetches a price over HTTP on one worker per tick and records it (docs/triggers.md).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod price_feed {
    use ink::prelude::vec::Vec;

    /// A request seen on Ethereum.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub struct Request {
        /// The request's id: the log's second topic, as a number (its last 8 bytes).
        pub id: u64,
        /// The block the log is in.
        pub block_number: u64,
        /// Its index in the block.
        pub log_index: u32,
        /// The log's data as emitted.
        pub data: Vec<u8>,
    }

    /// Why a delivery is refused.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Only the cluster delivers logs (its caller for subscriptions).
        NotTheCluster,
        /// The log has no id topic.
        NoId,
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

    /// The requests, in the order they were delivered.
    #[ink(storage)]
    #[derive(Default)]
    pub struct PriceFeed {
        requests: Vec<Request>,
        prices: Vec<Price>,
    }

    /// The account a trigger's runs are called by: blake2-256 of `phat/v1/trigger/<kind>`.
    fn trigger_caller(kind: &[u8]) -> AccountId {
        let mut input = b"phat/v1/trigger/".to_vec();
        input.extend_from_slice(kind);
        let mut out = [0u8; 32];
        ink::env::hash_bytes::<ink::env::hash::Blake2x256>(&input, &mut out);
        AccountId::from(out)
    }

    impl PriceFeed {
        /// An empty feed.
        #[ink(constructor)]
        pub fn new() -> Self {
            Self::default()
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
            if self.env().caller() != trigger_caller(b"eth-log") {
                return Err(Error::NotTheCluster);
            }
            let topic = topics.get(1).ok_or(Error::NoId)?;
            let mut id = [0u8; 8];
            id.copy_from_slice(&topic[24..]);
            self.requests.push(Request {
                id: u64::from_be_bytes(id),
                block_number,
                log_index,
                data,
            });
            Ok(())
        }

        /// The job's query, run off-chain by one worker per tick: the body `url` answers.
        #[ink(message)]
        pub fn fetch(&self, url: ink::prelude::string::String) -> Vec<u8> {
            phat_ink::http_get(&url, Vec::new()).body
        }

        /// The job's handler: what `fetch` returned for `tick`, committed by the cluster (only
        /// the job caller, blake2-256 of `phat/v1/trigger/job`, may call it).
        #[ink(message)]
        pub fn on_price(&mut self, tick: u64, output: Vec<u8>) -> Result<(), Error> {
            if self.env().caller() != trigger_caller(b"job") {
                return Err(Error::NotTheCluster);
            }
            // `output` is `fetch`'s return value as SCALE: ink! 5's Result<Vec<u8>, LangError>.
            let body = match <Result<Vec<u8>, ink::LangError> as ink::scale::Decode>::decode(
                &mut &output[..],
            ) {
                Ok(Ok(body)) => body,
                _ => output,
            };
            self.prices.push(Price { tick, body });
            Ok(())
        }

        /// Every price recorded, oldest first.
        #[ink(message)]
        pub fn prices(&self) -> Vec<Price> {
            self.prices.clone()
        }

        /// Every request delivered, in chain order.
        #[ink(message)]
        pub fn requests(&self) -> Vec<Request> {
            self.requests.clone()
        }

        /// How many requests were delivered.
        #[ink(message)]
        pub fn count(&self) -> u32 {
            self.requests.len() as u32
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
            assert_eq!(feed.count(), 0);
        }
    }
}
