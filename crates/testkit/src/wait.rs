//! Polling: check a condition every so often until it holds or a deadline passes.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// What a polled condition yields: `true`, `Some(value)` or `Ok(value)` once it holds (an
/// `Err` says what was seen instead, for the failure message).
pub trait Check {
    /// What the condition gives once it holds.
    type Value;
    /// The value once the condition holds, else what was seen instead, if anything.
    fn held(self) -> Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();
    fn held(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Check for Result<T, E> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Checks `check` every `every` until it holds (its value) or `timeout` passed (what it last
/// saw instead, if anything). It checks once more when the deadline has passed.
async fn poll<C: Check>(
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> Result<C::Value, Option<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await.held() {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(every).await;
    }
}

/// Checks `check` every `every` until it holds; panics after `timeout` naming `what` was
/// awaited (and what the check last saw instead, when it says).
pub async fn eventually<C: Check>(
    what: impl Display,
    timeout: Duration,
    every: Duration,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    poll(timeout, every, check)
        .await
        .unwrap_or_else(|last| timed_out(&what, timeout, last))
}

/// Checks `check` every `every` until it holds; `None` when `timeout` passed first.
pub async fn poll_until<C: Check>(
    timeout: Duration,
    every: Duration,
    check: impl AsyncFnMut() -> C,
) -> Option<C::Value> {
    poll(timeout, every, check).await.ok()
}

/// [`eventually`] for a synchronous caller: sleeps the thread between checks.
pub fn eventually_blocking<C: Check>(
    what: impl Display,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> C,
) -> C::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().held() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            timed_out(&what, timeout, last)
        }
        std::thread::sleep(every);
    }
}

fn timed_out(what: &dyn Display, timeout: Duration, last: Option<String>) -> ! {
    match last {
        Some(last) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn eventually_returns_what_the_check_gives_once_it_holds() {
        let mut n = 0;
        let got = eventually("n to reach 3", Duration::from_secs(5), MS, async || {
            n += 1;
            (n >= 3).then_some(n)
        })
        .await;
        assert_eq!(got, 3);
        let mut tries = 0;
        eventually("a bool", Duration::from_secs(5), MS, async || {
            tries += 1;
            tries == 2
        })
        .await;
        let ok: u8 = eventually("a result", Duration::from_secs(5), MS, async || {
            Ok::<_, String>(7)
        })
        .await;
        assert_eq!(ok, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the answer; last seen: still 42")]
    async fn eventually_names_what_it_awaited_and_what_it_last_saw() {
        eventually("the answer", 20 * MS, MS, async || Err::<(), _>("still 42")).await;
    }

    #[tokio::test]
    async fn poll_until_gives_up_after_its_timeout() {
        let started = Instant::now();
        assert_eq!(poll_until(30 * MS, MS, async || false).await, None);
        assert!(started.elapsed() >= 30 * MS);
    }

    #[test]
    #[should_panic(expected = "timed out after 10ms waiting for a file")]
    fn eventually_blocking_panics_after_its_timeout() {
        eventually_blocking("a file", 10 * MS, MS, || None::<()>);
    }
}
