//! A compute-heavy contract: runs `phat_compute_kernel::mix`, to compare with native speed.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod compute {
    /// No state is needed.
    #[ink(storage)]
    #[derive(Default)]
    pub struct Compute {}

    impl Compute {
        /// Creates the contract.
        #[ink(constructor)]
        pub fn new() -> Self {
            Self {}
        }

        /// Runs `rounds` rounds of the mixing kernel from `seed`.
        #[ink(message)]
        pub fn mix(&self, rounds: u32, seed: u64) -> u64 {
            phat_compute_kernel::mix(rounds, seed)
        }

        /// Hashes `data` `rounds` times with blake2-256 through the host.
        #[ink(message)]
        pub fn hash_chain(&self, rounds: u32, data: [u8; 32]) -> [u8; 32] {
            let mut h = data;
            for _ in 0..rounds {
                h = self.env().hash_bytes::<ink::env::hash::Blake2x256>(&h);
            }
            h
        }
    }
}
