//! Usage credits: a balance that verifications spend, with an optional daily or monthly refill.
//!
//! A refill *sets* the balance to its amount (it does not add) and leaves balances already at
//! or above the amount alone. Refills happen at midnight UTC: every day, or monthly on
//! `refillDay` (on the month's last day when the month is shorter). Whoever touches the balance
//! first after a refill boundary applies it, so a refill is never missed, also after downtime.

use time::{Date, Month, OffsetDateTime};

use crate::time::UnixMillis;

/// The largest balance or amount the wire allows (int64).
pub const MAX_CREDITS: i64 = i64::MAX;

/// When a refill happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefillSchedule {
    /// Every day at midnight UTC.
    Daily,
    /// Every month at midnight UTC on `day` (1..=31), or on the last day of shorter months.
    Monthly { day: u8 },
}

/// Why a refill setting is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefillError {
    #[error("refillDay must be between 1 and 31")]
    DayOutOfRange,
    #[error("refillDay is required when interval is monthly")]
    MonthlyWithoutDay,
    #[error("refillDay is only allowed when interval is monthly")]
    DailyWithDay,
    #[error("amount must be at least 1")]
    AmountTooSmall,
}

/// A refill rule: what the balance is set to, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRefill {
    schedule: RefillSchedule,
    amount: i64,
}

impl CreditRefill {
    pub fn new(schedule: RefillSchedule, amount: i64) -> Result<Self, RefillError> {
        if amount < 1 {
            return Err(RefillError::AmountTooSmall);
        }
        if let RefillSchedule::Monthly { day } = schedule
            && !(1..=31).contains(&day)
        {
            return Err(RefillError::DayOutOfRange);
        }
        Ok(Self { schedule, amount })
    }

    /// Builds a rule from the wire's fields: `interval` is `daily` or `monthly`.
    pub fn from_wire(
        monthly: bool,
        amount: i64,
        refill_day: Option<i64>,
    ) -> Result<Self, RefillError> {
        let schedule = match (monthly, refill_day) {
            (false, None) => RefillSchedule::Daily,
            (false, Some(_)) => return Err(RefillError::DailyWithDay),
            (true, None) => return Err(RefillError::MonthlyWithoutDay),
            (true, Some(day)) => RefillSchedule::Monthly {
                day: u8::try_from(day)
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or(RefillError::DayOutOfRange)?,
            },
        };
        Self::new(schedule, amount)
    }

    pub fn schedule(&self) -> RefillSchedule {
        self.schedule
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// The most recent refill time at or before `now`.
    pub fn latest_boundary(&self, now: UnixMillis) -> UnixMillis {
        match self.schedule {
            RefillSchedule::Daily => now.start_of_utc_day(),
            RefillSchedule::Monthly { day } => {
                let today = utc_date(now);
                let this_month = refill_date(today.year(), today.month(), day);
                if this_month <= today {
                    midnight(this_month)
                } else {
                    let (year, month) = previous_month(today.year(), today.month());
                    midnight(refill_date(year, month, day))
                }
            }
        }
    }
}

fn utc_date(t: UnixMillis) -> Date {
    let seconds = t.start_of_utc_day().as_millis() / 1000;
    OffsetDateTime::from_unix_timestamp(seconds)
        .map(OffsetDateTime::date)
        .unwrap_or(Date::MIN)
}

fn refill_date(year: i32, month: Month, day: u8) -> Date {
    let day = day.min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MIN)
}

fn previous_month(year: i32, month: Month) -> (i32, Month) {
    match month {
        Month::January => (year - 1, Month::December),
        m => (year, m.previous()),
    }
}

fn midnight(date: Date) -> UnixMillis {
    let seconds = date.midnight().assume_utc().unix_timestamp();
    UnixMillis::from_millis(seconds.saturating_mul(1000))
}

/// A key's credit state. A key without `Credits` has unlimited usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    remaining: i64,
    refill: Option<CreditRefill>,
    /// The last time a refill was applied (or the balance was configured), so refills that
    /// fell due while nobody looked are applied exactly once.
    last_refill_at: UnixMillis,
}

/// Why a credit balance is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remaining must be between 0 and {MAX_CREDITS}")]
pub struct NegativeCredits;

