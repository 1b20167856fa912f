//! Hashes and signatures: `hash_*`, `ecdsa_recover`, `ecdsa_to_eth_address`, `sr25519_verify`.

use phat_primitives::{blake2_128, blake2_256};
use sha2::Digest as _;

use super::{charge_base, code, gas, read, read_array, write, HostFn, C, R};

/// The hashing and signature host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    // --- hashing
    "seal0", "hash_sha2_256",        Prefixed, seal0_hash_sha2_256;
    "seal0", "hash_keccak_256",      Prefixed, seal0_hash_keccak_256;
    "seal0", "hash_blake2_256",      Prefixed, seal0_hash_blake2_256;
    "seal0", "hash_blake2_128",      Prefixed, seal0_hash_blake2_128;
    // --- signatures
    "seal0", "ecdsa_recover",        Prefixed, seal0_ecdsa_recover;
    "seal0", "ecdsa_to_eth_address", Prefixed, seal0_ecdsa_to_eth_address;
    "seal0", "sr25519_verify",       Plain,    seal0_sr25519_verify;
};

// ---------------------------------------------------------------------------------------------
// Hashing.

fn seal0_hash_sha2_256(mut c: C<'_>, i: u32, il: u32, o: u32) -> R<()> {
    hash_impl(&mut c, i, il, o, sha2_256)
}

fn seal0_hash_keccak_256(mut c: C<'_>, i: u32, il: u32, o: u32) -> R<()> {
    hash_impl(&mut c, i, il, o, keccak_256)
}

fn seal0_hash_blake2_256(mut c: C<'_>, i: u32, il: u32, o: u32) -> R<()> {
    hash_impl(&mut c, i, il, o, blake2_256)
}

fn seal0_hash_blake2_128(mut c: C<'_>, i: u32, il: u32, o: u32) -> R<()> {
    hash_impl(&mut c, i, il, o, blake2_128)
}

fn hash_impl<const N: usize>(
    c: &mut C<'_>,
    input_ptr: u32,
    input_len: u32,
    output_ptr: u32,
    f: fn(&[u8]) -> [u8; N],
) -> R<()> {
    let g = gas(c);
    charge_base(c, g.hash, input_len)?;
    let input = read(c, input_ptr, input_len, "hash input")?;
    write(c, output_ptr, &f(&input), "hash output")
}

fn sha2_256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

fn keccak_256(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

// ---------------------------------------------------------------------------------------------
// Signatures.

fn seal0_ecdsa_recover(mut c: C<'_>, s: u32, m: u32, o: u32) -> R<u32> {
    let g = gas(&mut c);
    charge_base(&mut c, g.signature, 0)?;
    let sig = read_array::<65>(&mut c, s, "ecdsa_recover signature")?;
    let msg = read_array::<32>(&mut c, m, "ecdsa_recover message")?;
    match crate::crypto::ecdsa_recover(&sig, &msg) {
        Some(key) => {
            write(&mut c, o, &key, "ecdsa_recover output")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::ECDSA_RECOVERY_FAILED),
    }
}

fn seal0_ecdsa_to_eth_address(mut c: C<'_>, k: u32, o: u32) -> R<u32> {
    let g = gas(&mut c);
    charge_base(&mut c, g.signature, 0)?;
    let key = read_array::<33>(&mut c, k, "ecdsa_to_eth_address key")?;
    match crate::crypto::ecdsa_to_eth_address(&key) {
        Some(addr) => {
            write(&mut c, o, &addr, "ecdsa_to_eth_address output")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::ECDSA_RECOVERY_FAILED),
    }
}

fn seal0_sr25519_verify(mut c: C<'_>, s: u32, pk: u32, ml: u32, m: u32) -> R<u32> {
    let g = gas(&mut c);
    charge_base(&mut c, g.signature, ml)?;
    let sig = read_array::<64>(&mut c, s, "sr25519_verify signature")?;
    let key = read_array::<32>(&mut c, pk, "sr25519_verify key")?;
    let msg = read(&mut c, m, ml, "sr25519_verify message")?;
    Ok(if crate::crypto::sr25519_verify(&sig, &msg, &key) {
        code::SUCCESS
    } else {
        code::SR25519_VERIFY_FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(
            hex::encode(sha2_256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(keccak_256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
