//! Usage: one event per verification of a known key, and the time buckets its counts are
//! rolled up into. Stores keep the raw events for a retention period and the rollups for good.

use std::hash::BuildHasher as _;
use std::net::IpAddr;

use compact_str::CompactString;
use hashbrown::HashTable;
use time::{Date, OffsetDateTime};

use crate::id::{ApiId, IdentityId, KeyId, WorkspaceId};
use crate::identity::ExternalId;
use crate::time::UnixMillis;
use crate::verify::VerifyCode;

/// One verification outcome of a key that exists, attributed to the key's workspace.
/// Verifications of unknown keys have no workspace and make no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationEvent {
    /// The id of the request that verified (`req_…`), held inline (request ids are short): a
    /// queued event then owns no heap block of its own. The writer frees events thousands at a
    /// time, on another task than the one that made them, which empties the allocator's
    /// per-thread caches and made every request's allocation take its slow path.
    pub request_id: CompactString,
    pub time: UnixMillis,
    pub workspace_id: WorkspaceId,
    /// The key's API (keyspace).
    pub api_id: ApiId,
    pub key_id: KeyId,
    pub identity_id: Option<IdentityId>,
    pub external_id: Option<ExternalId>,
    pub outcome: VerifyCode,
    /// Credits this verification actually took from the key's balance.
    pub spent_credits: i64,
    /// The request's tags, in the order given.
    pub tags: Vec<String>,
    pub client_ip: Option<IpAddr>,
}

/// The width of a rollup bucket. Buckets start at UTC boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    /// A calendar month, UTC.
    Month,
}

impl Granularity {
    /// Every granularity, finest first: each event is counted once in each.
    pub const ALL: [Self; 4] = [Self::Minute, Self::Hour, Self::Day, Self::Month];

    /// The start of the bucket that contains `t`.
    pub fn bucket_start(self, t: UnixMillis) -> UnixMillis {
        const MINUTE: i64 = 60_000;
        const HOUR: i64 = 3_600_000;
        let ms = t.as_millis();
        match self {
            Self::Minute => UnixMillis::from_millis(ms.div_euclid(MINUTE) * MINUTE),
            Self::Hour => UnixMillis::from_millis(ms.div_euclid(HOUR) * HOUR),
            Self::Day => t.start_of_utc_day(),
            Self::Month => start_of_utc_month(t),
        }
    }
}

/// Midnight UTC of the first day of the calendar month that contains `t`. Times outside the
/// calendar `time` can represent (beyond ±9999 years) fall back to the start of their day.
fn start_of_utc_month(t: UnixMillis) -> UnixMillis {
    let day = t.start_of_utc_day();
    let seconds = day.as_millis().div_euclid(1000);
    let Ok(moment) = OffsetDateTime::from_unix_timestamp(seconds) else {
        return day;
    };
    let Ok(first) = Date::from_calendar_date(moment.year(), moment.month(), 1) else {
        return day;
    };
    let first = first.midnight().assume_utc().unix_timestamp();
    UnixMillis::from_millis(first.saturating_mul(1000))
}

/// A stored rollup row: the verifications of one bucket that share workspace, API, key,
/// identity, outcome and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRollup {
    pub bucket: UnixMillis,
    pub api_id: ApiId,
    pub key_id: KeyId,
    pub identity_id: Option<IdentityId>,
    pub external_id: Option<ExternalId>,
    pub outcome: VerifyCode,
    pub tags: Vec<String>,
    pub count: i64,
    pub spent_credits: i64,
}

/// What one rollup row gains from a batch of events: the events of one bucket that share
/// workspace, API, key, identity, outcome and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDelta<'a> {
    pub bucket: UnixMillis,
    /// The first of the events counted; the others agree on every field the row is keyed by.
    pub event: &'a VerificationEvent,
    pub count: i64,
    pub spent_credits: i64,
    /// The latest time among the events counted: the key's last use as far as they tell.
    pub latest: UnixMillis,
}

/// What a rollup row is keyed by in a batch. Workspace and API are part of it although a key
/// id implies them: the rows must stay apart even for events that disagree about a key.
type RollupKey<'a> = (
    UnixMillis,
    &'a KeyId,
    &'a WorkspaceId,
    &'a ApiId,
    Option<&'a IdentityId>,
    VerifyCode,
    &'a [String],
);

