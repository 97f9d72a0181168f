//! Schemas shared by several endpoints (§3 of the wire reference): key data, credits and
//! refills, in both directions, and id parsing with the wire's bounds.

use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule};
use keywarden_core::id::IdError;
use keywarden_core::identity::Identity;
use keywarden_core::key::{KeyRecord, MAX_EXPIRES};
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::{LimitName, LimitSpec, MAX_NAMED_LIMITS, NamedLimit};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::rbac::{Permission, PermissionSlug, Role, RoleName};
use keywarden_core::restriction::{
    IpNetwork, MAX_RESTRICTION_ENTRIES, OriginPattern, RestrictionError, Restrictions,
};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::time::UnixMillis;
use serde::{Deserialize, Serialize};

use super::fields::{Fields, Nullable};
use crate::service::{NewCredits, ReadKey};

/// Parses an id with the wire's pattern and a minimum length.
pub fn parse_id<T>(
    f: &mut Fields,
    location: &str,
    value: &str,
    min_len: usize,
    parse: impl FnOnce(&str) -> Result<T, IdError>,
) -> Option<T> {
    if value.len() < min_len {
        f.error(location, format!("must be at least {min_len} characters"));
        return None;
    }
    f.check(location, parse(value))
}

/// An absolute time in Unix milliseconds within the wire's range for `expires`.
pub fn parse_expires(f: &mut Fields, location: &str, value: i64) -> Option<UnixMillis> {
    f.range(location, value, 0, MAX_EXPIRES)
        .map(UnixMillis::from_millis)
}

/// A listing's optional time window (`body.since`, `body.until`, Unix ms): each non-negative,
/// and `until` not before `since`.
pub fn parse_time_window(
    f: &mut Fields,
    since: Option<i64>,
    until: Option<i64>,
) -> (Option<UnixMillis>, Option<UnixMillis>) {
    let since = since.and_then(|t| f.range("body.since", t, 0, i64::MAX));
    let until = until.and_then(|t| f.range("body.until", t, 0, i64::MAX));
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        f.error("body.until", "must not be before body.since");
    }
    (
        since.map(UnixMillis::from_millis),
        until.map(UnixMillis::from_millis),
    )
}

pub fn parse_meta(
    f: &mut Fields,
    location: &str,
    value: serde_json::Map<String, serde_json::Value>,
) -> Option<Meta> {
    f.check(location, Meta::new(value))
}

/// `KeyCreditsRefill` in requests.
#[derive(Debug, Deserialize)]
pub struct RefillBody {
    pub interval: Option<String>,
    pub amount: Option<i64>,
    #[serde(rename = "refillDay")]
    pub refill_day: Option<i64>,
}

pub fn parse_refill(f: &mut Fields, location: &str, body: RefillBody) -> Option<CreditRefill> {
    let interval = f.required(format!("{location}.interval"), body.interval);
    let monthly = match interval.as_deref() {
        Some("daily") => Some(false),
        Some("monthly") => Some(true),
        Some(_) => {
            f.error(
                format!("{location}.interval"),
                "must be one of \"daily\", \"monthly\"",
            );
            None
        }
        None => None,
    };
    let amount = f
        .required(format!("{location}.amount"), body.amount)
        .and_then(|a| f.range(format!("{location}.amount"), a, 1, i64::MAX));
    let day = match body.refill_day {
        Some(d) => Some(f.range(format!("{location}.refillDay"), d, 1, 31)?),
        None => None,
    };
    let (monthly, amount) = (monthly?, amount?);
    f.check(
        format!("{location}.refillDay"),
        CreditRefill::from_wire(monthly, amount, day),
    )
}

/// `KeyCreditsData` in requests: `remaining` is required and may be `null` (unlimited).
#[derive(Debug, Deserialize)]
pub struct CreditsBody {
    #[serde(default)]
    pub remaining: Nullable<i64>,
    pub refill: Option<RefillBody>,
}

/// Parses a starting balance; `Some(None)` is "unlimited", `None` an error (recorded).
pub fn parse_new_credits(
    f: &mut Fields,
    location: &str,
    body: CreditsBody,
) -> Option<Option<NewCredits>> {
    let remaining_loc = format!("{location}.remaining");
    let remaining = match body.remaining {
        Nullable::Absent => {
            f.required::<()>(&remaining_loc, None);
            return None;
        }
        Nullable::Null => None,
        Nullable::Value(n) => Some(f.range(&remaining_loc, n, 0, i64::MAX)?),
    };
    let refill = match body.refill {
        Some(r) => Some(parse_refill(f, &format!("{location}.refill"), r)?),
        None => None,
    };
    match (remaining, refill) {
        (None, Some(_)) => {
            f.error(
                format!("{location}.refill"),
                "a refill needs a credit balance: set remaining to a number",
            );
            None
        }
        (None, None) => Some(None),
        (Some(remaining), refill) => Some(Some(NewCredits { remaining, refill })),
    }
}

