//! `rootKeys.*`: root keys managed over the API (the Python SDK 3.2.x's endpoints).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::id::RootKeyId;
use keywarden_core::key::MAX_EXPIRES;
use keywarden_core::root_key::{RootKey, RootKeyUpdate, RootPermissions};
use keywarden_core::store::PageRequest;
use keywarden_core::text::Label;
use keywarden_core::time::UnixMillis;
use serde::{Deserialize, Serialize};

use super::envelope::{Data, Empty, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::{Fields, Nullable};
use super::wire::parse_id;
use crate::error::ApiError;
use crate::service::{Caller, IssuedRootKey, NewRootKey};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/rootKeys.createKey", post(create_key))
        .route("/v2/rootKeys.listKeys", post(list_keys))
        .route("/v2/rootKeys.updateKey", post(update_key))
        .route("/v2/rootKeys.rerollKey", post(reroll_key))
        .route("/v2/rootKeys.deleteKey", post(delete_key))
}

fn permissions(f: &mut Fields, values: Vec<String>) -> Option<RootPermissions> {
    if values.is_empty() {
        f.error("body.permissions", "must have at least 1 item");
        return None;
    }
    f.check("body.permissions", RootPermissions::parse_all(&values))
}

fn root_key_id(f: &mut Fields, value: Option<String>) -> Option<RootKeyId> {
    f.required("body.keyId", value)
        .and_then(|s| parse_id(f, "body.keyId", &s, 3, RootKeyId::parse))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedData {
    key_id: String,
    key: String,
}

impl From<IssuedRootKey> for IssuedData {
    fn from(issued: IssuedRootKey) -> Self {
        Self {
            key_id: issued.id.to_string(),
            key: issued.key.expose().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    permissions: Option<Vec<String>>,
    name: Option<String>,
    expires: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Data<IssuedData>, ApiError> {
    let mut f = Fields::new();
    let permissions = f
        .required("body.permissions", body.permissions)
        .and_then(|p| permissions(&mut f, p));
    let name = match body.name {
        Some(n) => f.check("body.name", Label::parse(&n)).map(Some),
        None => Some(None),
    };
    let expires = match body.expires {
        Some(e) => f
            .range("body.expires", e, 0, MAX_EXPIRES)
            .map(|e| Some(UnixMillis::from_millis(e))),
        None => Some(None),
    };
    let new = f.finish(permissions.zip(name).zip(expires).map(
        |((permissions, name), expires)| NewRootKey {
            permissions,
            name,
            expires,
        },
    ))?;
    let issued = state.service.create_root_key(&caller, new).await?;
    Ok(Data(issued.into()))
}

#[derive(Debug, Deserialize)]
struct ListBody {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A root key as `rootKeys.listKeys` shows it; never the secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RootKeyData<'a> {
    key_id: &'a str,
    name: Option<&'a str>,
    start: &'a str,
    end: &'a str,
    enabled: bool,
    created_at: i64,
    /// Not tracked yet (usage recording is a later feature): 0 means "no use recorded".
    last_used_at: i64,
    expires: Option<i64>,
    permissions: Vec<String>,
}

impl<'a> RootKeyData<'a> {
    fn of(key: &'a RootKey) -> Self {
        Self {
            key_id: key.id.as_str(),
            name: key.name.as_ref().map(|n| n.as_str()),
            start: &key.start,
            end: &key.end,
            enabled: key.enabled,
            created_at: key.created_at.as_millis(),
            last_used_at: 0,
            expires: key.expires.map(UnixMillis::as_millis),
            permissions: key.permissions.to_strings(),
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
    if let Some(cursor) = &body.cursor {
        f.length("body.cursor", cursor, 1, 1024);
    }
    let limit = f.finish(limit)?;
    let page = state
        .service
        .list_root_keys(
            &caller,
            PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
        )
        .await?;
    let data: Vec<RootKeyData<'_>> = page.items.iter().map(RootKeyData::of).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    key_id: Option<String>,
    #[serde(default)]
    name: Nullable<String>,
    enabled: Option<bool>,
    permissions: Option<Vec<String>>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Data<Empty>, ApiError> {
    let mut f = Fields::new();
    let id = root_key_id(&mut f, body.key_id);
    let name = match body.name {
        Nullable::Absent => Some(None),
        Nullable::Null => Some(Some(None)),
        Nullable::Value(n) => f
            .check("body.name", Label::parse(&n))
            .map(|n| Some(Some(n))),
    };
    let permissions = match body.permissions {
        Some(p) => permissions(&mut f, p).map(Some),
        None => Some(None),
    };
    let (id, (name, permissions)) = f.finish(id.zip(name.zip(permissions)))?;
    let update = RootKeyUpdate {
        name,
        enabled: body.enabled,
        permissions,
    };
    state.service.update_root_key(&caller, &id, update).await?;
    Ok(Data(Empty {}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RerollBody {
    key_id: Option<String>,
    #[serde(default)]
    expiration: Nullable<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn reroll_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RerollBody>,
) -> Result<Data<IssuedData>, ApiError> {
    let mut f = Fields::new();
    let id = root_key_id(&mut f, body.key_id);
    let grace = match body.expiration {
        Nullable::Absent => {
            f.required::<()>("body.expiration", None);
            None
        }
        Nullable::Null => Some(None),
        Nullable::Value(ms) => f.range("body.expiration", ms, 0, MAX_EXPIRES).map(Some),
    };
    let (id, grace) = f.finish(id.zip(grace))?;
    let issued = state.service.reroll_root_key(&caller, &id, grace).await?;
    Ok(Data(issued.into()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteBody {
    key_id: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<Data<Empty>, ApiError> {
    let mut f = Fields::new();
    let id = root_key_id(&mut f, body.key_id);
    let id = f.finish(id)?;
    state.service.delete_root_key(&caller, &id).await?;
    Ok(Data(Empty {}))
}
