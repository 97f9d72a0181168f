//! Reading back the minute rollup rows that writes leave pending (see `usage_batch`), summed
//! while they are read.
//!
//! A fold reads every write's pending rows since the last fold: under steady load, dozens of
//! writes, each with a row for nearly every key verified that minute. Parsed into a vector per
//! write, they were tens of MB of fresh memory per fold, and faulting those pages in cost the
//! store's writer more than parsing them. [`MinuteSums`] adds each row to the sum of its row
//! key as the text is parsed, so a fold's memory follows the distinct rows (keys × outcomes ×
//! minutes), not the number of writes.

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher as _;

use compact_str::CompactString;
use hashbrown::HashTable;
use keywarden_core::id::{ApiId, IdentityId, KeyId, WorkspaceId};
use keywarden_core::identity::ExternalId;
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{RollupDelta, VerificationEvent, rollups_from_minutes};
use keywarden_core::verify::VerifyCode;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};

use crate::columns::{ColumnError, Invalid, at};

/// One minute rollup row: the row's key as an event (whose time is the minute), and what it
/// adds.
pub(crate) struct PendingMinute {
    /// Its `spent_credits` is what the row adds.
    pub event: VerificationEvent,
    pub count: i64,
    pub latest: UnixMillis,
}

impl PendingMinute {
    /// The row as [`keywarden_core::usage::rollups_from_minutes`] takes it.
    pub fn delta(&self) -> RollupDelta<'_> {
        RollupDelta {
            bucket: self.event.time,
            event: &self.event,
            count: self.count,
            spent_credits: self.event.spent_credits,
            latest: self.latest,
        }
    }

    fn key(&self) -> RowKey<'_> {
        let e = &self.event;
        (
            e.time.as_millis(),
            e.key_id.as_str(),
            e.workspace_id.as_str(),
            e.api_id.as_str(),
            e.identity_id.as_ref().map(IdentityId::as_str),
            e.outcome.as_str(),
            &e.tags,
        )
    }
}

/// What rows are summed by, as text: the fields `keywarden_core::usage::rollup` keys its
/// rows by (minute, key, workspace, API, identity, outcome, tags). Rows read from text are
/// compared before their ids are parsed, so a row key already summed costs no parsing.
type RowKey<'a> = (
    i64,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a [String],
);

/// The pending rows of any number of writes, one row per distinct row key.
#[derive(Default)]
pub(crate) struct MinuteSums {
    rows: Vec<PendingMinute>,
    /// Indexes into `rows`, by the hash of their [`RowKey`].
    index: HashTable<usize>,
    hasher: foldhash::fast::RandomState,
}

impl MinuteSums {
    /// Adds the rows of one write's stored pending text. A damaged text is an error; the
    /// sums are then incomplete and must not be stored.
    pub fn add_pending(&mut self, text: &str) -> Result<(), ColumnError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let added = AddRows(self)
            .deserialize(&mut de)
            .map_err(at("pending.rows"))?;
        de.end().map_err(at("pending.rows"))?;
        added
    }

    /// Every granularity's rows, as [`rollups_from_minutes`] gives them.
    pub fn rollups(&self) -> [Vec<RollupDelta<'_>>; 4] {
        rollups_from_minutes(self.rows.iter().map(PendingMinute::delta))
    }

    /// The distinct minute rows, in the order they were first read.
    #[cfg(test)]
    pub fn rows(&self) -> &[PendingMinute] {
        &self.rows
    }

    fn add(&mut self, row: PendingRowWire<'_>) -> Result<(), ColumnError> {
        let Self {
            rows,
            index,
            hasher,
        } = self;
        let key = row.key();
        let hash = hasher.hash_one(key);
        if let Some(&i) = index.find(hash, |&i| rows[i].key() == key) {
            let sum = &mut rows[i];
            sum.count += row.count;
            sum.event.spent_credits = sum.event.spent_credits.saturating_add(row.spent_credits);
            sum.latest = sum.latest.max(UnixMillis::from_millis(row.latest));
            return Ok(());
        }
        rows.push(row.into_minute()?);
        index.insert_unique(hash, rows.len() - 1, |&i| hasher.hash_one(rows[i].key()));
        Ok(())
    }
}

