//! APIs. Deleting one deletes its keys in the same transaction.

use async_trait::async_trait;
use keywarden_core::api::{Api, ApiUpdate, ApiUpdateError};
use keywarden_core::audit::AuditEntry;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, WorkspaceId};
use keywarden_core::store::{ApiStore, StoreResult};
use keywarden_core::time::UnixMillis;

use super::audit::insert_entry;
use super::rows::{api_columns, api_from_row, digests_from_rows};
use super::{PostgresStore, run};
use crate::columns::StoredApi;

#[async_trait]
impl ApiStore for PostgresStore {
    async fn insert_api(&self, api: &Api, audit: &AuditEntry) -> StoreResult<()> {
        let a = StoredApi::of(api);
        run(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(concat!(
                "INSERT INTO apis (",
                api_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(a.id)
            .bind(a.workspace_id)
            .bind(a.name)
            .bind(a.default_prefix)
            .bind(a.default_byte_length)
            .bind(a.delete_protection)
            .bind(a.created_at)
            .bind(a.restrictions)
            .bind(a.default_key_lifetime_ms)
            .bind(a.max_key_lifetime_ms)
            .execute(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn api(&self, workspace: &WorkspaceId, id: &ApiId) -> StoreResult<Option<Api>> {
        run(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                api_columns!(),
                " FROM apis WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL"
            ))
            .bind(id.as_str())
            .bind(workspace.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(api_from_row).transpose()
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
        run(async {
            let mut tx = self.pool.begin().await?;
            // The update locks the API's row: a concurrent deletion waits, then finds it
            // deleted and does nothing.
            let deleted = sqlx::query(
                "UPDATE apis SET deleted_at = $3 \
                 WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .bind(workspace.as_str())
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
            if deleted.rows_affected() == 0 {
                return Ok(None);
            }
            let rows = sqlx::query(
                "UPDATE keys SET deleted_at = $3 \
                 WHERE api_id = $1 AND workspace_id = $2 AND deleted_at IS NULL RETURNING hash",
            )
            .bind(id.as_str())
            .bind(workspace.as_str())
            .bind(now.as_millis())
            .fetch_all(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(digests_from_rows(&rows)?))
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
        run(async {
            let mut tx = self.pool.begin().await?;
            // Locked, so two concurrent updates apply one after the other.
            let row = sqlx::query(concat!(
                "SELECT ",
                api_columns!(),
                " FROM apis WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL \
                 FOR NO KEY UPDATE"
            ))
            .bind(id.as_str())
            .bind(workspace.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(Err(ApiUpdateError::NotFound));
            };
            let mut api = api_from_row(&row)?;
            if let Err(e) = api.apply_update(update) {
                return Ok(Err(e));
            }
            let a = StoredApi::of(&api);
            sqlx::query(
                "UPDATE apis SET restrictions = $2, default_key_lifetime_ms = $3, \
                 max_key_lifetime_ms = $4 WHERE id = $1",
            )
            .bind(a.id)
            .bind(a.restrictions)
            .bind(a.default_key_lifetime_ms)
            .bind(a.max_key_lifetime_ms)
            .execute(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Ok(api))
        })
        .await
    }
}
