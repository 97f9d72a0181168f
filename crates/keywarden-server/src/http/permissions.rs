//! `permissions.*`: the permissions and roles that end-user keys hold.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::rbac::{PermissionSlug, PermissionUpdate, RoleName, RoleUpdate, check_text};
use keywarden_core::store::PageRequest;
use serde::{Deserialize, Serialize};

use super::envelope::{Data, Empty, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::{Fields, Nullable};
use super::wire::{PermissionData, RoleData, parse_slugs};
use crate::error::ApiError;
use crate::service::{Caller, NewPermission, NewRole};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/permissions.createPermission", post(create_permission))
        .route("/v2/permissions.getPermission", post(get_permission))
        .route("/v2/permissions.listPermissions", post(list_permissions))
        .route("/v2/permissions.updatePermission", post(update_permission))
        .route("/v2/permissions.deletePermission", post(delete_permission))
        .route("/v2/permissions.createRole", post(create_role))
        .route("/v2/permissions.getRole", post(get_role))
        .route("/v2/permissions.listRoles", post(list_roles))
        .route("/v2/permissions.updateRole", post(update_role))
        .route("/v2/permissions.deleteRole", post(delete_role))
        .route(
            "/v2/permissions.setRolePermissions",
            post(set_role_permissions),
        )
}

fn description(f: &mut Fields, value: Option<String>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(d) => f
            .check("body.description", check_text(&d, 0))
            .map(|()| Some(d)),
    }
}

/// A reference to one object (`permission`, `role`): its id, or its slug or name.
fn reference(f: &mut Fields, field: &str, value: Option<String>) -> Option<String> {
    let location = format!("body.{field}");
    let value = f.required(&location, value)?;
    f.length(&location, &value, 1, 255).then_some(value)
}

#[derive(Debug, Deserialize)]
struct ListBody {
    limit: Option<i64>,
    cursor: Option<String>,
    search: Option<String>,
}

fn list_request(body: ListBody) -> Result<(PageRequest, Option<String>), ApiError> {
    let mut f = Fields::new();
    let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
    if let Some(cursor) = &body.cursor {
        f.length("body.cursor", cursor, 1, 1024);
    }
    if let Some(search) = &body.search {
        f.length("body.search", search, 0, 256);
    }
    let limit = f.finish(limit)?;
    Ok((
        PageRequest {
            from: body.cursor,
            limit: usize::try_from(limit).unwrap_or(100),
        },
        body.search.filter(|s| !s.is_empty()),
    ))
}

