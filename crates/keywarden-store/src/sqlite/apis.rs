//! APIs. Deleting one deletes its keys in the same transaction.

use async_trait::async_trait;
use keywarden_core::api::Api;
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, WorkspaceId};
use keywarden_core::store::{ApiStore, StoreResult};
use keywarden_core::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{API_COLUMNS, api_from_row};

#[async_trait]
impl ApiStore for SqliteStore {
    async fn insert_api(&self, api: &Api, audit: &AuditEntry) -> StoreResult<()> {
        let (api, audit) = (api.clone(), audit.clone());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO apis (id, workspace_id, name, default_prefix, default_byte_length, \
                 delete_protection, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    api.id.as_str(),
                    api.workspace_id.as_str(),
                    api.name.as_str(),
                    api.default_prefix.as_ref().map(|p| p.as_str()),
                    i64::from(api.default_byte_length.get()),
                    api.delete_protection,
                    api.created_at.as_millis(),
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
}
