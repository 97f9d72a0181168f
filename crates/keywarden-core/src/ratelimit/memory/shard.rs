//! One shard of the in-memory limiter: the window counts of the (counter, duration) pairs that
//! hash to it, forgetting expired ones by itself.
//!
//! States are filed under the counter's [`Fingerprint`] and the duration, in a
//! `hashbrown::HashTable` probed with [`state_hash`] of the two, the same hash that picks the
//! shard: a decision hashes no string, allocates nothing, and touches no memory outside the
//! table's own entry.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::ratelimit::window::WindowCounts;
use crate::ratelimit::{Fingerprint, WindowDuration};
use crate::time::UnixMillis;

/// Below this many states a shard does not sweep itself: a pass would free too little to
/// matter.
pub(super) const MIN_SELF_SWEEP_LEN: usize = 256;

/// The hash of a (counter, duration) pair: the counter's keyed hash mixed with the duration
/// (a multiply and xor-shift, SplitMix64's finaliser), so every bit depends on both.
pub(super) fn state_hash(counter: Fingerprint, duration: WindowDuration) -> u64 {
    let mut z = counter.short() ^ duration.as_millis().wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash a stored state is filed under; the table needs it again when it grows.
fn stored_hash(state: &State) -> u64 {
    state_hash(state.counter, state.duration)
}

/// One tracked (counter, duration) pair: 48 bytes, no allocation of its own.
#[derive(Debug)]
struct State {
    counter: Fingerprint,
    duration: WindowDuration,
    counts: WindowCounts,
}

impl State {
    fn is(&self, counter: Fingerprint, duration: WindowDuration) -> bool {
        self.counter == counter && self.duration == duration
    }
}

#[derive(Debug)]
pub(super) struct Shard {
    states: HashTable<State>,
    /// The size at which the shard sweeps itself next: twice what its last sweep left. That
    /// keeps sweeping at O(1) per insert, amortized, and the shard at most about twice its live
    /// state, whoever else calls `sweep`.
    sweep_at: usize,
}

impl Shard {
    pub fn new() -> Self {
        Self {
            states: HashTable::new(),
            sweep_at: MIN_SELF_SWEEP_LEN,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn get(
        &self,
        hash: u64,
        counter: Fingerprint,
        duration: WindowDuration,
    ) -> Option<WindowCounts> {
        self.states
            .find(hash, |s| s.is(counter, duration))
            .map(|s| s.counts)
    }

    /// The stored counts of a pair, for a caller that may change them in place.
    pub fn get_mut(
        &mut self,
        hash: u64,
        counter: Fingerprint,
        duration: WindowDuration,
    ) -> Option<&mut WindowCounts> {
        self.states
            .find_mut(hash, |s| s.is(counter, duration))
            .map(|s| &mut s.counts)
    }

    /// Stores the counts of a call that was admitted; `now` is that call's time, used when the
    /// new state makes the shard due for a sweep.
    pub fn store(
        &mut self,
        hash: u64,
        counter: Fingerprint,
        duration: WindowDuration,
        counts: WindowCounts,
        now: UnixMillis,
    ) {
        match self
            .states
            .entry(hash, |s| s.is(counter, duration), stored_hash)
        {
            Entry::Occupied(mut stored) => stored.get_mut().counts = counts,
            Entry::Vacant(vacant) => {
                vacant.insert(State {
                    counter,
                    duration,
                    counts,
                });
                if self.states.len() >= self.sweep_at {
                    self.sweep(now);
                }
            }
        }
    }

    pub fn take_back(
        &mut self,
        hash: u64,
        counter: Fingerprint,
        duration: WindowDuration,
        window: u64,
        cost: u64,
    ) {
        if let Some(stored) = self.get_mut(hash, counter, duration) {
            stored.take_back(window, cost);
        }
    }

    /// Forgets state whose windows have both ended by `now`; returns how many it forgot.
    pub fn sweep(&mut self, now: UnixMillis) -> usize {
        let before = self.states.len();
        self.states
            .retain(|s| !s.counts.has_expired(now, s.duration));
        let left = self.states.len();
        // A burst of one-off counters leaves a large, mostly empty table behind; give the
        // memory back, keeping room to grow so that a steady load does not reallocate.
        if self.states.capacity() > 4 * left.max(MIN_SELF_SWEEP_LEN) {
            self.states.shrink_to(2 * left, stored_hash);
        }
        self.sweep_at = (2 * left).max(MIN_SELF_SWEEP_LEN);
        before - left
    }
}
