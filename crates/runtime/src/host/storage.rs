//! Contract storage: `set_storage`, `clear_storage`, `get_storage`, `contains_storage`,
//! `take_storage`.

use phat_primitives::{Gas, StateKey};

use super::{
    at_most, charge, charge_base, code, fail, gas, read, write_output, HostFn, C, R, SENTINEL,
};

/// The storage host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    "seal0", "set_storage",      Prefixed, seal0_set_storage;
    "seal1", "set_storage",      Prefixed, seal1_set_storage;
    "seal2", "set_storage",      Prefixed, seal2_set_storage;
    "seal0", "clear_storage",    Prefixed, seal0_clear_storage;
    "seal1", "clear_storage",    Prefixed, seal1_clear_storage;
    "seal0", "get_storage",      Prefixed, seal0_get_storage;
    "seal1", "get_storage",      Prefixed, seal1_get_storage;
    "seal0", "contains_storage", Prefixed, seal0_contains_storage;
    "seal1", "contains_storage", Prefixed, seal1_contains_storage;
    "seal0", "take_storage",     Prefixed, seal0_take_storage;
};

fn seal0_set_storage(mut c: C<'_>, k: u32, v: u32, vl: u32) -> R<()> {
    set_storage_impl(&mut c, k, None, v, vl).map(|_| ())
}

fn seal1_set_storage(mut c: C<'_>, k: u32, v: u32, vl: u32) -> R<u32> {
    set_storage_impl(&mut c, k, None, v, vl)
}

fn seal2_set_storage(mut c: C<'_>, k: u32, kl: u32, v: u32, vl: u32) -> R<u32> {
    set_storage_impl(&mut c, k, Some(kl), v, vl)
}

fn seal0_clear_storage(mut c: C<'_>, k: u32) -> R<()> {
    clear_storage_impl(&mut c, k, None).map(|_| ())
}

fn seal1_clear_storage(mut c: C<'_>, k: u32, kl: u32) -> R<u32> {
    clear_storage_impl(&mut c, k, Some(kl))
}

fn seal0_get_storage(mut c: C<'_>, k: u32, o: u32, ol: u32) -> R<u32> {
    get_storage_impl(&mut c, k, None, o, ol)
}

fn seal1_get_storage(mut c: C<'_>, k: u32, kl: u32, o: u32, ol: u32) -> R<u32> {
    get_storage_impl(&mut c, k, Some(kl), o, ol)
}

fn seal0_contains_storage(mut c: C<'_>, k: u32) -> R<u32> {
    contains_storage_impl(&mut c, k, None)
}

fn seal1_contains_storage(mut c: C<'_>, k: u32, kl: u32) -> R<u32> {
    contains_storage_impl(&mut c, k, Some(kl))
}

fn read_key(c: &mut C<'_>, ptr: u32, len: Option<u32>, what: &'static str) -> R<Vec<u8>> {
    let len = len.unwrap_or(32);
    let max = c.data_mut().tx().config().limits.max_storage_key_len;
    at_most(c, "storage key", len, max)?;
    read(c, ptr, len, what)
}

fn storage_key(c: &mut C<'_>, key: Vec<u8>) -> StateKey {
    StateKey::Storage(c.data().storage_id, key)
}

fn storage_get(c: &mut C<'_>, key: &StateKey) -> R<Option<Vec<u8>>> {
    match c.data_mut().tx().get(key) {
        Ok(v) => Ok(v),
        Err(e) => fail(c, e),
    }
}

fn set_storage_impl(
    c: &mut C<'_>,
    key_ptr: u32,
    key_len: Option<u32>,
    value_ptr: u32,
    value_len: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, value_len)?;
    let max = c.data_mut().tx().config().limits.max_storage_value_len;
    at_most(c, "storage value", value_len, max)?;
    let key = read_key(c, key_ptr, key_len, "set_storage")?;
    charge(
        c,
        g.storage_byte * (key.len() as Gas + Gas::from(value_len)),
    )?;
    let key = storage_key(c, key);
    let size = crate::state::Overlay::write_size(&key, value_len as usize);
    if let Err(e) = c.data_mut().tx().check_written(size) {
        return fail(c, e);
    }
    let value = read(c, value_ptr, value_len, "set_storage")?;
    let old = storage_get(c, &key)?;
    c.data_mut().tx().overlay.set(key, Some(value));
    Ok(old.map_or(SENTINEL, |v| v.len() as u32))
}

fn clear_storage_impl(c: &mut C<'_>, key_ptr: u32, key_len: Option<u32>) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, 0)?;
    let key = read_key(c, key_ptr, key_len, "clear_storage")?;
    let key = storage_key(c, key);
    let old = storage_get(c, &key)?;
    if old.is_some() {
        c.data_mut().tx().overlay.set(key, None);
    }
    Ok(old.map_or(SENTINEL, |v| v.len() as u32))
}

fn get_storage_impl(
    c: &mut C<'_>,
    key_ptr: u32,
    key_len: Option<u32>,
    out_ptr: u32,
    out_len_ptr: u32,
) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access, 0)?;
    let key = read_key(c, key_ptr, key_len, "get_storage")?;
    let key = storage_key(c, key);
    match storage_get(c, &key)? {
        Some(value) => {
            write_output(c, out_ptr, out_len_ptr, &value, false, "get_storage")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::KEY_NOT_FOUND),
    }
}

fn contains_storage_impl(c: &mut C<'_>, key_ptr: u32, key_len: Option<u32>) -> R<u32> {
    let g = gas(c);
    charge_base(c, g.storage_access, 0)?;
    let key = read_key(c, key_ptr, key_len, "contains_storage")?;
    let key = storage_key(c, key);
    Ok(storage_get(c, &key)?.map_or(SENTINEL, |v| v.len() as u32))
}

fn seal0_take_storage(
    mut c: C<'_>,
    key_ptr: u32,
    key_len: u32,
    out_ptr: u32,
    out_len_ptr: u32,
) -> R<u32> {
    let c = &mut c;
    let g = gas(c);
    charge_base(c, g.storage_access + g.storage_write, 0)?;
    let key = read_key(c, key_ptr, Some(key_len), "take_storage")?;
    let key = storage_key(c, key);
    match storage_get(c, &key)? {
        Some(value) => {
            c.data_mut().tx().overlay.set(key, None);
            write_output(c, out_ptr, out_len_ptr, &value, false, "take_storage")?;
            Ok(code::SUCCESS)
        }
        None => Ok(code::KEY_NOT_FOUND),
    }
}
