//! The Redis limiter: every node's calls decide against the same counts, each call in one
//! atomic script and one round trip.
//!
//! The script (`scripts/limit.lua`) is keywarden-core's sliding window, run on Redis's own
//! clock so that nodes whose clocks disagree still agree on windows. A call's outcome is the
//! in-process limiter's for the same calls at the same times, number for number: the
//! equivalence tests drive both through the same sequence.
//!
//! Keys are `<prefix>:rl:{<scope>}:<counter>:<duration ms>`. The braces are a Redis Cluster
//! hash tag: the counters of one scope (one workspace, which is all one call ever names) fall
//! in one slot, where one script may touch them all. Counters without a scope are tagged with
//! their whole name. All keys are passed in KEYS; the script never makes up a key name, as a
//! cluster requires.
//!
//! A call whose keys lie in more than one slot (it mixes scopes, or counters without one) is
//! refused with [`RedisCallError::CrossSlot`] before anything is sent, on one endpoint as on a
//! cluster. Splitting it into one script per slot would lose all-or-nothing: one slot could
//! count a call that another denies, and taking that back is a second step that can fail or
//! come after other calls were denied by it. Refusing keeps every decision exact, and makes a
//! call that works against one Redis in tests work on a cluster too.

use std::sync::Arc;
use std::{fmt, io};

use async_trait::async_trait;
use keywarden_core::ratelimit::{LimitCheck, LimitDecision, LimitOutcome, Limiter, LimiterError};
use keywarden_core::time::{Clock, UnixMillis};
use redis::cluster_routing::Slot;
use redis::{RedisError, Script};

use crate::connection::RedisConnection;
use crate::error::RedisCallError;
use crate::settings::RedisLimiterSettings;

/// The largest limit or cost the script sees; larger ones are capped to it. Lua computes in
/// doubles, exact for integers below 2^53, and capping both at 2^52 keeps every count and
/// sum the script forms within that (see `scripts/limit.lua`). So decisions equal the
/// in-process limiter's for every limit and cost up to 2^52 (4.5 × 10^15); `remaining` is
/// worked out here from the uncapped limit.
const MAX_EXACT: u64 = 1 << 52;

/// Rate-limit state in Redis, shared by every node that points at it.
pub struct RedisLimiter {
    connection: RedisConnection,
    prefix: Box<str>,
    limit_script: Script,
    refund_script: Script,
    /// Tests only: "now" for the script instead of Redis's clock.
    test_clock: Option<Arc<dyn Clock>>,
}

impl RedisLimiter {
    /// Connects to the Redis at `url` and loads the scripts, which checks that it answers; fails
    /// if it does not within `settings.connect_timeout`.
    ///
    /// `url` is one endpoint (`redis://host:port/db`, `rediss://…`) or a Redis Cluster by
    /// some of its nodes: `redis+cluster://host1:port1,host2:port2` (`rediss+cluster://` for
    /// TLS), with user info, path and query as in a plain URL, applied to every node. On a
    /// cluster, the scripts are loaded on every primary.
    pub async fn connect(url: &str, settings: RedisLimiterSettings) -> Result<Self, RedisError> {
        let connect_timeout = settings.connect_timeout;
        let limiter = Self::lazy(url, settings)?;
        limiter
            .warm_up(connect_timeout)
            .await
            .map_err(|error| match error {
                RedisCallError::Redis(error) => error,
                RedisCallError::Timeout(_) => {
                    RedisError::from(io::Error::new(io::ErrorKind::TimedOut, error.to_string()))
                }
                RedisCallError::Reply(_) | RedisCallError::CrossSlot { .. } => {
                    RedisError::from(io::Error::other(error.to_string()))
                }
            })?;
        Ok(limiter)
    }

    /// A limiter for the Redis at `url` (as for [`connect`](Self::connect)) that connects on
    /// its first call; fails only on an invalid URL. For a node that must come up while Redis
    /// is down. Must be called within a Tokio runtime, like [`connect`](Self::connect).
    pub fn lazy(url: &str, settings: RedisLimiterSettings) -> Result<Self, RedisError> {
        let connection = RedisConnection::lazy(url, settings.timeout, settings.connect_timeout)?;
        Ok(Self {
            connection,
            prefix: settings.prefix.into_boxed_str(),
            limit_script: Script::new(include_str!("scripts/limit.lua")),
            refund_script: Script::new(include_str!("scripts/refund.lua")),
            test_clock: None,
        })
    }

