//! Permissions and roles, and the links between them.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{RoleId, WorkspaceId};
use keywarden_core::key::KeyRecord;
use keywarden_core::rbac::{Permission, PermissionUpdate, Role, RoleUpdate};
use keywarden_core::store::{Page, PageRequest, RbacStore, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{bad, page_fetch};
use crate::columns::{StoredPermission, StoredRole};

pub(super) const PERMISSION_COLUMNS: &str =
    "p.id, p.workspace_id, p.name, p.slug, p.description, p.created_at";
const ROLE_COLUMNS: &str = "id, workspace_id, name, description, created_at";

pub(super) fn permission_from_row(row: &Row<'_>) -> rusqlite::Result<Permission> {
    let stored = StoredPermission {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        slug: row.get(3)?,
        description: row.get(4)?,
        created_at: row.get(5)?,
    };
    stored.into_permission().map_err(|e| bad(0, e))
}

/// A role's row, before its permissions are read.
pub(super) fn role_from_row(row: &Row<'_>) -> rusqlite::Result<Role> {
    let stored = StoredRole {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        created_at: row.get(4)?,
    };
    stored.into_role().map_err(|e| bad(0, e))
}

fn find_permission(
    conn: &Connection,
    workspace: &WorkspaceId,
    reference: &str,
) -> rusqlite::Result<Option<Permission>> {
    conn.prepare_cached(&format!(
        "SELECT {PERMISSION_COLUMNS} FROM permissions p \
         WHERE p.workspace_id = ?1 AND (p.id = ?2 OR p.slug = ?2) \
         ORDER BY p.id = ?2 DESC LIMIT 1"
    ))?
    .query_row(params![workspace.as_str(), reference], permission_from_row)
    .optional()
}

fn insert_permission(conn: &Connection, p: &Permission) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO permissions (id, workspace_id, name, slug, description, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        p.id.as_str(),
        p.workspace_id.as_str(),
        p.name,
        p.slug.as_str(),
        p.description,
        p.created_at.as_millis()
    ])?;
    Ok(())
}

/// Fills in a role's permissions, ordered by slug.
pub(super) fn with_permissions(conn: &Connection, mut role: Role) -> rusqlite::Result<Role> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PERMISSION_COLUMNS} FROM role_permissions rp \
         JOIN permissions p ON p.id = rp.permission_id \
         WHERE rp.role_id = ?1 ORDER BY p.slug"
    ))?;
    role.permissions = stmt
        .query_map([role.id.as_str()], permission_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(role)
}

fn find_role(
    conn: &Connection,
    workspace: &WorkspaceId,
    reference: &str,
) -> rusqlite::Result<Option<Role>> {
    let role = conn
        .prepare_cached(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles \
             WHERE workspace_id = ?1 AND (id = ?2 OR name = ?2) \
             ORDER BY id = ?2 DESC LIMIT 1"
        ))?
        .query_row(params![workspace.as_str(), reference], role_from_row)
        .optional()?;
    role.map(|r| with_permissions(conn, r)).transpose()
}

fn link_permissions(
    conn: &Connection,
    role: &RoleId,
    permissions: &[Permission],
) -> rusqlite::Result<()> {
    let mut link = conn.prepare_cached(
        "INSERT OR IGNORE INTO role_permissions (role_id, permission_id) VALUES (?1, ?2)",
    )?;
    for p in permissions {
        link.execute(params![role.as_str(), p.id.as_str()])?;
    }
    Ok(())
}

fn conflict(what: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        e => e,
    }
}

