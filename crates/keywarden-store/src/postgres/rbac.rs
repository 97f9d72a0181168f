//! Permissions and roles, and the links between them.

use std::collections::HashMap;

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{RoleId, WorkspaceId};
use keywarden_core::rbac::{Permission, PermissionUpdate, Role, RoleUpdate};
use keywarden_core::store::{Page, PageRequest, RbacStore, StoreResult};
use sqlx::postgres::PgConnection;

use super::access::with_permissions;
use super::audit::insert_entry;
use super::rows::{lockable, permission_at, permission_columns, role_at, role_columns};
use super::{PgResult, PostgresStore, conflict_as, run};
use crate::columns::{StoredPermission, page_fetch};

const SLUG_TAKEN: &str = "a permission with this slug";
const NAME_TAKEN: &str = "a role with this name";

/// Whether a lookup locks the row for a change. `FOR UPDATE` rather than `FOR NO KEY
/// UPDATE`, as a slug or name is part of a unique key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    Write,
}

async fn find_permission(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    reference: &str,
    lock: Lock,
) -> PgResult<Option<Permission>> {
    let sql = lockable!(
        lock == Lock::Write,
        "SELECT ",
        permission_columns!(),
        " FROM permissions p WHERE p.workspace_id = $1 AND (p.id = $2 OR p.slug = $2) \
             ORDER BY p.id = $2 DESC LIMIT 1"
    );
    let row = sqlx::query(sql)
        .bind(workspace.as_str())
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(|r| permission_at(r, 0)).transpose()
}

/// The role with this id or, failing that, this name, with its permissions.
async fn find_role(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    reference: &str,
    lock: Lock,
) -> PgResult<Option<Role>> {
    let sql = lockable!(
        lock == Lock::Write,
        "SELECT ",
        role_columns!(),
        " FROM roles r WHERE r.workspace_id = $1 AND (r.id = $2 OR r.name = $2) \
             ORDER BY r.id = $2 DESC LIMIT 1"
    );
    let row = sqlx::query(sql)
        .bind(workspace.as_str())
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut role = role_at(&row, 0)?;
    with_permissions(conn, std::slice::from_mut(&mut role)).await?;
    Ok(Some(role))
}

