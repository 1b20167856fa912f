//! Events: `deposit_event`.

use phat_primitives::{Event, Gas, Hash};

use super::{at_most, charge, charge_base, fail, gas, read, read_as, HostFn, C, R};
use crate::error::ExecError;

/// The event host functions, linked by [`super::define`].
pub(super) const FUNCTIONS: &[HostFn] = host_fns! {
    "seal0", "deposit_event", Prefixed, seal0_deposit_event;
};

fn seal0_deposit_event(mut c: C<'_>, t: u32, tl: u32, d: u32, dl: u32) -> R<()> {
    deposit_event(&mut c, t, tl, d, dl)
}

fn deposit_event(
    c: &mut C<'_>,
    topics_ptr: u32,
    topics_len: u32,
    data_ptr: u32,
    data_len: u32,
) -> R<()> {
    let g = gas(c);
    charge_base(c, g.event, data_len.saturating_add(topics_len))?;
    let limits = c.data_mut().tx().config().limits.clone();
    at_most(c, "event", data_len, limits.max_event_len)?;
    // A SCALE Vec<[u8; 32]> of at most `max_event_topics` entries fits in this many bytes.
    let max_topic_bytes = 5 + 32 * limits.max_event_topics;
    if topics_len > max_topic_bytes {
        return fail(c, ExecError::TooManyTopics((topics_len / 32) as usize));
    }
    let topics: Vec<Hash> = if topics_len == 0 {
        Vec::new()
    } else {
        read_as(c, topics_ptr, topics_len, "event topics")?
    };
    if topics.len() > limits.max_event_topics as usize {
        return fail(c, ExecError::TooManyTopics(topics.len()));
    }
    charge(
        c,
        g.event_topic * topics.len() as Gas + g.event_byte * Gas::from(data_len),
    )?;
    let bytes = data_len as usize + 32 * topics.len();
    if let Err(e) = c.data_mut().tx().account_event(bytes) {
        return fail(c, e);
    }
    let data = read(c, data_ptr, data_len, "event data")?;
    let contract = c.data().address;
    c.data_mut().tx().events.push(Event {
        contract,
        topics,
        data,
    });
    Ok(())
}
