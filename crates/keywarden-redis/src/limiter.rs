//! The Redis limiter: every node's calls decide against the same counts, each call atomically,
//! concurrent calls together in one script run.
//!
//! The script (`scripts/batch.lua`) is keywarden-core's sliding window, run on Redis's own
//! clock so that nodes whose clocks disagree still agree on windows. A call's outcome is the
//! in-process limiter's for the same calls at the same times, number for number: the
//! equivalence tests drive both through the same sequence. Calls made while others are in
//! flight go to Redis together, decided one after the other in one script run (see
//! [`batch`](crate::batch)).
//!
//! Keys are `<prefix>:rl2:{<scope>}:<counter>:<duration ms>`. The braces are a Redis Cluster
//! hash tag: the counters of one scope (one workspace, which is all one call ever names) fall
//! in one slot, where one script may touch them all. Counters without a scope are tagged with
//! their whole name. All keys are passed in KEYS; the script never makes up a key name, as a
//! cluster requires. `rl2` names the state's layout, a string of three binary numbers (read
//! for a whole batch with one `MGET`); the earlier layout, a hash per key under `rl`, is not
//! read, so counts start afresh when a deployment moves from it, and nodes of the two layouts
//! count apart while a rolling upgrade runs.
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

use crate::batch::{Answer, BatchLimits, BatchStats, CallKind, Lane, ScriptCall, ScriptQueue};
use crate::connection::RedisConnection;
use crate::error::RedisCallError;
use crate::settings::RedisLimiterSettings;

/// The largest limit or cost the script sees; larger ones are capped to it. Lua computes in
/// doubles, exact for integers below 2^53, and capping both at 2^52 keeps every count and
/// sum the script forms within that (see `scripts/batch.lua`). So decisions equal the
/// in-process limiter's for every limit and cost up to 2^52 (4.5 × 10^15); `remaining` is
/// worked out here from the uncapped limit.
const MAX_EXACT: u64 = 1 << 52;

/// Rate-limit state in Redis, shared by every node that points at it.
pub struct RedisLimiter {
    queue: Arc<ScriptQueue>,
    prefix: Box<str>,
    /// Whether Redis is a cluster, where only calls of one hash slot share a batch.
    cluster: bool,
}

/// A call checked and put in the script's terms, ready to send.
pub(crate) struct PreparedCall {
    lane: Lane,
    call: ScriptCall,
}

impl RedisLimiter {
    /// Connects to the Redis at `url` and loads the script, which checks that it answers;
    /// fails if it does not within `settings.connect_timeout`.
    ///
    /// `url` is one endpoint (`redis://host:port/db`, `rediss://…`) or a Redis Cluster by
    /// some of its nodes: `redis+cluster://host1:port1,host2:port2` (`rediss+cluster://` for
    /// TLS), with user info, path and query as in a plain URL, applied to every node. On a
    /// cluster, the script is loaded on every primary.
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
    /// is down. Must be called within a Tokio runtime, like [`connect`](Self::connect), and
    /// so must its calls.
    pub fn lazy(url: &str, settings: RedisLimiterSettings) -> Result<Self, RedisError> {
        let connection = RedisConnection::lazy(url, settings.timeout, settings.connect_timeout)?;
        let cluster = connection.is_cluster();
        let queue = ScriptQueue::new(
            connection,
            Script::new(include_str!("scripts/batch.lua")),
            settings.timeout,
            BatchLimits::default(),
        );
        Ok(Self {
            queue: Arc::new(queue),
            prefix: settings.prefix.into_boxed_str(),
            cluster,
        })
    }

