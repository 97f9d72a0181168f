//! Changes to a stored key that are decided against its current state, inside the store's
//! transaction: partial updates and credit operations.

use crate::credits::{AdjustmentError, CreditAdjustment, Credits, NegativeCredits};
use crate::key::{KeyRecord, KeyUpdate, KeyUpdateError};
use crate::rbac::{Permission, PermissionSlug, Role, RoleName};
use crate::time::UnixMillis;

/// A change that depends on the key's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// `keys.updateKey`.
    Update(Box<KeyUpdate>),
    /// `keys.updateCredits` with `set`: `None` makes usage unlimited and removes any refill.
    SetCredits(Option<i64>),
    /// `keys.updateCredits` with `increment` or `decrement`.
    AdjustCredits(CreditAdjustment),
    /// `keys.addPermissions`: existing permissions, added to the direct set.
    AddPermissions(Vec<Permission>),
    /// `keys.removePermissions`, by slug; slugs the key does not hold are ignored.
    RemovePermissions(Vec<PermissionSlug>),
    /// `keys.setPermissions`.
    SetPermissions(Vec<Permission>),
    /// `keys.addRoles`: existing roles.
    AddRoles(Vec<Role>),
    /// `keys.removeRoles`, by name.
    RemoveRoles(Vec<RoleName>),
    /// `keys.setRoles`.
    SetRoles(Vec<Role>),
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyChangeError {
    #[error("the key does not exist")]
    NotFound,
    #[error(transparent)]
    Update(#[from] KeyUpdateError),
    #[error(transparent)]
    Adjustment(#[from] AdjustmentError),
    #[error(transparent)]
    NegativeCredits(#[from] NegativeCredits),
}

impl KeyRecord {
    /// Applies `change` at `now`. On error the record is unchanged.
    pub fn apply(&mut self, change: KeyChange, now: UnixMillis) -> Result<(), KeyChangeError> {
        match change {
            KeyChange::Update(update) => self.apply_update(*update, now)?,
            KeyChange::SetCredits(None) => {
                self.credits = None;
                self.updated_at = Some(now);
            }
            KeyChange::SetCredits(Some(n)) => {
                self.credits = Some(match self.credits {
                    Some(c) => c.with_remaining(n)?,
                    None => Credits::new(n, None, now)?,
                });
                self.updated_at = Some(now);
            }
            KeyChange::AddPermissions(added) => {
                let mut all = std::mem::take(&mut self.permissions);
                all.extend(added);
                self.set_permissions(all);
                self.updated_at = Some(now);
            }
            KeyChange::RemovePermissions(slugs) => {
                self.permissions.retain(|p| !slugs.contains(&p.slug));
                self.updated_at = Some(now);
            }
            KeyChange::SetPermissions(permissions) => {
                self.set_permissions(permissions);
                self.updated_at = Some(now);
            }
            KeyChange::AddRoles(added) => {
                let mut all = std::mem::take(&mut self.roles);
                all.extend(added);
                self.set_roles(all);
                self.updated_at = Some(now);
            }
            KeyChange::RemoveRoles(names) => {
                self.roles.retain(|r| !names.contains(&r.name));
                self.updated_at = Some(now);
            }
            KeyChange::SetRoles(roles) => {
                self.set_roles(roles);
                self.updated_at = Some(now);
            }
            KeyChange::AdjustCredits(adjustment) => {
                let mut credits = self.credits.ok_or(AdjustmentError::Unlimited)?;
                // A refill that fell due counts before the adjustment, as it would have had
                // anyone looked at midnight.
                credits.apply_due_refill(now);
                credits.adjust(adjustment)?;
                self.credits = Some(credits);
                self.updated_at = Some(now);
            }
        }
        Ok(())
    }
}
