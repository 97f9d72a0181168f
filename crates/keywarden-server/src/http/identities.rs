//! `identities.*`: the owners of keys, with shared metadata and limits.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::identity::{ExternalId, IdentityUpdate};
use keywarden_core::store::PageRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::envelope::{Data, MetaOnly, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::{Fields, Nullable};
use super::wire::{IdentityData, LimitBody, parse_limits, parse_meta};
use crate::error::ApiError;
use crate::service::{Caller, NewIdentity};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/identities.createIdentity", post(create_identity))
        .route("/v2/identities.getIdentity", post(get_identity))
        .route("/v2/identities.listIdentities", post(list_identities))
        .route("/v2/identities.updateIdentity", post(update_identity))
        .route("/v2/identities.deleteIdentity", post(delete_identity))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIdentityBody {
    external_id: Option<String>,
    meta: Option<Map<String, Value>>,
    ratelimits: Option<Vec<LimitBody>>,
}

impl TryFrom<CreateIdentityBody> for NewIdentity {
    type Error = ApiError;

    fn try_from(body: CreateIdentityBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let external_id = f
            .required("body.externalId", body.external_id)
            .and_then(|e| f.check("body.externalId", ExternalId::parse(&e)));
        let meta = body.meta.and_then(|m| parse_meta(&mut f, "body.meta", m));
        let ratelimits = match body.ratelimits {
            Some(items) => parse_limits(&mut f, "body.ratelimits", items),
            None => Some(Vec::new()),
        };
        f.finish(
            external_id
                .zip(ratelimits)
                .map(|(external_id, ratelimits)| NewIdentity {
                    external_id,
                    meta,
                    ratelimits,
                }),
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedIdentity {
    identity_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateIdentityBody>,
) -> Result<Data<CreatedIdentity>, ApiError> {
    let id = state
        .service
        .create_identity(&caller, body.try_into()?)
        .await?;
    Ok(Data(CreatedIdentity {
        identity_id: id.to_string(),
    }))
}

/// The `identity` field: an identity id or an external id.
#[derive(Debug, Deserialize)]
struct IdentityBody {
    identity: Option<String>,
}

fn reference(f: &mut Fields, value: Option<String>) -> Option<String> {
    let value = f.required("body.identity", value)?;
    f.length("body.identity", &value, 1, 255).then_some(value)
}

fn identity_reference(body: IdentityBody) -> Result<String, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, body.identity);
    f.finish(reference)
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IdentityBody>,
) -> Result<Response, ApiError> {
    let identity = state
        .service
        .get_identity(&caller, &identity_reference(body)?)
        .await?;
    Ok(Data(IdentityData::of(&identity)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListIdentitiesBody {
    limit: Option<i64>,
    cursor: Option<String>,
    search: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_identities(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListIdentitiesBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
    if let Some(cursor) = &body.cursor {
        f.length("body.cursor", cursor, 1, 1024);
    }
    if let Some(search) = &body.search {
        f.length("body.search", search, 0, 256);
    }
    let limit = f.finish(limit)?;
    let page = state
        .service
        .list_identities(
            &caller,
            body.search.as_deref().filter(|s| !s.is_empty()),
            PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
        )
        .await?;
    let data: Vec<IdentityData<'_>> = page.items.iter().map(IdentityData::of).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}

/// `meta` and `ratelimits` replace what is stored; `{}`, `[]` and `null` clear them.
#[derive(Debug, Deserialize)]
struct UpdateIdentityBody {
    identity: Option<String>,
    #[serde(default)]
    meta: Nullable<Map<String, Value>>,
    #[serde(default)]
    ratelimits: Nullable<Vec<LimitBody>>,
}

fn parse_update(body: UpdateIdentityBody) -> Result<(String, IdentityUpdate), ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, body.identity);
    let meta = match body.meta {
        Nullable::Absent => Some(None),
        Nullable::Null => Some(Some(None)),
        Nullable::Value(m) if m.is_empty() => Some(Some(None)),
        Nullable::Value(m) => parse_meta(&mut f, "body.meta", m).map(|m| Some(Some(m))),
    };
    let ratelimits = match body.ratelimits {
        Nullable::Absent => Some(None),
        Nullable::Null => Some(Some(Vec::new())),
        Nullable::Value(items) => parse_limits(&mut f, "body.ratelimits", items).map(Some),
    };
    let update = meta
        .zip(ratelimits)
        .map(|(meta, ratelimits)| IdentityUpdate { meta, ratelimits });
    f.finish(reference.zip(update))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateIdentityBody>,
) -> Result<Response, ApiError> {
    let (reference, update) = parse_update(body)?;
    let identity = state
        .service
        .update_identity(&caller, &reference, update)
        .await?;
    Ok(Data(IdentityData::of(&identity)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IdentityBody>,
) -> Result<MetaOnly, ApiError> {
    state
        .service
        .delete_identity(&caller, &identity_reference(body)?)
        .await?;
    Ok(MetaOnly)
}
