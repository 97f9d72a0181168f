//! `keys.addPermissions` / `removePermissions` / `setPermissions` and `keys.addRoles` /
//! `removeRoles` / `setRoles`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::key_id;
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::ApiJson;
use crate::http::fields::Fields;
use crate::http::wire::{PermissionData, RoleData, parse_role_names, parse_slugs};
use crate::service::{AccessChange, Caller};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionsBody {
    key_id: Option<String>,
    permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolesBody {
    key_id: Option<String>,
    roles: Option<Vec<String>>,
}

/// Adding or removing needs at least one item; setting may clear with an empty list.
fn check_not_empty<T>(f: &mut Fields, location: &str, how: AccessChange, items: &[T]) {
    if how != AccessChange::Set && items.is_empty() {
        f.error(location, "must have at least 1 item");
    }
}

async fn change_permissions(
    state: AppState,
    caller: Caller,
    body: PermissionsBody,
    how: AccessChange,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let slugs = f
        .required("body.permissions", body.permissions)
        .and_then(|p| {
            check_not_empty(&mut f, "body.permissions", how, &p);
            parse_slugs(&mut f, "body.permissions", p)
        });
    let (id, slugs) = f.finish(id.zip(slugs))?;
    let key = state
        .service
        .change_key_permissions(&caller, &id, how, &slugs)
        .await?;
    // The key's direct permissions after the change, not those it has through roles.
    let data: Vec<PermissionData<'_>> = key.permissions.iter().map(PermissionData::of).collect();
    Ok(Data(data).into_response())
}

async fn change_roles(
    state: AppState,
    caller: Caller,
    body: RolesBody,
    how: AccessChange,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = key_id(&mut f, body.key_id);
    let names = f.required("body.roles", body.roles).and_then(|r| {
        check_not_empty(&mut f, "body.roles", how, &r);
        parse_role_names(&mut f, "body.roles", r)
    });
    let (id, names) = f.finish(id.zip(names))?;
    let key = state
        .service
        .change_key_roles(&caller, &id, how, &names)
        .await?;
    let data: Vec<RoleData<'_>> = key.roles.iter().map(RoleData::of).collect();
    Ok(Data(data).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PermissionsBody>,
) -> Result<Response, ApiError> {
    change_permissions(state, caller, body, AccessChange::Add).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn remove_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PermissionsBody>,
) -> Result<Response, ApiError> {
    change_permissions(state, caller, body, AccessChange::Remove).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PermissionsBody>,
) -> Result<Response, ApiError> {
    change_permissions(state, caller, body, AccessChange::Set).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_roles(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RolesBody>,
) -> Result<Response, ApiError> {
    change_roles(state, caller, body, AccessChange::Add).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn remove_roles(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RolesBody>,
) -> Result<Response, ApiError> {
    change_roles(state, caller, body, AccessChange::Remove).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_roles(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RolesBody>,
) -> Result<Response, ApiError> {
    change_roles(state, caller, body, AccessChange::Set).await
}
