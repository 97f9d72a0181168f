//! Permissions and roles that end-user keys hold (RBAC), as `keys.verifyKey` permission
//! queries check them.

use std::fmt;

use crate::id::{PermissionId, RoleId, WorkspaceId};
use crate::text::{LengthError, check_length};
use crate::time::UnixMillis;

/// Why a string is not a permission slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error(transparent)]
    Length(#[from] LengthError),
    #[error("may contain only letters, digits and the characters _ : - . *")]
    InvalidCharacter,
}

/// What verification matches permission queries against: `^[a-zA-Z0-9_:\-\.\*]+$`,
/// 1..=128 characters, unique per workspace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermissionSlug(String);

impl PermissionSlug {
    pub const MAX: usize = 128;

    pub fn parse(s: &str) -> Result<Self, SlugError> {
        check_length(s, 1, Self::MAX)?;
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.' | b'*'))
        {
            return Err(SlugError::InvalidCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PermissionSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for PermissionSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free-form text of at most 512 characters (names of permissions, descriptions).
pub fn check_text(s: &str, min: usize) -> Result<(), LengthError> {
    check_length(s, min, 512)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: PermissionId,
    pub workspace_id: WorkspaceId,
    /// 1..=512 characters.
    pub name: String,
    pub slug: PermissionSlug,
    /// At most 512 characters.
    pub description: Option<String>,
    pub created_at: UnixMillis,
}

/// A role's name: 1..=128 characters, unique per workspace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(s: &str) -> Result<Self, LengthError> {
        check_length(s, 1, 128)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A role with the permissions it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub workspace_id: WorkspaceId,
    pub name: RoleName,
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
    pub created_at: UnixMillis,
}

/// A change through `permissions.updatePermission`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionUpdate {
    pub name: Option<String>,
    pub slug: Option<PermissionSlug>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
}

impl Permission {
    pub fn apply_update(&mut self, update: PermissionUpdate) {
        if let Some(name) = update.name {
            self.name = name;
        }
        if let Some(slug) = update.slug {
            self.slug = slug;
        }
        if let Some(description) = update.description {
            self.description = description;
        }
    }
}

/// A change through `permissions.updateRole`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleUpdate {
    pub name: Option<RoleName>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
}

impl Role {
    pub fn apply_update(&mut self, update: RoleUpdate) {
        if let Some(name) = update.name {
            self.name = name;
        }
        if let Some(description) = update.description {
            self.description = description;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_wire_pattern() {
        for ok in ["documents.read", "api:*", "a-b_c.d", &"x".repeat(128)] {
            assert!(PermissionSlug::parse(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            PermissionSlug::parse(""),
            Err(SlugError::Length(_))
        ));
        assert!(matches!(
            PermissionSlug::parse(&"x".repeat(129)),
            Err(SlugError::Length(_))
        ));
        for bad in ["a b", "a/b", "é", "a,b"] {
            assert_eq!(
                PermissionSlug::parse(bad),
                Err(SlugError::InvalidCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn role_names_are_one_to_128_characters() {
        assert!(RoleName::parse("").is_err());
        assert!(RoleName::parse("admin").is_ok());
        assert!(RoleName::parse(&"r".repeat(129)).is_err());
    }
}
