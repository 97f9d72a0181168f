//! How the rate limiter decided, counted for `/metrics`: calls that passed, calls that were
//! limited, and calls the limiter could not decide.

use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_core::ratelimit::{LimitOutcome, LimiterError};

#[derive(Debug, Default)]
pub struct LimitCounts {
    passed: AtomicU64,
    denied: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of [`LimitCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDecisions {
    pub passed: u64,
    pub denied: u64,
    pub failed: u64,
}

impl LimitCounts {
    /// Counts one limiter call (all the limits of one request) and hands its result back.
    pub fn count(
        &self,
        result: Result<LimitOutcome, LimiterError>,
    ) -> Result<LimitOutcome, LimiterError> {
        let counter = match &result {
            Ok(outcome) if outcome.passed => &self.passed,
            Ok(_) => &self.denied,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    pub fn snapshot(&self) -> LimitDecisions {
        LimitDecisions {
            passed: self.passed.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
