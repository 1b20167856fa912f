//! Panics with a message on bad input, to show `phat build --debug-output`: built with debug
//! output, the `panicked` error of `phat tx` carries the assert's message.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod panic_demo {
    /// The largest amount `spend` accepts.
    pub const LIMIT: u64 = 100;

    /// The contract's storage: the total spent so far.
    #[ink(storage)]
    pub struct PanicDemo {
        total: u64,
    }

    impl PanicDemo {
        /// Starts with nothing spent.
        #[ink(constructor)]
        pub fn new() -> Self {
            Self { total: 0 }
        }

        /// Adds `amount` to the total; panics when `amount` is over [`LIMIT`].
        #[ink(message)]
        pub fn spend(&mut self, amount: u64) -> u64 {
            assert!(amount <= LIMIT, "amount {amount} is over the limit");
            self.total = self.total.saturating_add(amount);
            self.total
        }

        /// Returns the total spent.
        #[ink(message)]
        pub fn total(&self) -> u64 {
            self.total
        }
    }

    impl Default for PanicDemo {
        fn default() -> Self {
            Self::new()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[ink::test]
        fn spends_up_to_the_limit() {
            let mut c = PanicDemo::new();
            assert_eq!(c.spend(40), 40);
            assert_eq!(c.spend(LIMIT), 140);
            assert_eq!(c.total(), 140);
        }

        #[ink::test]
        #[should_panic(expected = "amount 101 is over the limit")]
        fn panics_over_the_limit() {
            PanicDemo::new().spend(LIMIT + 1);
        }
    }
}
