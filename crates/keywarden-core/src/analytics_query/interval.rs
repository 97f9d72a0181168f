//! `now() ± INTERVAL n UNIT`, folded into Unix milliseconds when the query is checked, so the
//! database never consults a clock of its own and tests can fix the instant.

use sqlparser::ast::{DateTimeField, Expr, Interval, Value};
use time::{Date, Month, OffsetDateTime};

use super::error::{QueryError, invalid, unsupported};
use super::expr::integer;
use crate::time::UnixMillis;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    Millis(i64),
    Months(i64),
}

pub(crate) fn interval_parts(interval: &Interval) -> Result<(i64, Unit), QueryError> {
    let Interval {
        value,
        leading_field,
        leading_precision,
        last_field,
        fractional_seconds_precision,
    } = interval;
    if leading_precision.is_some() || last_field.is_some() || fractional_seconds_precision.is_some()
    {
        return Err(unsupported("INTERVAL with precision or a range of units"));
    }
    let amount = match value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => integer(text)?,
            _ => {
                return Err(unsupported(
                    "INTERVAL other than `INTERVAL <integer> <unit>`",
                ));
            }
        },
        _ => {
            return Err(unsupported(
                "INTERVAL other than `INTERVAL <integer> <unit>`",
            ));
        }
    };
    let unit = match leading_field {
        Some(DateTimeField::Second | DateTimeField::Seconds) => Unit::Millis(1_000),
        Some(DateTimeField::Minute | DateTimeField::Minutes) => Unit::Millis(60_000),
        Some(DateTimeField::Hour | DateTimeField::Hours) => Unit::Millis(3_600_000),
        Some(DateTimeField::Day | DateTimeField::Days) => Unit::Millis(UnixMillis::MS_PER_DAY),
        Some(DateTimeField::Week(None) | DateTimeField::Weeks) => {
            Unit::Millis(7 * UnixMillis::MS_PER_DAY)
        }
        Some(DateTimeField::Month | DateTimeField::Months) => Unit::Months(1),
        Some(DateTimeField::Quarter) => Unit::Months(3),
        Some(DateTimeField::Year | DateTimeField::Years) => Unit::Months(12),
        Some(other) => return Err(unsupported(format!("INTERVAL unit {other}"))),
        None => return Err(unsupported("INTERVAL without a unit")),
    };
    Ok((amount, unit))
}

/// `base + amount × unit`. Months are calendar months (the day is clamped to the target
/// month's length), as ClickHouse does.
pub(crate) fn shift(base: i64, amount: i64, unit: Unit) -> Result<i64, QueryError> {
    let out_of_range = || invalid("the time computed from now() and INTERVAL is out of range");
    match unit {
        Unit::Millis(per) => amount
            .checked_mul(per)
            .and_then(|d| base.checked_add(d))
            .ok_or_else(out_of_range),
        Unit::Months(per) => {
            let months = amount.checked_mul(per).ok_or_else(out_of_range)?;
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(base) * 1_000_000)
                .map_err(|_| out_of_range())?;
            let index = i64::from(at.year()) * 12 + i64::from(u8::from(at.month())) - 1;
            let index = index.checked_add(months).ok_or_else(out_of_range)?;
            let year = i32::try_from(index.div_euclid(12)).map_err(|_| out_of_range())?;
            let month = u8::try_from(index.rem_euclid(12) + 1)
                .ok()
                .and_then(|m| Month::try_from(m).ok())
                .ok_or_else(out_of_range)?;
            let day = at.day().min(month.length(year));
            let date = Date::from_calendar_date(year, month, day).map_err(|_| out_of_range())?;
            let shifted = at.replace_date(date);
            i64::try_from(shifted.unix_timestamp_nanos() / 1_000_000).map_err(|_| out_of_range())
        }
    }
}
