//! A Redis limiter that keeps answering while Redis is down, by a configured [`FaultMode`].
//!
//! The first call that fails or times out marks Redis down; from then on calls are answered
//! by the fault mode straight away, so an outage costs one timeout, not one per call. A
//! background task probes Redis every `probe_interval` and marks it up once it answers (and
//! down, when it stops answering while idle, so the health endpoint knows before a call does).
//! Each transition logs one warning.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use keywarden_core::ratelimit::{
    InMemoryLimiter, LimitCheck, LimitDecision, LimitOutcome, Limiter, LimiterError, LimiterHealth,
};
use keywarden_core::time::{Clock, UnixMillis};
use parking_lot::Mutex;
use redis::RedisError;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::error::RedisCallError;
use crate::fault_mode::FaultMode;
use crate::limiter::RedisLimiter;
use crate::settings::RedisLimiterSettings;

/// Settings of a [`ResilientLimiter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResilientLimiterSettings {
    pub redis: RedisLimiterSettings,
    pub fault_mode: FaultMode,
    /// How often the background task checks on Redis.
    pub probe_interval: Duration,
}

impl ResilientLimiterSettings {
    pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(250);
}

impl Default for ResilientLimiterSettings {
    fn default() -> Self {
        Self {
            redis: RedisLimiterSettings::default(),
            fault_mode: FaultMode::default(),
            probe_interval: Self::DEFAULT_PROBE_INTERVAL,
        }
    }
}

/// The limiter's state for the health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimiterStatus {
    /// Where the counts live: `"redis"`.
    pub backend: &'static str,
    /// Whether the last call or probe reached Redis.
    pub reachable: bool,
    pub fault_mode: FaultMode,
    /// When Redis was found unreachable, by the local clock; `None` while it is reachable.
    pub down_since: Option<UnixMillis>,
    /// How many `limit` calls the fault mode answered since start.
    pub fallback_calls: u64,
}

/// Rate limits in Redis, decided by a [`FaultMode`] while Redis cannot be reached.
pub struct ResilientLimiter {
    shared: Arc<Shared>,
    probe: JoinHandle<()>,
}

struct Shared {
    redis: RedisLimiter,
    /// Decides in [`FaultMode::Local`]; empty in the other modes.
    local: InMemoryLimiter,
    fault_mode: FaultMode,
    clock: Arc<dyn Clock>,
    /// Read by every call, so kept apart from `down_since`, which only transitions touch.
    reachable: AtomicBool,
    /// Held while a transition changes `reachable`, so that exactly one caller logs each
    /// transition and `status` never sees one half done.
    down_since: Mutex<Option<UnixMillis>>,
    fallback_calls: AtomicU64,
}

/// In local mode, how many probes between sweeps of the local limiter's expired state (about
/// every 10 s at the default interval): it only grows during outages, and nothing else would
/// give that memory back once Redis is up again.
const PROBES_PER_SWEEP: u64 = 40;

