//! An integer-mixing loop compiled both into the `compute` contract and natively.
//!
//! The benchmark in `crates/runtime/benches` runs the same source in both forms and prints the
//! ratio, which is what "close to native speed" means for phat.
#![no_std]

/// Runs `rounds` rounds of xorshift mixing from `seed` and returns the accumulated value.
pub fn mix(rounds: u32, seed: u64) -> u64 {
    let mut x = seed | 1;
    let mut acc = 0u64;
    for i in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc
            .wrapping_add(x.wrapping_mul(u64::from(i) | 1))
            .rotate_left(5);
    }
    acc
}
