//! The sliding-window arithmetic, apart from any storage so it can be checked by hand.
//!
//! Time is cut into fixed windows of `duration` ms aligned to the Unix epoch: window `seq`
//! covers `[seq × duration, (seq + 1) × duration)`. A counter keeps only the counts of its
//! current and previous window; the previous one is weighted by the share of it a true sliding
//! window ending now would still overlap. That is Unkey's approximation, and keeping it is what
//! makes our `remaining` and `reset` the numbers Unkey clients expect.

use super::WindowDuration;
use crate::time::UnixMillis;

/// What a limiter keeps per (counter, duration): the count of window `seq` and of the window
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowCounts {
    pub seq: u64,
    pub current: u64,
    pub previous: u64,
}

impl WindowCounts {
    /// Whether both windows these counts describe have ended by `now`: from then on they weigh
    /// on no decision, so the state can be forgotten.
    pub fn has_expired(&self, now: UnixMillis, duration: WindowDuration) -> bool {
        self.seq.saturating_add(1) < window_seq(now, duration)
    }

    /// Takes `cost` back from window `window` if these counts still hold it; a window that is
    /// no longer tracked has nothing left to take back from.
    pub fn take_back(&mut self, window: u64, cost: u64) {
        if window == self.seq {
            self.current = self.current.saturating_sub(cost);
        } else if window.checked_add(1) == Some(self.seq) {
            self.previous = self.previous.saturating_sub(cost);
        }
    }
}

/// One counter's sliding window as seen at one moment: where in its window "now" is, and the
/// counts of that window and the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlidingWindow {
    duration: u64,
    seq: u64,
    elapsed: u64,
    current: u64,
    previous: u64,
    /// `previous` weighted by its overlap, worked out once: a call asks for the effective
    /// count several times, and only `current` changes while it decides.
    weighted_previous: u64,
}

impl SlidingWindow {
    /// Looks at stored counts (none if the counter has never been counted) from `now`.
    pub fn observe(
        stored: Option<WindowCounts>,
        now: UnixMillis,
        duration: WindowDuration,
    ) -> Self {
        let ms = clamp_to_epoch(now);
        let duration = duration.as_millis();
        let fresh = Self {
            duration,
            seq: ms / duration,
            elapsed: ms % duration,
            current: 0,
            previous: 0,
            weighted_previous: 0,
        };
        let Some(stored) = stored else {
            return fresh;
        };
        let mut window = match fresh.seq.checked_sub(stored.seq) {
            Some(0) => Self {
                current: stored.current,
                previous: stored.previous,
                ..fresh
            },
            Some(1) => Self {
                previous: stored.current,
                ..fresh
            },
            Some(_) => fresh,
            // The clock stepped back behind the stored window (an NTP correction, say).
            // Starting over would admit calls the stored counts forbid, so stay in the stored
            // window and weigh its previous one in full, the most a window start would.
            None => Self {
                seq: stored.seq,
                elapsed: 0,
                current: stored.current,
                previous: stored.previous,
                ..fresh
            },
        };
        window.weighted_previous = window.weigh_previous();
        window
    }

    /// `floor(previous × (duration − elapsed) / duration)`, in 64 bits when the product fits
    /// (128-bit division is a library call).
    fn weigh_previous(&self) -> u64 {
        if self.previous == 0 {
            return 0;
        }
        let overlap = self.duration - self.elapsed;
        if let Some(product) = self.previous.checked_mul(overlap) {
            return product / self.duration;
        }
        let weighted = u128::from(self.previous) * u128::from(overlap) / u128::from(self.duration);
        // `weighted` is at most `previous`, so it always fits.
        u64::try_from(weighted).unwrap_or(u64::MAX)
    }

    /// `current + floor(previous × (duration − elapsed) / duration)`.
    pub fn effective(&self) -> u64 {
        self.current.saturating_add(self.weighted_previous)
    }

    /// A limit of 0 blocks every call, also one that costs nothing: that is how an override
    /// shuts an identifier out.
    pub fn admits(&self, limit: u64, cost: u64) -> bool {
        limit > 0 && self.effective().saturating_add(cost) <= limit
    }

