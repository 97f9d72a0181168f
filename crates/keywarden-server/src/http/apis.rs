//! `apis.*`: create, read and delete APIs, and list their keys.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::api::{Api, ApiUpdate};
use keywarden_core::id::ApiId;
use keywarden_core::identity::ExternalId;
use keywarden_core::key::Patch;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
use keywarden_core::key_lifetime::{KeyLifetime, Lifetime, MAX_LIFETIME_MS, MIN_LIFETIME_MS};
use keywarden_core::store::PageRequest;
use keywarden_core::text::ApiName;
use serde::{Deserialize, Serialize};

use super::envelope::{Data, Empty, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::{Fields, Nullable};
use super::wire::{KeyData, RestrictionsBody, parse_id, parse_restrictions, restrictions_json};
use crate::error::ApiError;
use crate::service::{Caller, NewApi};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/apis.createApi", post(create_api))
        .route("/v2/apis.getApi", post(get_api))
        .route("/v2/apis.listKeys", post(list_keys))
        .route("/v2/apis.deleteApi", post(delete_api))
        .route("/v2/apis.updateApi", post(update_api))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateApiBody {
    name: Option<String>,
    /// Keywarden extension: prefix of keys created without one.
    default_prefix: Option<String>,
    /// Keywarden extension: random bytes of keys created without `byteLength`.
    default_byte_length: Option<i64>,
    /// Keywarden extension: refuse `apis.deleteApi` with 412.
    #[serde(default)]
    delete_protection: bool,
    /// Keywarden extension: where every key of the API may be used from.
    restrictions: Option<RestrictionsBody>,
    /// Keywarden extension: lifetime of keys created without `expires`.
    default_key_lifetime_ms: Option<i64>,
    /// Keywarden extension: the longest any key of the API may live.
    max_key_lifetime_ms: Option<i64>,
}

/// A lifetime field in milliseconds, within the policy's bounds.
fn parse_lifetime(f: &mut Fields, location: &str, ms: i64) -> Option<Lifetime> {
    f.range(location, ms, MIN_LIFETIME_MS, MAX_LIFETIME_MS)
        .and_then(Lifetime::from_millis)
}

impl TryFrom<CreateApiBody> for NewApi {
    type Error = ApiError;

    fn try_from(body: CreateApiBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let name = f
            .required("body.name", body.name)
            .and_then(|n| f.check("body.name", ApiName::parse(&n)));
        let default_prefix = body
            .default_prefix
            .and_then(|p| f.check("body.defaultPrefix", KeyPrefix::parse(&p)));
        let default_byte_length = body.default_byte_length.and_then(|n| {
            let n = f.range(
                "body.defaultByteLength",
                n,
                ByteLength::MIN,
                ByteLength::MAX,
            )?;
            ByteLength::new(n)
        });
        let restrictions = match body.restrictions {
            Some(r) => parse_restrictions(&mut f, "body.restrictions", r),
            None => Some(None),
        };
        let default = body
            .default_key_lifetime_ms
            .map(|ms| parse_lifetime(&mut f, "body.defaultKeyLifetimeMs", ms));
        let max = body
            .max_key_lifetime_ms
            .map(|ms| parse_lifetime(&mut f, "body.maxKeyLifetimeMs", ms));
        let key_lifetime = match (default, max) {
            (Some(None), _) | (_, Some(None)) => None,
            (default, max) => f.check(
                "body.defaultKeyLifetimeMs",
                KeyLifetime::new(default.flatten(), max.flatten()),
            ),
        };
        f.finish(name.zip(restrictions).zip(key_lifetime).map(
            |((name, restrictions), key_lifetime)| NewApi {
                restrictions,
                key_lifetime,
                name,
                default_prefix,
                default_byte_length,
                delete_protection: body.delete_protection,
            },
        ))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateApiData {
    api_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_api(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiBody>,
) -> Result<Data<CreateApiData>, ApiError> {
    let api_id = state.service.create_api(&caller, body.try_into()?).await?;
    Ok(Data(CreateApiData {
        api_id: api_id.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiIdBody {
    api_id: Option<String>,
}

fn api_id(body: ApiIdBody, min_len: usize) -> Result<ApiId, ApiError> {
    let mut f = Fields::new();
    let id = f
        .required("body.apiId", body.api_id)
        .and_then(|s| parse_id(&mut f, "body.apiId", &s, min_len, ApiId::parse));
    f.finish(id)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    id: String,
    name: String,
    /// Keywarden extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    default_prefix: Option<String>,
    default_byte_length: u8,
    delete_protection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    restrictions: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_key_lifetime_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_key_lifetime_ms: Option<i64>,
}

impl ApiData {
    fn of(api: Api) -> Self {
        Self {
            id: api.id.to_string(),
            name: api.name.as_str().to_owned(),
            default_prefix: api.default_prefix.map(|p| p.as_str().to_owned()),
            default_byte_length: api.default_byte_length.get(),
            delete_protection: api.delete_protection,
            restrictions: api.restrictions.as_ref().map(restrictions_json),
            default_key_lifetime_ms: api.key_lifetime.default_lifetime().map(Lifetime::as_millis),
            max_key_lifetime_ms: api.key_lifetime.max_lifetime().map(Lifetime::as_millis),
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_api(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ApiIdBody>,
) -> Result<Data<ApiData>, ApiError> {
    let api = state.service.get_api(&caller, &api_id(body, 8)?).await?;
    Ok(Data(ApiData::of(api)))
}

/// `apis.updateApi` (Keywarden extension): an omitted field stays, `null` clears.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateApiBody {
    api_id: Option<String>,
    #[serde(default)]
    restrictions: Nullable<RestrictionsBody>,
    #[serde(default)]
    default_key_lifetime_ms: Nullable<i64>,
    #[serde(default)]
    max_key_lifetime_ms: Nullable<i64>,
}

fn lifetime_patch(f: &mut Fields, location: &str, value: Nullable<i64>) -> Option<Patch<Lifetime>> {
    Some(match value {
        Nullable::Absent => Patch::Keep,
        Nullable::Null => Patch::Clear,
        Nullable::Value(ms) => Patch::Set(parse_lifetime(f, location, ms)?),
    })
}

fn parse_update(body: UpdateApiBody) -> Result<(ApiId, ApiUpdate), ApiError> {
    let mut f = Fields::new();
    let id = f
        .required("body.apiId", body.api_id)
        .and_then(|s| parse_id(&mut f, "body.apiId", &s, 3, ApiId::parse));
    let restrictions = match body.restrictions {
        Nullable::Absent => Some(Patch::Keep),
        Nullable::Null => Some(Patch::Clear),
        Nullable::Value(r) => parse_restrictions(&mut f, "body.restrictions", r)
            .map(|r| r.map_or(Patch::Clear, Patch::Set)),
    };
    let default = lifetime_patch(
        &mut f,
        "body.defaultKeyLifetimeMs",
        body.default_key_lifetime_ms,
    );
    let max = lifetime_patch(&mut f, "body.maxKeyLifetimeMs", body.max_key_lifetime_ms);
    let update = match (restrictions, default, max) {
        (Some(restrictions), Some(default_key_lifetime), Some(max_key_lifetime)) => {
            Some(ApiUpdate {
                restrictions,
                default_key_lifetime,
                max_key_lifetime,
            })
        }
        _ => None,
    };
    f.finish(id.zip(update))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_api(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateApiBody>,
) -> Result<Data<ApiData>, ApiError> {
    let (id, update) = parse_update(body)?;
    let api = state.service.update_api(&caller, &id, update).await?;
    Ok(Data(ApiData::of(api)))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_api(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ApiIdBody>,
) -> Result<Data<Empty>, ApiError> {
    state.service.delete_api(&caller, &api_id(body, 3)?).await?;
    Ok(Data(Empty {}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListKeysBody {
    api_id: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    external_id: Option<String>,
    #[serde(default)]
    decrypt: bool,
    /// Accepted for compatibility; listings always read the store.
    #[serde(default)]
    #[allow(dead_code)]
    revalidate_keys_cache: bool,
}

struct ListKeys {
    api_id: ApiId,
    external_id: Option<ExternalId>,
    page: PageRequest,
    decrypt: bool,
}

impl TryFrom<ListKeysBody> for ListKeys {
    type Error = ApiError;

    fn try_from(body: ListKeysBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let api_id = f
            .required("body.apiId", body.api_id)
            .and_then(|s| parse_id(&mut f, "body.apiId", &s, 1, ApiId::parse));
        let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
        if let Some(cursor) = &body.cursor {
            f.length("body.cursor", cursor, 1, 1024);
        }
        let external_id = body
            .external_id
            .and_then(|e| f.check("body.externalId", ExternalId::parse(&e)));
        f.finish(api_id.zip(limit).map(|(api_id, limit)| ListKeys {
            api_id,
            external_id,
            page: PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
            decrypt: body.decrypt,
        }))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListKeysBody>,
) -> Result<Response, ApiError> {
    let request = ListKeys::try_from(body)?;
    let page = state
        .service
        .list_keys(
            &caller,
            &request.api_id,
            request.external_id.as_ref(),
            request.page,
            request.decrypt,
        )
        .await?;
    let data: Vec<KeyData<'_>> = page.items.iter().map(KeyData::read).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}
