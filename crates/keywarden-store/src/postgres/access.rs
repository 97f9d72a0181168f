//! What keys hold: their direct permissions and their roles, each role with its permissions.
//! Read for many keys at once, so a page of keys costs three queries rather than three per
//! key; orders match SQLite's (permissions by slug, roles by name, byte order).

use std::collections::HashMap;

use keywarden_core::key::KeyRecord;
use keywarden_core::rbac::{Permission, Role};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::PgResult;
use super::rows::{permission_at, permission_columns, role_at, role_columns};

/// The permissions of each of `roles` (ids), ordered by slug; roles without any are absent.
pub(super) async fn role_permissions(
    conn: &mut PgConnection,
    roles: &[String],
) -> PgResult<HashMap<String, Vec<Permission>>> {
    let mut held: HashMap<String, Vec<Permission>> = HashMap::new();
    if roles.is_empty() {
        return Ok(held);
    }
    let rows = sqlx::query(concat!(
        "SELECT rp.role_id, ",
        permission_columns!(),
        " FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id \
         WHERE rp.role_id = ANY($1) ORDER BY rp.role_id, p.slug"
    ))
    .bind(roles)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let role: String = row.try_get(0)?;
        held.entry(role).or_default().push(permission_at(row, 1)?);
    }
    Ok(held)
}

/// Fills in `roles`' permissions.
pub(super) async fn with_permissions(conn: &mut PgConnection, roles: &mut [Role]) -> PgResult<()> {
    let ids: Vec<String> = roles.iter().map(|r| r.id.to_string()).collect();
    let mut held = role_permissions(conn, &ids).await?;
    for role in roles {
        role.permissions = held.remove(role.id.as_str()).unwrap_or_default();
    }
    Ok(())
}

/// Fills in what each of `keys` holds.
pub(super) async fn load_access(conn: &mut PgConnection, keys: &mut [KeyRecord]) -> PgResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = keys.iter().map(|k| k.id.to_string()).collect();
    let rows = sqlx::query(concat!(
        "SELECT kp.key_id, ",
        permission_columns!(),
        " FROM key_permissions kp JOIN permissions p ON p.id = kp.permission_id \
         WHERE kp.key_id = ANY($1) ORDER BY kp.key_id, p.slug"
    ))
    .bind(&ids[..])
    .fetch_all(&mut *conn)
    .await?;
    let mut direct: HashMap<String, Vec<Permission>> = HashMap::new();
    for row in &rows {
        let key: String = row.try_get(0)?;
        direct.entry(key).or_default().push(permission_at(row, 1)?);
    }

    let rows = sqlx::query(concat!(
        "SELECT kr.key_id, ",
        role_columns!(),
        " FROM key_roles kr JOIN roles r ON r.id = kr.role_id \
         WHERE kr.key_id = ANY($1) ORDER BY kr.key_id, r.name"
    ))
    .bind(&ids[..])
    .fetch_all(&mut *conn)
    .await?;
    let mut roles: HashMap<String, Vec<Role>> = HashMap::new();
    for row in &rows {
        let key: String = row.try_get(0)?;
        roles.entry(key).or_default().push(role_at(row, 1)?);
    }
    let mut role_ids: Vec<String> = roles.values().flatten().map(|r| r.id.to_string()).collect();
    role_ids.sort_unstable();
    role_ids.dedup();
    let granted = role_permissions(conn, &role_ids).await?;

    for key in keys {
        key.permissions = direct.remove(key.id.as_str()).unwrap_or_default();
        key.roles = roles.remove(key.id.as_str()).unwrap_or_default();
        for role in &mut key.roles {
            role.permissions = granted.get(role.id.as_str()).cloned().unwrap_or_default();
        }
    }
    Ok(())
}

/// Whether `after` holds other permissions or roles than `before`, so its links need writing.
pub(super) fn access_changed(before: &KeyRecord, after: &KeyRecord) -> bool {
    let same_permissions = before
        .permissions
        .iter()
        .map(|p| &p.id)
        .eq(after.permissions.iter().map(|p| &p.id));
    let same_roles = before
        .roles
        .iter()
        .map(|r| &r.id)
        .eq(after.roles.iter().map(|r| &r.id));
    !(same_permissions && same_roles)
}

/// Makes the stored links of a key match what its record holds.
pub(super) async fn write_access(conn: &mut PgConnection, key: &KeyRecord) -> PgResult<()> {
    let id = key.id.as_str();
    sqlx::query("DELETE FROM key_permissions WHERE key_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM key_roles WHERE key_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    link_access(conn, key).await
}

/// Links a key to what its record holds; for a key that has no links yet.
pub(super) async fn link_access(conn: &mut PgConnection, key: &KeyRecord) -> PgResult<()> {
    let id = key.id.as_str();
    if !key.permissions.is_empty() {
        let permissions: Vec<&str> = key.permissions.iter().map(|p| p.id.as_str()).collect();
        sqlx::query(
            "INSERT INTO key_permissions (key_id, permission_id) \
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&permissions[..])
        .execute(&mut *conn)
        .await?;
    }
    if !key.roles.is_empty() {
        let roles: Vec<&str> = key.roles.iter().map(|r| r.id.as_str()).collect();
        sqlx::query(
            "INSERT INTO key_roles (key_id, role_id) \
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&roles[..])
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
