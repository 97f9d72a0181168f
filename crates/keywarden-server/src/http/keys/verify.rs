//! `keys.verifyKey`. Every verification outcome is a 200; only a malformed request or a
//! root-key problem is an error.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use keywarden_core::id::ApiId;
use keywarden_core::key::KeyRecord;
use keywarden_core::meta::Meta;
use keywarden_core::ratelimit::LimitDecision;
use keywarden_core::restriction::{OriginHost, canonical};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::verify::VerifyCode;
use keywarden_core::verify_limits::{PlannedLimit, RequestedLimit};
use serde::{Deserialize, Serialize};

use super::plaintext_key;
use crate::error::ApiError;
use crate::http::context;
use crate::http::envelope::data_json_response;
use crate::http::extract::{ApiJson, BrowserOrigin};
use crate::http::fields::{At, Fields, Item};
use crate::http::wire::{IdentityData, parse_duration, parse_id};
use crate::service::{Caller, RequestOrigin, SiteInput, Verification, VerifyInput};
use crate::state::AppState;

const MAX_COST: i64 = 1_000_000_000_000;

#[derive(Debug, Deserialize)]
pub struct VerifyCreditsBody {
    cost: Option<i64>,
}

/// `KeysVerifyKeyRatelimit`: a stored limit by name, or an inline one with limit and
/// duration.
#[derive(Debug, Deserialize)]
pub struct VerifyLimitBody {
    name: Option<String>,
    cost: Option<i64>,
    limit: Option<i64>,
    duration: Option<i64>,
}

/// The most limits one verify request may name.
const MAX_REQUESTED_LIMITS: usize = 100;

fn requested_limits(f: &mut Fields, items: Vec<VerifyLimitBody>) -> Vec<RequestedLimit> {
    if items.len() > MAX_REQUESTED_LIMITS {
        f.error(
            "body.ratelimits",
            format!("must have at most {MAX_REQUESTED_LIMITS} items"),
        );
        return Vec::new();
    }
    let mut requested = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        // Locations are formatted only for a field that is wrong (this is the verify path).
        let at = Item("body.ratelimits", i);
        let name = f
            .required(At(at, "name"), item.name)
            .filter(|n| f.length(At(at, "name"), n, 3, 255));
        let cost = f.range(At(at, "cost"), item.cost.unwrap_or(1), 0, i64::MAX);
        let inline = match (item.limit, item.duration) {
            (None, None) => Some(None),
            (Some(limit), Some(duration)) => {
                let limit = f.range(At(at, "limit"), limit, 0, i64::MAX);
                let duration = parse_duration(f, At(at, "duration"), duration);
                limit
                    .zip(duration)
                    .map(|(l, d)| Some((l.unsigned_abs(), d)))
            }
            _ => {
                f.error(
                    at.to_string(),
                    "give both limit and duration for an inline limit, or neither to use a stored one",
                );
                None
            }
        };
        if let Some(name) = &name
            && requested.iter().any(|r: &RequestedLimit| &r.name == name)
        {
            f.error(
                At(at, "name").to_string(),
                "names must be unique within the list",
            );
        }
        if let (Some(name), Some(cost), Some(inline)) = (name, cost, inline) {
            requested.push(RequestedLimit {
                name,
                cost: cost.unsigned_abs(),
                inline,
            });
        }
    }
    requested
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyBody {
    key: Option<super::SubmittedKey>,
    tags: Option<Vec<String>>,
    permissions: Option<String>,
    credits: Option<VerifyCreditsBody>,
    ratelimits: Option<Vec<VerifyLimitBody>>,
    migration_id: Option<String>,
    keyspaces: Option<Vec<String>>,
    /// Keywarden extension: the end client's IP address, for services that verify on a
    /// user's behalf; used instead of the request's own client address.
    client_ip: Option<String>,
    /// Keywarden extension: the end client's `Origin` (or a bare host); used instead of the
    /// request's `Origin`/`Referer` headers.
    origin: Option<String>,
}

impl TryFrom<VerifyKeyBody> for VerifyInput {
    type Error = ApiError;

    fn try_from(body: VerifyKeyBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let key = plaintext_key(&mut f, body.key);
        if let Some(tags) = &body.tags {
            if tags.len() > 20 {
                f.error("body.tags", "must have at most 20 items");
            }
            for (i, tag) in tags.iter().enumerate() {
                f.length(format!("body.tags[{i}]"), tag, 1, 512);
            }
        }
        let permissions = body
            .permissions
            .filter(|q| f.length("body.permissions", q, 1, 1000));
        let ratelimits = body
            .ratelimits
            .map(|items| requested_limits(&mut f, items))
            .unwrap_or_default();
        let cost = body.credits.and_then(|c| {
            let cost = f.required("body.credits.cost", c.cost)?;
            f.range("body.credits.cost", cost, 0, MAX_COST)
        });
        if let Some(id) = &body.migration_id {
            // Only SHA-256 hashes are stored, so there is no legacy scheme to migrate from;
            // the field is accepted for compatibility.
            f.length("body.migrationId", id, 0, 256);
        }
        let keyspaces = body.keyspaces.map(|spaces| {
            spaces
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    parse_id(&mut f, &format!("body.keyspaces[{i}]"), s, 1, ApiId::parse)
                })
                .collect()
        });
        let client_ip = body.client_ip.and_then(|ip| {
            f.check(
                "body.clientIp",
                ip.parse::<IpAddr>()
                    .map(canonical)
                    .map_err(|_| "must be an IPv4 or IPv6 address"),
            )
        });
        let origin = body.origin.and_then(|origin| {
            if !f.length("body.origin", &origin, 1, 2048) {
                return None;
            }
            f.check(
                "body.origin",
                OriginHost::parse(&origin)
                    .ok_or("must be an origin like https://app.example.com, or a host"),
            )
        });
        f.finish(key.map(|key| VerifyInput {
            site: SiteInput {
                ip: client_ip,
                origin,
                origin_header: None,
            },
            key: PlaintextKey::new(key),
            cost,
            keyspaces,
            ratelimits,
            permissions,
            tags: body.tags.unwrap_or_default(),
        }))
    }
}