/// Fills in what a key holds: its direct permissions and its roles with theirs.
pub(super) fn load_access(conn: &Connection, key: &mut KeyRecord) -> rusqlite::Result<()> {
    let mut direct = conn.prepare_cached(&format!(
        "SELECT {PERMISSION_COLUMNS} FROM key_permissions kp \
         JOIN permissions p ON p.id = kp.permission_id \
         WHERE kp.key_id = ?1 ORDER BY p.slug"
    ))?;
    key.permissions = direct
        .query_map([key.id.as_str()], permission_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut roles = conn.prepare_cached(
        "SELECT r.id, r.workspace_id, r.name, r.description, r.created_at FROM key_roles kr \
         JOIN roles r ON r.id = kr.role_id WHERE kr.key_id = ?1 ORDER BY r.name",
    )?;
    let found = roles
        .query_map([key.id.as_str()], role_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    key.roles = found
        .into_iter()
        .map(|r| with_permissions(conn, r))
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// Makes the stored links of a key match what its record holds.
pub(super) fn write_access(conn: &Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM key_permissions WHERE key_id = ?1")?
        .execute([key.id.as_str()])?;
    conn.prepare_cached("DELETE FROM key_roles WHERE key_id = ?1")?
        .execute([key.id.as_str()])?;
    let mut permission = conn.prepare_cached(
        "INSERT OR IGNORE INTO key_permissions (key_id, permission_id) VALUES (?1, ?2)",
    )?;
    for p in &key.permissions {
        permission.execute(params![key.id.as_str(), p.id.as_str()])?;
    }
    let mut role =
        conn.prepare_cached("INSERT OR IGNORE INTO key_roles (key_id, role_id) VALUES (?1, ?2)")?;
    for r in &key.roles {
        role.execute(params![key.id.as_str(), r.id.as_str()])?;
    }
    Ok(())
}

#[async_trait]
impl RbacStore for SqliteStore {
    async fn insert_permission(
        &self,
        permission: &Permission,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let (permission, audit) = (permission.clone(), audit.clone());
        self.write(move |conn| {
            insert_permission(conn, &permission)?;
            insert_entry(conn, &audit)
        })
        .await
        .map_err(conflict("a permission with this slug"))
    }

    async fn permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Permission>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        self.read(move |conn| find_permission(conn, &workspace, &reference))
            .await
    }

    async fn permissions(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Permission>> {
        let workspace = workspace.clone();
        let search = search.map(str::to_lowercase);
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {PERMISSION_COLUMNS} FROM permissions p \
                     WHERE p.workspace_id = ?1 AND p.id >= ?2 \
                     AND (?4 IS NULL OR instr(lower(p.id), ?4) > 0 \
                          OR instr(lower(p.name), ?4) > 0 OR instr(lower(p.slug), ?4) > 0) \
                     ORDER BY p.id LIMIT ?3"
                ))?;
                let fetch = page_fetch(&page);
                stmt.query_map(
                    params![
                        workspace.as_str(),
                        page.from.unwrap_or_default(),
                        fetch,
                        search
                    ],
                    permission_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |p| p.id.to_string()))
    }

    async fn update_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: PermissionUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Permission>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(mut permission) = find_permission(conn, &workspace, &reference)? else {
                return Ok(None);
            };
            permission.apply_update(update);
            conn.prepare_cached(
                "UPDATE permissions SET name = ?2, slug = ?3, description = ?4 WHERE id = ?1",
            )?
            .execute(params![
                permission.id.as_str(),
                permission.name,
                permission.slug.as_str(),
                permission.description
            ])?;
            insert_entry(conn, &audit)?;
            Ok(Some(permission))
        })
        .await
        .map_err(conflict("a permission with this slug"))
    }

    async fn update_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: RoleUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(mut role) = find_role(conn, &workspace, &reference)? else {
                return Ok(None);
            };
            role.apply_update(update);
            conn.prepare_cached("UPDATE roles SET name = ?2, description = ?3 WHERE id = ?1")?
                .execute(params![
                    role.id.as_str(),
                    role.name.as_str(),
                    role.description
                ])?;
            insert_entry(conn, &audit)?;
            Ok(Some(role))
        })
        .await
        .map_err(conflict("a role with this name"))
    }

    async fn delete_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(permission) = find_permission(conn, &workspace, &reference)? else {
                return Ok(false);
            };
            // Role links go with it (ON DELETE CASCADE).
            conn.execute(
                "DELETE FROM permissions WHERE id = ?1",
                [permission.id.as_str()],
            )?;
            insert_entry(conn, &audit)?;
            Ok(true)
        })
        .await
    }

    async fn upsert_permissions(
        &self,
        candidates: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<Permission>> {
        let (candidates, audit) = (candidates.to_vec(), audit.clone());
        self.write(move |conn| {
            let mut out = Vec::with_capacity(candidates.len());
            let mut inserted = Vec::new();
            for candidate in &candidates {
                let existing =
                    find_permission(conn, &candidate.workspace_id, candidate.slug.as_str())?
                        .filter(|p| p.slug == candidate.slug);
                match existing {
                    Some(p) => out.push(p),
                    None => {
                        insert_permission(conn, candidate)?;
                        inserted.push(candidate.id.as_str());
                        out.push(candidate.clone());
                    }
                }
            }
            if !inserted.is_empty() {
                insert_entry(conn, &audit.only_targets(&inserted))?;
            }
            Ok(out)
        })
        .await
    }

    async fn insert_role(&self, role: &Role, audit: &AuditEntry) -> StoreResult<()> {
        let (role, audit) = (role.clone(), audit.clone());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO roles (id, workspace_id, name, description, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                role.id.as_str(),
                role.workspace_id.as_str(),
                role.name.as_str(),
                role.description,
                role.created_at.as_millis()
            ])?;
            link_permissions(conn, &role.id, &role.permissions)?;
            insert_entry(conn, &audit)
        })
        .await
        .map_err(conflict("a role with this name"))
    }

    async fn role(&self, workspace: &WorkspaceId, reference: &str) -> StoreResult<Option<Role>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        self.read(move |conn| find_role(conn, &workspace, &reference))
            .await
    }

    async fn roles(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Role>> {
        let workspace = workspace.clone();
        let search = search.map(str::to_lowercase);
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {ROLE_COLUMNS} FROM roles \
                     WHERE workspace_id = ?1 AND id >= ?2 \
                     AND (?4 IS NULL OR instr(lower(id), ?4) > 0 OR instr(lower(name), ?4) > 0) \
                     ORDER BY id LIMIT ?3"
                ))?;
                let fetch = page_fetch(&page);
                let roles = stmt
                    .query_map(
                        params![
                            workspace.as_str(),
                            page.from.unwrap_or_default(),
                            fetch,
                            search
                        ],
                        role_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                roles
                    .into_iter()
                    .map(|r| with_permissions(conn, r))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |r| r.id.to_string()))
    }

    async fn delete_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(role) = find_role(conn, &workspace, &reference)? else {
                return Ok(false);
            };
            conn.execute("DELETE FROM roles WHERE id = ?1", [role.id.as_str()])?;
            insert_entry(conn, &audit)?;
            Ok(true)
        })
        .await
    }

    async fn set_role_permissions(
        &self,
        workspace: &WorkspaceId,
        role: &RoleId,
        permissions: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>> {
        let (workspace, role, permissions) =
            (workspace.clone(), role.clone(), permissions.to_vec());
        let audit = audit.clone();
        self.write(move |conn| {
            let Some(found) = find_role(conn, &workspace, role.as_str())? else {
                return Ok(None);
            };
            conn.execute(
                "DELETE FROM role_permissions WHERE role_id = ?1",
                [found.id.as_str()],
            )?;
            link_permissions(conn, &found.id, &permissions)?;
            insert_entry(conn, &audit)?;
            with_permissions(conn, found).map(Some)
        })
        .await
    }
}
