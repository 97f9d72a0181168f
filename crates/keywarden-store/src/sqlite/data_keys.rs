//! Workspaces' wrapped data keys for recoverable keys.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{DataKeyStore, StoreResult};
use keywarden_core::vault::WrappedDataKey;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, conversion_error};
use crate::data_key_columns::{DATA_KEY_COLUMNS, StoredDataKey};

fn data_key_from_row(row: &Row<'_>) -> rusqlite::Result<WrappedDataKey> {
    StoredDataKey {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        master_key_id: row.get(2)?,
        wrapped: row.get(3)?,
        created_at: row.get(4)?,
    }
    .into_data_key()
    .map_err(|e| conversion_error(0, e))
}

fn data_key_of(conn: &Connection, workspace: &str) -> rusqlite::Result<Option<WrappedDataKey>> {
    conn.prepare_cached(&format!(
        "SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE workspace_id = ?1"
    ))?
    .query_row([workspace], data_key_from_row)
    .optional()
}

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn data_key(&self, workspace: &WorkspaceId) -> StoreResult<Option<WrappedDataKey>> {
        let workspace = workspace.clone();
        self.read(move |conn| data_key_of(conn, workspace.as_str()))
            .await
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> StoreResult<WrappedDataKey> {
        let stored = StoredDataKey::of(key);
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO data_keys ({DATA_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (workspace_id) DO NOTHING"
            ))?
            .execute(params![
                stored.id,
                stored.workspace_id,
                stored.master_key_id,
                stored.wrapped,
                stored.created_at,
            ])?;
            data_key_of(conn, &stored.workspace_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
        })
        .await
    }

    async fn data_keys(&self) -> StoreResult<Vec<WrappedDataKey>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY id"
            ))?
            .query_map([], data_key_from_row)?
            .collect()
        })
        .await
    }

    async fn rewrap_data_key(&self, key: &WrappedDataKey) -> StoreResult<()> {
        let stored = StoredDataKey::of(key);
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE data_keys SET master_key_id = ?2, wrapped = ?3 WHERE id = ?1",
            )?
            .execute(params![stored.id, stored.master_key_id, stored.wrapped])?;
            Ok(())
        })
        .await
    }
}
