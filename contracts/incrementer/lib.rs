//! A contract that instantiates a `counter` and calls it: cross-contract instantiate and call.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod incrementer {
    use counter::CounterRef;

    /// Holds a reference to the counter it created.
    #[ink(storage)]
    pub struct Incrementer {
        counter: CounterRef,
        calls: u32,
    }

    /// Errors returned by the incrementer.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Returned on purpose by `inc_then_fail`, after the nested call succeeded.
        Refused,
    }

    impl Incrementer {
        /// Instantiates a new counter from `counter_code_hash`, starting at `start`.
        #[ink(constructor)]
        pub fn new(counter_code_hash: Hash, start: u64) -> Self {
            let counter = CounterRef::new(start)
                .code_hash(counter_code_hash)
                .endowment(0)
                .salt_bytes(&start.to_le_bytes())
                .instantiate();
            Self { counter, calls: 0 }
        }

        /// Increments the counter through a cross-contract call and returns its new value.
        #[ink(message)]
        pub fn inc(&mut self, by: u64) -> u64 {
            self.calls += 1;
            self.counter.inc(by)
        }

        /// Increments the counter, then fails: every write, the nested one included, rolls back.
        #[ink(message)]
        pub fn inc_then_fail(&mut self, by: u64) -> Result<u64, Error> {
            self.calls += 1;
            let _ = self.counter.inc(by);
            Err(Error::Refused)
        }

        /// Reads the counter through a cross-contract call.
        #[ink(message)]
        pub fn get(&self) -> u64 {
            self.counter.get()
        }

        /// How many increments went through this contract.
        #[ink(message)]
        pub fn calls(&self) -> u32 {
            self.calls
        }

        /// The counter's account id.
        #[ink(message)]
        pub fn counter(&self) -> AccountId {
            use ink::ToAccountId;
            self.counter.to_account_id()
        }

        /// Who the counter sees as its caller (this contract).
        #[ink(message)]
        pub fn counter_sees_caller(&self) -> AccountId {
            self.counter.caller()
        }
    }
}
