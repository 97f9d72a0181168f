//! Keywarden's rate limiter on Redis, for clusters of nodes that must share one budget per
//! counter.
//!
//! [`RedisLimiter`] implements the core's [`Limiter`](keywarden_core::ratelimit::Limiter) with
//! one atomic Lua script per call; [`ResilientLimiter`] wraps it and decides by a
//! [`FaultMode`] while Redis cannot be reached. Needs Redis 5 or later (scripts that read
//! `TIME` and then write).
//!
//! Keys are laid out for Redis Cluster (every key a call touches shares one hash slot, and the
//! script receives them all in `KEYS`), but the connection is to one Redis endpoint: a
//! standalone server, a Sentinel-managed primary behind a stable address, or a cluster proxy.

mod connection;
mod error;
mod fault_mode;
mod limiter;
mod resilient;
mod settings;

pub use error::RedisCallError;
pub use fault_mode::{FaultMode, FaultModeError};
pub use limiter::RedisLimiter;
pub use resilient::{LimiterStatus, ResilientLimiter, ResilientLimiterSettings};
pub use settings::RedisLimiterSettings;