    pub fn count(&mut self, cost: u64) {
        self.current = self.current.saturating_add(cost);
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the current window ends, `(seq + 1) × duration`: the wire's `reset`.
    pub fn reset(&self) -> UnixMillis {
        let end = self.seq.saturating_add(1).saturating_mul(self.duration);
        UnixMillis::from_millis(i64::try_from(end).unwrap_or(i64::MAX))
    }

    /// The counts to store so a later call sees what this one counted.
    pub fn counts(&self) -> WindowCounts {
        WindowCounts {
            seq: self.seq,
            current: self.current,
            previous: self.previous,
        }
    }
}

/// The number of the window `now` falls in.
pub(super) fn window_seq(now: UnixMillis, duration: WindowDuration) -> u64 {
    clamp_to_epoch(now) / duration.as_millis()
}

/// Windows are numbered from the epoch; a clock before it is broken, and treating it as the
/// epoch keeps the arithmetic unsigned.
fn clamp_to_epoch(now: UnixMillis) -> u64 {
    u64::try_from(now.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000;

    fn second() -> WindowDuration {
        WindowDuration(SECOND)
    }

    fn at(ms: u64) -> UnixMillis {
        UnixMillis::from_millis(i64::try_from(ms).unwrap())
    }

    fn counts(seq: u64, current: u64, previous: u64) -> WindowCounts {
        WindowCounts {
            seq,
            current,
            previous,
        }
    }

    /// The effective count of counts stored in window `seq`, seen `ms` into the epoch.
    fn effective(stored: WindowCounts, ms: u64) -> u64 {
        SlidingWindow::observe(Some(stored), at(ms), second()).effective()
    }

    #[test]
    fn window_number_and_reset_follow_the_epoch_grid() {
        let minute = WindowDuration(60_000);
        // 1_700_000_015_000 = 28_333_333 × 60_000 + 35_000
        let w = SlidingWindow::observe(None, at(1_700_000_015_000), minute);
        assert_eq!(w.seq(), 28_333_333);
        assert_eq!(w.reset(), at(28_333_334 * 60_000));
        assert_eq!(w.effective(), 0);

        // The first and the last ms of a window belong to it; the next ms starts the next one.
        let start = SlidingWindow::observe(None, at(5_000), second());
        let last = SlidingWindow::observe(None, at(5_999), second());
        let next = SlidingWindow::observe(None, at(6_000), second());
        assert_eq!((start.seq(), start.reset()), (5, at(6_000)));
        assert_eq!((last.seq(), last.reset()), (5, at(6_000)));
        assert_eq!((next.seq(), next.reset()), (6, at(7_000)));
    }

    #[test]
    fn current_window_counts_in_full_and_previous_by_overlap() {
        // Stored in window 5: current 4, previous (window 4) 10.
        let stored = counts(5, 4, 10);
        // At the start of window 5 the sliding window still covers all of window 4.
        assert_eq!(effective(stored, 5_000), 4 + 10);
        // Half way through, half of it: 10 × 500 / 1000 = 5.
        assert_eq!(effective(stored, 5_500), 4 + 5);
        // 10 × 300 / 1000 = 3 at 700 ms elapsed; 10 × 250 / 1000 = 2.5, floored to 2.
        assert_eq!(effective(stored, 5_700), 4 + 3);
        assert_eq!(effective(stored, 5_750), 4 + 2);
        // One ms before the end: 10 × 1 / 1000 floors to 0.
        assert_eq!(effective(stored, 5_999), 4);
        // A previous count large enough still shows its last ms: 5000 × 1 / 1000 = 5.
        assert_eq!(effective(counts(5, 0, 5_000), 5_999), 5);
    }

    #[test]
    fn older_state_rolls_forward() {
        // Window 5's count becomes the previous one in window 6; its own previous is dropped.
        let stored = counts(5, 10, 7);
        assert_eq!(effective(stored, 6_000), 10);
        assert_eq!(effective(stored, 6_500), 5);
        assert_eq!(
            SlidingWindow::observe(Some(stored), at(6_500), second()).counts(),
            counts(6, 0, 10)
        );
        // Two windows later nothing of it remains.
        assert_eq!(effective(stored, 7_000), 0);
        assert_eq!(
            SlidingWindow::observe(Some(stored), at(7_000), second()).counts(),
            counts(7, 0, 0)
        );
    }

    #[test]
    fn a_clock_that_stepped_back_stays_in_the_stored_window() {
        let stored = counts(8, 3, 10);
        let w = SlidingWindow::observe(Some(stored), at(6_500), second());
        assert_eq!(w.seq(), 8);
        assert_eq!(w.reset(), at(9_000));
        assert_eq!(w.effective(), 3 + 10);
        assert_eq!(w.counts(), stored);
    }

    #[test]
    fn admits_up_to_the_limit_and_never_at_limit_zero() {
        let w = SlidingWindow::observe(Some(counts(5, 6, 0)), at(5_000), second());
        assert!(w.admits(10, 4));
        assert!(!w.admits(10, 5));
        assert!(w.admits(10, 0));
        assert!(w.admits(6, 0));
        assert!(
            !w.admits(5, 0),
            "a count already past the limit admits nothing"
        );
        let empty = SlidingWindow::observe(None, at(5_000), second());
        assert!(!empty.admits(0, 0));
        assert!(!empty.admits(0, 1));
    }

    #[test]
    fn counting_adds_to_the_current_window() {
        let mut w = SlidingWindow::observe(Some(counts(5, 2, 10)), at(5_500), second());
        w.count(3);
        assert_eq!(w.effective(), 2 + 3 + 5);
        assert_eq!(w.counts(), counts(5, 5, 10));
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let big = u64::MAX - 1;
        let mut w = SlidingWindow::observe(Some(counts(5, big, big)), at(5_000), second());
        assert_eq!(w.effective(), u64::MAX);
        w.count(u64::MAX);
        assert_eq!(w.counts().current, u64::MAX);
        // The product previous × overlap needs more than 64 bits and must not wrap:
        // (2^63) × 500 / 1000 = 2^62.
        let half = SlidingWindow::observe(Some(counts(5, 0, 1 << 63)), at(5_500), second());
        assert_eq!(half.effective(), 1 << 62);
        // The longest window at the end of i64 time: the reset saturates.
        let far = SlidingWindow::observe(
            None,
            UnixMillis::from_millis(i64::MAX),
            WindowDuration(2_592_000_000),
        );
        assert_eq!(far.reset(), UnixMillis::from_millis(i64::MAX));
    }

    #[test]
    fn time_before_the_epoch_counts_as_the_epoch() {
        let w = SlidingWindow::observe(None, UnixMillis::from_millis(-5), second());
        assert_eq!((w.seq(), w.reset()), (0, at(1_000)));
    }

    #[test]
    fn state_expires_once_both_its_windows_have_ended() {
        let stored = counts(5, 1, 1);
        assert!(!stored.has_expired(at(5_999), second()));
        // In window 6, window 5 is the previous one and still weighs.
        assert!(!stored.has_expired(at(6_999), second()));
        assert!(stored.has_expired(at(7_000), second()));
        // A clock behind the stored window never expires it.
        assert!(!stored.has_expired(at(1_000), second()));
    }

    #[test]
    fn taking_back_hits_the_window_it_was_counted_in() {
        let mut c = counts(6, 5, 8);
        c.take_back(6, 2);
        assert_eq!(c, counts(6, 3, 8));
        c.take_back(5, 3);
        assert_eq!(c, counts(6, 3, 5));
        // Window 4 is no longer tracked, window 7 not yet: nothing to take back.
        c.take_back(4, 1);
        c.take_back(7, 1);
        assert_eq!(c, counts(6, 3, 5));
        // Never below zero.
        c.take_back(6, 100);
        c.take_back(5, 100);
        assert_eq!(c, counts(6, 0, 0));
    }
}
