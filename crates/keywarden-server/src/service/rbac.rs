//! Permissions and roles: create, read, list, delete, and set a role's permissions.

use keywarden_core::audit::AuditAction;
use keywarden_core::change::Change;
use keywarden_core::id::{PermissionId, RoleId};
use keywarden_core::rbac::{
    Permission, PermissionSlug, PermissionUpdate, Role, RoleName, RoleUpdate,
};
use keywarden_core::root_key::{Operation, ops};
use keywarden_core::store::{Page, PageRequest, StoreError};

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// A new permission (`permissions.createPermission`).
#[derive(Debug)]
pub struct NewPermission {
    pub name: String,
    pub slug: PermissionSlug,
    pub description: Option<String>,
}

/// A new role (`permissions.createRole`); missing permission slugs are created.
#[derive(Debug)]
pub struct NewRole {
    pub name: RoleName,
    pub description: Option<String>,
    pub permissions: Vec<PermissionSlug>,
}

fn conflict_as(message: String) -> impl FnOnce(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Conflict(_) => ApiError::Conflict(message),
        e => e.into(),
    }
}

impl Keywarden {
    /// RBAC objects belong to the whole workspace, so every operation needs its wildcard
    /// permission (`rbac.*.…`).
    fn require_rbac(caller: &Caller, op: Operation) -> Result<(), ApiError> {
        caller.require_everywhere(op)
    }

    pub async fn create_permission(
        &self,
        caller: &Caller,
        new: NewPermission,
    ) -> Result<PermissionId, ApiError> {
        Self::require_rbac(caller, ops::CREATE_PERMISSION)?;
        let permission = Permission {
            id: PermissionId::generate(self.now()),
            workspace_id: caller.workspace().clone(),
            name: new.name,
            slug: new.slug,
            description: new.description,
            created_at: self.now(),
        };
        let audit = caller
            .audit(permission.created_at, AuditAction::PermissionCreate)
            .target(
                "permission",
                permission.id.as_str(),
                Some(permission.slug.as_str()),
            )
            .change("name", &permission.name)
            .change("slug", permission.slug.as_str())
            .change("description", &permission.description);
        self.store
            .insert_permission(&permission, &audit)
            .await
            .map_err(conflict_as(format!(
                "A permission with slug '{}' already exists.",
                permission.slug
            )))?;
        tracing::info!(permission_id = %permission.id, "permission created");
        Ok(permission.id)
    }

