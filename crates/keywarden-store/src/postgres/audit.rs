//! The audit log: entries are inserted in the transactions of the changes they describe and
//! read newest first with the filters of `audit.listLogs`.

use async_trait::async_trait;
use keywarden_core::audit::{AuditEntry, AuditFilter};
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{AuditStore, Page, PageRequest, StoreResult};
use keywarden_core::webhook_outbox::WebhookEvent;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Row};

use super::{PgResult, PostgresStore, run};
use crate::audit_columns::{AUDIT_COLUMNS, StoredAuditEntry};
use crate::columns::page_fetch;

/// Inserts `entry` on `conn`, which is inside the change's transaction, and the webhook
/// deliveries of the event it announces.
pub(super) async fn insert_entry(conn: &mut PgConnection, entry: &AuditEntry) -> PgResult<()> {
    let e = StoredAuditEntry::of(entry);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO audit_log ({AUDIT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(e.id)
    .bind(e.workspace_id)
    .bind(e.time)
    .bind(e.actor_type)
    .bind(e.actor_id)
    .bind(e.action)
    .bind(e.targets)
    .bind(e.changes)
    .bind(e.request_id)
    .bind(e.client_ip)
    .execute(&mut *conn)
    .await?;
    if let Some(event) = WebhookEvent::of_audit(entry) {
        super::webhooks::enqueue(conn, &entry.workspace_id, &event, entry.time).await?;
    }
    Ok(())
}

fn entry_from_row(row: &PgRow) -> PgResult<AuditEntry> {
    Ok(StoredAuditEntry {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        time: row.try_get(2)?,
        actor_type: row.try_get(3)?,
        actor_id: row.try_get(4)?,
        action: row.try_get(5)?,
        targets: row.try_get(6)?,
        changes: row.try_get(7)?,
        request_id: row.try_get(8)?,
        client_ip: row.try_get(9)?,
    }
    .into_entry()?)
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn audit_entries(
        &self,
        workspace: &WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let limit = page.limit;
        let rows = run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log \
                 WHERE workspace_id = $1 AND ($2::text IS NULL OR id <= $2) \
                 AND ($3::text IS NULL OR actor_id = $3 \
                      OR (actor_id IS NULL AND actor_type = $3)) \
                 AND ($4::text IS NULL OR action = $4) \
                 AND ($5::text IS NULL OR targets::jsonb @> \
                      jsonb_build_array(jsonb_build_object('id', $5::text))) \
                 AND ($6::bigint IS NULL OR time >= $6) AND ($7::bigint IS NULL OR time <= $7) \
                 ORDER BY id DESC LIMIT $8"
            )))
            .bind(workspace.as_str())
            .bind(page.from.as_deref())
            .bind(filter.actor.as_deref())
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.target_id.as_deref())
            .bind(filter.since.map(|t| t.as_millis()))
            .bind(filter.until.map(|t| t.as_millis()))
            .bind(page_fetch(&page))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(entry_from_row)
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        Ok(Page::from_overfetch(rows, limit, |e| e.id.to_string()))
    }
}