async fn insert_permission(conn: &mut PgConnection, p: &Permission) -> PgResult<()> {
    let stored = StoredPermission::of(p);
    sqlx::query(
        "INSERT INTO permissions (id, workspace_id, name, slug, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(stored.id)
    .bind(stored.workspace_id)
    .bind(stored.name)
    .bind(stored.slug)
    .bind(stored.description)
    .bind(stored.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn link_permissions(
    conn: &mut PgConnection,
    role: &RoleId,
    permissions: &[Permission],
) -> PgResult<()> {
    if permissions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = permissions.iter().map(|p| p.id.as_str()).collect();
    sqlx::query(
        "INSERT INTO role_permissions (role_id, permission_id) \
         SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(role.as_str())
    .bind(&ids[..])
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl RbacStore for PostgresStore {
    async fn insert_permission(
        &self,
        permission: &Permission,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            insert_permission(&mut tx, permission).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
        .map_err(conflict_as(SLUG_TAKEN))
    }

    async fn permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Permission>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            find_permission(&mut conn, workspace, reference, Lock::None).await
        })
        .await
    }

    async fn permissions(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Permission>> {
        let search = search.map(str::to_lowercase);
        run(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                permission_columns!(),
                " FROM permissions p WHERE p.workspace_id = $1 AND p.id >= $2 \
                 AND ($4::text IS NULL OR strpos(lower(p.id), $4) > 0 \
                      OR strpos(lower(p.name), $4) > 0 OR strpos(lower(p.slug), $4) > 0) \
                 ORDER BY p.id LIMIT $3"
            ))
            .bind(workspace.as_str())
            .bind(page.from.as_deref().unwrap_or_default())
            .bind(page_fetch(&page))
            .bind(search.as_deref())
            .fetch_all(&self.pool)
            .await?;
            let permissions = rows
                .iter()
                .map(|r| permission_at(r, 0))
                .collect::<PgResult<Vec<_>>>()?;
            Ok(Page::from_overfetch(permissions, page.limit, |p| {
                p.id.to_string()
            }))
        })
        .await
    }

    async fn update_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: PermissionUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Permission>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut permission) =
                find_permission(&mut tx, workspace, reference, Lock::Write).await?
            else {
                return Ok(None);
            };
            permission.apply_update(update);
            sqlx::query(
                "UPDATE permissions SET name = $2, slug = $3, description = $4 WHERE id = $1",
            )
            .bind(permission.id.as_str())
            .bind(&permission.name)
            .bind(permission.slug.as_str())
            .bind(permission.description.as_deref())
            .execute(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(permission))
        })
        .await
        .map_err(conflict_as(SLUG_TAKEN))
    }

    async fn update_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: RoleUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut role) = find_role(&mut tx, workspace, reference, Lock::Write).await?
            else {
                return Ok(None);
            };
            role.apply_update(update);
            sqlx::query("UPDATE roles SET name = $2, description = $3 WHERE id = $1")
                .bind(role.id.as_str())
                .bind(role.name.as_str())
                .bind(role.description.as_deref())
                .execute(&mut *tx)
                .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(role))
        })
        .await
        .map_err(conflict_as(NAME_TAKEN))
    }

    async fn delete_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = self.pool.begin().await?;
            // Role and key links go with it (ON DELETE CASCADE).
            let deleted = sqlx::query(
                "DELETE FROM permissions WHERE id = (SELECT id FROM permissions \
                 WHERE workspace_id = $1 AND (id = $2 OR slug = $2) \
                 ORDER BY id = $2 DESC LIMIT 1)",
            )
            .bind(workspace.as_str())
            .bind(reference)
            .execute(&mut *tx)
            .await?;
            if deleted.rows_affected() == 0 {
                return Ok(false);
            }
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn upsert_permissions(
        &self,
        candidates: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<Permission>> {
        let Some(first) = candidates.first() else {
            return Ok(Vec::new());
        };
        // The first candidate of each slug is the one inserted. Inserting in slug order means
        // two calls racing on overlapping slugs wait for each other in one order, never in a
        // cycle.
        let mut fresh: Vec<StoredPermission> = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            if !fresh.iter().any(|p| p.slug == candidate.slug.as_str()) {
                fresh.push(StoredPermission::of(candidate));
            }
        }
        fresh.sort_by(|a, b| a.slug.cmp(&b.slug));
        let column = |f: fn(&StoredPermission) -> &str| fresh.iter().map(f).collect::<Vec<_>>();
        let (ids, names, slugs) = (column(|p| &p.id), column(|p| &p.name), column(|p| &p.slug));
        let descriptions: Vec<Option<&str>> =
            fresh.iter().map(|p| p.description.as_deref()).collect();
        let created: Vec<i64> = fresh.iter().map(|p| p.created_at).collect();
        run(async {
            let mut tx = self.pool.begin().await?;
            // A slug being inserted by a concurrent transaction makes this one wait for it
            // and then skip the slug; the read after it (a new statement) sees the winner.
            let inserted: Vec<String> = sqlx::query_scalar(
                "INSERT INTO permissions (id, workspace_id, name, slug, description, created_at) \
                 SELECT id, $2, name, slug, description, created_at \
                 FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
                 WITH ORDINALITY AS c(id, name, slug, description, created_at, n) ORDER BY n \
                 ON CONFLICT (workspace_id, slug) DO NOTHING RETURNING id",
            )
            .bind(&ids[..])
            .bind(first.workspace_id.as_str())
            .bind(&names[..])
            .bind(&slugs[..])
            .bind(&descriptions[..])
            .bind(&created[..])
            .fetch_all(&mut *tx)
            .await?;
            if !inserted.is_empty() {
                let ids: Vec<&str> = inserted.iter().map(String::as_str).collect();
                insert_entry(&mut tx, &audit.only_targets(&ids)).await?;
            }
            let rows = sqlx::query(concat!(
                "SELECT ",
                permission_columns!(),
                " FROM permissions p WHERE p.workspace_id = $1 AND p.slug = ANY($2)"
            ))
            .bind(first.workspace_id.as_str())
            .bind(&slugs[..])
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut stored: HashMap<String, Permission> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let p = permission_at(row, 0)?;
                stored.insert(p.slug.as_str().to_owned(), p);
            }
            Ok(candidates
                .iter()
                .filter_map(|c| stored.get(c.slug.as_str()).cloned())
                .collect())
        })
        .await
    }

    async fn insert_role(&self, role: &Role, audit: &AuditEntry) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO roles (id, workspace_id, name, description, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(role.id.as_str())
            .bind(role.workspace_id.as_str())
            .bind(role.name.as_str())
            .bind(role.description.as_deref())
            .bind(role.created_at.as_millis())
            .execute(&mut *tx)
            .await?;
            link_permissions(&mut tx, &role.id, &role.permissions).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
        .map_err(conflict_as(NAME_TAKEN))
    }

    async fn role(&self, workspace: &WorkspaceId, reference: &str) -> StoreResult<Option<Role>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            find_role(&mut conn, workspace, reference, Lock::None).await
        })
        .await
    }

    async fn roles(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Role>> {
        let search = search.map(str::to_lowercase);
        run(async {
            let mut conn = self.pool.acquire().await?;
            let rows = sqlx::query(concat!(
                "SELECT ",
                role_columns!(),
                " FROM roles r WHERE r.workspace_id = $1 AND r.id >= $2 \
                 AND ($4::text IS NULL OR strpos(lower(r.id), $4) > 0 \
                      OR strpos(lower(r.name), $4) > 0) \
                 ORDER BY r.id LIMIT $3"
            ))
            .bind(workspace.as_str())
            .bind(page.from.as_deref().unwrap_or_default())
            .bind(page_fetch(&page))
            .bind(search.as_deref())
            .fetch_all(&mut *conn)
            .await?;
            let mut roles = rows
                .iter()
                .map(|r| role_at(r, 0))
                .collect::<PgResult<Vec<_>>>()?;
            with_permissions(&mut conn, &mut roles).await?;
            Ok(Page::from_overfetch(roles, page.limit, |r| {
                r.id.to_string()
            }))
        })
        .await
    }

    async fn delete_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = self.pool.begin().await?;
            // Permission and key links go with it (ON DELETE CASCADE).
            let deleted = sqlx::query(
                "DELETE FROM roles WHERE id = (SELECT id FROM roles \
                 WHERE workspace_id = $1 AND (id = $2 OR name = $2) \
                 ORDER BY id = $2 DESC LIMIT 1)",
            )
            .bind(workspace.as_str())
            .bind(reference)
            .execute(&mut *tx)
            .await?;
            if deleted.rows_affected() == 0 {
                return Ok(false);
            }
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
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
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut found) = find_role(&mut tx, workspace, role.as_str(), Lock::Write).await?
            else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                .bind(found.id.as_str())
                .execute(&mut *tx)
                .await?;
            link_permissions(&mut tx, &found.id, permissions).await?;
            with_permissions(&mut tx, std::slice::from_mut(&mut found)).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(found))
        })
        .await
    }
}
