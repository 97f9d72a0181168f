//! Time as the wire protocol counts it: Unix epoch milliseconds, and a clock the domain can ask.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time as milliseconds since the Unix epoch (UTC), the unit of every timestamp on
/// the Unkey wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const MS_PER_DAY: i64 = 86_400_000;

    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + ms`, saturating instead of overflowing.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Midnight UTC at the start of the day that contains `self`.
    pub const fn start_of_utc_day(self) -> Self {
        Self(self.0.div_euclid(Self::MS_PER_DAY) * Self::MS_PER_DAY)
    }
}

/// Where the domain gets "now" from, so tests can move time by hand.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixMillis;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UnixMillis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_of_day_rounds_down_to_midnight() {
        // 2026-11-27T21:48:01Z
        let t = UnixMillis::from_millis(1_795_816_081_000);
        assert_eq!(t.start_of_utc_day().as_millis(), 1_795_737_600_000);
        assert_eq!(
            t.start_of_utc_day().start_of_utc_day(),
            t.start_of_utc_day()
        );
    }
}
