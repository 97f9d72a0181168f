//! APIs: namespaces that own a keyspace, with defaults for the keys issued in them.

use crate::id::{ApiId, WorkspaceId};
use crate::key_format::{ByteLength, KeyPrefix};
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
}
