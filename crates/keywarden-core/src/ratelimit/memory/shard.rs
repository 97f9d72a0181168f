//! One shard of the in-memory limiter: the window counts of the (counter, duration) pairs that
//! hash to it, forgetting expired ones by itself.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::ratelimit::WindowDuration;
use crate::ratelimit::window::WindowCounts;
use crate::time::UnixMillis;

/// Below this many states a shard does not sweep itself: a pass would free too little to
/// matter.
pub(super) const MIN_SELF_SWEEP_LEN: usize = 256;

#[derive(Debug)]
pub(super) struct Shard {
    states: HashMap<StateKey, WindowCounts>,
    /// The size at which the shard sweeps itself next: twice what its last sweep left. That
    /// keeps sweeping at O(1) per insert, amortized, and the shard at most about twice its live
    /// state, whoever else calls `sweep`.
    sweep_at: usize,
}

impl Shard {
    pub fn new() -> Self {
        Self {
            states: HashMap::new(),
            sweep_at: MIN_SELF_SWEEP_LEN,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn get(&self, counter: &str, duration: WindowDuration) -> Option<WindowCounts> {
        self.states
            .get(&(counter, duration) as &dyn StateKeyRef)
            .copied()
    }

    /// Stores the counts of a call that was admitted; `now` is that call's time, used when the
    /// new state makes the shard due for a sweep.
    pub fn store(
        &mut self,
        counter: &str,
        duration: WindowDuration,
        counts: WindowCounts,
        now: UnixMillis,
    ) {
        if let Some(stored) = self
            .states
            .get_mut(&(counter, duration) as &dyn StateKeyRef)
        {
            *stored = counts;
            return;
        }
        let key = StateKey {
            counter: counter.into(),
            duration,
        };
        self.states.insert(key, counts);
        if self.states.len() >= self.sweep_at {
            self.sweep(now);
        }
    }

    pub fn take_back(&mut self, counter: &str, duration: WindowDuration, window: u64, cost: u64) {
        if let Some(stored) = self
            .states
            .get_mut(&(counter, duration) as &dyn StateKeyRef)
        {
            stored.take_back(window, cost);
        }
    }

    /// Forgets state whose windows have both ended by `now`; returns how many it forgot.
    pub fn sweep(&mut self, now: UnixMillis) -> usize {
        let before = self.states.len();
        self.states
            .retain(|key, counts| !counts.has_expired(now, key.duration));
        let left = self.states.len();
        // A burst of one-off counters leaves a large, mostly empty table behind; give the
        // memory back, keeping room to grow so that a steady load does not reallocate.
        if self.states.capacity() > 4 * left.max(MIN_SELF_SWEEP_LEN) {
            self.states.shrink_to(2 * left);
        }
        self.sweep_at = (2 * left).max(MIN_SELF_SWEEP_LEN);
        before - left
    }
}

/// A map key that owns its counter: allocated once, when the counter is first counted.
#[derive(Debug)]
struct StateKey {
    counter: Box<str>,
    duration: WindowDuration,
}

/// A (counter, duration) pair whether owned or borrowed, so that the map can be searched
/// with a borrowed pair and deciding a call allocates no key.
trait StateKeyRef {
    fn parts(&self) -> (&str, WindowDuration);
}

impl StateKeyRef for StateKey {
    fn parts(&self) -> (&str, WindowDuration) {
        (&self.counter, self.duration)
    }
}

impl StateKeyRef for (&str, WindowDuration) {
    fn parts(&self) -> (&str, WindowDuration) {
        *self
    }
}

impl<'a> Borrow<dyn StateKeyRef + 'a> for StateKey {
    fn borrow(&self) -> &(dyn StateKeyRef + 'a) {
        self
    }
}

// Owned and borrowed keys must hash and compare alike, so both go through `parts`.
impl Hash for dyn StateKeyRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn StateKeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn StateKeyRef + '_ {}

impl Hash for StateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for StateKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for StateKey {}
