//! Leaked keys: each workspace's policy, and reports that leave the key as it is.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::WorkspaceId;
use keywarden_core::leak::LeakPolicy;
use keywarden_core::store::{LeakStore, StoreResult};
use sqlx::Row as _;

use super::{PostgresStore, run};
use crate::columns::{Invalid, at};

#[async_trait]
impl LeakStore for PostgresStore {
    async fn leak_policy(&self, workspace: &WorkspaceId) -> StoreResult<Option<LeakPolicy>> {
        run(async {
            let row = sqlx::query("SELECT policy FROM leak_policies WHERE workspace_id = $1")
                .bind(workspace.as_str())
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let stored: String = row.try_get(0)?;
            Ok(Some(LeakPolicy::parse(&stored).ok_or_else(|| {
                at("policy")(Invalid("not a leak policy"))
            })?))
        })
        .await
    }

    async fn set_leak_policy(
        &self,
        workspace: &WorkspaceId,
        policy: LeakPolicy,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO leak_policies (workspace_id, policy, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (workspace_id) DO UPDATE SET policy = excluded.policy, \
                 updated_at = excluded.updated_at",
            )
            .bind(workspace.as_str())
            .bind(policy.as_str())
            .bind(audit.time.as_millis())
            .execute(&mut *tx)
            .await?;
            super::audit::insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn record_leak(&self, audit: &AuditEntry) -> StoreResult<()> {
        run(async {
            let mut tx = self.pool.begin().await?;
            super::audit::insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