/// The rows `events` add to the rollup of `granularity`, one per distinct row key, ordered
/// by bucket, key id, workspace, API, identity, outcome and tags, so concurrent writers touch
/// shared rows in the same order.
pub fn rollup(events: &[VerificationEvent], granularity: Granularity) -> Vec<RollupDelta<'_>> {
    merge(events.iter().map(single), granularity)
}

/// Every granularity's rows from rows no wider than a minute (events, or the minute rows of
/// one or several batches), in [`Granularity::ALL`]'s order. Only the minutes are summed
/// from the input; each coarser rollup is summed from the one before (a minute lies in one
/// hour, an hour in one day, a day in one month), which has as many rows as the input has
/// distinct keys at most.
pub fn rollups_from_minutes<'a>(
    minutes: impl Iterator<Item = RollupDelta<'a>>,
) -> [Vec<RollupDelta<'a>>; 4] {
    let minute = merge(minutes, Granularity::Minute);
    let hour = merge(minute.iter().cloned(), Granularity::Hour);
    let day = merge(hour.iter().cloned(), Granularity::Day);
    let month = merge(day.iter().cloned(), Granularity::Month);
    [minute, hour, day, month]
}

/// One event as a delta of its own (its bucket is its time, rounded down by [`merge`]).
fn single(event: &VerificationEvent) -> RollupDelta<'_> {
    RollupDelta {
        bucket: event.time,
        event,
        count: 1,
        spent_credits: event.spent_credits,
        latest: event.time,
    }
}

/// Sums `deltas` into the buckets of `granularity`, one row per distinct row key, in
/// [`rollup`]'s order. Each delta's bucket must lie within one bucket of `granularity`.
fn merge<'a>(
    deltas: impl Iterator<Item = RollupDelta<'a>>,
    granularity: Granularity,
) -> Vec<RollupDelta<'a>> {
    // The rows, and an index of them by key that holds only their positions: a map of keys
    // to rows took about a megabyte for a write of 20 000 events over 3 000 keys, rehashed
    // as it grew and faulted in afresh on every write; positions take a few dozen KB.
    let hasher = foldhash::fast::RandomState::default();
    let mut rows: Vec<RollupDelta<'a>> = Vec::new();
    let mut index: HashTable<usize> = HashTable::new();
    for delta in deltas {
        let bucket = granularity.bucket_start(delta.bucket);
        let key = row_key(bucket, delta.event);
        let hash = hasher.hash_one(key);
        let found = index
            .find(hash, |&at| row_key(rows[at].bucket, rows[at].event) == key)
            .copied();
        match found {
            Some(at) => {
                let row = &mut rows[at];
                row.count += delta.count;
                row.spent_credits = row.spent_credits.saturating_add(delta.spent_credits);
                row.latest = row.latest.max(delta.latest);
            }
            None => {
                rows.push(RollupDelta { bucket, ..delta });
                index.insert_unique(hash, rows.len() - 1, |&at| {
                    hasher.hash_one(row_key(rows[at].bucket, rows[at].event))
                });
            }
        }
    }
    // Any order every writer shares prevents deadlocks between them. Bucket, then key id:
    // cheap comparisons that nearly always decide, and close to the order of the stores'
    // unique index (workspace, time, API, key, …), so rows go into it in runs.
    rows.sort_unstable_by(|a, b| {
        let (a, b) = (row_key(a.bucket, a.event), row_key(b.bucket, b.event));
        (a.0, a.1, a.2, a.3, a.4, a.5.as_str(), a.6).cmp(&(
            b.0,
            b.1,
            b.2,
            b.3,
            b.4,
            b.5.as_str(),
            b.6,
        ))
    });
    rows
}

/// The key of the row `event` counts in, in the bucket starting at `bucket`.
fn row_key(bucket: UnixMillis, event: &VerificationEvent) -> RollupKey<'_> {
    (
        bucket,
        &event.key_id,
        &event.workspace_id,
        &event.api_id,
        event.identity_id.as_ref(),
        event.outcome,
        event.tags.as_slice(),
    )
}

