//! How a [`RedisLimiter`](crate::RedisLimiter) talks to Redis: where its keys live and how long
//! it waits.

use std::time::Duration;

/// Settings of a [`RedisLimiter`](crate::RedisLimiter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLimiterSettings {
    /// The first part of every key the limiter writes (`<prefix>:rl2:…`), so that several
    /// deployments, or tests, can share one Redis without meeting. Without braces: they would
    /// take the place of the scope as the key's Redis Cluster hash tag.
    pub prefix: String,
    /// How long one call (a `limit`, a `refund`, a ping) may take, connecting included, before
    /// it fails: a hung Redis must not stall verification. On a cluster it bounds the call with
    /// its redirections and retries.
    pub timeout: Duration,
    /// How long establishing a connection may take when [`RedisLimiter::connect`] checks that
    /// Redis answers; longer than `timeout`, since it happens once at start.
    ///
    /// [`RedisLimiter::connect`]: crate::RedisLimiter::connect
    pub connect_timeout: Duration,
}

impl RedisLimiterSettings {
    pub const DEFAULT_PREFIX: &str = "kw";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
}

impl Default for RedisLimiterSettings {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}
