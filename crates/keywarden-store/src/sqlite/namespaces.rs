//! Namespaces of the standalone limiter and their overrides.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{NamespaceId, WorkspaceId};
use keywarden_core::namespace::{Identifier, Namespace, RateOverride};
use keywarden_core::store::{NamespaceStore, Page, PageRequest, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::audit::insert_entry;
use super::rows::{
    NAMESPACE_COLUMNS, OVERRIDE_COLUMNS, namespace_from_row, override_from_row, page_fetch,
};

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl NamespaceStore for SqliteStore {
    async fn namespace(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Namespace>> {
        let (workspace, reference) = (workspace.clone(), reference.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {NAMESPACE_COLUMNS} FROM ratelimit_namespaces \
                 WHERE workspace_id = ?1 AND (id = ?2 OR name = ?2) \
                 ORDER BY id = ?2 DESC LIMIT 1"
            ))?
            .query_row(params![workspace.as_str(), reference], namespace_from_row)
            .optional()
        })
        .await
    }

    async fn upsert_namespace(
        &self,
        candidate: &Namespace,
        audit: &AuditEntry,
    ) -> StoreResult<Namespace> {
        let (candidate, audit) = (candidate.clone(), audit.clone());
        self.write(move |conn| {
            let existing = conn
                .prepare_cached(&format!(
                    "SELECT {NAMESPACE_COLUMNS} FROM ratelimit_namespaces \
                     WHERE workspace_id = ?1 AND name = ?2"
                ))?
                .query_row(
                    params![candidate.workspace_id.as_str(), candidate.name.as_str()],
                    namespace_from_row,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            conn.prepare_cached(
                "INSERT INTO ratelimit_namespaces (id, workspace_id, name, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                candidate.id.as_str(),
                candidate.workspace_id.as_str(),
                candidate.name.as_str(),
                candidate.created_at.as_millis()
            ])?;
            insert_entry(conn, &audit)?;
            Ok(candidate)
        })
        .await
    }

    async fn overrides(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
    ) -> StoreResult<Vec<RateOverride>> {
        let (workspace, namespace) = (workspace.clone(), namespace.clone());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OVERRIDE_COLUMNS} FROM ratelimit_overrides \
                 WHERE workspace_id = ?1 AND namespace_id = ?2 ORDER BY id"
            ))?;
            stmt.query_map(
                params![workspace.as_str(), namespace.as_str()],
                override_from_row,
            )?
            .collect()
        })
        .await
    }

    async fn overrides_page(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        page: PageRequest,
    ) -> StoreResult<Page<RateOverride>> {
        let (workspace, namespace) = (workspace.clone(), namespace.clone());
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {OVERRIDE_COLUMNS} FROM ratelimit_overrides \
                     WHERE workspace_id = ?1 AND namespace_id = ?2 AND id >= ?3 \
                     ORDER BY id LIMIT ?4"
                ))?;
                let fetch = page_fetch(&page);
                let from = page.from.unwrap_or_default();
                stmt.query_map(
                    params![workspace.as_str(), namespace.as_str(), from, fetch],
                    override_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |o| o.id.to_string()))
    }

    async fn set_override(
        &self,
        candidate: &RateOverride,
        audit: &AuditEntry,
    ) -> StoreResult<RateOverride> {
        let (candidate, audit) = (candidate.clone(), audit.clone());
        self.write(move |conn| {
            let stored = conn
                .prepare_cached(&format!(
                    "INSERT INTO ratelimit_overrides ({OVERRIDE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL) \
                 ON CONFLICT (namespace_id, identifier) DO UPDATE SET \
                 \"limit\" = excluded.\"limit\", duration = excluded.duration, \
                 updated_at = excluded.created_at \
                 RETURNING {OVERRIDE_COLUMNS}"
                ))?
                .query_row(
                    params![
                        candidate.id.as_str(),
                        candidate.workspace_id.as_str(),
                        candidate.namespace_id.as_str(),
                        candidate.identifier.as_str(),
                        as_i64(candidate.limit),
                        as_i64(candidate.duration.as_millis()),
                        candidate.created_at.as_millis(),
                    ],
                    override_from_row,
                )?;
            insert_entry(conn, &audit)?;
            Ok(stored)
        })
        .await
    }

    async fn delete_override(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        identifier: &Identifier,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let (workspace, namespace, identifier) =
            (workspace.clone(), namespace.clone(), identifier.clone());
        let audit = audit.clone();
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM ratelimit_overrides \
                 WHERE workspace_id = ?1 AND namespace_id = ?2 AND identifier = ?3",
                params![workspace.as_str(), namespace.as_str(), identifier.as_str()],
            )?;
            if deleted > 0 {
                insert_entry(conn, &audit)?;
            }
            Ok(deleted > 0)
        })
        .await
    }
}
