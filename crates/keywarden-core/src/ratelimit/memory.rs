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
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, MutexGuard};

use self::shard::{Shard, state_hash};
use super::window::{SlidingWindow, WindowCounts};
use super::{
    Fingerprint, LimitCheck, LimitDecision, LimitOutcome, Limiter, LimiterError, WindowDuration,
};
use crate::time::{Clock, UnixMillis};

/// Enough that a busy server's cores rarely meet on one lock, few enough that a call with many
/// counters locks few of them.
const SHARDS: usize = 64;

/// Rate-limit state held in this process's memory.
pub struct InMemoryLimiter {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
}

impl InMemoryLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        }
    }

    /// [`Limiter::limit`] without the `async`: it never waits on anything but short critical
    /// sections.
    pub fn limit_now(&self, checks: &[LimitCheck]) -> LimitOutcome {
        let now = self.clock.now();
        if let [check] = checks {
            return self.limit_one(check, now);
        }
        let hashes: Vec<u64> = checks.iter().map(check_hash).collect();
        let shard_of: Vec<usize> = hashes.iter().map(|&hash| shard_index(hash)).collect();
        let mut shards = self.lock(&shard_of);

        // Decide each check against the stored state plus what earlier checks of this call on
        // the same counter would add, so a call cannot pass by naming one counter twice.
        let mut windows: Vec<CallWindow> = Vec::new();
        let mut verdicts = Vec::with_capacity(checks.len());
        for ((check, &shard), &hash) in checks.iter().zip(&shard_of).zip(&hashes) {
            // A call has a few dozen checks at most (the wire caps multiLimit at 100), so a
            // linear search beats building a map.
            let slot = match windows.iter().position(|w| w.is_for(check)) {
                Some(slot) => slot,
                None => {
                    let stored =
                        shards
                            .get(shard)
                            .get(hash, check.counter.fingerprint(), check.duration);
                    windows.push(CallWindow::new(check, shard, hash, stored, now));
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
                    .store(w.hash, w.counter, w.duration, w.window.counts(), now);
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
        let hashes: Vec<u64> = checks.iter().map(check_hash).collect();
        let shard_of: Vec<usize> = hashes.iter().map(|&hash| shard_index(hash)).collect();
        // All at once, so that no call decides against half a refund.
        let mut shards = self.lock(&shard_of);
        for (((check, decision), &shard), &hash) in checks
            .iter()
            .zip(&outcome.decisions)
            .zip(&shard_of)
            .zip(&hashes)
        {
            shards.get(shard).take_back(
                hash,
                check.counter.fingerprint(),
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

    /// The common case, one limit per call (`ratelimit.limit`, a key with one limit), without
    /// the bookkeeping a call with several needs: one lock, one table probe for a counter
    /// already tracked, no allocation but the answer's.
    fn limit_one(&self, check: &LimitCheck, now: UnixMillis) -> LimitOutcome {
        let hash = check_hash(check);
        let counter = check.counter.fingerprint();
        let mut shard = self.shards[shard_index(hash)].lock();
        let stored = shard.get_mut(hash, counter, check.duration);
        let mut window = SlidingWindow::observe(stored.as_deref().copied(), now, check.duration);
        let before = window.effective();
        let passed = window.admits(check.limit, check.cost);
        if passed && check.cost > 0 {
            window.count(check.cost);
            match stored {
                Some(counts) => *counts = window.counts(),
                None => shard.store(hash, counter, check.duration, window.counts(), now),
            }
        }
        drop(shard);
        let effective = if passed { window.effective() } else { before };
        LimitOutcome {
            passed,
            decisions: vec![LimitDecision {
                passed,
                limit: check.limit,
                remaining: check.limit.saturating_sub(effective),
                reset: window.reset(),
                window: window.seq(),
            }],
        }
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
    fn shard_of(&self, counter: &str, duration: WindowDuration) -> usize {
        shard_index(state_hash(super::Fingerprint::of(counter), duration))
    }

    #[cfg(test)]
    fn stored(&self, counter: &str, duration: WindowDuration) -> Option<WindowCounts> {
        let counter = super::Fingerprint::of(counter);
        let hash = state_hash(counter, duration);
        self.shards[shard_index(hash)]
            .lock()
            .get(hash, counter, duration)
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

/// The hash of a check's state: it picks the shard and probes the shard's table.
fn check_hash(check: &LimitCheck) -> u64 {
    state_hash(check.counter.fingerprint(), check.duration)
}

/// The shard a hash belongs to. Bits the shard's own table does not start its probes from,
/// so the states of one shard still spread over its whole table.
fn shard_index(hash: u64) -> usize {
    // The remainder is below SHARDS, so it fits in a usize.
    ((hash >> 32) % SHARDS as u64) as usize
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
struct CallWindow {
    counter: Fingerprint,
    duration: WindowDuration,
    shard: usize,
    hash: u64,
    /// The stored state at the call's time, plus the costs of this call's checks so far.
    window: SlidingWindow,
    /// The effective count before this call, which a denied call reports against.
    before: u64,
    /// What this call adds if it passes.
    added: u64,
}

impl CallWindow {
    fn new(
        check: &LimitCheck,
        shard: usize,
        hash: u64,
        stored: Option<WindowCounts>,
        now: UnixMillis,
    ) -> Self {
        let window = SlidingWindow::observe(stored, now, check.duration);
        Self {
            counter: check.counter.fingerprint(),
            duration: check.duration,
            shard,
            hash,
            before: window.effective(),
            window,
            added: 0,
        }
    }

    fn is_for(&self, check: &LimitCheck) -> bool {
        self.duration == check.duration && self.counter == check.counter.fingerprint()
    }

    fn count(&mut self, cost: u64) {
        self.window.count(cost);
        self.added = self.added.saturating_add(cost);
    }
}

#[cfg(test)]
mod tests;
