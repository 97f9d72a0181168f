//! The audit log: entries are inserted by the writer jobs of the changes they describe (so in
//! their transaction) and read newest first with the filters of `audit.listLogs`.

use async_trait::async_trait;
use keywarden_core::audit::{AuditEntry, AuditFilter};
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{AuditStore, Page, PageRequest, StoreResult};
use keywarden_core::webhook_outbox::WebhookEvent;
use rusqlite::{Connection, Row, params};

use super::{SqliteStore, conversion_error};
use crate::audit_columns::{AUDIT_COLUMNS, StoredAuditEntry};
use crate::columns::page_fetch;

/// Inserts `entry`, and the webhook deliveries of the event it announces; called inside the
/// writer job that makes the change.
pub(super) fn insert_entry(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    let e = StoredAuditEntry::of(entry);
    conn.prepare_cached(&format!(
        "INSERT INTO audit_log ({AUDIT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        e.id,
        e.workspace_id,
        e.time,
        e.actor_type,
        e.actor_id,
        e.action,
        e.targets,
        e.changes,
        e.request_id,
        e.client_ip,
    ])?;
    if let Some(event) = WebhookEvent::of_audit(entry) {
        super::webhooks::enqueue(conn, &entry.workspace_id, &event, entry.time)?;
    }
    Ok(())
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    StoredAuditEntry {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        time: row.get(2)?,
        actor_type: row.get(3)?,
        actor_id: row.get(4)?,
        action: row.get(5)?,
        targets: row.get(6)?,
        changes: row.get(7)?,
        request_id: row.get(8)?,
        client_ip: row.get(9)?,
    }
    .into_entry()
    .map_err(|e| conversion_error(0, e))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_entries(
        &self,
        workspace: &WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let workspace = workspace.clone();
        let filter = filter.clone();
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log \
                     WHERE workspace_id = ?1 AND (?2 IS NULL OR id <= ?2) \
                     AND (?3 IS NULL OR actor_id = ?3 OR (actor_id IS NULL AND actor_type = ?3)) \
                     AND (?4 IS NULL OR action = ?4) \
                     AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(audit_log.targets) \
                          WHERE json_extract(value, '$.id') = ?5)) \
                     AND (?6 IS NULL OR time >= ?6) AND (?7 IS NULL OR time <= ?7) \
                     ORDER BY id DESC LIMIT ?8"
                ))?;
                stmt.query_map(
                    params![
                        workspace.as_str(),
                        page.from,
                        filter.actor,
                        filter.action.map(|a| a.as_str()),
                        filter.target_id,
                        filter.since.map(|t| t.as_millis()),
                        filter.until.map(|t| t.as_millis()),
                        page_fetch(&page),
                    ],
                    entry_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |e| e.id.to_string()))
    }
}