    /// Tests only: the script takes "now" from `clock` instead of Redis's clock, so outcomes
    /// can be compared with an [`InMemoryLimiter`] on the same clock. Redis still expires
    /// state by its own clock, so under this the script keeps state ten minutes longer.
    ///
    /// [`InMemoryLimiter`]: keywarden_core::ratelimit::InMemoryLimiter
    #[doc(hidden)]
    pub fn with_test_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some(clock);
        self
    }

    /// Whether Redis answers, and runs the limiter's script, within the call timeout: the
    /// script with no checks, which reads the clock and writes nothing. A Redis that answers
    /// PING but cannot run the script (scripting disabled, say) is of no use to a limiter.
    ///
    /// On a cluster the script, which names no key, runs on one node picked at random; then
    /// each shard must answer a read, so that a cluster counts as answering only when all of
    /// them do (a call may name a counter on any of them).
    pub async fn ping(&self) -> Result<(), RedisCallError> {
        let mut invocation = self.limit_script.prepare_invoke();
        invocation.arg("");
        let prefix = &*self.prefix;
        let reply: Vec<u64> = self
            .connection
            .run(|mut link| async move {
                let reply = invocation.invoke_async(&mut link).await?;
                link.reach_every_shard(prefix).await?;
                Ok(reply)
            })
            .await?;
        match reply.as_slice() {
            [1] => Ok(()),
            _ => Err(RedisCallError::Reply(
                "the script answered a call without checks wrongly",
            )),
        }
    }

    /// [`Limiter::limit`] with the Redis error as it is.
    pub async fn decide(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, RedisCallError> {
        if checks.is_empty() {
            return Ok(LimitOutcome {
                passed: true,
                decisions: Vec::new(),
            });
        }
        let states = CallStates::of(checks.iter());
        let mut invocation = self.limit_script.prepare_invoke();
        for key in self.keys_in_one_slot(&states.states)? {
            invocation.key(key);
        }
        match &self.test_clock {
            Some(clock) => invocation.arg(clock.now().as_millis()),
            None => invocation.arg(""),
        };
        for check in &states.states {
            invocation.arg(check.duration.as_millis());
        }
        for (check, &slot) in checks.iter().zip(&states.slot_of) {
            invocation
                .arg(slot + 1)
                .arg(check.limit.min(MAX_EXACT))
                .arg(check.cost.min(MAX_EXACT));
        }
        let reply: Vec<u64> = self
            .connection
            .run(|mut link| async move { invocation.invoke_async(&mut link).await })
            .await?;
        outcome_of(checks, &states, &reply)
    }

    /// [`Limiter::refund`] with the Redis error as it is.
    pub async fn take_back(
        &self,
        checks: &[LimitCheck],
        outcome: &LimitOutcome,
    ) -> Result<(), RedisCallError> {
        if !outcome.passed {
            return Ok(());
        }
        // A check that cost nothing has nothing to give back.
        let counted: Vec<(&LimitCheck, &LimitDecision)> = checks
            .iter()
            .zip(&outcome.decisions)
            .filter(|(check, _)| check.cost > 0)
            .collect();
        if counted.is_empty() {
            return Ok(());
        }
        let states = CallStates::of(counted.iter().map(|&(check, _)| check));
        let mut invocation = self.refund_script.prepare_invoke();
        for key in self.keys_in_one_slot(&states.states)? {
            invocation.key(key);
        }
        for (&(check, decision), &slot) in counted.iter().zip(&states.slot_of) {
            invocation
                .arg(slot + 1)
                .arg(decision.window)
                .arg(check.cost.min(MAX_EXACT));
        }
        self.connection
            .run(|mut link| async move { invocation.invoke_async::<()>(&mut link).await })
            .await
    }

    /// Refuses, with [`RedisCallError::CrossSlot`], a call whose checks no one script could
    /// decide on a Redis Cluster: all-or-nothing needs every key of a call in one hash slot.
    pub(crate) fn check_one_slot(&self, checks: &[LimitCheck]) -> Result<(), RedisCallError> {
        let states = CallStates::of(checks.iter());
        self.keys_in_one_slot(&states.states).map(drop)
    }

    /// The Redis keys of `states`, in order, if they all lie in one hash slot.
    fn keys_in_one_slot(&self, states: &[&LimitCheck]) -> Result<Vec<String>, RedisCallError> {
        let keys: Vec<String> = states.iter().map(|check| self.key(check)).collect();
        let mut slots: Vec<Slot> = Vec::with_capacity(1);
        for key in &keys {
            let slot = Slot::for_key(key);
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
        match slots.len() {
            0 | 1 => Ok(keys),
            n => Err(RedisCallError::CrossSlot { slots: n }),
        }
    }

    /// The Redis key of a check's (counter, duration) state.
    fn key(&self, check: &LimitCheck) -> String {
        use fmt::Write as _;
        let counter = check.counter.as_str();
        let scope = check.counter.scope();
        let mut key = String::with_capacity(self.prefix.len() + scope.len() + counter.len() + 20);
        // Writing to a String cannot fail.
        let _ = write!(
            key,
            "{}:rl:{{{}}}:{}:{}",
            self.prefix,
            scope,
            counter,
            check.duration.as_millis()
        );
        key
    }

    /// Loads the scripts within `timeout`: checks that Redis answers and spares the first
    /// calls a round trip.
    pub(crate) async fn warm_up(&self, timeout: std::time::Duration) -> Result<(), RedisCallError> {
        let (limit, refund) = (&self.limit_script, &self.refund_script);
        self.connection
            .run_within(timeout, |mut link| async move {
                // On a cluster, SCRIPT LOAD goes to every node.
                limit.load_async(&mut link).await?;
                refund.load_async(&mut link).await?;
                Ok(())
            })
            .await
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn limit(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, LimiterError> {
        self.decide(checks)
            .await
            .map_err(|error| LimiterError::Backend(Box::new(error)))
    }

    async fn refund(
        &self,
        checks: &[LimitCheck],
        outcome: &LimitOutcome,
    ) -> Result<(), LimiterError> {
        self.take_back(checks, outcome)
            .await
            .map_err(|error| LimiterError::Backend(Box::new(error)))
    }
}

/// The distinct (counter, duration) states a call names, each sent to the script once, and
/// which of them each check counts against.
struct CallStates<'a> {
    states: Vec<&'a LimitCheck>,
    slot_of: Vec<usize>,
}

impl<'a> CallStates<'a> {
    fn of(checks: impl Iterator<Item = &'a LimitCheck>) -> Self {
        let mut states: Vec<&LimitCheck> = Vec::new();
        let slot_of = checks
            .map(|check| {
                // A call has a few dozen checks at most, so a linear search beats a map.
                let found = states.iter().position(|seen| {
                    seen.duration == check.duration
                        && seen.counter.as_str() == check.counter.as_str()
                });
                found.unwrap_or_else(|| {
                    states.push(check);
                    states.len() - 1
                })
            })
            .collect();
        Self { states, slot_of }
    }
}

/// Reads the script's reply: `[passed, admitted of each check…, (seq, effective) of each
/// state…]`.
fn outcome_of(
    checks: &[LimitCheck],
    states: &CallStates<'_>,
    reply: &[u64],
) -> Result<LimitOutcome, RedisCallError> {
    let (passed, rest) = reply
        .split_first()
        .ok_or(RedisCallError::Reply("empty reply"))?;
    if rest.len() != checks.len() + 2 * states.states.len() {
        return Err(RedisCallError::Reply("wrong number of values"));
    }
    let (admitted, windows) = rest.split_at(checks.len());
    let decisions = checks
        .iter()
        .zip(admitted)
        .zip(&states.slot_of)
        .map(|((check, &admitted), &slot)| {
            let seq = windows[2 * slot];
            let effective = windows[2 * slot + 1];
            let end = seq
                .saturating_add(1)
                .saturating_mul(check.duration.as_millis());
            LimitDecision {
                passed: admitted == 1,
                limit: check.limit,
                remaining: check.limit.saturating_sub(effective),
                reset: UnixMillis::from_millis(i64::try_from(end).unwrap_or(i64::MAX)),
                window: seq,
            }
        })
        .collect();
    Ok(LimitOutcome {
        passed: *passed == 1,
        decisions,
    })
}