/// What a spend attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// `cost` was deducted; `remaining` is the balance after.
    Spent { remaining: i64 },
    /// The balance was below `cost`; nothing was deducted.
    Insufficient { remaining: i64 },
}

/// A change to a balance through `keys.updateCredits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditAdjustment {
    Increment(i64),
    Decrement(i64),
}

/// Why an adjustment cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdjustmentError {
    #[error("the key has unlimited credits; use operation \"set\" to give it a balance")]
    Unlimited,
    #[error("the balance would exceed {MAX_CREDITS}")]
    Overflow,
}

impl Credits {
    pub fn new(
        remaining: i64,
        refill: Option<CreditRefill>,
        now: UnixMillis,
    ) -> Result<Self, NegativeCredits> {
        if remaining < 0 {
            return Err(NegativeCredits);
        }
        Ok(Self {
            remaining,
            refill,
            last_refill_at: now,
        })
    }

    /// Rebuilds stored state without applying any rule; for storage adapters.
    pub fn from_stored(
        remaining: i64,
        refill: Option<CreditRefill>,
        last_refill_at: UnixMillis,
    ) -> Self {
        Self {
            remaining: remaining.max(0),
            refill,
            last_refill_at,
        }
    }

    pub fn remaining(&self) -> i64 {
        self.remaining
    }

    pub fn refill(&self) -> Option<CreditRefill> {
        self.refill
    }

    pub fn last_refill_at(&self) -> UnixMillis {
        self.last_refill_at
    }

    /// Replaces the balance, keeping the refill rule and its history.
    pub fn with_remaining(self, remaining: i64) -> Result<Self, NegativeCredits> {
        if remaining < 0 {
            return Err(NegativeCredits);
        }
        Ok(Self { remaining, ..self })
    }

    /// Replaces the refill rule, keeping the balance and the refill history so a rule change
    /// does not trigger an extra refill.
    pub fn with_refill(self, refill: Option<CreditRefill>) -> Self {
        Self { refill, ..self }
    }

    /// Applies a refill that fell due since the last one. Returns whether anything changed.
    pub fn apply_due_refill(&mut self, now: UnixMillis) -> bool {
        let Some(refill) = self.refill else {
            return false;
        };
        if self.last_refill_at >= refill.latest_boundary(now) {
            return false;
        }
        self.last_refill_at = now;
        self.remaining = self.remaining.max(refill.amount());
        true
    }

    /// Deducts `cost` if the balance covers it; never goes below zero. A cost of zero always
    /// succeeds and changes nothing.
    pub fn spend(&mut self, cost: i64) -> SpendOutcome {
        if cost <= self.remaining {
            self.remaining -= cost.max(0);
            SpendOutcome::Spent {
                remaining: self.remaining,
            }
        } else {
            SpendOutcome::Insufficient {
                remaining: self.remaining,
            }
        }
    }