/// The seed that adds each element of the array to the sums. A row that does not convert
/// ends the adding; the rest of the array is still parsed, so the outer result says whether
/// the text was JSON of the right shape and the inner one whether its values converted.
struct AddRows<'s>(&'s mut MinuteSums);

impl<'de> DeserializeSeed<'de> for AddRows<'_> {
    type Value = Result<(), ColumnError>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AddRows<'_> {
    type Value = Result<(), ColumnError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of pending rollup rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while let Some(row) = seq.next_element::<PendingRowWire<'de>>()? {
            if let Err(e) = self.0.add(row) {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

/// The stored form of one pending row: a JSON array in `usage_batch::pending_rows`' order.
/// Its text is borrowed from the stored row where it has nothing escaped (ids never do).
#[derive(Debug, Deserialize)]
struct PendingRowWire<'a> {
    minute: i64,
    #[serde(borrow)]
    workspace_id: Cow<'a, str>,
    #[serde(borrow)]
    key_space_id: Cow<'a, str>,
    #[serde(borrow)]
    identity_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    external_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key_id: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    tags: Vec<String>,
    count: i64,
    spent_credits: i64,
    latest: i64,
}

impl PendingRowWire<'_> {
    fn key(&self) -> RowKey<'_> {
        (
            self.minute,
            &self.key_id,
            &self.workspace_id,
            &self.key_space_id,
            self.identity_id.as_deref(),
            &self.outcome,
            &self.tags,
        )
    }

    fn into_minute(self) -> Result<PendingMinute, ColumnError> {
        Ok(PendingMinute {
            event: VerificationEvent {
                request_id: CompactString::default(),
                time: UnixMillis::from_millis(self.minute),
                workspace_id: WorkspaceId::parse(&self.workspace_id)
                    .map_err(at("pending.workspace_id"))?,
                api_id: ApiId::parse(&self.key_space_id).map_err(at("pending.key_space_id"))?,
                key_id: KeyId::parse(&self.key_id).map_err(at("pending.key_id"))?,
                identity_id: self
                    .identity_id
                    .as_deref()
                    .map(IdentityId::parse)
                    .transpose()
                    .map_err(at("pending.identity_id"))?,
                external_id: self
                    .external_id
                    .as_deref()
                    .map(ExternalId::parse)
                    .transpose()
                    .map_err(at("pending.external_id"))?,
                outcome: VerifyCode::parse(&self.outcome)
                    .ok_or_else(|| at("pending.outcome")(Invalid("not a verification outcome")))?,
                spent_credits: self.spent_credits,
                tags: self.tags,
                client_ip: None,
            },
            count: self.count,
            latest: UnixMillis::from_millis(self.latest),
        })
    }
}

#[cfg(test)]
mod tests {
    use keywarden_core::usage::{Granularity, rollup};

    use super::*;
    use crate::usage_batch::pending_rows;
    use crate::usage_batch::tests::event;

