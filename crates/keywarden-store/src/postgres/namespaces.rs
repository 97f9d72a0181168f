//! Namespaces of the standalone limiter and their overrides.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{NamespaceId, WorkspaceId};
use keywarden_core::namespace::{Identifier, Namespace, RateOverride};
use keywarden_core::store::{NamespaceStore, Page, PageRequest, StoreResult};

use super::audit::insert_entry;
use super::rows::{namespace_columns, namespace_from_row, override_columns, override_from_row};
use super::{PgResult, PostgresStore, run};
use crate::columns::{StoredOverride, page_fetch};

#[async_trait]
impl NamespaceStore for PostgresStore {
    async fn namespace(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Namespace>> {
        run(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                namespace_columns!(),
                " FROM ratelimit_namespaces WHERE workspace_id = $1 AND (id = $2 OR name = $2) \
                 ORDER BY id = $2 DESC LIMIT 1"
            ))
            .bind(workspace.as_str())
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(namespace_from_row).transpose()
        })
        .await
    }

    async fn upsert_namespace(
        &self,
        candidate: &Namespace,
        audit: &AuditEntry,
    ) -> StoreResult<Namespace> {
        run(async {
            let mut conn = self.pool.begin().await?;
            // A concurrent insert of the same name makes this one wait for it and then do
            // nothing; the read after it (a new statement) sees the winner. Namespaces are
            // never deleted, so it is there.
            let inserted = sqlx::query(
                "INSERT INTO ratelimit_namespaces (id, workspace_id, name, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, name) DO NOTHING",
            )
            .bind(candidate.id.as_str())
            .bind(candidate.workspace_id.as_str())
            .bind(candidate.name.as_str())
            .bind(candidate.created_at.as_millis())
            .execute(&mut *conn)
            .await?;
            if inserted.rows_affected() > 0 {
                insert_entry(&mut conn, audit).await?;
            }
            let row = sqlx::query(concat!(
                "SELECT ",
                namespace_columns!(),
                " FROM ratelimit_namespaces WHERE workspace_id = $1 AND name = $2"
            ))
            .bind(candidate.workspace_id.as_str())
            .bind(candidate.name.as_str())
            .fetch_one(&mut *conn)
            .await?;
            conn.commit().await?;
            namespace_from_row(&row)
        })
        .await
    }

    async fn overrides(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
    ) -> StoreResult<Vec<RateOverride>> {
        run(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                override_columns!(),
                " FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace_id = $2 \
                 ORDER BY id"
            ))
            .bind(workspace.as_str())
            .bind(namespace.as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(override_from_row).collect()
        })
        .await
    }

    async fn overrides_page(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        page: PageRequest,
    ) -> StoreResult<Page<RateOverride>> {
        run(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                override_columns!(),
                " FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace_id = $2 \
                 AND id >= $3 ORDER BY id LIMIT $4"
            ))
            .bind(workspace.as_str())
            .bind(namespace.as_str())
            .bind(page.from.as_deref().unwrap_or_default())
            .bind(page_fetch(&page))
            .fetch_all(&self.pool)
            .await?;
            let overrides = rows
                .iter()
                .map(override_from_row)
                .collect::<PgResult<Vec<_>>>()?;
            Ok(Page::from_overfetch(overrides, page.limit, |o| {
                o.id.to_string()
            }))
        })
        .await
    }

    async fn set_override(
        &self,
        candidate: &RateOverride,
        audit: &AuditEntry,
    ) -> StoreResult<RateOverride> {
        let stored = StoredOverride::of(candidate);
        run(async {
            let mut tx = self.pool.begin().await?;
            // One statement, atomic under concurrency: it inserts or updates the override
            // that has this identifier, never both.
            let row = sqlx::query(concat!(
                "INSERT INTO ratelimit_overrides (",
                override_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
                 ON CONFLICT (namespace_id, identifier) DO UPDATE SET \
                 \"limit\" = excluded.\"limit\", duration = excluded.duration, \
                 updated_at = excluded.created_at \
                 RETURNING ",
                override_columns!()
            ))
            .bind(stored.id)
            .bind(stored.workspace_id)
            .bind(stored.namespace_id)
            .bind(stored.identifier)
            .bind(stored.limit)
            .bind(stored.duration)
            .bind(stored.created_at)
            .fetch_one(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            override_from_row(&row)
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
        run(async {
            let mut tx = self.pool.begin().await?;
            let deleted = sqlx::query(
                "DELETE FROM ratelimit_overrides \
                 WHERE workspace_id = $1 AND namespace_id = $2 AND identifier = $3",
            )
            .bind(workspace.as_str())
            .bind(namespace.as_str())
            .bind(identifier.as_str())
            .execute(&mut *tx)
            .await?;
            if deleted.rows_affected() == 0 {
                return Ok(false);
            }
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
