//! `keys.updateKey`: a partial update where an omitted field stays and `null` clears.

use axum::extract::State;
use keywarden_core::id::KeyId;
use keywarden_core::identity::ExternalId;
use keywarden_core::key::{CreditsPatch, KeyUpdate, Patch};
use keywarden_core::text::KeyName;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::key_id;
use crate::error::ApiError;
use crate::http::envelope::{Data, Empty};
use crate::http::extract::ApiJson;
use crate::http::fields::{Fields, Nullable};
use crate::http::wire::{
    LimitBody, RefillBody, RestrictionsBody, parse_expires, parse_limits, parse_meta, parse_refill,
    parse_restrictions, parse_role_names, parse_slugs,
};
use crate::service::{AccessUpdate, Caller};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct UpdateCreditsBody {
    #[serde(default)]
    remaining: Nullable<i64>,
    #[serde(default)]
    refill: Nullable<RefillBody>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateKeyBody {
    key_id: Option<String>,
    #[serde(default)]
    name: Nullable<String>,
    #[serde(default)]
    external_id: Nullable<String>,
    #[serde(default)]
    meta: Nullable<Map<String, Value>>,
    #[serde(default)]
    expires: Nullable<i64>,
    #[serde(default)]
    credits: Nullable<UpdateCreditsBody>,
    /// `null` clears, like `[]` (the Python SDK sends `null`; the docs say it removes all).
    #[serde(default)]
    ratelimits: Nullable<Vec<LimitBody>>,
    enabled: Option<bool>,
    roles: Option<Vec<String>>,
    permissions: Option<Vec<String>>,
    /// Keywarden extension: replaces where the key may be used from; `null` clears.
    #[serde(default)]
    restrictions: Nullable<RestrictionsBody>,
}

/// Converts a nullable wire field with `parse`, recording errors; `None` when it failed.
fn patch<T, U>(value: Nullable<T>, parse: impl FnOnce(T) -> Option<U>) -> Option<Patch<U>> {
    Some(match value {
        Nullable::Absent => Patch::Keep,
        Nullable::Null => Patch::Clear,
        Nullable::Value(v) => Patch::Set(parse(v)?),
    })
}

fn credits_patch(f: &mut Fields, body: UpdateCreditsBody) -> Option<CreditsPatch> {
    let remaining = patch(body.remaining, |n| {
        f.range("body.credits.remaining", n, 0, i64::MAX)
    })?;
    let refill = patch(body.refill, |r| parse_refill(f, "body.credits.refill", r))?;
    Some(CreditsPatch { remaining, refill })
}

/// What `keys.updateKey` asks for.
struct KeyChanges {
    id: KeyId,
    update: KeyUpdate,
    external_id: Patch<ExternalId>,
    access: AccessUpdate,
}

fn parse(body: UpdateKeyBody) -> Result<KeyChanges, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let external_id = patch(body.external_id, |e| {
        f.check("body.externalId", ExternalId::parse(&e))
    });
    let ratelimits = match body.ratelimits {
        Nullable::Value(items) => parse_limits(&mut f, "body.ratelimits", items).map(Some),
        Nullable::Null => Some(Some(Vec::new())),
        Nullable::Absent => Some(None),
    };
    let roles = match body.roles {
        Some(names) => parse_role_names(&mut f, "body.roles", names).map(Some),
        None => Some(None),
    };
    let permissions = match body.permissions {
        Some(slugs) => parse_slugs(&mut f, "body.permissions", slugs).map(Some),
        None => Some(None),
    };
    let name = patch(body.name, |n| f.check("body.name", KeyName::parse(&n)));
    let meta = patch(body.meta, |m| parse_meta(&mut f, "body.meta", m));
    let expires = patch(body.expires, |e| parse_expires(&mut f, "body.expires", e));
    let credits = patch(body.credits, |c| credits_patch(&mut f, c));
    // Empty lists restrict nothing, the same as clearing.
    let restrictions = match body.restrictions {
        Nullable::Absent => Some(Patch::Keep),
        Nullable::Null => Some(Patch::Clear),
        Nullable::Value(r) => parse_restrictions(&mut f, "body.restrictions", r)
            .map(|r| r.map_or(Patch::Clear, Patch::Set)),
    };
    let update = match (name, meta, expires, credits, ratelimits, restrictions) {
        (
            Some(name),
            Some(meta),
            Some(expires),
            Some(credits),
            Some(ratelimits),
            Some(restrictions),
        ) => {
            Some(KeyUpdate {
                restrictions,
                name,
                meta,
                expires,
                credits,
                enabled: body.enabled,
                identity: Patch::Keep,
                ratelimits,
                // Resolved to stored permissions and roles by the service.
                permissions: None,
                roles: None,
            })
        }
        _ => None,
    };
    let access = roles
        .zip(permissions)
        .map(|(roles, permissions)| AccessUpdate { permissions, roles });
    f.finish(id.zip(update).zip(external_id).zip(access).map(
        |(((id, update), external_id), access)| KeyChanges {
            id,
            update,
            external_id,
            access,
        },
    ))
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateKeyBody>,
) -> Result<Data<Empty>, ApiError> {
    let changes = parse(body)?;
    state
        .service
        .update_key(
            &caller,
            &changes.id,
            changes.update,
            changes.external_id,
            changes.access,
        )
        .await?;
    Ok(Data(Empty {}))
}
