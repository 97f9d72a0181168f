//! What both backends share about storing verification events: table names and how values
//! are written.

use std::borrow::Cow;

use keywarden_core::usage::{Granularity, VerificationEvent};

/// The workspaces that have raw rows, found by skipping through the (workspace_id, time)
/// index one workspace at a time (the raw rows have no index on time alone).
pub(crate) const WORKSPACES_WITH_EVENTS: &str = "WITH RECURSIVE w(id) AS (\
     SELECT min(workspace_id) FROM analytics_verifications \
     UNION ALL SELECT (SELECT min(workspace_id) FROM analytics_verifications \
     WHERE workspace_id > w.id) FROM w WHERE w.id IS NOT NULL) \
     SELECT id FROM w WHERE id IS NOT NULL";

/// The rollup table of each granularity.
pub(crate) const fn rollup_table(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => "analytics_verifications_per_minute",
        Granularity::Hour => "analytics_verifications_per_hour",
        Granularity::Day => "analytics_verifications_per_day",
        Granularity::Month => "analytics_verifications_per_month",
    }
}

/// The tags as stored: a JSON array of the strings, in the order given. Most requests have
/// none, and their `[]` is not built each time.
pub(crate) fn encode_tags(event: &VerificationEvent) -> Cow<'static, str> {
    if event.tags.is_empty() {
        return Cow::Borrowed("[]");
    }
    // A list of strings always serializes.
    Cow::Owned(serde_json::to_string(&event.tags).unwrap_or_else(|_| "[]".to_owned()))
}

/// The client address as stored, when known.
pub(crate) fn encode_ip(event: &VerificationEvent) -> Option<String> {
    event.client_ip.map(|ip| ip.to_string())
}