/// `KeyCreditsRefill` in responses.
#[derive(Debug, Serialize)]
pub struct RefillData {
    interval: &'static str,
    amount: i64,
    #[serde(rename = "refillDay", skip_serializing_if = "Option::is_none")]
    refill_day: Option<u8>,
}

/// `KeyCreditsData` in responses; `remaining` is always present, `null` when unlimited.
#[derive(Debug, Serialize)]
pub struct CreditsData {
    remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refill: Option<RefillData>,
}

impl CreditsData {
    pub fn of(credits: Option<&Credits>) -> Self {
        Self {
            remaining: credits.map(Credits::remaining),
            refill: credits.and_then(Credits::refill).map(|r| {
                let (interval, refill_day) = match r.schedule() {
                    RefillSchedule::Daily => ("daily", None),
                    RefillSchedule::Monthly { day } => ("monthly", Some(day)),
                };
                RefillData {
                    interval,
                    amount: r.amount(),
                    refill_day,
                }
            }),
        }
    }
}

/// `KeyResponseData`: a key as getKey, whoami and listKeys show it. Not `Debug`: it may
/// carry a plaintext.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyData<'a> {
    key_id: &'a str,
    start: &'a str,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    /// The latest recorded verification; behind by at most the usage flush interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    /// Keywarden extension: the API (keyspace) the key belongs to.
    api_id: &'a str,
    /// Every slug the key holds, directly or through a role.
    permissions: Vec<&'a str>,
    roles: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<CreditsData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityData<'a>>,
    ratelimits: Vec<LimitData<'a>>,
    /// Only with `decrypt: true`, for a recoverable key.
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
    /// Keywarden extension: where the key may be used from (its own restrictions; its
    /// API's are shown by `apis.getApi`).
    #[serde(skip_serializing_if = "Option::is_none")]
    restrictions: Option<serde_json::Value>,
}

impl<'a> KeyData<'a> {
    /// A key read with getKey or listKeys, with its plaintext if it was decrypted.
    pub fn read(read: &'a ReadKey) -> Self {
        Self {
            plaintext: read.plaintext.as_ref().map(PlaintextKey::expose),
            ..Self::of(&read.key)
        }
    }

    pub fn of(key: &'a KeyRecord) -> Self {
        Self {
            key_id: key.id.as_str(),
            start: &key.start,
            enabled: key.enabled,
            name: key.name.as_ref().map(|n| n.as_str()),
            meta: key.meta.as_ref(),
            created_at: key.created_at.as_millis(),
            updated_at: key.updated_at.map(UnixMillis::as_millis),
            last_used_at: key.last_used.map(UnixMillis::as_millis),
            expires: key.expires.map(UnixMillis::as_millis),
            api_id: key.api_id.as_str(),
            permissions: key.effective_permissions(),
            roles: key.roles.iter().map(|r| r.name.as_str()).collect(),
            credits: key.credits.as_ref().map(|c| CreditsData::of(Some(c))),
            identity: key.identity.as_ref().map(IdentityData::of),
            ratelimits: key.ratelimits.iter().map(LimitData::of).collect(),
            plaintext: None,
            restrictions: key.restrictions.as_ref().map(restrictions_json),
        }
    }
}

/// `Permission` in responses.
#[derive(Serialize)]
pub struct PermissionData<'a> {
    id: &'a str,
    name: &'a str,
    slug: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

impl<'a> PermissionData<'a> {
    pub fn of(p: &'a Permission) -> Self {
        Self {
            id: p.id.as_str(),
            name: &p.name,
            slug: p.slug.as_str(),
            description: p.description.as_deref(),
        }
    }
}

/// `Role` in responses.
#[derive(Serialize)]
pub struct RoleData<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    permissions: Vec<PermissionData<'a>>,
}

impl<'a> RoleData<'a> {
    pub fn of(r: &'a Role) -> Self {
        Self {
            id: r.id.as_str(),
            name: r.name.as_str(),
            description: r.description.as_deref(),
            permissions: r.permissions.iter().map(PermissionData::of).collect(),
        }
    }
}

/// The most permission slugs one request may list.
const MAX_SLUGS: usize = 1000;
/// The most role names one request may list.
const MAX_ROLES: usize = 100;

/// A list of permission slugs; `None` (recorded) when any is malformed.
pub fn parse_slugs(
    f: &mut Fields,
    location: &str,
    values: Vec<String>,
) -> Option<Vec<PermissionSlug>> {
    if values.len() > MAX_SLUGS {
        f.error(location, format!("must have at most {MAX_SLUGS} items"));
        return None;
    }
    let parsed: Vec<Option<PermissionSlug>> = values
        .iter()
        .enumerate()
        .map(|(i, s)| f.check(format!("{location}[{i}]"), PermissionSlug::parse(s)))
        .collect();
    parsed.into_iter().collect()
}

