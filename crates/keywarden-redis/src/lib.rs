//! Keywarden's rate limiter on Redis, for clusters of nodes that must share one budget per
//! counter.
//!
//! [`RedisLimiter`] implements the core's [`Limiter`](keywarden_core::ratelimit::Limiter) with
//! an atomic Lua script that decides each call, concurrent calls together in one run;
//! [`ResilientLimiter`] wraps it and decides by a [`FaultMode`] while Redis cannot be reached.
//! Needs Redis 5 or later (scripts that read `TIME` and then write).
//!
//! Redis is one endpoint (`redis://`, `rediss://`: a standalone server, a Sentinel-managed
//! primary behind a stable address, or a cluster proxy) or a Redis Cluster
//! (`redis+cluster://host1:port1,host2:port2`, see [`RedisLimiter::connect`]), where the
//! `redis` crate's cluster client sends each call to the node that holds its slot and follows
//! the cluster as slots move.
//!
//! Every key a call touches shares one hash slot (keys are hash-tagged by the counters' scope,
//! the workspace) and the script receives them all in `KEYS`, so one call is decided
//! atomically by one script on one node, on a cluster as on one server. Calls made while
//! others are in flight share a script run, one after the other (on a cluster, only calls of
//! one slot). A call whose counters lie in several slots (only possible by mixing scopes or
//! counters without a scope) is refused with [`RedisCallError::CrossSlot`], on every
//! deployment, rather than split into per-slot scripts that would no longer be
//! all-or-nothing.

mod address;
mod batch;
mod connection;
mod error;
mod fault_mode;
mod limiter;
mod resilient;
mod settings;

pub use batch::BatchStats;
pub use error::RedisCallError;
pub use fault_mode::{FaultMode, FaultModeError};
pub use limiter::RedisLimiter;
pub use resilient::{LimiterStatus, ResilientLimiter, ResilientLimiterSettings};
pub use settings::RedisLimiterSettings;
