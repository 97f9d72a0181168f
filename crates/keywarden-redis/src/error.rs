//! Why a call to Redis did not give an answer.

use std::time::Duration;

/// A Redis call that failed; the limiters hand it on inside
/// [`LimiterError::Backend`](keywarden_core::ratelimit::LimiterError::Backend).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisCallError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis call failed")]
    Redis(#[from] redis::RedisError),
    /// The script answered something it never sends: a script of another version, say.
    #[error("unexpected reply from the rate-limit script: {0}")]
    Reply(&'static str),
    /// The call's counters lie in more than one Redis Cluster hash slot, so no one script can
    /// decide them all at once; refused before anything is sent, on every deployment. Counters
    /// of one scope always share a slot: only a call that mixes scopes, or counters without a
    /// scope, can be refused.
    #[error("the counters of one rate-limit call lie in {slots} Redis Cluster hash slots, not one")]
    CrossSlot { slots: usize },
}

impl RedisCallError {
    /// Whether this error is about the call, not about Redis: another call may well succeed,
    /// so it says nothing about whether Redis answers.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, Self::CrossSlot { .. })
    }
}