/// The outcome part of a verification response.
#[derive(Serialize)]
struct Outcome {
    valid: bool,
    code: &'static str,
}

/// The part of a verification response that depends only on the key, so it is rendered once
/// per cached key and reused for every verification of it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyFields<'a> {
    key_id: &'a str,
    keyspace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    enabled: bool,
    permissions: Vec<&'a str>,
    roles: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityData<'a>>,
}

impl<'a> KeyFields<'a> {
    fn of(key: &'a KeyRecord) -> Self {
        Self {
            key_id: key.id.as_str(),
            keyspace_id: key.api_id.as_str(),
            name: key.name.as_ref().map(|n| n.as_str()),
            meta: key.meta.as_ref(),
            expires: key.expires.map(|e| e.as_millis()),
            enabled: key.enabled,
            permissions: key.effective_permissions(),
            roles: key.roles.iter().map(|r| r.name.as_str()).collect(),
            identity: key.identity.as_ref().map(IdentityData::of),
        }
    }
}

/// The part of a `VerifyKeyRatelimitData` entry that is the same for every call: rendered
/// once per plan, then written after the numbers of each call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitFields<'a> {
    /// Empty for an inline limit, which is not stored.
    id: &'a str,
    name: &'a str,
    duration: u64,
    auto_apply: bool,
}

impl<'a> LimitFields<'a> {
    fn of(limit: &'a PlannedLimit) -> Self {
        Self {
            id: limit.id.as_ref().map_or("", |id| id.as_str()),
            name: &limit.name,
            duration: limit.duration.as_millis(),
            auto_apply: limit.auto_apply,
        }
    }
}

/// Writes one `VerifyKeyRatelimitData`: this call's numbers, then the rendered fields (an
/// object whose opening brace is dropped).
fn write_checked_limit(out: &mut Vec<u8>, fields: &[u8], decision: &LimitDecision) {
    out.extend_from_slice(if decision.passed {
        b"{\"exceeded\":false,\"limit\":"
    } else {
        b"{\"exceeded\":true,\"limit\":"
    });
    let _ = serde_json::to_writer(&mut *out, &decision.limit);
    out.extend_from_slice(b",\"reset\":");
    let _ = serde_json::to_writer(&mut *out, &decision.reset.as_millis());
    out.extend_from_slice(b",\"remaining\":");
    let _ = serde_json::to_writer(&mut *out, &decision.remaining);
    match fields.get(1..) {
        Some(rest) if rest.len() > 1 => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        _ => out.push(b'}'),
    }
}

/// Writes the `data` object of a verification: `{valid, code}`, then the key's fields when
/// the outcome shows them, then `credits` when the key has a balance.
fn write_verification(out: &mut Vec<u8>, v: &Verification) {
    let outcome = Outcome {
        valid: v.code == VerifyCode::Valid,
        code: v.code.as_str(),
    };
    // Serializing these types cannot fail: they hold only strings, numbers and JSON maps.
    let _ = serde_json::to_writer(&mut *out, &outcome);
    if let Some(key) = &v.key {
        let fields = key.presentation(|record| {
            serde_json::to_vec(&KeyFields::of(record)).unwrap_or_else(|_| b"{}".to_vec())
        });
        // Both are objects: drop the outcome's closing brace and the fields' opening one.
        if fields.len() > 2 {
            out.pop();
            out.push(b',');
            out.extend_from_slice(&fields[1..]);
        }
    }
    if let Some(credits) = v.credits {
        out.pop();
        out.extend_from_slice(b",\"credits\":");
        let _ = serde_json::to_writer(&mut *out, &credits);
        out.push(b'}');
    }
    if let Some(limits) = &v.ratelimits {
        out.pop();
        out.extend_from_slice(b",\"ratelimits\":[");
        let render =
            |limit: &PlannedLimit| serde_json::to_vec(&LimitFields::of(limit)).unwrap_or_default();
        for (i, (fields, decision)) in limits.presented(render).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_checked_limit(out, fields, decision);
        }
        out.extend_from_slice(b"]}");
    }
}

/// Fills in what the request itself says about its client (its address, its `Origin` or
/// `Referer`) where the body did not name the end client, and returns what the
/// verification's event needs, when events are wanted. The end client named in the body, if
/// any, is the client for restrictions and for the event alike. Every endpoint that verifies
/// a key (`keys.verifyKey`, `keys.exchangeToken`) goes through here.
pub(super) fn complete_site(
    state: &AppState,
    input: &mut VerifyInput,
    origin_header: Option<HeaderValue>,
) -> Option<RequestOrigin> {
    input.site.ip = input.site.ip.or_else(context::client_ip);
    input.site.origin_header = origin_header;
    let client_ip = input.site.ip;
    state.service.wants_origin().then(|| RequestOrigin {
        request_id: context::request_id(),
        client_ip,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify_key(
    State(state): State<AppState>,
    caller: Caller,
    BrowserOrigin(origin_header): BrowserOrigin,
    ApiJson(body): ApiJson<VerifyKeyBody>,
) -> Result<Response, ApiError> {
    let mut input: VerifyInput = body.try_into()?;
    let origin = complete_site(&state, &mut input, origin_header);
    let verification = state.service.verify(&caller, &mut input, origin).await?;
    state.service.count_verification(verification.code);
    Ok(data_json_response(|out| {
        write_verification(out, &verification)
    }))
}