    /// Tests only: the script takes "now" from `clock` instead of Redis's clock, so outcomes
    /// can be compared with an [`InMemoryLimiter`] on the same clock; the calls of one batch
    /// all see the time read when it is sent. Redis still expires state by its own clock, so
    /// under this the script keeps state ten minutes longer.
    ///
    /// [`InMemoryLimiter`]: keywarden_core::ratelimit::InMemoryLimiter
    #[doc(hidden)]
    pub fn with_test_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.queue.set_test_clock(clock);
        self
    }

    /// Benchmarks only: how many batches of one lane may be in flight at once (at least 1),
    /// and how many calls one may carry (at least 1). The defaults are 2 and 64.
    #[doc(hidden)]
    pub fn with_batching(self, in_flight: usize, max_calls: usize) -> Self {
        self.queue.set_limits(BatchLimits {
            in_flight: in_flight.max(1),
            max_calls: max_calls.max(1),
            ..BatchLimits::default()
        });
        self
    }

    /// How batching went so far: batches sent, calls they carried, the largest.
    pub fn batch_stats(&self) -> BatchStats {
        self.queue.stats()
    }

    /// Whether Redis answers, and runs the limiter's script, within the call timeout: the
    /// script with no calls, which reads the clock and writes nothing. A Redis that answers
    /// PING but cannot run the script (scripting disabled, say) is of no use to a limiter.
    /// Sent on its own, not queued behind calls.
    ///
    /// On a cluster the script, which names no key, runs on one node picked at random; then
    /// each shard must answer a read, so that a cluster counts as answering only when all of
    /// them do (a call may name a counter on any of them).
    pub async fn ping(&self) -> Result<(), RedisCallError> {
        let mut invocation = self.queue.script().prepare_invoke();
        match self.queue.now_arg() {
            Some(now) => invocation.arg(now),
            None => invocation.arg(""),
        };
        let prefix = &*self.prefix;
        let reply: Vec<u64> = self
            .queue
            .connection()
            .run(|mut link| async move {
                let reply = invocation.invoke_async(&mut link).await?;
                link.reach_every_shard(prefix).await?;
                Ok(reply)
            })
            .await?;
        match reply.as_slice() {
            [0] => Ok(()),
            _ => Err(RedisCallError::Reply(
                "the script answered a batch without calls wrongly",
            )),
        }
    }

    /// [`Limiter::limit`] with the Redis error as it is.
    pub async fn decide(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, RedisCallError> {
        match self.prepare_limit(checks)? {
            Some(prepared) => self.send_limit(checks, prepared).await,
            None => Ok(LimitOutcome {
                passed: true,
                decisions: Vec::new(),
            }),
        }
    }

    /// Checks that one script can decide `checks`, and puts them in its terms; `None` when
    /// there is nothing to decide. Refuses, with [`RedisCallError::CrossSlot`], a call whose
    /// checks no one script could decide on a Redis Cluster: all-or-nothing needs every key
    /// of a call in one hash slot.
    pub(crate) fn prepare_limit(
        &self,
        checks: &[LimitCheck],
    ) -> Result<Option<PreparedCall>, RedisCallError> {
        if checks.is_empty() {
            return Ok(None);
        }
        let states = CallStates::of(checks.iter());
        let call_checks = checks
            .iter()
            .zip(&states.state_of)
            .map(|(check, &state)| (state, check.limit.min(MAX_EXACT), check.cost.min(MAX_EXACT)))
            .collect();
        self.prepare(CallKind::Limit, &states.states, call_checks)
            .map(Some)
    }

    /// Sends a call [`prepare_limit`](Self::prepare_limit) made of `checks`.
    pub(crate) async fn send_limit(
        &self,
        checks: &[LimitCheck],
        prepared: PreparedCall,
    ) -> Result<LimitOutcome, RedisCallError> {
        let answer = self.queue.call(prepared.lane, prepared.call).await?;
        Ok(outcome_of(checks, &answer))
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
        let call_checks = counted
            .iter()
            .zip(&states.state_of)
            .map(|(&(check, decision), &state)| (state, decision.window, check.cost.min(MAX_EXACT)))
            .collect();
        let prepared = self.prepare(CallKind::Refund, &states.states, call_checks)?;
        self.queue
            .call(prepared.lane, prepared.call)
            .await
            .map(drop)
    }

    /// A call of `kind` on `states`, if all their keys lie in one hash slot.
    fn prepare(
        &self,
        kind: CallKind,
        states: &[&LimitCheck],
        checks: Vec<(usize, u64, u64)>,
    ) -> Result<PreparedCall, RedisCallError> {
        let states: Vec<(String, u64)> = states
            .iter()
            .map(|check| (self.key(check), check.duration.as_millis()))
            .collect();
        let mut slots: Vec<Slot> = Vec::with_capacity(1);
        for (key, _) in &states {
            let slot = Slot::for_key(key);
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
        let slot = match slots.as_slice() {
            [slot] => *slot,
            _ => return Err(RedisCallError::CrossSlot { slots: slots.len() }),
        };
        Ok(PreparedCall {
            lane: self.cluster.then_some(slot),
            call: ScriptCall {
                kind,
                states,
                checks,
            },
        })
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
            "{}:rl2:{{{}}}:{}:{}",
            self.prefix,
            scope,
            counter,
            check.duration.as_millis()
        );
        key
    }

    /// Loads the script within `timeout`: checks that Redis answers and spares the first
    /// calls a round trip.
    pub(crate) async fn warm_up(&self, timeout: std::time::Duration) -> Result<(), RedisCallError> {
        let script = self.queue.script();
        self.queue
            .connection()
            .run_within(timeout, |mut link| async move {
                // On a cluster, SCRIPT LOAD goes to every node.
                script.load_async(&mut link).await.map(drop)
            })
            .await
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
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
    state_of: Vec<usize>,
}

impl<'a> CallStates<'a> {
    fn of(checks: impl Iterator<Item = &'a LimitCheck>) -> Self {
        let mut states: Vec<&LimitCheck> = Vec::new();
        let state_of = checks
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
        Self { states, state_of }
    }
}

/// Reads a limit call's part of the batch reply, `(admitted, seq, effective)` of each check,
/// whose length the batch has checked. The call passed if every check was admitted.
fn outcome_of(checks: &[LimitCheck], answer: &Answer) -> LimitOutcome {
    let decisions: Vec<LimitDecision> = checks
        .iter()
        .zip(answer.values().chunks_exact(3))
        .map(|(check, values)| {
            let (admitted, seq, effective) = (values[0], values[1], values[2]);
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
    LimitOutcome {
        passed: decisions.iter().all(|decision| decision.passed),
        decisions,
    }
}