#[derive(Debug, Deserialize)]
struct CreatePermissionBody {
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PermissionCreated {
    permission_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_permission(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePermissionBody>,
) -> Result<Data<PermissionCreated>, ApiError> {
    let mut f = Fields::new();
    let name = f
        .required("body.name", body.name)
        .filter(|n| f.length("body.name", n, 1, 512));
    let slug = f
        .required("body.slug", body.slug)
        .and_then(|s| f.check("body.slug", PermissionSlug::parse(&s)));
    let description = description(&mut f, body.description);
    let new = f.finish(
        name.zip(slug)
            .zip(description)
            .map(|((name, slug), description)| NewPermission {
                name,
                slug,
                description,
            }),
    )?;
    let id = state.service.create_permission(&caller, new).await?;
    Ok(Data(PermissionCreated {
        permission_id: id.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
struct PermissionBody {
    permission: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_permission(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PermissionBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "permission", body.permission);
    let reference = f.finish(reference)?;
    let permission = state.service.get_permission(&caller, &reference).await?;
    Ok(Data(PermissionData::of(&permission)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let (page, search) = list_request(body)?;
    let page = state
        .service
        .list_permissions(&caller, search.as_deref(), page)
        .await?;
    let data: Vec<PermissionData<'_>> = page.items.iter().map(PermissionData::of).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}

/// A description to change: `null` or `""` removes it (Python SDK 3.2.2's contract).
fn description_patch(f: &mut Fields, value: Nullable<String>) -> Option<Option<Option<String>>> {
    match value {
        Nullable::Absent => Some(None),
        Nullable::Null => Some(Some(None)),
        Nullable::Value(d) if d.is_empty() => Some(Some(None)),
        Nullable::Value(d) => description(f, Some(d)).map(Some),
    }
}

#[derive(Debug, Deserialize)]
struct UpdatePermissionBody {
    permission: Option<String>,
    name: Option<String>,
    slug: Option<String>,
    #[serde(default)]
    description: Nullable<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_permission(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdatePermissionBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "permission", body.permission);
    let name = match body.name {
        Some(n) => f.length("body.name", &n, 1, 512).then_some(Some(n)),
        None => Some(None),
    };
    let slug = match body.slug {
        Some(s) => f.check("body.slug", PermissionSlug::parse(&s)).map(Some),
        None => Some(None),
    };
    let description = description_patch(&mut f, body.description);
    let (reference, ((name, slug), description)) =
        f.finish(reference.zip(name.zip(slug).zip(description)))?;
    let update = PermissionUpdate {
        name,
        slug,
        description,
    };
    let permission = state
        .service
        .update_permission(&caller, &reference, update)
        .await?;
    Ok(Data(PermissionData::of(&permission)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_permission(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PermissionBody>,
) -> Result<Data<Empty>, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "permission", body.permission);
    let reference = f.finish(reference)?;
    state.service.delete_permission(&caller, &reference).await?;
    Ok(Data(Empty {}))
}

#[derive(Debug, Deserialize)]
struct CreateRoleBody {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleCreated {
    role_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRoleBody>,
) -> Result<Data<RoleCreated>, ApiError> {
    let mut f = Fields::new();
    let name = f
        .required("body.name", body.name)
        .and_then(|n| f.check("body.name", RoleName::parse(&n)));
    let description = description(&mut f, body.description);
    let permissions = parse_slugs(
        &mut f,
        "body.permissions",
        body.permissions.unwrap_or_default(),
    );
    let new = f.finish(name.zip(description).zip(permissions).map(
        |((name, description), permissions)| NewRole {
            name,
            description,
            permissions,
        },
    ))?;
    let id = state.service.create_role(&caller, new).await?;
    Ok(Data(RoleCreated {
        role_id: id.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
struct RoleBody {
    role: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "role", body.role);
    let reference = f.finish(reference)?;
    let role = state.service.get_role(&caller, &reference).await?;
    Ok(Data(RoleData::of(&role)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let (page, search) = list_request(body)?;
    let page = state
        .service
        .list_roles(&caller, search.as_deref(), page)
        .await?;
    let data: Vec<RoleData<'_>> = page.items.iter().map(RoleData::of).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}

#[derive(Debug, Deserialize)]
struct UpdateRoleBody {
    role: Option<String>,
    name: Option<String>,
    #[serde(default)]
    description: Nullable<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateRoleBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "role", body.role);
    let name = match body.name {
        Some(n) => f.check("body.name", RoleName::parse(&n)).map(Some),
        None => Some(None),
    };
    let description = description_patch(&mut f, body.description);
    let (reference, (name, description)) = f.finish(reference.zip(name.zip(description)))?;
    let role = state
        .service
        .update_role(&caller, &reference, RoleUpdate { name, description })
        .await?;
    Ok(Data(RoleData::of(&role)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Data<Empty>, ApiError> {
    let mut f = Fields::new();
    let reference = reference(&mut f, "role", body.role);
    let reference = f.finish(reference)?;
    state.service.delete_role(&caller, &reference).await?;
    Ok(Data(Empty {}))
}

/// `roleId` (TypeScript SDK 2.5.1) or `role` (Python SDK 3.2.2, id or name).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetRolePermissionsBody {
    role_id: Option<String>,
    role: Option<String>,
    permissions: Option<Vec<String>>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_role_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SetRolePermissionsBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let reference = match (body.role_id, body.role) {
        (Some(id), _) => reference(&mut f, "roleId", Some(id)),
        (None, role) => reference(&mut f, "role", role),
    };
    let permissions = f
        .required("body.permissions", body.permissions)
        .and_then(|p| parse_slugs(&mut f, "body.permissions", p));
    let (reference, permissions) = f.finish(reference.zip(permissions))?;
    let set = state
        .service
        .set_role_permissions(&caller, &reference, &permissions)
        .await?;
    let data: Vec<PermissionData<'_>> = set.iter().map(PermissionData::of).collect();
    Ok(Data(data).into_response())
}
