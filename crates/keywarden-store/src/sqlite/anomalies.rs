//! Anomalies: inserted with their webhook deliveries in one writer job, read newest first
//! with the filters of `anomalies.list`.

use async_trait::async_trait;
use keywarden_core::anomaly::{AnomalyFilter, RecordedAnomaly};
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{AnomalyStore, Page, PageRequest, StoreResult};
use rusqlite::{Row, params};

use super::{SqliteStore, conversion_error};
use crate::anomaly_columns::{ANOMALY_COLUMNS, StoredAnomaly};
use crate::columns::page_fetch;

fn anomaly_from_row(row: &Row<'_>) -> rusqlite::Result<RecordedAnomaly> {
    StoredAnomaly {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        kind: row.get(2)?,
        severity: row.get(3)?,
        key_id: row.get(4)?,
        client_ip: row.get(5)?,
        time: row.get(6)?,
        evidence: row.get(7)?,
    }
    .into_recorded()
    .map_err(|e| conversion_error(0, e))
}

#[async_trait]
impl AnomalyStore for SqliteStore {
    async fn insert_anomaly(&self, anomaly: &RecordedAnomaly) -> StoreResult<()> {
        let recorded = anomaly.clone();
        self.write(move |conn| {
            let a = StoredAnomaly::of(&recorded);
            conn.prepare_cached(&format!(
                "INSERT INTO anomalies ({ANOMALY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                a.id,
                a.workspace_id,
                a.kind,
                a.severity,
                a.key_id,
                a.client_ip,
                a.time,
                a.evidence,
            ])?;
            super::webhooks::enqueue(
                conn,
                &recorded.anomaly.workspace_id,
                &recorded.webhook_event(),
                recorded.anomaly.time,
            )?;
            Ok(())
        })
        .await
    }

    async fn anomalies(
        &self,
        workspace: &WorkspaceId,
        filter: &AnomalyFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RecordedAnomaly>> {
        let workspace = workspace.clone();
        let filter = filter.clone();
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {ANOMALY_COLUMNS} FROM anomalies \
                     WHERE workspace_id = ?1 AND (?2 IS NULL OR id <= ?2) \
                     AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR severity = ?4) \
                     AND (?5 IS NULL OR key_id = ?5) \
                     AND (?6 IS NULL OR time >= ?6) AND (?7 IS NULL OR time <= ?7) \
                     ORDER BY id DESC LIMIT ?8"
                ))?;
                stmt.query_map(
                    params![
                        workspace.as_str(),
                        page.from,
                        filter.kind.map(|k| k.as_str()),
                        filter.severity.map(|s| s.as_str()),
                        filter.key_id.as_ref().map(|k| k.as_str()),
                        filter.since.map(|t| t.as_millis()),
                        filter.until.map(|t| t.as_millis()),
                        page_fetch(&page),
                    ],
                    anomaly_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |a| a.id.to_string()))
    }
}