/// The latest use of each key among rollup `rows`, ordered by key id and workspace.
pub fn last_uses_of_rows<'a>(
    rows: &[RollupDelta<'a>],
) -> Vec<(&'a WorkspaceId, &'a KeyId, UnixMillis)> {
    let mut latest: foldhash::HashMap<(&KeyId, &WorkspaceId), UnixMillis> =
        foldhash::HashMap::default();
    let uses = rows
        .iter()
        .map(|r| (&r.event.workspace_id, &r.event.key_id, r.latest));
    for (workspace, key, time) in uses {
        latest
            .entry((key, workspace))
            .and_modify(|t| *t = (*t).max(time))
            .or_insert(time);
    }
    let mut latest: Vec<_> = latest.into_iter().map(|((k, w), t)| (w, k, t)).collect();
    latest.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i32, month: time::Month, day: u8, h: u8, m: u8, s: u8, ms: u16) -> UnixMillis {
        let t = Date::from_calendar_date(year, month, day)
            .and_then(|d| d.with_hms_milli(h, m, s, ms))
            .expect("valid test date")
            .assume_utc();
        UnixMillis::from_millis(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("fits"))
    }

    use time::Month::{April, December, February, January, March};

    #[test]
    fn minute_and_hour_round_down() {
        let t = at(2026, March, 5, 13, 47, 29, 999);
        assert_eq!(
            Granularity::Minute.bucket_start(t),
            at(2026, March, 5, 13, 47, 0, 0)
        );
        assert_eq!(
            Granularity::Hour.bucket_start(t),
            at(2026, March, 5, 13, 0, 0, 0)
        );
        assert_eq!(
            Granularity::Day.bucket_start(t),
            at(2026, March, 5, 0, 0, 0, 0)
        );
        // A bucket start is its own bucket.
        for g in Granularity::ALL {
            assert_eq!(g.bucket_start(g.bucket_start(t)), g.bucket_start(t));
        }
    }

    #[test]
    fn boundaries_belong_to_the_bucket_they_start() {
        let midnight = at(2026, March, 1, 0, 0, 0, 0);
        for g in Granularity::ALL {
            assert_eq!(g.bucket_start(midnight), midnight, "{g:?}");
        }
        let just_before = UnixMillis::from_millis(midnight.as_millis() - 1);
        assert_eq!(
            Granularity::Minute.bucket_start(just_before),
            at(2026, February, 28, 23, 59, 0, 0)
        );
        assert_eq!(
            Granularity::Month.bucket_start(just_before),
            at(2026, February, 1, 0, 0, 0, 0)
        );
    }

    #[test]
    fn months_follow_the_calendar() {
        // Leap year: 29 February belongs to February, 1 March to March.
        assert_eq!(
            Granularity::Month.bucket_start(at(2028, February, 29, 23, 59, 59, 999)),
            at(2028, February, 1, 0, 0, 0, 0)
        );
        assert_eq!(
            Granularity::Month.bucket_start(at(2028, March, 1, 0, 0, 0, 0)),
            at(2028, March, 1, 0, 0, 0, 0)
        );
        // 2100 is not a leap year.
        assert_eq!(
            Granularity::Month.bucket_start(at(2100, March, 1, 0, 0, 0, 1)),
            at(2100, March, 1, 0, 0, 0, 0)
        );
        // December rolls into the next year's January.
        assert_eq!(
            Granularity::Month.bucket_start(at(2026, December, 31, 23, 59, 59, 999)),
            at(2026, December, 1, 0, 0, 0, 0)
        );
        assert_eq!(
            Granularity::Month.bucket_start(at(2027, January, 1, 0, 0, 0, 0)),
            at(2027, January, 1, 0, 0, 0, 0)
        );
        assert_eq!(
            Granularity::Day.bucket_start(at(2027, January, 1, 0, 0, 0, 0)),
            at(2027, January, 1, 0, 0, 0, 0)
        );
    }

    fn event(key: &str, time: UnixMillis, outcome: VerifyCode, tags: &[&str]) -> VerificationEvent {
        VerificationEvent {
            request_id: "req_1".into(),
            time,
            workspace_id: WorkspaceId::parse("ws_1").expect("id"),
            api_id: ApiId::parse("api_1").expect("id"),
            key_id: KeyId::parse(key).expect("id"),
            identity_id: None,
            external_id: None,
            outcome,
            spent_credits: 2,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            client_ip: None,
        }
    }

    #[test]
    fn rollup_groups_by_bucket_key_outcome_and_tags() {
        let t = at(2026, March, 5, 13, 47, 29, 0);
        let later = at(2026, March, 5, 13, 48, 1, 0);
        let events = [
            event("key_a", t, VerifyCode::Valid, &["x"]),
            event("key_a", t, VerifyCode::Valid, &["x"]),
            event("key_a", later, VerifyCode::Valid, &["x"]),
            event("key_a", t, VerifyCode::RateLimited, &["x"]),
            event("key_a", t, VerifyCode::Valid, &[]),
            event("key_b", t, VerifyCode::Valid, &["x"]),
        ];
        let minutes = rollup(&events, Granularity::Minute);
        let counts: Vec<i64> = minutes.iter().map(|r| r.count).collect();
        assert_eq!(minutes.len(), 5);
        assert_eq!(counts.iter().sum::<i64>(), 6);
        // In the order every writer shares: bucket, key, …, outcome, tags.
        let order: Vec<_> = minutes
            .iter()
            .map(|r| {
                let e = r.event;
                (
                    r.bucket,
                    e.key_id.as_str(),
                    e.outcome.as_str(),
                    e.tags.len(),
                )
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted);
        assert_eq!(
            order[0],
            (at(2026, March, 5, 13, 47, 0, 0), "key_a", "RATE_LIMITED", 1)
        );
        let hours = rollup(&events, Granularity::Hour);
        assert_eq!(hours.len(), 4);
        let valid_x = hours
            .iter()
            .find(|r| {
                r.event.key_id.as_str() == "key_a"
                    && r.event.outcome == VerifyCode::Valid
                    && r.event.tags == ["x"]
            })
            .expect("row");
        assert_eq!((valid_x.count, valid_x.spent_credits), (3, 6));
        assert_eq!(valid_x.latest, later);
    }

    #[test]
    fn rollups_of_every_granularity_match_rollup_from_the_events() {
        // Across minute, hour, day, month and year boundaries, and before the epoch.
        let times = [
            at(2026, March, 5, 13, 47, 29, 0),
            at(2026, March, 5, 13, 59, 59, 999),
            at(2026, March, 5, 14, 0, 0, 0),
            at(2026, March, 31, 23, 59, 59, 999),
            at(2026, April, 1, 0, 0, 0, 0),
            at(2025, December, 31, 23, 59, 0, 0),
            at(1969, December, 31, 23, 59, 59, 999),
        ];
        let mut events = Vec::new();
        for (i, t) in times.iter().enumerate() {
            for key in ["key_a", "key_b"] {
                let outcome = if i % 2 == 0 {
                    VerifyCode::Valid
                } else {
                    VerifyCode::UsageExceeded
                };
                events.push(event(key, *t, outcome, &["x"]));
                events.push(event(key, *t, VerifyCode::Valid, &[]));
            }
        }
        // As a fold sums them: the minute rows of a write, then every granularity from those.
        let all = rollups_from_minutes(rollup(&events, Granularity::Minute).into_iter());
        for (granularity, rows) in Granularity::ALL.into_iter().zip(&all) {
            let direct = rollup(&events, granularity);
            let strip = |rows: &[RollupDelta<'_>]| -> Vec<_> {
                rows.iter()
                    .map(|r| {
                        let e = r.event;
                        (
                            r.bucket,
                            e.key_id.clone(),
                            e.outcome,
                            e.tags.clone(),
                            r.count,
                        )
                    })
                    .collect()
            };
            assert_eq!(strip(rows), strip(&direct), "{granularity:?}");
        }
    }

    #[test]
    fn last_uses_take_the_latest_time_per_key() {
        let t = at(2026, March, 5, 13, 47, 29, 0);
        let later = at(2026, March, 5, 13, 48, 1, 0);
        let events = [
            event("key_a", later, VerifyCode::Valid, &[]),
            event("key_a", t, VerifyCode::Valid, &[]),
            event("key_b", t, VerifyCode::Valid, &[]),
        ];
        let uses: Vec<_> = last_uses_of_rows(&rollup(&events, Granularity::Minute))
            .into_iter()
            .map(|(_, k, t)| (k.as_str().to_owned(), t))
            .collect();
        assert_eq!(uses, [("key_a".to_owned(), later), ("key_b".to_owned(), t)]);
    }

    #[test]
    fn times_before_the_epoch_round_down_too() {
        let t = at(1969, December, 31, 23, 59, 30, 0);
        assert_eq!(
            Granularity::Minute.bucket_start(t),
            at(1969, December, 31, 23, 59, 0, 0)
        );
        assert_eq!(
            Granularity::Month.bucket_start(t),
            at(1969, December, 1, 0, 0, 0, 0)
        );
    }
}