/// A list of role names; `None` (recorded) when any is malformed.
pub fn parse_role_names(
    f: &mut Fields,
    location: &str,
    values: Vec<String>,
) -> Option<Vec<RoleName>> {
    if values.len() > MAX_ROLES {
        f.error(location, format!("must have at most {MAX_ROLES} items"));
        return None;
    }
    let parsed: Vec<Option<RoleName>> = values
        .iter()
        .enumerate()
        .map(|(i, s)| f.check(format!("{location}[{i}]"), RoleName::parse(s)))
        .collect();
    parsed.into_iter().collect()
}

/// `RatelimitRequest` in requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitBody {
    pub name: Option<String>,
    pub limit: Option<i64>,
    pub duration: Option<i64>,
    pub auto_apply: Option<bool>,
}

/// A window length in ms within the wire's bounds (1000 ms to 30 days).
pub fn parse_duration(
    f: &mut Fields,
    location: impl std::fmt::Display,
    ms: i64,
) -> Option<WindowDuration> {
    f.check(location, WindowDuration::from_millis(ms))
}

/// A list of named limits for a key or identity: at most 50, names unique.
pub fn parse_limits(
    f: &mut Fields,
    location: &str,
    items: Vec<LimitBody>,
) -> Option<Vec<LimitSpec>> {
    if items.len() > MAX_NAMED_LIMITS {
        f.error(
            location,
            format!("must have at most {MAX_NAMED_LIMITS} items"),
        );
        return None;
    }
    let mut specs = Vec::with_capacity(items.len());
    let mut complete = true;
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{location}[{i}]");
        let name = f
            .required(format!("{at}.name"), item.name)
            .and_then(|n| f.check(format!("{at}.name"), LimitName::parse(&n)));
        let limit = f
            .required(format!("{at}.limit"), item.limit)
            .and_then(|n| f.range(format!("{at}.limit"), n, 1, i64::MAX));
        let duration = f
            .required(format!("{at}.duration"), item.duration)
            .and_then(|ms| parse_duration(f, format!("{at}.duration"), ms));
        if let Some(name) = &name
            && specs.iter().any(|s: &LimitSpec| &s.name == name)
        {
            f.error(format!("{at}.name"), "names must be unique within the list");
        }
        match (name, limit, duration) {
            (Some(name), Some(limit), Some(duration)) => specs.push(LimitSpec {
                name,
                limit: limit.unsigned_abs(),
                duration,
                auto_apply: item.auto_apply.unwrap_or(false),
            }),
            _ => complete = false,
        }
    }
    complete.then_some(specs)
}

/// `RatelimitResponse`: a stored named limit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitData<'a> {
    id: &'a str,
    name: &'a str,
    limit: u64,
    duration: u64,
    auto_apply: bool,
}

impl<'a> LimitData<'a> {
    pub fn of(limit: &'a NamedLimit) -> Self {
        Self {
            id: limit.id.as_str(),
            name: limit.name.as_str(),
            limit: limit.limit,
            duration: limit.duration.as_millis(),
            auto_apply: limit.auto_apply,
        }
    }
}

/// `Identity` in responses.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityData<'a> {
    id: &'a str,
    external_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
    ratelimits: Vec<LimitData<'a>>,
}

impl<'a> IdentityData<'a> {
    pub fn of(identity: &'a Identity) -> Self {
        Self {
            id: identity.id.as_str(),
            external_id: identity.external_id.as_str(),
            meta: identity.meta.as_ref(),
            ratelimits: identity.ratelimits.iter().map(LimitData::of).collect(),
        }
    }
}

/// Keywarden extension: where a key (or every key of an API) may be used from.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestrictionsBody {
    allowed_ips: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
}

/// Parses restrictions; `Some(None)` when both lists are empty (nothing restricted), `None`
/// when something was wrong (recorded).
pub fn parse_restrictions(
    f: &mut Fields,
    location: &str,
    body: RestrictionsBody,
) -> Option<Option<Restrictions>> {
    fn list<T>(
        f: &mut Fields,
        location: String,
        items: Vec<String>,
        parse: impl Fn(&str) -> Result<T, RestrictionError>,
    ) -> Option<Vec<T>> {
        if items.len() > MAX_RESTRICTION_ENTRIES {
            f.error(
                location,
                format!("must have at most {MAX_RESTRICTION_ENTRIES} items"),
            );
            return None;
        }
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| f.check(format!("{location}[{i}]"), parse(item)))
            .collect();
        parsed.into_iter().collect()
    }
    let ips = list(
        f,
        format!("{location}.allowedIps"),
        body.allowed_ips.unwrap_or_default(),
        IpNetwork::parse,
    );
    let origins = list(
        f,
        format!("{location}.allowedOrigins"),
        body.allowed_origins.unwrap_or_default(),
        OriginPattern::parse,
    );
    let (ips, origins) = (ips?, origins?);
    f.check(location, Restrictions::new(ips, origins))
}

/// Restrictions in responses.
pub fn restrictions_json(r: &Restrictions) -> serde_json::Value {
    r.to_json()
}
