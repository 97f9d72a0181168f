//! Workspaces' wrapped data keys for recoverable keys.

use async_trait::async_trait;
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{DataKeyStore, StoreResult};
use keywarden_core::vault::WrappedDataKey;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{PgResult, PostgresStore, run};
use crate::data_key_columns::{DATA_KEY_COLUMNS, StoredDataKey};

fn data_key_from_row(row: &PgRow) -> PgResult<WrappedDataKey> {
    Ok(StoredDataKey {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        master_key_id: row.try_get(2)?,
        wrapped: row.try_get(3)?,
        created_at: row.try_get(4)?,
    }
    .into_data_key()?)
}

#[async_trait]
impl DataKeyStore for PostgresStore {
    async fn data_key(&self, workspace: &WorkspaceId) -> StoreResult<Option<WrappedDataKey>> {
        run(async {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE workspace_id = $1"
            )))
            .bind(workspace.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(data_key_from_row)
            .transpose()
        })
        .await
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> StoreResult<WrappedDataKey> {
        let stored = StoredDataKey::of(key);
        run(async {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO data_keys ({DATA_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (workspace_id) DO NOTHING"
            )))
            .bind(&stored.id)
            .bind(&stored.workspace_id)
            .bind(&stored.master_key_id)
            .bind(&stored.wrapped)
            .bind(stored.created_at)
            .execute(&self.pool)
            .await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE workspace_id = $1"
            )))
            .bind(&stored.workspace_id)
            .fetch_one(&self.pool)
            .await?;
            data_key_from_row(&row)
        })
        .await
    }

    async fn data_keys(&self) -> StoreResult<Vec<WrappedDataKey>> {
        run(async {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY id"
            )))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(data_key_from_row)
            .collect()
        })
        .await
    }

    async fn rewrap_data_key(&self, key: &WrappedDataKey) -> StoreResult<()> {
        let stored = StoredDataKey::of(key);
        run(async {
            sqlx::query("UPDATE data_keys SET master_key_id = $2, wrapped = $3 WHERE id = $1")
                .bind(stored.id)
                .bind(stored.master_key_id)
                .bind(stored.wrapped)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }
}
