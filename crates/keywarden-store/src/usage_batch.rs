//! How one write of verification events is stored, the same on both backends:
//!
//! * the events themselves, as one row per workspace (and per [`MAX_BATCH_EVENTS`] events)
//!   whose `events` column is a JSON array holding one array per event (the
//!   `analytics_verifications` views unpack it), instead of a row per event: a row per event
//!   cost more to insert than a verification costs to answer;
//! * the write's minute rollup rows, as one JSON row "pending" until a fold adds them to the
//!   four rollup tables and to the keys' last use (see [`pending_rows`]; `pending_minutes`
//!   reads them back). The fold runs every few seconds, so a key verified many times between
//!   folds costs one upsert per table, not one per write.
//!
//! Both rows are inserted in the write's transaction and the pending row is deleted in the
//! fold's, so every event is counted in the rollups exactly once, also across a crash.

use keywarden_core::id::{UsageBatchId, WorkspaceId};
use keywarden_core::usage::{Granularity, RollupDelta, VerificationEvent, rollup};

use crate::columns::{ColumnError, Invalid, at};
use crate::usage::IpText;

/// One write as both stores keep it: its events in batches, and its minute rollup rows as one
/// pending row.
pub(crate) struct EncodedWrite {
    pub batches: Vec<EventBatch>,
    pub pending_id: UsageBatchId,
    /// [`pending_rows`] of the write.
    pub pending: String,
}

impl EncodedWrite {
    /// `None` for no events: nothing to store.
    pub fn of(events: &[VerificationEvent]) -> Option<Self> {
        let first = events.first()?;
        Some(Self {
            batches: event_batches(events),
            pending_id: UsageBatchId::generate(first.time),
            pending: pending_rows(&rollup(events, Granularity::Minute)),
        })
    }
}

/// One workspace's events of one write, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventBatch {
    pub id: String,
    pub workspace_id: String,
    /// The earliest and latest event time, so queries and pruning can skip whole batches.
    pub first_time: i64,
    pub last_time: i64,
    pub event_count: i64,
    /// `[[time, request_id, key_space_id, identity_id, external_id, key_id, outcome, tags,
    /// spent_credits, client_ip], …]`: the order the views read the elements in.
    pub events: String,
}

/// Splits `events` by workspace, in batches of at most [`MAX_BATCH_EVENTS`], and encodes
/// each as an [`EventBatch`].
fn event_batches(events: &[VerificationEvent]) -> Vec<EventBatch> {
    // Two passes: the first finds each event's batch and how many each holds, so every
    // batch's text is allocated once at about its final size. Grown by doubling instead, a
    // write of 20 000 events copied its text a dozen times over, into fresh pages each time.
    let mut batches: Vec<EventBatch> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut slot_of: Vec<u32> = Vec::with_capacity(events.len());
    // Each workspace's batch being filled.
    let mut slots: foldhash::HashMap<&WorkspaceId, usize> = foldhash::HashMap::default();
    // Nearly every write holds one workspace or a few, in runs: the last one is tried first.
    let mut last: Option<(&WorkspaceId, usize)> = None;
    for event in events {
        let workspace = &event.workspace_id;
        let filling = match last {
            Some((w, slot)) if w == workspace => Some(slot),
            _ => slots.get(workspace).copied(),
        };
        let slot = match filling {
            Some(slot) if counts[slot] < MAX_BATCH_EVENTS => slot,
            _ => {
                batches.push(EventBatch {
                    id: UsageBatchId::generate(event.time).as_str().to_owned(),
                    workspace_id: workspace.as_str().to_owned(),
                    first_time: event.time.as_millis(),
                    last_time: event.time.as_millis(),
                    event_count: 0,
                    events: String::new(),
                });
                counts.push(0);
                slots.insert(workspace, batches.len() - 1);
                batches.len() - 1
            }
        };
        last = Some((workspace, slot));
        counts[slot] += 1;
        slot_of.push(u32::try_from(slot).unwrap_or(u32::MAX));
    }
    for (batch, count) in batches.iter_mut().zip(&counts) {
        batch.events = String::with_capacity(count * EVENT_BYTES + 2);
    }
    for (event, slot) in events.iter().zip(slot_of) {
        let batch = &mut batches[slot as usize];
        batch.first_time = batch.first_time.min(event.time.as_millis());
        batch.last_time = batch.last_time.max(event.time.as_millis());
        batch.event_count += 1;
        let out = &mut batch.events;
        out.push(if out.is_empty() { '[' } else { ',' });
        push_event(out, event);
    }
    for batch in &mut batches {
        batch.events.push(']');
    }
    batches
}

/// About what an event takes encoded, with its ids and without tags or an identity.
const EVENT_BYTES: usize = 160;

/// The most events one batch row holds: about 250 KB of text. A store copies a row's text
/// twice while inserting it (binding, then building the record), into blocks of the C
/// allocator; at a few MB each those were fresh pages from the kernel every time, and the
/// page faults cost the SQLite writer about half its CPU. Blocks this size are reused.
pub(crate) const MAX_BATCH_EVENTS: usize = 2048;