    /// Applies an increment or decrement; decrements clamp at zero.
    pub fn adjust(&mut self, adjustment: CreditAdjustment) -> Result<(), AdjustmentError> {
        self.remaining = match adjustment {
            CreditAdjustment::Increment(n) => self
                .remaining
                .checked_add(n)
                .ok_or(AdjustmentError::Overflow)?,
            CreditAdjustment::Decrement(n) => (self.remaining - n.min(self.remaining)).max(0),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: Month, d: u8, hh: u8) -> UnixMillis {
        let date = Date::from_calendar_date(y, m, d).unwrap();
        let t = date
            .with_hms(hh, 0, 0)
            .unwrap()
            .assume_utc()
            .unix_timestamp();
        UnixMillis::from_millis(t * 1000)
    }

    fn monthly(day: u8, amount: i64) -> CreditRefill {
        CreditRefill::new(RefillSchedule::Monthly { day }, amount).unwrap()
    }

    #[test]
    fn daily_boundary_is_todays_midnight() {
        let r = CreditRefill::new(RefillSchedule::Daily, 10).unwrap();
        assert_eq!(
            r.latest_boundary(at(2026, Month::November, 27, 21)),
            at(2026, Month::November, 27, 0)
        );
    }

    #[test]
    fn monthly_boundary_is_this_or_last_months_refill_day() {
        let r = monthly(15, 10);
        assert_eq!(
            r.latest_boundary(at(2026, Month::November, 27, 12)),
            at(2026, Month::November, 15, 0)
        );
        assert_eq!(
            r.latest_boundary(at(2026, Month::November, 3, 12)),
            at(2026, Month::October, 15, 0)
        );
        assert_eq!(
            r.latest_boundary(at(2026, Month::January, 3, 12)),
            at(2025, Month::December, 15, 0)
        );
    }

    #[test]
    fn monthly_refill_day_past_month_end_uses_the_last_day() {
        let r = monthly(31, 10);
        assert_eq!(
            r.latest_boundary(at(2026, Month::February, 28, 1)),
            at(2026, Month::February, 28, 0)
        );
        assert_eq!(
            r.latest_boundary(at(2026, Month::March, 30, 1)),
            at(2026, Month::February, 28, 0)
        );
        assert_eq!(
            r.latest_boundary(at(2028, Month::February, 29, 1)),
            at(2028, Month::February, 29, 0)
        );
    }

    #[test]
    fn refill_sets_the_balance_once_per_boundary() {
        let created = at(2026, Month::November, 27, 10);
        let daily = CreditRefill::new(RefillSchedule::Daily, 100).unwrap();
        let mut credits = Credits::new(3, Some(daily), created).unwrap();
        assert!(!credits.apply_due_refill(at(2026, Month::November, 27, 23)));
        assert_eq!(credits.remaining(), 3);
        let after_midnight = at(2026, Month::November, 28, 0);
        assert!(credits.apply_due_refill(after_midnight));
        assert_eq!(credits.remaining(), 100);
        credits.spend(40);
        assert!(!credits.apply_due_refill(at(2026, Month::November, 28, 5)));
        assert_eq!(credits.remaining(), 60);
        // Several days of downtime: one refill, not one per missed day.
        assert!(credits.apply_due_refill(at(2026, Month::December, 2, 5)));
        assert_eq!(credits.remaining(), 100);
    }

    #[test]
    fn refill_leaves_larger_balances_alone() {
        let daily = CreditRefill::new(RefillSchedule::Daily, 10).unwrap();
        let mut credits = Credits::new(50, Some(daily), at(2026, Month::November, 1, 10)).unwrap();
        credits.apply_due_refill(at(2026, Month::November, 2, 10));
        assert_eq!(credits.remaining(), 50);
    }

    #[test]
    fn spend_never_goes_below_zero() {
        let now = UnixMillis::from_millis(0);
        let mut c = Credits::new(5, None, now).unwrap();
        assert_eq!(c.spend(5), SpendOutcome::Spent { remaining: 0 });
        let mut c = Credits::new(5, None, now).unwrap();
        assert_eq!(c.spend(15), SpendOutcome::Insufficient { remaining: 5 });
        let mut c = Credits::new(0, None, now).unwrap();
        assert_eq!(c.spend(1), SpendOutcome::Insufficient { remaining: 0 });
        assert_eq!(c.spend(0), SpendOutcome::Spent { remaining: 0 });
    }

    #[test]
    fn adjustments_clamp_and_refuse_overflow() {
        let now = UnixMillis::from_millis(0);
        let mut c = Credits::new(5, None, now).unwrap();
        c.adjust(CreditAdjustment::Decrement(9)).unwrap();
        assert_eq!(c.remaining(), 0);
        c.adjust(CreditAdjustment::Increment(7)).unwrap();
        assert_eq!(c.remaining(), 7);
        assert_eq!(
            c.adjust(CreditAdjustment::Increment(i64::MAX)),
            Err(AdjustmentError::Overflow)
        );
        assert_eq!(c.remaining(), 7);
    }

    #[test]
    fn wire_refill_rules() {
        assert!(CreditRefill::from_wire(false, 1, None).is_ok());
        assert_eq!(
            CreditRefill::from_wire(true, 1, None),
            Err(RefillError::MonthlyWithoutDay)
        );
        assert_eq!(
            CreditRefill::from_wire(false, 1, Some(3)),
            Err(RefillError::DailyWithDay)
        );
        assert_eq!(
            CreditRefill::from_wire(true, 1, Some(32)),
            Err(RefillError::DayOutOfRange)
        );
        assert_eq!(
            CreditRefill::from_wire(true, 0, Some(1)),
            Err(RefillError::AmountTooSmall)
        );
    }
}
