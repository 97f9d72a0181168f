//! Workspaces' wrapped data keys in their stored form, shared by both backends like the
//! records of `columns`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keywarden_core::id::{DataKeyId, WorkspaceId};
use keywarden_core::time::UnixMillis;
use keywarden_core::vault::{MasterKeyId, WrappedDataKey};

use crate::columns::{ColumnError, at};

/// The columns of `data_keys`, in the order `StoredDataKey` binds and reads them.
pub const DATA_KEY_COLUMNS: &str = "id, workspace_id, master_key_id, wrapped, created_at";

/// One `data_keys` row; `wrapped` is standard base64 (text, like every other column, so
/// `migrate-store` copies it as it is).
#[derive(Debug, Clone)]
pub struct StoredDataKey {
    pub id: String,
    pub workspace_id: String,
    pub master_key_id: String,
    pub wrapped: String,
    pub created_at: i64,
}

impl StoredDataKey {
    pub fn of(key: &WrappedDataKey) -> Self {
        Self {
            id: key.id.to_string(),
            workspace_id: key.workspace_id.to_string(),
            master_key_id: key.master_key_id.to_string(),
            wrapped: STANDARD.encode(&key.wrapped),
            created_at: key.created_at.as_millis(),
        }
    }

    pub fn into_data_key(self) -> Result<WrappedDataKey, ColumnError> {
        Ok(WrappedDataKey {
            id: DataKeyId::parse(&self.id).map_err(at("data_keys.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("data_keys.workspace_id"))?,
            master_key_id: MasterKeyId::parse(&self.master_key_id)
                .map_err(at("data_keys.master_key_id"))?,
            wrapped: STANDARD
                .decode(&self.wrapped)
                .map_err(at("data_keys.wrapped"))?,
            created_at: UnixMillis::from_millis(self.created_at),
        })
    }
}