    /// What a test compares of a rollup row: everything it is keyed by and everything it adds.
    type Compared<'a> = (
        UnixMillis,
        &'a str,
        &'a str,
        Option<&'a str>,
        VerifyCode,
        &'a [String],
        i64,
        i64,
        UnixMillis,
    );

    fn compared<'a>(rows: &[RollupDelta<'a>]) -> Vec<Compared<'a>> {
        rows.iter()
            .map(|r| {
                let e = r.event;
                (
                    r.bucket,
                    e.workspace_id.as_str(),
                    e.key_id.as_str(),
                    e.identity_id.as_ref().map(IdentityId::as_str),
                    e.outcome,
                    e.tags.as_slice(),
                    r.count,
                    r.spent_credits,
                    r.latest,
                )
            })
            .collect()
    }

    fn sums_of(texts: &[String]) -> MinuteSums {
        let mut sums = MinuteSums::default();
        for text in texts {
            sums.add_pending(text).unwrap();
        }
        sums
    }

    #[test]
    fn rows_read_back_as_they_were_summed() {
        let events = [
            event("ws_a", "key_1", 60_000, &["t"]),
            event("ws_a", "key_1", 60_500, &["t"]),
            event("ws_a", "key_2", 119_999, &[]),
        ];
        let minutes = rollup(&events, Granularity::Minute);
        let sums = sums_of(&[pending_rows(&minutes)]);
        let back: Vec<_> = sums.rows().iter().map(PendingMinute::delta).collect();
        assert_eq!(compared(&back), compared(&minutes));
        assert_eq!(
            (back[0].count, back[0].latest),
            (2, UnixMillis::from_millis(60_500))
        );
        let external: Vec<_> = sums
            .rows()
            .iter()
            .map(|m| m.event.external_id.as_ref().map(ExternalId::as_str))
            .collect();
        assert_eq!(external, [Some("user-7.x"), Some("user-7.x")]);
    }

    #[test]
    fn the_rows_of_several_writes_sum_like_all_their_events_at_once() {
        let with = |mut e: VerificationEvent, outcome: VerifyCode, identity: Option<&str>| {
            e.outcome = outcome;
            e.identity_id = identity.map(|i| IdentityId::parse(i).unwrap());
            e
        };
        let writes = [
            vec![
                event("ws_a", "key_1", 60_000, &["t"]),
                event("ws_a", "key_2", 61_000, &[]),
                with(event("ws_b", "key_9", 62_000, &[]), VerifyCode::Valid, None),
            ],
            vec![
                event("ws_a", "key_1", 60_500, &["t"]),
                event("ws_a", "key_1", 65_000, &[]),
                with(
                    event("ws_a", "key_1", 66_000, &["t"]),
                    VerifyCode::Valid,
                    None,
                ),
                event("ws_a", "key_3", 3_600_000, &[]),
            ],
            vec![
                event("ws_a", "key_2", 119_999, &[]),
                event("ws_a", "key_1", 60_100, &["t"]),
                with(
                    event("ws_a", "key_1", 60_200, &["t"]),
                    VerifyCode::RateLimited,
                    Some("id_1"),
                ),
                with(event("ws_b", "key_9", 62_500, &[]), VerifyCode::Valid, None),
            ],
        ];
        let texts: Vec<String> = writes
            .iter()
            .map(|w| pending_rows(&rollup(w, Granularity::Minute)))
            .collect();
        let sums = sums_of(&texts);
        let all: Vec<VerificationEvent> = writes.concat();
        let minutes = rollup(&all, Granularity::Minute);
        let want = rollups_from_minutes(minutes.iter().cloned());
        let got = sums.rollups();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(compared(g), compared(w));
        }
        // Rows several writes held were summed as they were read, not kept apart.
        let read: usize = writes
            .iter()
            .map(|w| rollup(w, Granularity::Minute).len())
            .sum();
        assert_eq!(sums.rows().len(), minutes.len());
        assert!(sums.rows().len() < read, "{} of {read}", sums.rows().len());
    }

    #[test]
    fn rows_with_escaped_text_sum_with_plain_ones() {
        // Written by hand with escapes this build never writes (JSON allows them anywhere).
        let plain = r#"[[60000,"ws_a","api_1",null,"user-7","key_1","VALID",["t"],2,1,60500]]"#;
        let escaped = r#"[[60000,"ws\u005fa","api_1",null,"user\u002d7","key_1","VALID",["\u0074"],3,4,60700]]"#;
        let sums = sums_of(&[plain.to_owned(), escaped.to_owned()]);
        let [row] = sums.rows() else {
            panic!("one row expected, got {}", sums.rows().len());
        };
        assert_eq!(
            (
                row.event.workspace_id.as_str(),
                row.event.external_id.as_ref().map(ExternalId::as_str),
                row.event.tags.as_slice(),
            ),
            ("ws_a", Some("user-7"), ["t".to_owned()].as_slice())
        );
        assert_eq!(
            (row.count, row.event.spent_credits, row.latest),
            (5, 5, UnixMillis::from_millis(60_700))
        );
    }

    #[test]
    fn damaged_rows_are_an_error() {
        let good = r#"[60000,"ws_a","api_1",null,null,"key_1","VALID",[],1,0,60000]"#;
        for damaged in [
            "[[1, \"ws_a\"]]".to_owned(),
            "not json".to_owned(),
            format!("[{good}] trailing"),
            format!("[{good},{}]", good.replace("\"key_1\"", "\"key 1!\"")),
            format!("[{},{good}]", good.replace("\"VALID\"", "\"MAYBE\"")),
        ] {
            let mut sums = MinuteSums::default();
            assert!(sums.add_pending(&damaged).is_err(), "{damaged}");
        }
        assert!(sums_of(&[format!("[{good}]")]).rows().len() == 1);
    }
}