    pub async fn get_permission(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<Permission, ApiError> {
        Self::require_rbac(caller, ops::READ_PERMISSION)?;
        self.store
            .permission(caller.workspace(), reference)
            .await?
            .ok_or_else(ApiError::permission_not_found)
    }

    pub async fn list_permissions(
        &self,
        caller: &Caller,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Permission>, ApiError> {
        Self::require_rbac(caller, ops::READ_PERMISSION)?;
        Ok(self
            .store
            .permissions(caller.workspace(), search, page)
            .await?)
    }

    pub async fn update_permission(
        &self,
        caller: &Caller,
        reference: &str,
        update: PermissionUpdate,
    ) -> Result<Permission, ApiError> {
        Self::require_rbac(caller, ops::UPDATE_PERMISSION)?;
        let current = self
            .store
            .permission(caller.workspace(), reference)
            .await?
            .ok_or_else(ApiError::permission_not_found)?;
        let slug = update.slug.as_ref().map(ToString::to_string);
        let mut audit = caller
            .audit(self.now(), AuditAction::PermissionUpdate)
            .target(
                "permission",
                current.id.as_str(),
                Some(current.slug.as_str()),
            );
        if let Some(name) = &update.name {
            audit = audit.change("name", name);
        }
        if let Some(slug) = &slug {
            audit = audit.change("slug", slug);
        }
        if let Some(description) = &update.description {
            audit = audit.change("description", description);
        }
        let updated = self
            .store
            .update_permission(caller.workspace(), current.id.as_str(), update, &audit)
            .await
            .map_err(conflict_as(format!(
                "A permission with slug '{}' already exists.",
                slug.unwrap_or_default()
            )))?
            .ok_or_else(ApiError::permission_not_found)?;
        // Keys show slugs; a renamed one must not linger in cached keys.
        self.announce(vec![Change::AllKeysChanged]).await;
        tracing::info!(permission_id = %updated.id, "permission updated");
        Ok(updated)
    }

    pub async fn update_role(
        &self,
        caller: &Caller,
        reference: &str,
        update: RoleUpdate,
    ) -> Result<Role, ApiError> {
        Self::require_rbac(caller, ops::UPDATE_ROLE)?;
        let current = self
            .store
            .role(caller.workspace(), reference)
            .await?
            .ok_or_else(|| ApiError::role_not_found(reference))?;
        let name = update.name.as_ref().map(|n| n.as_str().to_owned());
        let mut audit = caller.audit(self.now(), AuditAction::RoleUpdate).target(
            "role",
            current.id.as_str(),
            Some(current.name.as_str()),
        );
        if let Some(name) = &name {
            audit = audit.change("name", name);
        }
        if let Some(description) = &update.description {
            audit = audit.change("description", description);
        }
        let updated = self
            .store
            .update_role(caller.workspace(), current.id.as_str(), update, &audit)
            .await
            .map_err(conflict_as(format!(
                "A role named '{}' already exists.",
                name.unwrap_or_default()
            )))?
            .ok_or_else(|| ApiError::role_not_found(reference))?;
        self.announce(vec![Change::AllKeysChanged]).await;
        tracing::info!(role_id = %updated.id, "role updated");
        Ok(updated)
    }

    pub async fn delete_permission(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<(), ApiError> {
        Self::require_rbac(caller, ops::DELETE_PERMISSION)?;
        let permission = self
            .store
            .permission(caller.workspace(), reference)
            .await?
            .ok_or_else(ApiError::permission_not_found)?;
        let audit = caller
            .audit(self.now(), AuditAction::PermissionDelete)
            .target(
                "permission",
                permission.id.as_str(),
                Some(permission.slug.as_str()),
            );
        if !self
            .store
            .delete_permission(caller.workspace(), permission.id.as_str(), &audit)
            .await?
        {
            return Err(ApiError::permission_not_found());
        }
        self.announce(vec![Change::AllKeysChanged]).await;
        tracing::info!("permission deleted");
        Ok(())
    }

    /// The permissions with these slugs, creating the missing ones, which needs
    /// `rbac.*.create_permission` only when some are missing.
    pub(super) async fn permissions_for(
        &self,
        caller: &Caller,
        slugs: &[PermissionSlug],
    ) -> Result<Vec<Permission>, ApiError> {
        let now = self.now();
        let mut existing = Vec::with_capacity(slugs.len());
        let mut missing = false;
        for slug in slugs {
            let found = self
                .store
                .permission(caller.workspace(), slug.as_str())
                .await?
                .filter(|p| &p.slug == slug);
            missing |= found.is_none();
            existing.push(found.unwrap_or_else(|| Permission {
                id: PermissionId::generate(now),
                workspace_id: caller.workspace().clone(),
                name: slug.as_str().to_owned(),
                slug: slug.clone(),
                description: None,
                created_at: now,
            }));
        }
        if !missing {
            return Ok(existing);
        }
        Self::require_rbac(caller, ops::CREATE_PERMISSION)?;
        // One entry for the permissions this call creates; the store keeps only the
        // targets it actually inserted (a concurrent call may have created some).
        let audit = existing.iter().filter(|p| p.created_at == now).fold(
            caller.audit(now, AuditAction::PermissionCreate),
            |entry, p| entry.target("permission", p.id.as_str(), Some(p.slug.as_str())),
        );
        Ok(self.store.upsert_permissions(&existing, &audit).await?)
    }

    pub async fn create_role(&self, caller: &Caller, new: NewRole) -> Result<RoleId, ApiError> {
        Self::require_rbac(caller, ops::CREATE_ROLE)?;
        // A call that will be refused must leave nothing behind, so the name is checked
        // before missing permissions are created. (A concurrent create of the same name can
        // still win the race; then the insert below is the 409.)
        if self
            .store
            .role(caller.workspace(), new.name.as_str())
            .await?
            .is_some_and(|r| r.name == new.name)
        {
            return Err(ApiError::Conflict(format!(
                "A role named '{}' already exists.",
                new.name.as_str()
            )));
        }
        let permissions = self.permissions_for(caller, &new.permissions).await?;
        let role = Role {
            id: RoleId::generate(self.now()),
            workspace_id: caller.workspace().clone(),
            name: new.name,
            description: new.description,
            permissions,
            created_at: self.now(),
        };
        let audit = caller
            .audit(role.created_at, AuditAction::RoleCreate)
            .target("role", role.id.as_str(), Some(role.name.as_str()))
            .change("description", &role.description)
            .change(
                "permissions",
                role.permissions
                    .iter()
                    .map(|p| p.slug.as_str())
                    .collect::<Vec<_>>(),
            );
        self.store
            .insert_role(&role, &audit)
            .await
            .map_err(conflict_as(format!(
                "A role named '{}' already exists.",
                role.name.as_str()
            )))?;
        tracing::info!(role_id = %role.id, "role created");
        Ok(role.id)
    }

    /// The roles with these names; a name that does not exist fails the whole call.
    pub(super) async fn roles_named(
        &self,
        caller: &Caller,
        names: &[RoleName],
    ) -> Result<Vec<Role>, ApiError> {
        let mut roles = Vec::with_capacity(names.len());
        for name in names {
            let role = self
                .store
                .role(caller.workspace(), name.as_str())
                .await?
                .filter(|r| &r.name == name)
                .ok_or_else(|| ApiError::role_not_found(name.as_str()))?;
            roles.push(role);
        }
        Ok(roles)
    }

    pub async fn get_role(&self, caller: &Caller, reference: &str) -> Result<Role, ApiError> {
        Self::require_rbac(caller, ops::READ_ROLE)?;
        self.store
            .role(caller.workspace(), reference)
            .await?
            .ok_or_else(|| ApiError::role_not_found(reference))
    }

    pub async fn list_roles(
        &self,
        caller: &Caller,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Role>, ApiError> {
        Self::require_rbac(caller, ops::READ_ROLE)?;
        Ok(self.store.roles(caller.workspace(), search, page).await?)
    }

    pub async fn delete_role(&self, caller: &Caller, reference: &str) -> Result<(), ApiError> {
        Self::require_rbac(caller, ops::DELETE_ROLE)?;
        let role = self
            .store
            .role(caller.workspace(), reference)
            .await?
            .ok_or_else(|| ApiError::role_not_found(reference))?;
        let audit = caller.audit(self.now(), AuditAction::RoleDelete).target(
            "role",
            role.id.as_str(),
            Some(role.name.as_str()),
        );
        if !self
            .store
            .delete_role(caller.workspace(), role.id.as_str(), &audit)
            .await?
        {
            return Err(ApiError::role_not_found(reference));
        }
        self.announce(vec![Change::AllKeysChanged]).await;
        tracing::info!("role deleted");
        Ok(())
    }

    /// Makes `slugs` the role's whole set of permissions (creating missing ones); returns them.
    pub async fn set_role_permissions(
        &self,
        caller: &Caller,
        reference: &str,
        slugs: &[PermissionSlug],
    ) -> Result<Vec<Permission>, ApiError> {
        Self::require_rbac(caller, ops::ADD_PERMISSION_TO_ROLE)?;
        Self::require_rbac(caller, ops::REMOVE_PERMISSION_FROM_ROLE)?;
        let role = self
            .store
            .role(caller.workspace(), reference)
            .await?
            .ok_or_else(|| ApiError::role_not_found(reference))?;
        let permissions = self.permissions_for(caller, slugs).await?;
        let audit = caller
            .audit(self.now(), AuditAction::RolePermissionsSet)
            .target("role", role.id.as_str(), Some(role.name.as_str()))
            .change(
                "permissions",
                permissions
                    .iter()
                    .map(|p| p.slug.as_str())
                    .collect::<Vec<_>>(),
            );
        let role = self
            .store
            .set_role_permissions(caller.workspace(), &role.id, &permissions, &audit)
            .await?
            .ok_or_else(|| ApiError::role_not_found(reference))?;
        self.announce(vec![Change::AllKeysChanged]).await;
        tracing::info!(role_id = %role.id, permissions = role.permissions.len(), "role permissions set");
        Ok(role.permissions)
    }
}
