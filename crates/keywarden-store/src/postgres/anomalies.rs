//! Anomalies: inserted with their webhook deliveries in one transaction, read newest first
//! with the filters of `anomalies.list`.

use async_trait::async_trait;
use keywarden_core::anomaly::{AnomalyFilter, RecordedAnomaly};
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{AnomalyStore, Page, PageRequest, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{PgResult, PostgresStore, run};
use crate::anomaly_columns::{ANOMALY_COLUMNS, StoredAnomaly};
use crate::columns::page_fetch;

fn anomaly_from_row(row: &PgRow) -> PgResult<RecordedAnomaly> {
    Ok(StoredAnomaly {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        kind: row.try_get(2)?,
        severity: row.try_get(3)?,
        key_id: row.try_get(4)?,
        client_ip: row.try_get(5)?,
        time: row.try_get(6)?,
        evidence: row.try_get(7)?,
    }
    .into_recorded()?)
}

#[async_trait]
impl AnomalyStore for PostgresStore {
    async fn insert_anomaly(&self, anomaly: &RecordedAnomaly) -> StoreResult<()> {
        run(async {
            let a = StoredAnomaly::of(anomaly);
            let mut tx = self.pool.begin().await?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO anomalies ({ANOMALY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )))
            .bind(a.id)
            .bind(a.workspace_id)
            .bind(a.kind)
            .bind(a.severity)
            .bind(a.key_id)
            .bind(a.client_ip)
            .bind(a.time)
            .bind(a.evidence)
            .execute(&mut *tx)
            .await?;
            super::webhooks::enqueue(
                &mut tx,
                &anomaly.anomaly.workspace_id,
                &anomaly.webhook_event(),
                anomaly.anomaly.time,
            )
            .await?;
            tx.commit().await?;
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
        let limit = page.limit;
        let rows = run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {ANOMALY_COLUMNS} FROM anomalies \
                 WHERE workspace_id = $1 AND ($2::text IS NULL OR id <= $2) \
                 AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR severity = $4) \
                 AND ($5::text IS NULL OR key_id = $5) \
                 AND ($6::bigint IS NULL OR time >= $6) AND ($7::bigint IS NULL OR time <= $7) \
                 ORDER BY id DESC LIMIT $8"
            )))
            .bind(workspace.as_str())
            .bind(page.from.as_deref())
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.severity.map(|s| s.as_str()))
            .bind(filter.key_id.as_ref().map(|k| k.as_str()))
            .bind(filter.since.map(|t| t.as_millis()))
            .bind(filter.until.map(|t| t.as_millis()))
            .bind(page_fetch(&page))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(anomaly_from_row)
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        Ok(Page::from_overfetch(rows, limit, |a| a.id.to_string()))
    }
}
