//! APIs: namespaces that own a keyspace, with defaults for the keys issued in them.

use crate::id::{ApiId, WorkspaceId};
use crate::key::Patch;
use crate::key_format::{ByteLength, KeyPrefix};
use crate::key_lifetime::{KeyLifetime, Lifetime, LifetimeError};
use crate::restriction::Restrictions;
use crate::text::ApiName;
use crate::time::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub id: ApiId,
    pub workspace_id: WorkspaceId,
    pub name: ApiName,
    /// Prefix of keys created without one.
    pub default_prefix: Option<KeyPrefix>,
    /// Random bytes of keys created without `byteLength`.
    pub default_byte_length: ByteLength,
    /// When set, `apis.deleteApi` refuses with 412.
    pub delete_protection: bool,
    pub created_at: UnixMillis,
    /// Where every key of the API may be used from, besides the key's own restrictions.
    pub restrictions: Option<Restrictions>,
    /// The expiry policy of the API's keys.
    pub key_lifetime: KeyLifetime,
}

/// A partial update of an API (`apis.updateApi`, a Keywarden extension).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiUpdate {
    pub restrictions: Patch<Restrictions>,
    pub default_key_lifetime: Patch<Lifetime>,
    pub max_key_lifetime: Patch<Lifetime>,
}

/// Why an API update was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiUpdateError {
    #[error("the API does not exist")]
    NotFound,
    #[error(transparent)]
    Lifetime(#[from] LifetimeError),
}

impl Api {
    /// Applies `update`; on error the API is unchanged.
    pub fn apply_update(&mut self, update: ApiUpdate) -> Result<(), ApiUpdateError> {
        let patched = |current: Option<Lifetime>, patch: Patch<Lifetime>| match patch {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(l) => Some(l),
        };
        let lifetime = KeyLifetime::new(
            patched(
                self.key_lifetime.default_lifetime(),
                update.default_key_lifetime,
            ),
            patched(self.key_lifetime.max_lifetime(), update.max_key_lifetime),
        )?;
        self.key_lifetime = lifetime;
        match update.restrictions {
            Patch::Keep => {}
            Patch::Clear => self.restrictions = None,
            Patch::Set(r) => self.restrictions = Some(r),
        }
        Ok(())
    }
}
