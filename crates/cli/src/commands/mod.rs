//! Commands that talk to a cluster through `phat-client`, one module each: deploy, query,
//! tx, logs, info, keys, cluster, schedule, subscribe, job, triggers, transfer and faucet; with what they share (`ctx`: the endpoint, trust flags and output;
//! `common`: contract ids, metadata, call encoding).

pub mod cluster;
mod common;
mod ctx;
pub mod deploy;
pub mod info;
pub mod job;
pub mod keys;
pub mod logs;
pub mod query;
pub mod schedule;
pub mod subscribe;
pub mod transfer;
pub mod tx;

pub use ctx::{set_trust, Ctx, TrustArgs};
pub use deploy::{deploy_code, DeployRequest};
pub use schedule::parse_period;
