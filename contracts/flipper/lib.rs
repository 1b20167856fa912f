//! The smallest useful contract: one boolean that can be flipped.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod flipper {
    /// The contract's storage: a single boolean.
    #[ink(storage)]
    pub struct Flipper {
        value: bool,
    }

    impl Flipper {
        /// Starts with `init_value`.
        #[ink(constructor)]
        pub fn new(init_value: bool) -> Self {
            Self { value: init_value }
        }

        /// Starts with `false`.
        #[ink(constructor)]
        pub fn default() -> Self {
            Self::new(false)
        }

        /// Flips the value.
        #[ink(message)]
        pub fn flip(&mut self) {
            self.value = !self.value;
        }

        /// Returns the value.
        #[ink(message)]
        pub fn get(&self) -> bool {
            self.value
        }
    }
}
