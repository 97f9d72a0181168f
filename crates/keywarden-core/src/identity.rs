//! Identities: the owners of keys (a customer, a user), addressed by the caller's own
//! `externalId`, with metadata and named limits that all their keys share.

use std::fmt;

use crate::id::{IdentityId, WorkspaceId};
use crate::meta::Meta;
use crate::named_limit::{LimitSpec, NamedLimit, replace_by_name};
use crate::time::UnixMillis;

/// Why a string is not an external id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalIdError {
    #[error("must be 1 to 255 characters long")]
    Length,
    #[error("may contain only letters, digits, '_', '.' and '-'")]
    InvalidCharacter,
}

/// The caller's id for an identity: `^[a-zA-Z0-9_.-]+$`, 1..=255 characters, unique per
/// workspace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(s: &str) -> Result<Self, ExternalIdError> {
        if s.is_empty() || s.len() > 255 {
            return Err(ExternalIdError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(ExternalIdError::InvalidCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub id: IdentityId,
    pub workspace_id: WorkspaceId,
    pub external_id: ExternalId,
    pub meta: Option<Meta>,
    /// Shared by every key of the identity: counted against the identity, not the key.
    pub ratelimits: Vec<NamedLimit>,
    pub created_at: UnixMillis,
    pub updated_at: Option<UnixMillis>,
}

/// A change through `identities.updateIdentity`; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdentityUpdate {
    /// `Some(None)` clears the metadata (the wire sends `{}`).
    pub meta: Option<Option<Meta>>,
    /// Replaces the set by name.
    pub ratelimits: Option<Vec<LimitSpec>>,
}

impl Identity {
    /// A new identity for `external_id`, with no metadata or limits unless given.
    pub fn new(
        workspace_id: WorkspaceId,
        external_id: ExternalId,
        meta: Option<Meta>,
        ratelimits: Vec<LimitSpec>,
        now: UnixMillis,
    ) -> Self {
        Self {
            id: IdentityId::generate(now),
            workspace_id,
            external_id,
            meta,
            ratelimits: replace_by_name(&[], ratelimits, now),
            created_at: now,
            updated_at: None,
        }
    }

    pub fn apply_update(&mut self, update: IdentityUpdate, now: UnixMillis) {
        if let Some(meta) = update.meta {
            self.meta = meta;
        }
        if let Some(limits) = update.ratelimits {
            self.ratelimits = replace_by_name(&self.ratelimits, limits, now);
        }
        self.updated_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_follow_the_wire_pattern() {
        assert!(ExternalId::parse("user_1.a-b").is_ok());
        assert_eq!(ExternalId::parse(""), Err(ExternalIdError::Length));
        assert_eq!(
            ExternalId::parse(&"a".repeat(256)),
            Err(ExternalIdError::Length)
        );
        assert_eq!(
            ExternalId::parse("user 1"),
            Err(ExternalIdError::InvalidCharacter)
        );
        assert_eq!(
            ExternalId::parse("ü"),
            Err(ExternalIdError::InvalidCharacter)
        );
    }
}
