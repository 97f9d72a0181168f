//! APIs. Deleting one deletes its keys in the same transaction.

use async_trait::async_trait;
use keywarden_core::api::{Api, ApiUpdate, ApiUpdateError};
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, WorkspaceId};
use keywarden_core::store::{ApiStore, StoreResult};
use keywarden_core::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{API_COLUMNS, api_from_row};
use crate::columns::StoredApi;

#[async_trait]
impl ApiStore for SqliteStore {
    async fn insert_api(&self, api: &Api, audit: &AuditEntry) -> StoreResult<()> {
        let (api, audit) = (api.clone(), audit.clone());
        self.write(move |conn| {
            let a = StoredApi::of(&api);
            conn.execute(
                &format!(
                    "INSERT INTO apis ({API_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    a.id,
                    a.workspace_id,
                    a.name,
                    a.default_prefix,
                    a.default_byte_length,
                    a.delete_protection,
                    a.created_at,
                    a.restrictions,
                    a.default_key_lifetime_ms,
                    a.max_key_lifetime_ms,
                ],
            )?;
            insert_entry(conn, &audit)
        })
        .await
    }

    async fn api(&self, workspace: &WorkspaceId, id: &ApiId) -> StoreResult<Option<Api>> {
        let (workspace, id) = (workspace.clone(), id.clone());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {API_COLUMNS} FROM apis \
                 WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL"
            ))?
            .query_row(params![id.as_str(), workspace.as_str()], api_from_row)
            .optional()
        })
        .await
    }

    async fn delete_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>> {
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let deleted = conn.execute(
                "UPDATE apis SET deleted_at = ?3 \
                 WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL",
                params![id.as_str(), workspace.as_str(), now.as_millis()],
            )?;
            if deleted == 0 {
                return Ok(None);
            }
            let mut stmt = conn.prepare(
                "UPDATE keys SET deleted_at = ?3 \
                 WHERE api_id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL RETURNING hash",
            )?;
            let hashes = stmt
                .query_map(
                    params![id.as_str(), workspace.as_str(), now.as_millis()],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            insert_entry(conn, &audit)?;
            Ok(Some(
                hashes
                    .iter()
                    .filter_map(|h| KeyDigest::from_base64(h).ok())
                    .collect(),
            ))
        })
        .await
    }

    async fn update_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        update: ApiUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Result<Api, ApiUpdateError>> {
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let current = conn
                .prepare_cached(&format!(
                    "SELECT {API_COLUMNS} FROM apis \
                     WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL"
                ))?
                .query_row(params![id.as_str(), workspace.as_str()], api_from_row)
                .optional()?;
            let Some(mut api) = current else {
                return Ok(Err(ApiUpdateError::NotFound));
            };
            if let Err(e) = api.apply_update(update) {
                return Ok(Err(e));
            }
            let a = StoredApi::of(&api);
            conn.execute(
                "UPDATE apis SET restrictions = ?2, default_key_lifetime_ms = ?3, \
                 max_key_lifetime_ms = ?4 WHERE id = ?1",
                params![
                    a.id,
                    a.restrictions,
                    a.default_key_lifetime_ms,
                    a.max_key_lifetime_ms
                ],
            )?;
            insert_entry(conn, &audit)?;
            Ok(Ok(api))
        })
        .await
    }
}
