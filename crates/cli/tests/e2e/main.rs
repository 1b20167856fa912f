//! The end-to-end tests of `phat`: real `phat` processes on 127.0.0.1, real files. One test
//! binary (one link of the whole stack), one module per area, with the helpers of
//! `phat-testkit`.
//!
//! The tests that take more than about 20 s are in a `slow` module of their area
//! (`<area>::slow::<test>`), so a test filter picks the fast or the slow ones:
//! `cargo test -p phat-cli --features testing --test e2e -- --skip slow::` runs the fast ones,
//! `... -- slow::` the slow ones. `replica` needs `phat` built with `--features testing`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod certificates;
mod cluster;
mod confidential;
mod crash;
mod debug_output;
mod ethereum;
mod functions;
mod gateway;
mod hostile;
mod jobs;
mod nats;
mod oracle;
mod pink;
mod readme;
#[cfg(feature = "testing")]
mod replica;
mod rotation;
mod subscriptions;
mod tee;
mod triggers;
