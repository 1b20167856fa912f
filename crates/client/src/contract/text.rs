//! The text form of primitive values (integers, `bool`, `str`, `char`), hex, lists, and the
//! byte reading the ink! 3 transcoder builds on.

use std::fmt;
use std::str::FromStr;

use parity_scale_codec::{Decode, Encode};

/// The width of an integer primitive named `p` whose first letter is `sign` (`u` or `i`).
pub(super) fn int_bits(p: &str, sign: char) -> Option<u32> {
    let bits = p.strip_prefix(sign)?.parse().ok()?;
    matches!(bits, 8 | 16 | 32 | 64 | 128).then_some(bits)
}

/// `text` as an integer (`_` separators allowed).
pub(super) fn parse_int<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    text.replace('_', "")
        .parse()
        .map_err(|e| format!("`{text}` is not a valid integer ({e})"))
}

/// SCALE encoding of `text` as a value of the primitive type `p`.
pub(super) fn encode_primitive(p: &str, text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    if let Some(bits) = int_bits(p, 'u') {
        let n: u128 = parse_int(trimmed)?;
        if bits < 128 && n >> bits != 0 {
            return Err(format!("{trimmed} does not fit in {p}"));
        }
        return Ok(n.to_le_bytes()[..bits as usize / 8].to_vec());
    }
    if let Some(bits) = int_bits(p, 'i') {
        let n: i128 = parse_int(trimmed)?;
        if bits < 128 && (n >= 1 << (bits - 1) || n < -(1 << (bits - 1))) {
            return Err(format!("{trimmed} does not fit in {p}"));
        }
        return Ok(n.to_le_bytes()[..bits as usize / 8].to_vec());
    }
    match p {
        "bool" => match trimmed {
            "true" => Ok(vec![1]),
            "false" => Ok(vec![0]),
            _ => Err(format!("`{trimmed}` is not `true` or `false`")),
        },
        "str" => {
            let s = match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(inner) => inner,
                None => text,
            };
            Ok(s.encode())
        }
        "char" => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(u32::from(c).encode()),
                _ => Err(format!("`{text}` is not a single character")),
            }
        }
        _ => Err(format!("unsupported argument type {p}")),
    }
}

/// Decodes a value of the primitive type `p` from `input` to text.
pub(super) fn decode_primitive(p: &str, input: &mut &[u8]) -> Result<String, String> {
    if let Some(bits) = int_bits(p, 'u') {
        let mut buf = [0u8; 16];
        buf[..bits as usize / 8].copy_from_slice(take(input, bits as usize / 8)?);
        return Ok(u128::from_le_bytes(buf).to_string());
    }
    if let Some(bits) = int_bits(p, 'i') {
        let bytes = take(input, bits as usize / 8)?;
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Ok(i128::from_le_bytes(buf).to_string());
    }
    match p {
        "bool" => match take(input, 1)?[0] {
            0 => Ok("false".into()),
            1 => Ok("true".into()),
            b => Err(format!("{b} is not a bool")),
        },
        "str" => String::decode(input).map_err(|e| e.to_string()),
        "char" => {
            let n = u32::decode(input).map_err(|e| e.to_string())?;
            char::from_u32(n)
                .map(|c| format!("{c:?}"))
                .ok_or_else(|| format!("{n} is not a char"))
        }
        "u256" | "i256" => Ok(format!("0x{}", hex::encode(take(input, 32)?))),
        _ => Err(format!("unsupported type {p}")),
    }
}

/// The next `n` bytes of `input`.
pub(super) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("{n} bytes needed, {} left", input.len()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// The next `N` bytes of `input`, as an array.
pub(super) fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
    let Some((head, rest)) = input.split_first_chunk::<N>() else {
        return Err(format!("{N} bytes needed, {} left", input.len()));
    };
    *input = rest;
    Ok(*head)
}

/// `0x`-prefixed hex as bytes.
pub(super) fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{text}` is not 0x-prefixed hex"))?;
    hex::decode(digits).map_err(|e| format!("`{text}` is not valid hex ({e})"))
}

/// `[a, b, c]` (or `a, b, c`) split at commas; items cannot hold commas.
pub(super) fn parse_list(text: &str) -> Result<Vec<&str>, String> {
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{text}` lacks a closing `]`"))?,
        None => text,
    };
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(inner.split(',').map(str::trim).collect())
}
