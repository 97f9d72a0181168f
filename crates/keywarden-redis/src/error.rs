//! Why a call to Redis did not give an answer.

use std::time::Duration;

/// A Redis call that failed; the limiters hand it on inside
/// [`LimiterError::Backend`](keywarden_core::ratelimit::LimiterError::Backend).
#[derive(Debug, thiserror::Error)]
pub enum RedisCallError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis call failed")]
    Redis(#[from] redis::RedisError),
    /// The script answered something it never sends: a script of another version, say.
    #[error("unexpected reply from the rate-limit script: {0}")]
    Reply(&'static str),
}