fn push_event(out: &mut String, e: &VerificationEvent) {
    out.push('[');
    push_int(out, e.time.as_millis());
    out.push(',');
    push_str(out, &e.request_id);
    out.push(',');
    push_plain(out, e.api_id.as_str());
    out.push(',');
    push_plain_opt(out, e.identity_id.as_ref().map(|i| i.as_str()));
    out.push(',');
    push_plain_opt(out, e.external_id.as_ref().map(|i| i.as_str()));
    out.push(',');
    push_plain(out, e.key_id.as_str());
    out.push(',');
    push_plain(out, e.outcome.as_str());
    out.push(',');
    push_tags(out, &e.tags);
    out.push(',');
    push_int(out, e.spent_credits);
    out.push(',');
    push_plain_opt(
        out,
        e.client_ip.map(IpText::of).as_ref().map(IpText::as_str),
    );
    out.push(']');
}

/// A write's minute rollup rows, as stored until they are folded:
/// `[[minute, workspace_id, key_space_id, identity_id, external_id, key_id, outcome, tags,
/// count, spent_credits, latest], …]`.
pub(crate) fn pending_rows(minutes: &[RollupDelta<'_>]) -> String {
    let mut out = String::with_capacity(64 + minutes.len() * 140);
    out.push('[');
    for (i, row) in minutes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let e = row.event;
        out.push('[');
        push_int(&mut out, row.bucket.as_millis());
        out.push(',');
        push_plain(&mut out, e.workspace_id.as_str());
        out.push(',');
        push_plain(&mut out, e.api_id.as_str());
        out.push(',');
        push_plain_opt(&mut out, e.identity_id.as_ref().map(|i| i.as_str()));
        out.push(',');
        push_plain_opt(&mut out, e.external_id.as_ref().map(|i| i.as_str()));
        out.push(',');
        push_plain(&mut out, e.key_id.as_str());
        out.push(',');
        push_plain(&mut out, e.outcome.as_str());
        out.push(',');
        push_tags(&mut out, &e.tags);
        out.push(',');
        push_int(&mut out, row.count);
        out.push(',');
        push_int(&mut out, row.spent_credits);
        out.push(',');
        push_int(&mut out, row.latest.as_millis());
        out.push(']');
    }
    out.push(']');
    out
}

/// What is left of a stored batch once its events before a cut are removed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeptEvents {
    pub events: String,
    pub first_time: i64,
    pub count: i64,
    pub removed: i64,
}

/// The events of a stored batch at or after `cut` (pruning, for the few batches a cut falls
/// inside; whole batches before it are deleted without being read).
pub(crate) fn keep_from(events: &str, cut: i64) -> Result<KeptEvents, ColumnError> {
    let all: Vec<serde_json::Value> = serde_json::from_str(events).map_err(at("batch.events"))?;
    let total = all.len();
    let mut kept = Vec::with_capacity(total);
    let mut first_time = i64::MAX;
    for event in all {
        let time = event
            .get(0)
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| at("batch.events")(Invalid("an event without a time")))?;
        if time >= cut {
            first_time = first_time.min(time);
            kept.push(event);
        }
    }
    let count = kept.len();
    Ok(KeptEvents {
        events: serde_json::Value::Array(kept).to_string(),
        first_time,
        count: i64::try_from(count).unwrap_or(i64::MAX),
        removed: i64::try_from(total - count).unwrap_or(i64::MAX),
    })
}

fn push_int(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Text that never needs escaping as a JSON string: ids (letters, digits and `_`), external
/// ids (also `.` and `-`), outcomes and IP addresses, all checked when they were made.
/// Every event has several, so the check per byte is skipped.
fn push_plain(out: &mut String, s: &str) {
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// [`push_plain`], or `null`.
fn push_plain_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_plain(out, s),
        None => out.push_str("null"),
    }
}

fn push_tags(out: &mut String, tags: &[String]) {
    out.push('[');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, tag);
    }
    out.push(']');
}

