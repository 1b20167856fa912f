//! `setTimeout` / `clearTimeout`, and the loop that runs promise jobs and due timers after the
//! scripts, so an `async main` finishes before its result is read. Bounded: at most
//! [`MAX_TIMERS`] pending, and nothing runs past the call's deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::function::{Opt, Rest};
use rquickjs::{Context, Ctx, Exception, Function, Persistent, Runtime, Value};

/// Most timers pending at once (more throw a `RangeError`).
pub const MAX_TIMERS: usize = 1_000;

/// One pending timer.
struct Timer {
    id: u32,
    due: Instant,
    func: Persistent<Function<'static>>,
    args: Vec<Persistent<Value<'static>>>,
}

/// The pending timers of one call.
#[derive(Default)]
pub(crate) struct Timers {
    next_id: u32,
    pending: Vec<Timer>,
}

impl Timers {
    /// The timer due first (the earliest set first among equals).
    fn take_next(&mut self) -> Option<Timer> {
        let (i, _) = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| (t.due, t.id))?;
        Some(self.pending.remove(i))
    }

    /// Drops every pending timer (before the runtime goes: they hold its values).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Installs `setTimeout(fn, ms, ...args)` and `clearTimeout(id)`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, timers: Rc<RefCell<Timers>>) -> rquickjs::Result<()> {
    let t = timers.clone();
    let set = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>,
              func: Function<'js>,
              ms: Opt<f64>,
              args: Rest<Value<'js>>|
              -> rquickjs::Result<u32> {
            let mut timers = t.borrow_mut();
            if timers.pending.len() >= MAX_TIMERS {
                return Err(Exception::throw_range(
                    &ctx,
                    &format!("at most {MAX_TIMERS} timers may be pending"),
                ));
            }
            let ms = ms.0.filter(|m| m.is_finite() && *m > 0.0).unwrap_or(0.0);
            // Anything past an hour is past every call's deadline anyway.
            let delay = Duration::from_millis(ms.min(3_600_000.0) as u64);
            timers.next_id = timers.next_id.wrapping_add(1);
            let id = timers.next_id;
            timers.pending.push(Timer {
                id,
                due: Instant::now() + delay,
                func: Persistent::save(&ctx, func),
                args: args
                    .0
                    .into_iter()
                    .map(|v| Persistent::save(&ctx, v))
                    .collect(),
            });
            Ok(id)
        },
    )?;
    let clear = Function::new(ctx.clone(), move |id: Opt<u32>| {
        if let Some(id) = id.0 {
            timers.borrow_mut().pending.retain(|t| t.id != id);
        }
    })?;
    ctx.globals().set("setTimeout", set)?;
    ctx.globals().set("clearTimeout", clear)
}

/// Runs promise jobs, then each due timer in turn (waiting for it), until nothing is left;
/// `Err` with what was thrown, or why it stopped.
pub(crate) fn drive(
    runtime: &Runtime,
    context: &Context,
    timers: &Rc<RefCell<Timers>>,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        loop {
            match runtime.execute_pending_job() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(e.0.with(|ctx| crate::describe(&ctx, ctx.catch(), deadline))),
            }
        }
        let Some(timer) = timers.borrow_mut().take_next() else {
            return Ok(());
        };
        if timer.due > deadline {
            return Err("a timer is due after the call's time runs out".into());
        }
        let wait = timer.due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        context.with(|ctx| {
            let func = timer.func.restore(&ctx).map_err(|e| e.to_string())?;
            let args = timer
                .args
                .into_iter()
                .map(|a| a.restore(&ctx))
                .collect::<rquickjs::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            match func.call::<_, Value>((Rest(args),)) {
                Ok(_) => Ok(()),
                Err(rquickjs::Error::Exception) => {
                    Err(crate::describe(&ctx, ctx.catch(), deadline))
                }
                Err(e) => Err(e.to_string()),
            }
        })?;
    }
}
