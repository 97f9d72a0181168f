//! What keys hold: their direct permissions and their roles (`keys.addPermissions` …
//! `keys.setRoles`).

use keywarden_core::audit::{AuditAction, AuditEntry};
use keywarden_core::change::Change;
use keywarden_core::id::{ApiId, KeyId};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_change::KeyChange;
use keywarden_core::rbac::{PermissionSlug, RoleName};
use keywarden_core::root_key::{Operation, ops};

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// A change to the permissions a key holds directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    Add,
    Remove,
    Set,
}

impl AccessChange {
    /// The RBAC operations a root key needs for this change, besides `update_key` on the
    /// key's API: setting both adds and removes.
    fn required(self, add: Operation, remove: Operation) -> impl Iterator<Item = Operation> {
        let (add, remove) = match self {
            Self::Add => (Some(add), None),
            Self::Remove => (None, Some(remove)),
            Self::Set => (Some(add), Some(remove)),
        };
        add.into_iter().chain(remove)
    }
}

impl Keywarden {
    async fn change_access(
        &self,
        caller: &Caller,
        id: &KeyId,
        api_id: &ApiId,
        change: KeyChange,
        audit: AuditEntry,
    ) -> Result<KeyRecord, ApiError> {
        let audit = audit
            .target("key", id.as_str(), None)
            .target("api", api_id.as_str(), None);
        let key = self
            .store
            .change_key(caller.workspace(), id, change, audit.time, &audit)
            .await?
            .map_err(|_| ApiError::key_not_found())?;
        self.announce(vec![Change::KeyChanged(key.digest)]).await;
        Ok(key)
    }

    /// Adds, removes or sets a key's direct permissions, by slug; returns the key after.
    /// Adding or setting creates missing slugs when the root key may create permissions.
    pub async fn change_key_permissions(
        &self,
        caller: &Caller,
        id: &KeyId,
        how: AccessChange,
        slugs: &[PermissionSlug],
    ) -> Result<KeyRecord, ApiError> {
        let current = self.reachable_key(caller, id, ops::UPDATE_KEY).await?;
        for op in how.required(ops::ADD_PERMISSION_TO_KEY, ops::REMOVE_PERMISSION_FROM_KEY) {
            caller.require_everywhere(op)?;
        }
        let change = match how {
            AccessChange::Remove => KeyChange::RemovePermissions(slugs.to_vec()),
            AccessChange::Add => {
                KeyChange::AddPermissions(self.permissions_for(caller, slugs).await?)
            }
            AccessChange::Set => {
                KeyChange::SetPermissions(self.permissions_for(caller, slugs).await?)
            }
        };
        let action = match how {
            AccessChange::Add => AuditAction::KeyPermissionsAdd,
            AccessChange::Remove => AuditAction::KeyPermissionsRemove,
            AccessChange::Set => AuditAction::KeyPermissionsSet,
        };
        let names: Vec<&str> = slugs.iter().map(PermissionSlug::as_str).collect();
        let audit = caller
            .audit(self.now(), action)
            .change("permissions", names);
        self.change_access(caller, id, &current.api_id, change, audit)
            .await
    }

    /// Adds, removes or sets a key's roles, by name; roles are never created, and one that
    /// does not exist fails the call. Returns the key after.
    pub async fn change_key_roles(
        &self,
        caller: &Caller,
        id: &KeyId,
        how: AccessChange,
        names: &[RoleName],
    ) -> Result<KeyRecord, ApiError> {
        let current = self.reachable_key(caller, id, ops::UPDATE_KEY).await?;
        for op in how.required(ops::ADD_ROLE_TO_KEY, ops::REMOVE_ROLE_FROM_KEY) {
            caller.require_everywhere(op)?;
        }
        let change = match how {
            AccessChange::Remove => KeyChange::RemoveRoles(names.to_vec()),
            AccessChange::Add => KeyChange::AddRoles(self.roles_named(caller, names).await?),
            AccessChange::Set => KeyChange::SetRoles(self.roles_named(caller, names).await?),
        };
        let action = match how {
            AccessChange::Add => AuditAction::KeyRolesAdd,
            AccessChange::Remove => AuditAction::KeyRolesRemove,
            AccessChange::Set => AuditAction::KeyRolesSet,
        };
        let roles: Vec<&str> = names.iter().map(RoleName::as_str).collect();
        let audit = caller.audit(self.now(), action).change("roles", roles);
        self.change_access(caller, id, &current.api_id, change, audit)
            .await
    }
}
