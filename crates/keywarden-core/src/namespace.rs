//! Namespaces of the standalone rate limiter (`ratelimit.*`) and their per-identifier
//! overrides.

use crate::id::{NamespaceId, OverrideId, WorkspaceId};
use crate::ratelimit::WindowDuration;
use crate::text::{LengthError, check_length};
use crate::time::UnixMillis;

/// A namespace name as clients send it: 1..=512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceName(String);

impl NamespaceName {
    pub fn parse(s: &str) -> Result<Self, LengthError> {
        check_length(s, 1, 512)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A namespace; created on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: NamespaceId,
    pub workspace_id: WorkspaceId,
    pub name: NamespaceName,
    pub created_at: UnixMillis,
}

/// An identifier, or a pattern of identifiers with `*` wildcards in an override:
/// 1..=512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(s: &str) -> Result<Self, LengthError> {
        Self::from_string(s.to_owned())
    }

    /// Like [`Identifier::parse`], keeping the string it is given.
    pub fn from_string(s: String) -> Result<Self, LengthError> {
        check_length(&s, 1, 512)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Replaces the limit and window that `ratelimit.limit` calls ask for, for identifiers that
/// match `identifier` (exactly, or by wildcard pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateOverride {
    pub id: OverrideId,
    pub workspace_id: WorkspaceId,
    pub namespace_id: NamespaceId,
    pub identifier: Identifier,
    /// 0 blocks every call.
    pub limit: u64,
    pub duration: WindowDuration,
    pub created_at: UnixMillis,
    pub updated_at: Option<UnixMillis>,
}
