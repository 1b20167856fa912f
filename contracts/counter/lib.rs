//! A counter that other contracts instantiate and call (see `incrementer`).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

pub use self::counter::{Counter, CounterRef};

#[ink::contract]
mod counter {
    /// The counter's storage.
    #[ink(storage)]
    pub struct Counter {
        value: u64,
    }

    /// Emitted on every increment.
    #[ink(event)]
    pub struct Incremented {
        /// Who called `inc` (a contract, when called through `incrementer`).
        #[ink(topic)]
        by: AccountId,
        /// The value after the increment.
        value: u64,
    }

    impl Counter {
        /// Starts counting at `start`.
        #[ink(constructor)]
        pub fn new(start: u64) -> Self {
            Self { value: start }
        }

        /// Adds `by` and returns the new value.
        #[ink(message)]
        pub fn inc(&mut self, by: u64) -> u64 {
            self.value = self.value.saturating_add(by);
            self.env().emit_event(Incremented {
                by: self.env().caller(),
                value: self.value,
            });
            self.value
        }

        /// Returns the current value.
        #[ink(message)]
        pub fn get(&self) -> u64 {
            self.value
        }

        /// Returns who called this message (to check the caller seen in nested calls).
        #[ink(message)]
        pub fn caller(&self) -> AccountId {
            self.env().caller()
        }
    }
}
