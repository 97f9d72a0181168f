//! Leaked keys: each workspace's policy, and reports that leave the key as it is.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::WorkspaceId;
use keywarden_core::leak::LeakPolicy;
use keywarden_core::store::{LeakStore, StoreResult};
use rusqlite::{OptionalExtension as _, params};

use super::{SqliteStore, conversion_error};
use crate::columns::{Invalid, at};

#[async_trait]
impl LeakStore for SqliteStore {
    async fn leak_policy(&self, workspace: &WorkspaceId) -> StoreResult<Option<LeakPolicy>> {
        let workspace = workspace.clone();
        self.read(move |conn| {
            let stored: Option<String> = conn
                .prepare_cached("SELECT policy FROM leak_policies WHERE workspace_id = ?1")?
                .query_row(params![workspace.as_str()], |row| row.get(0))
                .optional()?;
            stored
                .map(|p| {
                    LeakPolicy::parse(&p).ok_or_else(|| {
                        conversion_error(0, at("policy")(Invalid("not a leak policy")))
                    })
                })
                .transpose()
        })
        .await
    }

    async fn set_leak_policy(
        &self,
        workspace: &WorkspaceId,
        policy: LeakPolicy,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let workspace = workspace.clone();
        let audit = audit.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO leak_policies (workspace_id, policy, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (workspace_id) DO UPDATE SET policy = excluded.policy, \
                 updated_at = excluded.updated_at",
            )?
            .execute(params![
                workspace.as_str(),
                policy.as_str(),
                audit.time.as_millis()
            ])?;
            super::audit::insert_entry(conn, &audit)
        })
        .await
    }

    async fn record_leak(&self, audit: &AuditEntry) -> StoreResult<()> {
        let audit = audit.clone();
        self.write(move |conn| super::audit::insert_entry(conn, &audit))
            .await
    }
}
