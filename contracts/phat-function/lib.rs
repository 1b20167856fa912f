//! A Phat Function: a JavaScript `main(request, secrets)` (Phala's, unmodified) that answers the
//! requests an Ethereum contract queues through Phala's `PhatRollupAnchor`, signing with this
//! contract's own Ethereum key (its *attestor*).
//!
//! `phat fn deploy` instantiates it, stores the script (in chunks: a storage value holds at most
//! 16 KiB) and its secrets (contract storage is sealed at rest; commands are sealed in transit;
//! no message returns them), and adds a job that runs [`PhatFunction::answer`] on one worker per
//! tick, its outcome committed to [`PhatFunction::record`].
//!
//! One answer per tick, exactly once on chain and in queue order: `answer` reads the anchor's
//! queue head `h`, runs the script on request `h` and sends
//! `rollupU256CondEq([q/_head], [h], [], [], [0x00 ‖ output, 0x01 ‖ abi(h + 1)])`; the anchor
//! applies it only while its head is still `h`, so a second answer to the same request (another
//! worker, a repeated tick) reverts instead of answering twice. While a transaction of the
//! attestor is pending, `answer` sends nothing. A script that throws leaves the request queued;
//! it is tried again on later ticks, after a pause that doubles with each failure (1 s up to
//! 64 s); after 20 failures in a row the function stops until its owner changes its script,
//! secrets or config. What the script returns is the answer, whatever the request held.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

alloy_sol_types::sol! {
    /// The part of Phala's `PhatRollupAnchor` a function uses.
    interface IPhatRollupAnchor {
        function getStorage(bytes key) external view returns (bytes);
        function rollupU256CondEq(
            bytes[] condKeys,
            bytes[] condValues,
            bytes[] updateKeys,
            bytes[] updateValues,
            bytes[] actions
        ) external returns (bool);
    }
}

#[ink::contract]
mod phat_function {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec;
    use alloc::vec::Vec;
    use alloy_sol_types::{SolCall, SolValue};
    use ink::storage::Mapping;
    use phat_evm::{Address, BlockTag, Eip1559, Rpc, Signer, U256};
    use phat_ink::{JsCode, JsValue};

    use crate::IPhatRollupAnchor;

    /// Most bytes of one script chunk (a storage value holds at most 16 KiB).
    pub const MAX_CHUNK: usize = 12 * 1024;
    /// Most chunks of a script (400 KiB, Phala's limit on a function).
    pub const MAX_CHUNKS: u32 = 34;
    /// Most bytes of the secrets.
    pub const MAX_SECRETS: usize = 8 * 1024;
    /// Most bytes of an answer the script gives.
    pub const MAX_OUTPUT: usize = 8 * 1024;
    /// The longest pause after failures, ms.
    const MAX_BACKOFF_MS: u64 = 64_000;
    /// Failures in a row after which the function stops trying until its owner changes its
    /// script, secrets or config (about 15 minutes of retries).
    pub const MAX_FAILURES: u32 = 20;

