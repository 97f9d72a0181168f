//! Webhook endpoints and the outbox. Deliveries of admin changes are enqueued by
//! `audit::insert_entry`, in the change's transaction. Claiming locks due rows with
//! `FOR UPDATE SKIP LOCKED` and leases them, so nodes claiming at once never share one.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{DeliveryId, WebhookEndpointId, WorkspaceId};
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::store::{Page, PageRequest, StoreResult, WebhookStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::webhook::WebhookEventType;
use keywarden_core::webhook_outbox::{
    AttemptNext, AttemptRecord, ClaimedDelivery, DeliveryAttempt, DeliveryFilter, EndpointUpdate,
    WebhookDelivery, WebhookEndpoint, WebhookEvent,
};
use serde_json::Map;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Row};

use super::audit::insert_entry;
use super::{PgResult, PostgresStore, run};
use crate::columns::{Invalid, at, page_fetch};
use crate::webhook_columns::{
    DELIVERY_COLUMNS, ENDPOINT_COLUMNS, StoredDelivery, StoredEndpoint, delivery_columns_of,
    subscribed_pattern, subscribes,
};

/// Inserts one delivery of `event` for every enabled endpoint of `workspace` subscribed to
/// its type; returns how many.
pub(super) async fn enqueue(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    event: &WebhookEvent,
    now: UnixMillis,
) -> PgResult<usize> {
    let endpoints = sqlx::query(
        "SELECT id, event_types FROM webhook_endpoints WHERE workspace_id = $1 AND enabled",
    )
    .bind(workspace.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let payload = event.payload.to_string();
    let mut made = 0;
    for row in endpoints {
        let (endpoint, types): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if !subscribes(&types, event.event_type) {
            continue;
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_type, payload, \
             created_at, attempts, state, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 'pending', $6)",
        )
        .bind(DeliveryId::generate(now).as_str())
        .bind(workspace.as_str())
        .bind(endpoint)
        .bind(event.event_type.as_str())
        .bind(&payload)
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await?;
        made += 1;
    }
    Ok(made)
}

fn endpoint_from_row(row: &PgRow) -> PgResult<WebhookEndpoint> {
    Ok(StoredEndpoint {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        url: row.try_get(2)?,
        description: row.try_get(3)?,
        event_types: row.try_get(4)?,
        enabled: row.try_get(5)?,
        secret: row.try_get(6)?,
        created_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
    }
    .into_endpoint()?)
}

fn delivery_from_row(row: &PgRow) -> PgResult<WebhookDelivery> {
    Ok(StoredDelivery {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        endpoint_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        payload: row.try_get(4)?,
        created_at: row.try_get(5)?,
        attempts: row.try_get(6)?,
        state: row.try_get(7)?,
        next_attempt_at: row.try_get(8)?,
        last_status: row.try_get(9)?,
        last_error: row.try_get(10)?,
        delivered_at: row.try_get(11)?,
    }
    .into_delivery()?)
}

