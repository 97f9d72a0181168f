//! What both backends share about storing verification events: table names and how values
//! are written.

use keywarden_core::usage::{Granularity, VerificationEvent};

/// The rollup table of each granularity.
pub(crate) const fn rollup_table(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => "analytics_verifications_per_minute",
        Granularity::Hour => "analytics_verifications_per_hour",
        Granularity::Day => "analytics_verifications_per_day",
        Granularity::Month => "analytics_verifications_per_month",
    }
}

/// The tags as stored: a JSON array of the strings, in the order given.
pub(crate) fn encode_tags(event: &VerificationEvent) -> String {
    // A list of strings always serializes.
    serde_json::to_string(&event.tags).unwrap_or_else(|_| "[]".to_owned())
}

/// The client address as stored, when known.
pub(crate) fn encode_ip(event: &VerificationEvent) -> Option<String> {
    event.client_ip.map(|ip| ip.to_string())
}