    /// Where the anchor is and how to transact with it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Config {
        /// The node's JSON-RPC URL.
        pub rpc_url: String,
        /// The chain id (EIP-155).
        pub chain_id: u64,
        /// The anchor contract's address.
        pub anchor: [u8; 20],
        /// The gas limit of an answer (0: estimated by the node).
        pub gas_limit: u64,
    }

    /// What one run of [`PhatFunction::answer`] did.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Outcome {
        /// The queue is empty.
        Idle {
            /// The queue's head.
            head: u32,
        },
        /// A transaction of the attestor is pending: nothing sent.
        Pending {
            /// The attestor's confirmed nonce.
            nonce: u64,
        },
        /// Waiting after failures.
        Backoff {
            /// Until when (ledger ms).
            until_ms: u64,
        },
        /// Stopped after [`MAX_FAILURES`] failures in a row, until the owner changes the
        /// script, the secrets or the config.
        Paused {
            /// The failures.
            failures: u32,
        },
        /// Request `index` was answered by transaction `tx`.
        Answered {
            /// The request's index in the queue.
            index: u32,
            /// The transaction's hash.
            tx: [u8; 32],
        },
        /// Request `index` (if the queue was read) could not be answered: why.
        Failed {
            /// The request's index, when known.
            index: Option<u32>,
            /// What went wrong.
            error: String,
        },
    }

    /// What `phat fn status` shows.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Status {
        /// Answers recorded so far (a job tick whose query ran on two workers answers two
        /// requests and records one: the queue's head on chain is the exact count).
        pub answered: u64,
        /// The last request answered, and its transaction.
        pub last_answer: Option<(u32, [u8; 32])>,
        /// The last failure (request index if known, the error).
        pub last_error: Option<(Option<u32>, String)>,
        /// Failures since the last answer.
        pub failures: u32,
        /// No answer is tried before this ledger time (ms).
        pub retry_after_ms: u64,
        /// The last tick recorded.
        pub last_tick: u64,
    }

    /// Why a message is refused.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Only the owner may do this.
        NotOwner,
        /// Only the cluster (the job caller) may record outcomes.
        NotTheCluster,
        /// A chunk or the secrets are too large, or a chunk index is out of range.
        TooLarge,
        /// The script's chunks are not all there.
        Incomplete,
    }

    /// A request was answered on chain.
    #[ink(event)]
    pub struct Answered {
        /// The request's index.
        #[ink(topic)]
        index: u32,
        /// The transaction's hash.
        tx: [u8; 32],
    }

    /// A run failed.
    #[ink(event)]
    pub struct Failed {
        /// The request's index, when known.
        index: Option<u32>,
        /// What went wrong.
        error: String,
    }

    /// The function.
    #[ink(storage)]
    pub struct PhatFunction {
        owner: AccountId,
        config: Config,
        /// Script chunks by index; chunks `0..chunks` are the script.
        chunk: Mapping<u32, Vec<u8>>,
        chunks: u32,
        /// Bumped on each new script.
        version: u32,
        secrets: Vec<u8>,
        status: Status,
    }

    impl PhatFunction {
        /// A function answering the queue of `config.anchor`; the caller owns it.
        #[ink(constructor)]
        pub fn new(config: Config) -> Self {
            Self {
                owner: Self::env().caller(),
                config,
                chunk: Mapping::default(),
                chunks: 0,
                version: 0,
                secrets: Vec::new(),
                status: Status::default(),
            }
        }

        fn only_owner(&self) -> Result<(), Error> {
            if self.env().caller() != self.owner {
                return Err(Error::NotOwner);
            }
            Ok(())
        }

        /// Stores chunk `index` of the next script (owner only).
        #[ink(message)]
        pub fn put_chunk(&mut self, index: u32, bytes: Vec<u8>) -> Result<(), Error> {
            self.only_owner()?;
            if index >= MAX_CHUNKS || bytes.len() > MAX_CHUNK {
                return Err(Error::TooLarge);
            }
            self.chunk.insert(index, &bytes);
            Ok(())
        }

        /// Makes chunks `0..chunks` the script (owner only); returns its version.
        #[ink(message)]
        pub fn set_script(&mut self, chunks: u32) -> Result<u32, Error> {
            self.only_owner()?;
            if chunks == 0 || chunks > MAX_CHUNKS {
                return Err(Error::TooLarge);
            }
            if (0..chunks).any(|i| !self.chunk.contains(i)) {
                return Err(Error::Incomplete);
            }
            for i in chunks..self.chunks {
                self.chunk.remove(i);
            }
            self.chunks = chunks;
            self.version = self.version.saturating_add(1);
            self.retry_now();
            Ok(self.version)
        }

        /// A new script, secrets or config gets its chance at once, whatever failed before.
        fn retry_now(&mut self) {
            self.status.failures = 0;
            self.status.retry_after_ms = 0;
        }

        /// Replaces the secrets the script gets as its second argument (owner only).
        #[ink(message)]
        pub fn set_secrets(&mut self, secrets: Vec<u8>) -> Result<(), Error> {
            self.only_owner()?;
            if secrets.len() > MAX_SECRETS {
                return Err(Error::TooLarge);
            }
            self.secrets = secrets;
            self.retry_now();
            Ok(())
        }

        /// Replaces the anchor, node or chain (owner only).
        #[ink(message)]
        pub fn set_config(&mut self, config: Config) -> Result<(), Error> {
            self.only_owner()?;
            self.config = config;
            self.retry_now();
            Ok(())
        }

        /// Where it answers.
        #[ink(message)]
        pub fn config(&self) -> Config {
            self.config.clone()
        }

        /// The script's version (0: none yet) and size.
        #[ink(message)]
        pub fn script_info(&self) -> (u32, u32) {
            let size = (0..self.chunks)
                .map(|i| self.chunk.get(i).map_or(0, |c| c.len() as u32))
                .sum();
            (self.version, size)
        }

        /// The owner.
        #[ink(message)]
        pub fn owner(&self) -> AccountId {
            self.owner
        }

        /// The Ethereum address answers come from (grant it the anchor's attestor role).
        #[ink(message)]
        pub fn attestor(&self) -> [u8; 20] {
            Signer::contract().address().into_array()
        }

        /// Answers so far, the last answer and failure.
        #[ink(message)]
        pub fn status(&self) -> Status {
            self.status.clone()
        }

        /// The script, whole.
        fn script(&self) -> Option<String> {
            let mut all = Vec::new();
            for i in 0..self.chunks {
                all.extend_from_slice(&self.chunk.get(i)?);
            }
            String::from_utf8(all).ok()
        }

        /// Answers the request at the head of the anchor's queue, if any (a query: the job
        /// runs it on one worker per tick).
        #[ink(message)]
        pub fn answer(&self) -> Outcome {
            let now = self.env().block_timestamp();
            if self.status.failures >= MAX_FAILURES {
                return Outcome::Paused {
                    failures: self.status.failures,
                };
            }
            if self.status.failures > 0 && now < self.status.retry_after_ms {
                return Outcome::Backoff {
                    until_ms: self.status.retry_after_ms,
                };
            }
            match self.try_answer() {
                Ok(o) => o,
                Err((index, error)) => Outcome::Failed { index, error },
            }
        }

        fn try_answer(&self) -> Result<Outcome, (Option<u32>, String)> {
            let eth = |index: Option<u32>| move |e: phat_evm::Error| (index, format!("{e:?}"));
            let rpc = Rpc::new(&self.config.rpc_url);
            let anchor = Address::from(self.config.anchor);
            let me = Signer::contract();
            let confirmed = rpc
                .transaction_count(me.address(), BlockTag::Latest)
                .map_err(eth(None))?;
            let pending = rpc
                .transaction_count(me.address(), BlockTag::Pending)
                .map_err(eth(None))?;
            if pending > confirmed {
                return Ok(Outcome::Pending { nonce: confirmed });
            }
            let head = read_u32(&rpc, anchor, b"q/_head").map_err(eth(None))?;
            let tail = read_u32(&rpc, anchor, b"q/_tail").map_err(eth(None))?;
            if head >= tail {
                return Ok(Outcome::Idle { head });
            }
            let index = Some(head);
            let request = get_storage(&rpc, anchor, &queue_key(head)).map_err(eth(index))?;
            let script = self
                .script()
                .ok_or((index, String::from("no script was set")))?;
            let args = vec![
                format!("0x{}", hex(&request)),
                String::from_utf8_lossy(&self.secrets).into_owned(),
            ];
            let output = match phat_ink::js_eval(vec![JsCode::Source(script)], args) {
                JsValue::String(s) => {
                    let digits = s.strip_prefix("0x").unwrap_or(&s);
                    unhex(digits).ok_or((
                        index,
                        String::from(
                            "InvalidJsOutput: the script returned a string that is not hex",
                        ),
                    ))?
                }
                JsValue::Bytes(b) => b,
                JsValue::Undefined | JsValue::Null => Vec::new(),
                JsValue::Other(v) => {
                    return Err((index, format!("JsError: the script returned {v}")))
                }
                JsValue::Exception(e) => return Err((index, format!("JsError: {e}"))),
            };
            if output.len() > MAX_OUTPUT {
                return Err((
                    index,
                    format!("the answer is {} bytes, over {MAX_OUTPUT}", output.len()),
                ));
            }
            let call = rollup_call(head, output);
            let gas_limit = if self.config.gas_limit > 0 {
                self.config.gas_limit
            } else {
                // A revert here (the head moved, the attestor lacks the role or funds) is
                // reported, and nothing is sent.
                let estimate = rpc
                    .estimate_gas(me.address(), anchor, &call, U256::ZERO)
                    .map_err(eth(index))?;
                estimate.saturating_mul(5) / 4
            };
            let fees = rpc.suggest_fees().map_err(eth(index))?;
            let tx = Eip1559 {
                chain_id: self.config.chain_id,
                nonce: confirmed,
                gas_limit,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                to: anchor,
                value: U256::ZERO,
                input: call,
            };
            let hash = rpc.send_idempotent(&me.sign(&tx)).map_err(eth(index))?;
            Ok(Outcome::Answered {
                index: head,
                tx: hash.0,
            })
        }

        /// Records what `answer` did on `tick` (the job's handler: the cluster only).
        #[ink(message)]
        pub fn record(&mut self, tick: u64, output: Vec<u8>) -> Result<(), Error> {
            if self.env().caller() != phat_ink::trigger_caller(b"job") {
                return Err(Error::NotTheCluster);
            }
            self.status.last_tick = tick;
            let outcome = match <Result<Outcome, ink::LangError> as ink::scale::Decode>::decode(
                &mut &output[..],
            ) {
                Ok(Ok(o)) => o,
                _ => Outcome::Failed {
                    index: None,
                    error: String::from("the job's output does not decode"),
                },
            };
            match outcome {
                Outcome::Answered { index, tx } => {
                    self.status.answered = self.status.answered.saturating_add(1);
                    self.status.last_answer = Some((index, tx));
                    self.status.failures = 0;
                    self.status.retry_after_ms = 0;
                    self.env().emit_event(Answered { index, tx });
                }
                Outcome::Failed { index, error } => {
                    self.status.failures = self.status.failures.saturating_add(1);
                    let pause = 1_000u64
                        .saturating_mul(1 << self.status.failures.min(7).saturating_sub(1))
                        .min(MAX_BACKOFF_MS);
                    self.status.retry_after_ms = self.env().block_timestamp().saturating_add(pause);
                    self.status.last_error = Some((index, error.clone()));
                    self.env().emit_event(Failed { index, error });
                }
                Outcome::Idle { .. }
                | Outcome::Pending { .. }
                | Outcome::Backoff { .. }
                | Outcome::Paused { .. } => {}
            }
            Ok(())
        }
    }

    /// The anchor's key of queue item `index`: `"q/" ‖ abi.encode(uint32 index)`.
    pub fn queue_key(index: u32) -> Vec<u8> {
        let mut key = b"q/".to_vec();
        key.extend_from_slice(&U256::from(index).to_be_bytes::<32>());
        key
    }

    /// `rollupU256CondEq([q/_head], [head], [], [], [0x00 ‖ output, 0x01 ‖ abi(head + 1)])`.
    pub fn rollup_call(head: u32, output: Vec<u8>) -> Vec<u8> {
        let word = |n: u32| U256::from(n).to_be_bytes::<32>().to_vec();
        let mut reply = vec![0u8];
        reply.extend_from_slice(&output);
        let mut pop = vec![1u8];
        pop.extend_from_slice(&word(head.saturating_add(1)));
        IPhatRollupAnchor::rollupU256CondEqCall {
            condKeys: vec![b"q/_head".to_vec().into()],
            condValues: vec![word(head).into()],
            updateKeys: Vec::new(),
            updateValues: Vec::new(),
            actions: vec![reply.into(), pop.into()],
        }
        .abi_encode()
    }

    fn get_storage(rpc: &Rpc, anchor: Address, key: &[u8]) -> Result<Vec<u8>, phat_evm::Error> {
        let call = IPhatRollupAnchor::getStorageCall {
            key: key.to_vec().into(),
        };
        Ok(rpc.call_sol(anchor, &call)?.to_vec())
    }

    /// A `uint32` the anchor keeps ABI-encoded (an empty value reads 0).
    fn read_u32(rpc: &Rpc, anchor: Address, key: &[u8]) -> Result<u32, phat_evm::Error> {
        let raw = get_storage(rpc, anchor, key)?;
        if raw.is_empty() {
            return Ok(0);
        }
        let n = <U256 as SolValue>::abi_decode(&raw)
            .map_err(|e| phat_evm::Error::Decode(e.to_string()))?;
        u32::try_from(n)
            .map_err(|_| phat_evm::Error::Decode(format!("{key:?} holds {n}, not a u32")))
    }

    fn hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 15) as usize] as char);
        }
        s
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        s.as_bytes()
            .chunks(2)
            .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_rollup_call_answers_the_head_once_and_pops_it() {
            let call = rollup_call(7, vec![0xab, 0xcd]);
            let decoded =
                IPhatRollupAnchor::rollupU256CondEqCall::abi_decode(&call).expect("decodes");
            assert_eq!(decoded.condKeys[0].as_ref(), b"q/_head");
            assert_eq!(
                decoded.condValues[0].as_ref(),
                U256::from(7).to_be_bytes::<32>()
            );
            assert!(decoded.updateKeys.is_empty() && decoded.updateValues.is_empty());
            assert_eq!(decoded.actions[0].as_ref(), [0u8, 0xab, 0xcd]);
            let mut pop = vec![1u8];
            pop.extend_from_slice(&U256::from(8).to_be_bytes::<32>());
            assert_eq!(decoded.actions[1].as_ref(), &pop[..]);
            assert_eq!(&queue_key(1)[..2], b"q/");
            assert_eq!(queue_key(1).len(), 34);
            assert_eq!(queue_key(1)[33], 1);
            assert_eq!(unhex("0aFf"), Some(vec![10, 255]));
            assert_eq!(unhex("0g"), None);
            assert_eq!(hex(&[0, 171]), "00ab");
        }

        fn local_config() -> Config {
            Config {
                rpc_url: "http://127.0.0.1:8545".into(),
                chain_id: 31337,
                anchor: [1; 20],
                gas_limit: 0,
            }
        }

        #[ink::test]
        fn only_the_owner_sets_the_script_and_it_must_be_whole() {
            let mut f = PhatFunction::new(local_config());
            assert_eq!(f.put_chunk(0, b"scriptOutput = ".to_vec()), Ok(()));
            assert_eq!(f.set_script(2), Err(Error::Incomplete));
            assert_eq!(f.put_chunk(1, b"'0x01'".to_vec()), Ok(()));
            assert_eq!(f.put_chunk(MAX_CHUNKS, Vec::new()), Err(Error::TooLarge));
            assert_eq!(f.put_chunk(0, vec![0; MAX_CHUNK + 1]), Err(Error::TooLarge));
            assert_eq!(f.set_script(2), Ok(1));
            assert_eq!(f.script().as_deref(), Some("scriptOutput = '0x01'"));
            assert_eq!(f.script_info(), (1, 21));
            assert_eq!(
                f.set_secrets(vec![0; MAX_SECRETS + 1]),
                Err(Error::TooLarge)
            );
            let bob = ink::env::test::default_accounts::<ink::env::DefaultEnvironment>().bob;
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(bob);
            assert_eq!(f.put_chunk(0, Vec::new()), Err(Error::NotOwner));
            assert_eq!(f.set_script(1), Err(Error::NotOwner));
            assert_eq!(f.set_secrets(Vec::new()), Err(Error::NotOwner));
            // Only the cluster records outcomes.
            assert_eq!(f.record(1, Vec::new()), Err(Error::NotTheCluster));
        }

        #[ink::test]
        fn failures_back_off_and_an_answer_resets_them() {
            let mut f = PhatFunction::new(local_config());
            ink::env::test::set_caller::<ink::env::DefaultEnvironment>(phat_ink::trigger_caller(
                b"job",
            ));
            let failed = |i| {
                ink::scale::Encode::encode(&Ok::<_, ink::LangError>(Outcome::Failed {
                    index: Some(i),
                    error: "JsError: boom".into(),
                }))
            };
            ink::env::test::set_block_timestamp::<ink::env::DefaultEnvironment>(10_000);
            f.record(1, failed(3)).unwrap();
            assert_eq!(f.status().retry_after_ms, 11_000);
            f.record(2, failed(3)).unwrap();
            assert_eq!(f.status().retry_after_ms, 12_000);
            for t in 3..20 {
                f.record(t, failed(3)).unwrap();
            }
            assert_eq!(f.status().retry_after_ms, 10_000 + MAX_BACKOFF_MS);
            assert_eq!(
                f.answer(),
                Outcome::Backoff {
                    until_ms: 10_000 + MAX_BACKOFF_MS
                }
            );
            // Past the last failure allowed: stopped, whatever the time, until a change.
            f.record(20, failed(3)).unwrap();
            ink::env::test::set_block_timestamp::<ink::env::DefaultEnvironment>(u64::MAX);
            assert_eq!(
                f.answer(),
                Outcome::Paused {
                    failures: MAX_FAILURES
                }
            );
            assert_eq!(
                f.status().last_error,
                Some((Some(3), "JsError: boom".into()))
            );
            let answered =
                ink::scale::Encode::encode(&Ok::<_, ink::LangError>(Outcome::Answered {
                    index: 3,
                    tx: [9; 32],
                }));
            f.record(21, answered).unwrap();
            let s = f.status();
            assert_eq!(
                (s.answered, s.failures, s.last_answer),
                (1, 0, Some((3, [9; 32])))
            );
            assert_eq!(s.last_tick, 21);
        }
    }
}
