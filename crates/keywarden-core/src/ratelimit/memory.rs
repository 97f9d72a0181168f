//! The in-process limiter: exact and atomic within one process, empty after a restart.
//!
//! State is split over shards, each behind its own mutex, so calls on unrelated counters
//! rarely wait for each other. A call locks every shard it touches, in ascending shard order
//! (so two calls naming the same counters in opposite orders cannot deadlock), decides, counts
//! or not, and unlocks. No other call sees or changes those counters in between, which is what
//! keeps concurrent calls from admitting even one more than the formula allows.
//!
//! Memory follows the active counters: state whose windows have both ended is swept by
//! [`InMemoryLimiter::sweep`] and, so that a stream of one-off identifiers cannot pile up when
//! nobody calls it, by each shard itself when it has doubled since its last sweep.

mod shard;

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, MutexGuard};

use self::shard::Shard;
use super::window::{SlidingWindow, WindowCounts};
use super::{LimitCheck, LimitDecision, LimitOutcome, Limiter, LimiterError, WindowDuration};
use crate::time::{Clock, UnixMillis};

/// Enough that a busy server's cores rarely meet on one lock, few enough that a call with many
/// counters locks few of them.
const SHARDS: usize = 64;

/// Rate-limit state held in this process's memory.
pub struct InMemoryLimiter {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    /// Picks a counter's shard. Keyed per process, so clients cannot choose identifiers that
    /// all land on one shard.
    shard_hasher: RandomState,
}

impl InMemoryLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            shard_hasher: RandomState::new(),
        }
    }

    /// [`Limiter::limit`] without the `async`: it never waits on anything but short critical
    /// sections.
    pub fn limit_now(&self, checks: &[LimitCheck]) -> LimitOutcome {
        let now = self.clock.now();
        let shard_of: Vec<usize> = checks
            .iter()
            .map(|check| self.shard_index(check.counter.as_str()))
            .collect();
        let mut shards = self.lock(&shard_of);

        // Decide each check against the stored state plus what earlier checks of this call on
        // the same counter would add, so a call cannot pass by naming one counter twice.
        let mut windows: Vec<CallWindow<'_>> = Vec::new();
        let mut verdicts = Vec::with_capacity(checks.len());
        for (check, &shard) in checks.iter().zip(&shard_of) {
            // A call has a few dozen checks at most (the wire caps multiLimit at 100), so a
            // linear search beats building a map.
            let slot = match windows.iter().position(|w| w.is_for(check)) {
                Some(slot) => slot,
                None => {
                    let stored = shards
                        .get(shard)
                        .get(check.counter.as_str(), check.duration);
                    windows.push(CallWindow::new(check, shard, stored, now));
                    windows.len() - 1
                }
            };
            let window = &mut windows[slot];
            verdicts.push((slot, window.window.admits(check.limit, check.cost)));
            window.count(check.cost);
        }

        let passed = verdicts.iter().all(|&(_, admitted)| admitted);
        if passed {
            for w in windows.iter().filter(|w| w.added > 0) {
                shards
                    .get(w.shard)
                    .store(w.counter, w.duration, w.window.counts(), now);
            }
        }
        drop(shards);

        let decisions = checks
            .iter()
            .zip(verdicts)
            .map(|(check, (slot, admitted))| {
                let w = &windows[slot];
                let effective = if passed {
                    w.window.effective()
                } else {
                    w.before
                };
                LimitDecision {
                    passed: admitted,
                    limit: check.limit,
                    remaining: check.limit.saturating_sub(effective),
                    reset: w.window.reset(),
                    window: w.window.seq(),
                }
            })
            .collect();
        LimitOutcome { passed, decisions }
    }

    /// [`Limiter::refund`] without the `async`. `checks` must be the ones `outcome` answered.
    pub fn refund_now(&self, checks: &[LimitCheck], outcome: &LimitOutcome) {
        if !outcome.passed {
            return;
        }
        let shard_of: Vec<usize> = checks
            .iter()
            .map(|check| self.shard_index(check.counter.as_str()))
            .collect();
        // All at once, so that no call decides against half a refund.
        let mut shards = self.lock(&shard_of);
        for ((check, decision), &shard) in checks.iter().zip(&outcome.decisions).zip(&shard_of) {
            shards.get(shard).take_back(
                check.counter.as_str(),
                check.duration,
                decision.window,
                check.cost,
            );
        }
    }

    /// Forgets state whose windows have both ended; returns how many (counter, duration)
    /// states it forgot. Shards also do this by themselves as they grow, so calling it is
    /// about returning memory sooner, not about correctness.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|shard| shard.lock().sweep(now))
            .sum()
    }

    /// How many (counter, duration) states are tracked, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every duration of one counter lands on the same shard, so a call checking a counter
    /// under several durations locks one shard.
    fn shard_index(&self, counter: &str) -> usize {
        let hash = self.shard_hasher.hash_one(counter);
        // The remainder is below SHARDS, so it fits in a usize.
        (hash % SHARDS as u64) as usize
    }

    /// Locks the given shards, each once, in ascending order.
    fn lock(&self, shard_of: &[usize]) -> LockedShards<'_> {
        let mut indices = shard_of.to_vec();
        indices.sort_unstable();
        indices.dedup();
        let guards = indices.iter().map(|&i| self.shards[i].lock()).collect();
        LockedShards { indices, guards }
    }

    #[cfg(test)]
    fn stored(&self, counter: &str, duration: WindowDuration) -> Option<WindowCounts> {
        self.shards[self.shard_index(counter)]
            .lock()
            .get(counter, duration)
    }
}

impl fmt::Debug for InMemoryLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLimiter")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Limiter for InMemoryLimiter {
    async fn limit(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, LimiterError> {
        Ok(self.limit_now(checks))
    }

    async fn refund(
        &self,
        checks: &[LimitCheck],
        outcome: &LimitOutcome,
    ) -> Result<(), LimiterError> {
        self.refund_now(checks, outcome);
        Ok(())
    }
}

/// The shards one call holds, sorted by index.
struct LockedShards<'a> {
    indices: Vec<usize>,
    guards: Vec<MutexGuard<'a, Shard>>,
}

impl LockedShards<'_> {
    /// The locked shard `index`, which must be one of those locked.
    fn get(&mut self, index: usize) -> &mut Shard {
        // `indices` is sorted and holds `index`, so this is where its guard sits.
        let position = self.indices.partition_point(|&i| i < index);
        &mut self.guards[position]
    }
}

/// One (counter, duration) pair of a call, as the call sees it while deciding.
struct CallWindow<'c> {
    counter: &'c str,
    duration: WindowDuration,
    shard: usize,
    /// The stored state at the call's time, plus the costs of this call's checks so far.
    window: SlidingWindow,
    /// The effective count before this call, which a denied call reports against.
    before: u64,
    /// What this call adds if it passes.
    added: u64,
}

impl<'c> CallWindow<'c> {
    fn new(
        check: &'c LimitCheck,
        shard: usize,
        stored: Option<WindowCounts>,
        now: UnixMillis,
    ) -> Self {
        let window = SlidingWindow::observe(stored, now, check.duration);
        Self {
            counter: check.counter.as_str(),
            duration: check.duration,
            shard,
            before: window.effective(),
            window,
            added: 0,
        }
    }

    fn is_for(&self, check: &LimitCheck) -> bool {
        self.duration == check.duration && self.counter == check.counter.as_str()
    }

    fn count(&mut self, cost: u64) {
        self.window.count(cost);
        self.added = self.added.saturating_add(cost);
    }
}

#[cfg(test)]
mod tests;