impl ResilientLimiter {
    /// Starts a limiter on the Redis at `url`, with its probe task; must be called within a
    /// Tokio runtime. Succeeds while Redis is unreachable (a node must come up anyway): the
    /// limiter then starts down and recovers when the probe reaches Redis. Fails only on an
    /// invalid URL. `clock` is the local clock, for the local limiter, fault answers and
    /// `down_since`.
    pub async fn start(
        url: &str,
        settings: ResilientLimiterSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RedisError> {
        let connect_timeout = settings.redis.connect_timeout;
        let redis = RedisLimiter::lazy(url, settings.redis.clone())?;
        Ok(Self::start_on(redis, connect_timeout, settings, clock).await)
    }

    /// [`ResilientLimiter::start`] around a limiter already made, such as one on a test clock.
    pub async fn start_on(
        redis: RedisLimiter,
        connect_timeout: Duration,
        settings: ResilientLimiterSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shared = Arc::new(Shared {
            redis,
            local: InMemoryLimiter::new(clock.clone()),
            fault_mode: settings.fault_mode,
            clock,
            reachable: AtomicBool::new(true),
            down_since: Mutex::new(None),
            fallback_calls: AtomicU64::new(0),
        });
        match shared.redis.warm_up(connect_timeout).await {
            Ok(()) => tracing::info!(fault_mode = %shared.fault_mode, "rate limits in Redis"),
            Err(error) => shared.mark_down(&error),
        }
        let probe = tokio::spawn(probe(Arc::downgrade(&shared), settings.probe_interval));
        Self { shared, probe }
    }

    /// Where the limiter stands, for the health endpoint.
    pub fn status(&self) -> LimiterStatus {
        let down_since = self.shared.down_since.lock();
        LimiterStatus {
            backend: "redis",
            reachable: self.shared.reachable.load(Ordering::Relaxed),
            fault_mode: self.shared.fault_mode,
            down_since: *down_since,
            fallback_calls: self.fallback_calls(),
        }
    }

    /// How many `limit` calls the fault mode answered since start.
    pub fn fallback_calls(&self) -> u64 {
        self.shared.fallback_calls.load(Ordering::Relaxed)
    }
}

impl Drop for ResilientLimiter {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

impl fmt::Debug for ResilientLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilientLimiter")
            .field("redis", &self.shared.redis)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Limiter for ResilientLimiter {
    /// Fails only on a call that no one script could decide, its counters being in several
    /// Redis Cluster hash slots ([`RedisCallError::CrossSlot`]), refused whether or not Redis
    /// answers; what Redis cannot decide for want of an answer, the fault mode does.
    async fn limit(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, LimiterError> {
        let shared = &self.shared;
        let prepared = shared
            .redis
            .prepare_limit(checks)
            .map_err(|error| LimiterError::Backend(Box::new(error)))?;
        if shared.reachable.load(Ordering::Relaxed) {
            let decided = match prepared {
                Some(prepared) => shared.redis.send_limit(checks, prepared).await,
                None => shared.redis.decide(checks).await,
            };
            match decided {
                Ok(outcome) => return Ok(outcome),
                Err(error) => shared.mark_down(&error),
            }
        }
        shared.fallback_calls.fetch_add(1, Ordering::Relaxed);
        Ok(shared.decide_without_redis(checks))
    }

    /// Refunds where the call was most likely counted: in Redis while it is reachable, in the
    /// local limiter while it is not (in local mode). A refund that fails is dropped, leaving
    /// the call counted: better one call too many counted than a verification failing. (A
    /// call decided just before a transition and refunded just after it is refunded on the
    /// other side, at worst giving one call's cost to a counter it was not taken from.)
    async fn refund(
        &self,
        checks: &[LimitCheck],
        outcome: &LimitOutcome,
    ) -> Result<(), LimiterError> {
        let shared = &self.shared;
        if shared.reachable.load(Ordering::Relaxed) {
            if let Err(error) = shared.redis.take_back(checks, outcome).await {
                shared.mark_down(&error);
            }
        } else if shared.fault_mode == FaultMode::Local {
            shared.local.refund_now(checks, outcome);
        }
        Ok(())
    }

    fn health(&self) -> LimiterHealth {
        let status = self.status();
        LimiterHealth {
            backend: status.backend,
            reachable: status.reachable,
            fault_mode: Some(status.fault_mode.to_string()),
            down_since: status.down_since,
            fallback_calls: status.fallback_calls,
        }
    }
}

impl Shared {
    fn decide_without_redis(&self, checks: &[LimitCheck]) -> LimitOutcome {
        if self.fault_mode == FaultMode::Local {
            return self.local.limit_now(checks);
        }
        let now = u64::try_from(self.clock.now().as_millis()).unwrap_or(0);
        let decisions: Vec<LimitDecision> = checks
            .iter()
            .map(|check| {
                let duration = check.duration.as_millis();
                let seq = now / duration;
                let end = seq.saturating_add(1).saturating_mul(duration);
                let passed = match self.fault_mode {
                    FaultMode::FailOpen => check.limit > 0,
                    FaultMode::FailClosed | FaultMode::Local => false,
                };
                LimitDecision {
                    passed,
                    limit: check.limit,
                    remaining: if passed { check.limit } else { 0 },
                    reset: UnixMillis::from_millis(i64::try_from(end).unwrap_or(i64::MAX)),
                    window: seq,
                }
            })
            .collect();
        LimitOutcome {
            passed: decisions.iter().all(|d| d.passed),
            decisions,
        }
    }

    fn mark_down(&self, cause: &RedisCallError) {
        if cause.is_refusal() || !self.reachable.load(Ordering::Relaxed) {
            return;
        }
        let mut down_since = self.down_since.lock();
        if self.reachable.swap(false, Ordering::Relaxed) {
            *down_since = Some(self.clock.now());
            tracing::warn!(
                error = %ErrorChain(cause),
                fault_mode = %self.fault_mode,
                "Redis unreachable: rate limits decided by the fault mode until it answers"
            );
        }
    }

    fn mark_up(&self) {
        if self.reachable.load(Ordering::Relaxed) {
            return;
        }
        let mut down_since = self.down_since.lock();
        if !self.reachable.swap(true, Ordering::Relaxed) {
            let since = down_since.take();
            let down_ms = since.map(|since| self.clock.now().as_millis() - since.as_millis());
            tracing::warn!(
                down_ms,
                "Redis reachable again: rate limits decided by Redis"
            );
        }
    }
}

/// Checks on Redis every `interval` until the limiter is dropped.
async fn probe(shared: Weak<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and start has just checked.
    ticker.tick().await;
    let mut probes: u64 = 0;
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.redis.ping().await {
            Ok(()) => shared.mark_up(),
            Err(error) => shared.mark_down(&error),
        }
        probes += 1;
        if shared.fault_mode == FaultMode::Local && probes.is_multiple_of(PROBES_PER_SWEEP) {
            // A sweep after a large outage walks a large table: off the async threads.
            tokio::task::spawn_blocking(move || shared.local.sweep());
        }
    }
}

/// An error with its causes, `a: b: c`, for one log field.
struct ErrorChain<'a>(&'a dyn Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
