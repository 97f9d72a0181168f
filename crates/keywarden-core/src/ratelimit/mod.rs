//! Rate limits: the sliding-window algorithm, the `Limiter` trait and its in-process
//! implementation, and override matching.
//!
//! The algorithm is Unkey's, a sliding window approximated from two epoch-aligned fixed
//! windows, so the numbers a client sees (`remaining`, `reset`) are the ones Unkey would send.
//! Unlike Unkey, which decides from per-node counters and reconciles later, a [`Limiter`]
//! decides each call atomically: concurrent calls never admit more than the formula allows.

mod memory;
mod overrides;
mod window;

use async_trait::async_trait;

use crate::time::UnixMillis;

pub use memory::InMemoryLimiter;
pub use overrides::{OverrideSet, wildcard_matches};

/// A window length in ms; the wire allows 1000..=2_592_000_000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowDuration(u64);

/// Why a window length is outside what the wire allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be between {} and {} milliseconds",
    WindowDuration::MIN_MS,
    WindowDuration::MAX_MS
)]
pub struct DurationError;

impl WindowDuration {
    pub const MIN_MS: i64 = 1_000;
    pub const MAX_MS: i64 = 2_592_000_000;

    pub fn from_millis(ms: i64) -> Result<Self, DurationError> {
        if !(Self::MIN_MS..=Self::MAX_MS).contains(&ms) {
            return Err(DurationError);
        }
        u64::try_from(ms).map(Self).map_err(|_| DurationError)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

/// Which counter a check counts against, e.g. `rlns_x:user_1`; callers build it so that
/// unrelated namespaces, keys and identities never share a budget. State is kept per
/// (counter, duration), so one counter checked with two durations holds two budgets.
///
/// The key carries its [`Fingerprint`], computed once when it is made: a counter that is
/// checked again and again (a cached key's limits) is never hashed again.
///
/// A counter may have a *scope*, a leading part of its text shared by every counter one call
/// can check together (the workspace). A shared limiter keeps the counters of one scope
/// together (on Redis Cluster, in one hash slot), so one atomic operation can decide them all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    text: Box<str>,
    /// Length of the scope at the start of `text`; 0 when the counter has none.
    scope_len: usize,
    fingerprint: Fingerprint,
}

impl CounterKey {
    /// A counter without a scope: a shared limiter keeps it on its own.
    pub fn new(s: impl Into<Box<str>>) -> Self {
        let text = s.into();
        let fingerprint = Fingerprint::of(&text);
        Self {
            text,
            scope_len: 0,
            fingerprint,
        }
    }

    /// The counter `name` in `scope`, written `scope:name`.
    pub fn scoped(scope: &str, name: &str) -> Self {
        let mut text = String::with_capacity(scope.len() + 1 + name.len());
        text.push_str(scope);
        text.push(':');
        text.push_str(name);
        let fingerprint = Fingerprint::of(&text);
        Self {
            text: text.into_boxed_str(),
            scope_len: scope.len(),
            fingerprint,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scope this counter is kept with; the whole text when it has none.
    pub fn scope(&self) -> &str {
        match self.scope_len {
            0 => &self.text,
            n => &self.text[..n],
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// A 128-bit keyed hash of a counter name, which the in-process limiter files state under
/// instead of the name: 16 bytes inline rather than a pointer to a string on a cold cache
/// line, and half the memory per identifier.
///
/// The key is drawn once per process, so clients cannot search for collisions offline; by
/// chance, two of a million live counters collide with probability about 10^-27. And a
/// collision could only make two counters share one budget, so it could deny calls early,
/// never admit one the formula forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u64; 2]);

impl Fingerprint {
    pub fn of(text: &str) -> Self {
        use std::hash::BuildHasher as _;
        static KEYS: std::sync::OnceLock<[foldhash::quality::RandomState; 2]> =
            std::sync::OnceLock::new();
        let [a, b] = KEYS.get_or_init(Default::default);
        Self([a.hash_one(text), b.hash_one(text)])
    }

    /// 64 bits of it, for hash tables.
    pub fn short(self) -> u64 {
        self.0[0]
    }
}

/// One limit a call must stay within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    pub counter: CounterKey,
    /// How many units the window admits; 0 blocks every call.
    pub limit: u64,
    pub duration: WindowDuration,
    /// How many units this call uses; 0 asks without spending.
    pub cost: u64,
}

/// What one check of a call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDecision {
    /// Whether this limit, on its own, admits the call (given earlier checks of the same call
    /// on the same counter).
    pub passed: bool,
    pub limit: u64,
    /// max(0, limit − the window's effective count after this call): after counting `cost` if
    /// the whole call was counted, else without it.
    pub remaining: u64,
    /// Unix ms at which the current window ends: (seq + 1) × duration.
    pub reset: UnixMillis,
    /// The window sequence number (floor(now / duration)) the call was decided in; refunds
    /// use it.
    pub window: u64,
}

/// What a call found, check by check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOutcome {
    /// True when every check passed and all were counted; false when none was counted.
    pub passed: bool,
    /// One per check, in the order of the checks.
    pub decisions: Vec<LimitDecision>,
}

/// A limiter that could not decide; verification fails open on it, so the cause is for logs.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("rate limiter backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where rate-limit state lives: in process, or in a store shared by several nodes.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Decides all the checks of one call in one atomic operation: either every check passes and
    /// every cost is counted, or nothing is counted. Each implementation takes "now" from its
    /// own clock.
    async fn limit(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, LimiterError>;

    /// Takes back what a counted call added (a later step of the same request denied it), from
    /// the window it was counted in if that window is still tracked (current or previous);
    /// never below zero.
    async fn refund(
        &self,
        checks: &[LimitCheck],
        outcome: &LimitOutcome,
    ) -> Result<(), LimiterError>;

    /// Where limits are decided and whether that backend answers; for health reports.
    fn health(&self) -> LimiterHealth {
        LimiterHealth::in_process()
    }
}

/// A limiter's state as health reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterHealth {
    /// `"memory"` or `"redis"`.
    pub backend: &'static str,
    /// Whether the shared backend answers; always true in process.
    pub reachable: bool,
    /// What decides while the shared backend does not answer, e.g. `"local"`.
    pub fault_mode: Option<String>,
    /// Since when the shared backend has not answered.
    pub down_since: Option<UnixMillis>,
    /// Calls answered by the fault mode instead of the shared backend, since start.
    pub fallback_calls: u64,
}

impl LimiterHealth {
    pub fn in_process() -> Self {
        Self {
            backend: "memory",
            reachable: true,
            fault_mode: None,
            down_since: None,
            fallback_calls: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_outside_the_wire_range_are_rejected() {
        assert_eq!(WindowDuration::from_millis(999), Err(DurationError));
        assert_eq!(WindowDuration::from_millis(-1_000), Err(DurationError));
        assert_eq!(
            WindowDuration::from_millis(2_592_000_001),
            Err(DurationError)
        );
        assert_eq!(
            WindowDuration::from_millis(1_000).map(|d| d.as_millis()),
            Ok(1_000)
        );
        assert_eq!(
            WindowDuration::from_millis(2_592_000_000).map(|d| d.as_millis()),
            Ok(2_592_000_000)
        );
        assert_eq!(
            DurationError.to_string(),
            "must be between 1000 and 2592000000 milliseconds"
        );
    }
}
