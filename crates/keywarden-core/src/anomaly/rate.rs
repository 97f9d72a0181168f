//! A key's learned call rate: calls per minute, smoothed, and a slowly fading peak.
//!
//! The mean alone would call every burst of a bursty but honest client (a nightly job) a
//! spike, because the quiet minutes pull it towards zero. So the baseline is the larger of
//! the mean and half the peak, where the peak fades with a half-life of a week: a burst the
//! key has shown before is not news; ten times anything it ever did is.

use crate::time::UnixMillis;

use super::MINUTE_MS;

/// Weight of the latest minute in the mean (a memory of roughly 20 minutes).
const MEAN_WEIGHT: f64 = 0.05;
/// The peak halves in this many minutes (a week).
const PEAK_HALF_LIFE_MINUTES: f64 = 7.0 * 24.0 * 60.0;

#[derive(Debug)]
pub(super) struct RateBaseline {
    first_minute: i64,
    minute: i64,
    /// Calls in `minute` so far.
    count: u64,
    /// Mean calls per minute over completed minutes.
    mean: f64,
    /// Fading maximum of completed minutes.
    peak: f64,
}

impl RateBaseline {
    pub(super) fn new(now: UnixMillis) -> Self {
        let minute = now.as_millis().div_euclid(MINUTE_MS);
        Self {
            first_minute: minute,
            minute,
            count: 0,
            mean: 0.0,
            peak: 0.0,
        }
    }

    /// Counts one call at `now`; returns the calls of the current minute, this one included.
    /// A call from an earlier minute (events arrive slightly out of order) counts in the
    /// current one.
    pub(super) fn count(&mut self, now: UnixMillis) -> u64 {
        let minute = now.as_millis().div_euclid(MINUTE_MS);
        if minute > self.minute {
            self.close_minutes(minute);
        }
        self.count += 1;
        self.count
    }

    /// Folds the finished minute, and the silent minutes after it, into the baseline.
    fn close_minutes(&mut self, minute: i64) {
        let finished = self.count as f64;
        self.mean = MEAN_WEIGHT * finished + (1.0 - MEAN_WEIGHT) * self.mean;
        let silent = (minute - self.minute - 1).clamp(0, i64::from(i32::MAX));
        let silent = silent as i32;
        self.mean *= (1.0 - MEAN_WEIGHT).powi(silent);
        let fade = |minutes: i32| 0.5f64.powf(f64::from(minutes) / PEAK_HALF_LIFE_MINUTES);
        // The finished minute fades from its own end, like the peak before it.
        self.peak = (self.peak * fade(1)).max(finished) * fade(silent);
        self.minute = minute;
        self.count = 0;
    }

    /// Completed minutes since the key was first seen.
    pub(super) fn minutes_observed(&self) -> i64 {
        self.minute - self.first_minute
    }

    /// The calls per minute this key is known for.
    pub(super) fn per_minute(&self) -> f64 {
        self.mean.max(self.peak / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_minute(m: i64) -> UnixMillis {
        UnixMillis::from_millis(1_800_000_000_000 + m * MINUTE_MS)
    }

    #[test]
    fn steady_traffic_learns_its_rate() {
        let mut rate = RateBaseline::new(at_minute(0));
        for minute in 0..120 {
            for _ in 0..30 {
                rate.count(at_minute(minute));
            }
        }
        assert_eq!(rate.minutes_observed(), 119);
        // Mean converges to 30; the peak is 30, so the baseline is 30 either way.
        assert!(
            (rate.per_minute() - 30.0).abs() < 0.5,
            "{}",
            rate.per_minute()
        );
    }

    #[test]
    fn counts_restart_each_minute() {
        let mut rate = RateBaseline::new(at_minute(0));
        assert_eq!(rate.count(at_minute(0)), 1);
        assert_eq!(rate.count(at_minute(0)), 2);
        assert_eq!(rate.count(at_minute(1)), 1);
        // Late arrivals count in the current minute.
        assert_eq!(rate.count(at_minute(0)), 2);
    }

    #[test]
    fn a_burst_seen_before_raises_the_baseline_for_days() {
        let mut rate = RateBaseline::new(at_minute(0));
        for _ in 0..1000 {
            rate.count(at_minute(0));
        }
        // A day of silence later the mean has decayed to nothing, the peak has not.
        rate.count(at_minute(24 * 60));
        assert!(rate.per_minute() > 450.0, "{}", rate.per_minute());
        assert!(rate.per_minute() < 500.0, "{}", rate.per_minute());
    }
}
