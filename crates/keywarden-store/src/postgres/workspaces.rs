//! Workspaces and the first-start bootstrap.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::root_key::RootKey;
use keywarden_core::store::{StoreResult, WorkspaceStore};
use keywarden_core::workspace::Workspace;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::audit::insert_entry;
use super::root_keys::{bump_revision, insert_root_key};
use super::rows::workspace_from_row;
use super::{PgResult, PostgresStore, run};

async fn insert_workspace(conn: &mut PgConnection, ws: &Workspace) -> PgResult<()> {
    sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(ws.id.as_str())
        .bind(ws.name.as_str())
        .bind(ws.created_at.as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl WorkspaceStore for PostgresStore {
    async fn bootstrap(
        &self,
        workspace: &Workspace,
        root_key: &RootKey,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = self.pool.begin().await?;
            // Takes the lock every root-key write takes first; a node that waited for it sees
            // the root key the other one created (each statement reads what is committed).
            bump_revision(&mut tx).await?;
            let exists: bool = sqlx::query("SELECT EXISTS (SELECT 1 FROM root_keys)")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if exists {
                return Ok(false);
            }
            insert_workspace(&mut tx, workspace).await?;
            insert_root_key(&mut tx, root_key).await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn insert_workspace(&self, workspace: &Workspace) -> StoreResult<()> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            insert_workspace(&mut conn, workspace).await
        })
        .await
    }

    async fn workspaces(&self) -> StoreResult<Vec<Workspace>> {
        run(async {
            let rows = sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(workspace_from_row).collect()
        })
        .await
    }
}