async fn read_endpoint(
    conn: &mut PgConnection,
    workspace: &WorkspaceId,
    id: &WebhookEndpointId,
    lock: bool,
) -> PgResult<Option<WebhookEndpoint>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    )))
    .bind(id.as_str())
    .bind(workspace.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn insert_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let e = StoredEndpoint::of(endpoint);
        run(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )))
            .bind(e.id)
            .bind(e.workspace_id)
            .bind(e.url)
            .bind(e.description)
            .bind(e.event_types)
            .bind(e.enabled)
            .bind(e.secret)
            .bind(e.created_at)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        run(async {
            let mut conn = self.pool.acquire().await?;
            read_endpoint(&mut conn, workspace, id, false).await
        })
        .await
    }

    async fn webhook_endpoints(
        &self,
        workspace: &WorkspaceId,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookEndpoint>> {
        let limit = page.limit;
        let rows = run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                 WHERE workspace_id = $1 AND ($2::text IS NULL OR id >= $2) ORDER BY id LIMIT $3"
            )))
            .bind(workspace.as_str())
            .bind(page.from.as_deref())
            .bind(page_fetch(&page))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(endpoint_from_row)
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        Ok(Page::from_overfetch(rows, limit, |e| e.id.to_string()))
    }

    async fn update_webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        update: &EndpointUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let Some(mut endpoint) = read_endpoint(&mut tx, workspace, id, true).await? else {
                return Ok(None);
            };
            update.apply(&mut endpoint, now);
            let e = StoredEndpoint::of(&endpoint);
            sqlx::query(
                "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, \
                 enabled = $6, secret = $7, updated_at = $8 WHERE id = $1 AND workspace_id = $2",
            )
            .bind(e.id)
            .bind(e.workspace_id)
            .bind(e.url)
            .bind(e.description)
            .bind(e.event_types)
            .bind(e.enabled)
            .bind(e.secret)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
            insert_entry(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(endpoint))
        })
        .await
    }

    async fn delete_webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let deleted =
                sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND workspace_id = $2")
                    .bind(id.as_str())
                    .bind(workspace.as_str())
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

    async fn enqueue_webhook_event(
        &self,
        workspace: &WorkspaceId,
        event: &WebhookEvent,
        now: UnixMillis,
    ) -> StoreResult<usize> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let made = enqueue(&mut tx, workspace, event, now).await?;
            tx.commit().await?;
            Ok(made)
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>> {
        let limit = page.limit;
        let rows = run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                 WHERE workspace_id = $1 AND ($2::text IS NULL OR id <= $2) \
                 AND ($3::text IS NULL OR endpoint_id = $3) AND ($4::text IS NULL OR state = $4) \
                 ORDER BY id DESC LIMIT $5"
            )))
            .bind(workspace.as_str())
            .bind(page.from.as_deref())
            .bind(filter.endpoint.as_ref().map(|e| e.as_str()))
            .bind(filter.state.map(|s| s.as_str()))
            .bind(page_fetch(&page))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(delivery_from_row)
                .collect::<PgResult<Vec<_>>>()
        })
        .await?;
        Ok(Page::from_overfetch(rows, limit, |d| d.id.to_string()))
    }

    async fn delivery_attempts(
        &self,
        workspace: &WorkspaceId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        run(async {
            let rows = sqlx::query(
                "SELECT a.attempt, a.at, a.status, a.error, a.duration_ms \
                 FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
                 WHERE a.delivery_id = $1 AND d.workspace_id = $2 ORDER BY a.attempt",
            )
            .bind(id.as_str())
            .bind(workspace.as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AttemptRecord {
                        attempt: u32::try_from(r.try_get::<i64, _>(0)?).unwrap_or(u32::MAX),
                        at: UnixMillis::from_millis(r.try_get(1)?),
                        status: r
                            .try_get::<Option<i64>, _>(2)?
                            .and_then(|s| u16::try_from(s).ok()),
                        error: r.try_get(3)?,
                        duration_ms: r.try_get(4)?,
                    })
                })
                .collect::<PgResult<Vec<_>>>()
        })
        .await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        run(async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "WITH due AS ( \
                     SELECT d.id FROM webhook_deliveries d \
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
                     AND (d.lease_until IS NULL OR d.lease_until <= $1) AND e.enabled \
                     ORDER BY d.next_attempt_at, d.id LIMIT $2 \
                     FOR UPDATE OF d SKIP LOCKED), \
                 claimed AS ( \
                     UPDATE webhook_deliveries w SET lease_until = $3 FROM due \
                     WHERE w.id = due.id RETURNING w.*) \
                 SELECT {}, e.url, e.secret FROM claimed c \
                 JOIN webhook_endpoints e ON e.id = c.endpoint_id \
                 ORDER BY c.next_attempt_at, c.id",
                delivery_columns_of("c")
            )))
            .bind(now.as_millis())
            .bind(limit)
            .bind(lease_until.as_millis())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let secret: String = r.try_get(13)?;
                    Ok(ClaimedDelivery {
                        delivery: delivery_from_row(r)?,
                        url: r.try_get(12)?,
                        secret: SecretAtRest::from_stored(&secret).map_err(at("secret"))?,
                    })
                })
                .collect::<PgResult<Vec<_>>>()
        })
        .await
    }

    async fn record_delivery_attempt(
        &self,
        id: &DeliveryId,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<()> {
        let a = attempt;
        run(async {
            let next_at = match a.next {
                AttemptNext::RetryAt(t) => Some(t.as_millis()),
                AttemptNext::Delivered | AttemptNext::GiveUp => None,
            };
            let delivered_at = (a.next == AttemptNext::Delivered).then(|| a.at.as_millis());
            let mut tx = self.pool.begin().await?;
            let number: Option<i64> = sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $2, \
                 next_attempt_at = $3, last_status = $4, last_error = $5, \
                 delivered_at = coalesce($6, delivered_at), lease_until = NULL \
                 WHERE id = $1 RETURNING attempts",
            )
            .bind(id.as_str())
            .bind(a.next.state().as_str())
            .bind(next_at)
            .bind(a.status.map(i64::from))
            .bind(a.error.as_deref())
            .bind(delivered_at)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            if let Some(number) = number {
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, \
                     duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(number)
                .bind(a.at.as_millis())
                .bind(a.status.map(i64::from))
                .bind(a.error.as_deref())
                .bind(a.duration_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn pending_webhook_deliveries(&self) -> StoreResult<i64> {
        run(async {
            Ok(
                sqlx::query("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?,
            )
        })
        .await
    }

    async fn announce_expiring_keys(
        &self,
        now: UnixMillis,
        horizon_end: UnixMillis,
    ) -> StoreResult<usize> {
        run(async {
            let mut tx = self.pool.begin().await?;
            let keys = sqlx::query(
                "SELECT k.id, k.workspace_id, k.api_id, k.name, k.expires FROM keys k \
                 WHERE k.deleted_at IS NULL AND k.expires > $1 AND k.expires <= $2 \
                 AND k.workspace_id IN (SELECT workspace_id FROM webhook_endpoints \
                     WHERE enabled AND event_types LIKE $3) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_expiry_notices n \
                     WHERE n.key_id = k.id AND n.expires = k.expires) \
                 ORDER BY k.expires LIMIT 1000",
            )
            .bind(now.as_millis())
            .bind(horizon_end.as_millis())
            .bind(subscribed_pattern(WebhookEventType::KeyExpiringSoon))
            .fetch_all(&mut *tx)
            .await?;
            let mut announced = 0;
            for row in keys {
                let (key_id, workspace_id, api_id, name, expires): (
                    String,
                    String,
                    String,
                    Option<String>,
                    i64,
                ) = (
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                );
                // Another node announcing the same key at once waits here for this row
                // and then finds it up to date, so each expiry is announced once.
                let fresh = sqlx::query(
                    "INSERT INTO webhook_expiry_notices (key_id, expires, announced_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (key_id) DO UPDATE \
                     SET expires = excluded.expires, announced_at = excluded.announced_at \
                     WHERE webhook_expiry_notices.expires <> excluded.expires",
                )
                .bind(&key_id)
                .bind(expires)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    continue;
                }
                let workspace = WorkspaceId::parse(&workspace_id)
                    .map_err(|_| at("workspace_id")(Invalid("id")))?;
                let mut data = Map::new();
                data.insert("keyId".into(), key_id.into());
                data.insert("apiId".into(), api_id.into());
                if let Some(name) = name {
                    data.insert("name".into(), name.into());
                }
                data.insert("expires".into(), expires.into());
                let event = WebhookEvent::new(WebhookEventType::KeyExpiringSoon, now, data);
                enqueue(&mut tx, &workspace, &event, now).await?;
                announced += 1;
            }
            tx.commit().await?;
            Ok(announced)
        })
        .await
    }
}