/// `s` as a JSON string, escaped where it needs it (tags may hold anything).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    out.push_str("\\u00");
                    let n = u32::from(c);
                    out.push(char::from(HEX[(n >> 4) as usize]));
                    out.push(char::from(HEX[(n & 0xf) as usize]));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use keywarden_core::id::{ApiId, KeyId};
    use keywarden_core::identity::ExternalId;
    use keywarden_core::time::UnixMillis;
    use keywarden_core::verify::VerifyCode;
    use serde_json::{Value, json};

    use super::*;
    use crate::pending_minutes::MinuteSums;

    /// An event of key `key` in `workspace` at `time` (ms) with `tags`.
    pub(crate) fn event(workspace: &str, key: &str, time: i64, tags: &[&str]) -> VerificationEvent {
        VerificationEvent {
            request_id: format!("req_{time}").into(),
            time: UnixMillis::from_millis(time),
            workspace_id: WorkspaceId::parse(workspace).unwrap(),
            api_id: ApiId::parse("api_1").unwrap(),
            key_id: KeyId::parse(key).unwrap(),
            identity_id: None,
            external_id: Some(ExternalId::parse("user-7.x").unwrap()),
            outcome: VerifyCode::RateLimited,
            spent_credits: 2,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
        }
    }

    #[test]
    fn events_are_split_by_workspace_and_read_back_as_json() {
        let events = [
            event("ws_a", "key_1", 1_000, &[]),
            event("ws_b", "key_2", 900, &["path=/v1", "é \"q\" \\ \u{1}\n"]),
            event("ws_a", "key_1", 500, &["x"]),
        ];
        let batches = event_batches(&events);
        assert_eq!(batches.len(), 2);
        let a = &batches[0];
        assert_eq!(
            (
                a.workspace_id.as_str(),
                a.first_time,
                a.last_time,
                a.event_count
            ),
            ("ws_a", 500, 1_000, 2)
        );
        assert!(a.id.starts_with("vb_"), "{}", a.id);
        let parsed: Value = serde_json::from_str(&a.events).unwrap();
        assert_eq!(
            parsed,
            json!([
                [
                    1000,
                    "req_1000",
                    "api_1",
                    null,
                    "user-7.x",
                    "key_1",
                    "RATE_LIMITED",
                    [],
                    2,
                    "10.0.0.7"
                ],
                [
                    500,
                    "req_500",
                    "api_1",
                    null,
                    "user-7.x",
                    "key_1",
                    "RATE_LIMITED",
                    ["x"],
                    2,
                    "10.0.0.7"
                ],
            ])
        );
        let b: Value = serde_json::from_str(&batches[1].events).unwrap();
        assert_eq!(b[0][7], json!(["path=/v1", "é \"q\" \\ \u{1}\n"]));
    }

    #[test]
    fn large_writes_are_split_into_batches_of_at_most_the_cap() {
        // Two workspaces interleaved: each fills batches of its own, in order.
        let n = MAX_BATCH_EVENTS * 3 + 10;
        let events: Vec<_> = (0..n)
            .map(|i| {
                let workspace = if i % 2 == 0 { "ws_a" } else { "ws_b" };
                event(workspace, "key_1", i64::try_from(i).unwrap(), &[])
            })
            .collect();
        let batches = event_batches(&events);
        let shape: Vec<_> = batches
            .iter()
            .map(|b| (b.workspace_id.as_str(), b.event_count))
            .collect();
        let half = i64::try_from(MAX_BATCH_EVENTS / 2).unwrap();
        let full = i64::try_from(MAX_BATCH_EVENTS).unwrap();
        assert_eq!(
            shape,
            [
                ("ws_a", full),
                ("ws_b", full),
                ("ws_a", half + 5),
                ("ws_b", half + 5)
            ]
        );
        let mut ids: Vec<_> = batches.iter().map(|b| b.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 4, "every batch has its own id");
        for batch in &batches {
            let parsed: Vec<Value> = serde_json::from_str(&batch.events).unwrap();
            assert_eq!(i64::try_from(parsed.len()).unwrap(), batch.event_count);
            // Events keep their order within a batch, and the times bound them.
            let times: Vec<i64> = parsed.iter().map(|e| e[0].as_i64().unwrap()).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(batch.first_time, times[0]);
            assert_eq!(batch.last_time, *times.last().unwrap());
        }
    }

    #[test]
    fn a_write_is_its_batches_and_its_pending_minutes() {
        assert!(
            EncodedWrite::of(&[]).is_none(),
            "no events, nothing to store"
        );
        let events = [
            event("ws_a", "key_1", 60_000, &[]),
            event("ws_b", "key_2", 61_000, &[]),
        ];
        let write = EncodedWrite::of(&events).unwrap();
        assert_eq!(
            write.batches,
            event_batches(&events)
                .into_iter()
                .map(|mut b| {
                    // Batch ids are fresh each time; everything else is the encoding.
                    b.id.clone_from(
                        &write
                            .batches
                            .iter()
                            .find(|w| w.workspace_id == b.workspace_id)
                            .unwrap()
                            .id,
                    );
                    b
                })
                .collect::<Vec<_>>()
        );
        assert!(write.pending_id.as_str().starts_with("vb_"));
        let mut pending = MinuteSums::default();
        pending.add_pending(&write.pending).unwrap();
        assert_eq!(
            pending
                .rows()
                .iter()
                .map(|m| m.event.workspace_id.as_str())
                .collect::<Vec<_>>(),
            ["ws_a", "ws_b"]
        );
    }

    #[test]
    fn pruning_inside_a_batch_keeps_the_events_from_the_cut() {
        let events = [
            event("ws_a", "key_1", 1_000, &[]),
            event("ws_a", "key_1", 3_000, &["x"]),
            event("ws_a", "key_2", 2_000, &[]),
        ];
        let batch = &event_batches(&events)[0];
        let kept = keep_from(&batch.events, 2_000).unwrap();
        assert_eq!((kept.first_time, kept.count, kept.removed), (2_000, 2, 1));
        let read: Value = serde_json::from_str(&kept.events).unwrap();
        let times: Vec<_> = read
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_i64().unwrap())
            .collect();
        assert_eq!(times, [3_000, 2_000]);
        assert_eq!(read[0][7], json!(["x"]));
    }
}
