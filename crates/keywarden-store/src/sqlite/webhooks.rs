//! Webhook endpoints and the outbox. Deliveries of admin changes are enqueued by
//! `audit::insert_entry`, so inside the writer job that makes the change; the single writer
//! also makes claiming trivially exclusive.

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
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Map;

use super::audit::insert_entry;
use super::{SqliteStore, conversion_error};
use crate::columns::page_fetch;
use crate::webhook_columns::{
    DELIVERY_COLUMNS, ENDPOINT_COLUMNS, StoredDelivery, StoredEndpoint, delivery_columns_of,
    subscribed_pattern, subscribes,
};

/// Inserts one delivery of `event` for every enabled endpoint of `workspace` subscribed to
/// its type; returns how many.
pub(super) fn enqueue(
    conn: &Connection,
    workspace: &WorkspaceId,
    event: &WebhookEvent,
    now: UnixMillis,
) -> rusqlite::Result<usize> {
    let endpoints = conn
        .prepare_cached(
            "SELECT id, event_types FROM webhook_endpoints WHERE workspace_id = ?1 AND enabled = 1",
        )?
        .query_map(params![workspace.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let payload = event.payload.to_string();
    let mut made = 0;
    for (endpoint, types) in endpoints {
        if !subscribes(&types, event.event_type) {
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_type, payload, \
             created_at, attempts, state, next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 'pending', ?6)",
        )?
        .execute(params![
            DeliveryId::generate(now).as_str(),
            workspace.as_str(),
            endpoint,
            event.event_type.as_str(),
            payload,
            now.as_millis(),
        ])?;
        made += 1;
    }
    Ok(made)
}

fn endpoint_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    StoredEndpoint {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        url: row.get(2)?,
        description: row.get(3)?,
        event_types: row.get(4)?,
        enabled: row.get(5)?,
        secret: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    }
    .into_endpoint()
    .map_err(|e| conversion_error(0, e))
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    StoredDelivery {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        endpoint_id: row.get(2)?,
        event_type: row.get(3)?,
        payload: row.get(4)?,
        created_at: row.get(5)?,
        attempts: row.get(6)?,
        state: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_status: row.get(9)?,
        last_error: row.get(10)?,
        delivered_at: row.get(11)?,
    }
    .into_delivery()
    .map_err(|e| conversion_error(0, e))
}

fn write_endpoint(conn: &Connection, e: &StoredEndpoint, insert: bool) -> rusqlite::Result<usize> {
    let sql = if insert {
        format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        )
    } else {
        "UPDATE webhook_endpoints SET url = ?3, description = ?4, event_types = ?5, \
         enabled = ?6, secret = ?7, created_at = ?8, updated_at = ?9 \
         WHERE id = ?1 AND workspace_id = ?2"
            .to_owned()
    };
    conn.prepare_cached(&sql)?.execute(params![
        e.id,
        e.workspace_id,
        e.url,
        e.description,
        e.event_types,
        e.enabled,
        e.secret,
        e.created_at,
        e.updated_at,
    ])
}

fn read_endpoint(
    conn: &Connection,
    workspace: &WorkspaceId,
    id: &WebhookEndpointId,
) -> rusqlite::Result<Option<WebhookEndpoint>> {
    conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row(params![id.as_str(), workspace.as_str()], endpoint_from_row)
    .optional()
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let (e, audit) = (StoredEndpoint::of(endpoint), audit.clone());
        self.write(move |conn| {
            write_endpoint(conn, &e, true)?;
            insert_entry(conn, &audit)
        })
        .await
    }

    async fn webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (workspace, id) = (workspace.clone(), id.clone());
        self.read(move |conn| read_endpoint(conn, &workspace, &id))
            .await
    }

    async fn webhook_endpoints(
        &self,
        workspace: &WorkspaceId,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookEndpoint>> {
        let workspace = workspace.clone();
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                     WHERE workspace_id = ?1 AND (?2 IS NULL OR id >= ?2) ORDER BY id LIMIT ?3"
                ))?
                .query_map(
                    params![workspace.as_str(), page.from, page_fetch(&page)],
                    endpoint_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
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
        let (workspace, id, update, audit) =
            (workspace.clone(), id.clone(), update.clone(), audit.clone());
        self.write(move |conn| {
            let Some(mut endpoint) = read_endpoint(conn, &workspace, &id)? else {
                return Ok(None);
            };
            update.apply(&mut endpoint, now);
            write_endpoint(conn, &StoredEndpoint::of(&endpoint), false)?;
            insert_entry(conn, &audit)?;
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
        let (workspace, id, audit) = (workspace.clone(), id.clone(), audit.clone());
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM webhook_endpoints WHERE id = ?1 AND workspace_id = ?2",
                params![id.as_str(), workspace.as_str()],
            )?;
            if deleted == 0 {
                return Ok(false);
            }
            insert_entry(conn, &audit)?;
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
        let (workspace, event) = (workspace.clone(), event.clone());
        self.write(move |conn| enqueue(conn, &workspace, &event, now))
            .await
    }

    async fn webhook_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>> {
        let (workspace, filter) = (workspace.clone(), filter.clone());
        let limit = page.limit;
        let rows = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE workspace_id = ?1 AND (?2 IS NULL OR id <= ?2) \
                     AND (?3 IS NULL OR endpoint_id = ?3) AND (?4 IS NULL OR state = ?4) \
                     ORDER BY id DESC LIMIT ?5"
                ))?
                .query_map(
                    params![
                        workspace.as_str(),
                        page.from,
                        filter.endpoint.as_ref().map(|e| e.as_str()),
                        filter.state.map(|s| s.as_str()),
                        page_fetch(&page),
                    ],
                    delivery_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(rows, limit, |d| d.id.to_string()))
    }

    async fn delivery_attempts(
        &self,
        workspace: &WorkspaceId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (workspace, id) = (workspace.clone(), id.clone());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT a.attempt, a.at, a.status, a.error, a.duration_ms \
                 FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
                 WHERE a.delivery_id = ?1 AND d.workspace_id = ?2 ORDER BY a.attempt",
            )?
            .query_map(params![id.as_str(), workspace.as_str()], |r| {
                Ok(AttemptRecord {
                    attempt: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                    at: UnixMillis::from_millis(r.get(1)?),
                    status: r
                        .get::<_, Option<i64>>(2)?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: r.get(3)?,
                    duration_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
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
        self.write(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {}, e.url, e.secret FROM webhook_deliveries d \
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
                     AND (d.lease_until IS NULL OR d.lease_until <= ?1) AND e.enabled = 1 \
                     ORDER BY d.next_attempt_at, d.id LIMIT ?2",
                    delivery_columns_of("d")
                ))?
                .query_map(params![now.as_millis(), limit], |r| {
                    let delivery = delivery_from_row(r)?;
                    let url: String = r.get(12)?;
                    let secret: String = r.get(13)?;
                    let secret =
                        SecretAtRest::from_stored(&secret).map_err(|e| conversion_error(13, e))?;
                    Ok(ClaimedDelivery {
                        delivery,
                        url,
                        secret,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for claimed in &rows {
                conn.prepare_cached(
                    "UPDATE webhook_deliveries SET lease_until = ?2 WHERE id = ?1",
                )?
                .execute(params![
                    claimed.delivery.id.as_str(),
                    lease_until.as_millis()
                ])?;
            }
            Ok(rows)
        })
        .await
    }

    async fn record_delivery_attempt(
        &self,
        id: &DeliveryId,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<()> {
        let (id, a) = (id.clone(), attempt.clone());
        self.write(move |conn| {
            let next_at = match a.next {
                AttemptNext::RetryAt(t) => Some(t.as_millis()),
                AttemptNext::Delivered | AttemptNext::GiveUp => None,
            };
            let delivered_at = (a.next == AttemptNext::Delivered).then(|| a.at.as_millis());
            let number: Option<i64> = conn
                .prepare_cached(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?2, \
                     next_attempt_at = ?3, last_status = ?4, last_error = ?5, \
                     delivered_at = coalesce(?6, delivered_at), lease_until = NULL \
                     WHERE id = ?1 RETURNING attempts",
                )?
                .query_row(
                    params![
                        id.as_str(),
                        a.next.state().as_str(),
                        next_at,
                        a.status.map(i64::from),
                        a.error,
                        delivered_at,
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(number) = number {
                conn.prepare_cached(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, \
                     duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    id.as_str(),
                    number,
                    a.at.as_millis(),
                    a.status.map(i64::from),
                    a.error,
                    a.duration_ms,
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn pending_webhook_deliveries(&self) -> StoreResult<i64> {
        self.read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn announce_expiring_keys(
        &self,
        now: UnixMillis,
        horizon_end: UnixMillis,
    ) -> StoreResult<usize> {
        self.write(move |conn| {
            let keys = conn
                .prepare_cached(
                    "SELECT k.id, k.workspace_id, k.api_id, k.name, k.expires FROM keys k \
                     WHERE k.deleted_at IS NULL AND k.expires > ?1 AND k.expires <= ?2 \
                     AND k.workspace_id IN (SELECT workspace_id FROM webhook_endpoints \
                         WHERE enabled = 1 AND event_types LIKE ?3) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_expiry_notices n \
                         WHERE n.key_id = k.id AND n.expires = k.expires) \
                     ORDER BY k.expires LIMIT 1000",
                )?
                .query_map(
                    params![
                        now.as_millis(),
                        horizon_end.as_millis(),
                        subscribed_pattern(WebhookEventType::KeyExpiringSoon),
                    ],
                    |r| {
                        Ok(ExpiringKey {
                            key_id: r.get(0)?,
                            workspace_id: r.get(1)?,
                            api_id: r.get(2)?,
                            name: r.get(3)?,
                            expires: r.get(4)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for key in &keys {
                conn.prepare_cached(
                    "INSERT INTO webhook_expiry_notices (key_id, expires, announced_at) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (key_id) DO UPDATE \
                     SET expires = excluded.expires, announced_at = excluded.announced_at",
                )?
                .execute(params![key.key_id, key.expires, now.as_millis()])?;
                let workspace =
                    WorkspaceId::parse(&key.workspace_id).map_err(|e| conversion_error(1, e))?;
                enqueue(conn, &workspace, &key.event(now), now)?;
            }
            Ok(keys.len())
        })
        .await
    }
}

/// A key about to expire, as the expiring-soon pass reads it.
pub(crate) struct ExpiringKey {
    pub key_id: String,
    pub workspace_id: String,
    pub api_id: String,
    pub name: Option<String>,
    pub expires: i64,
}

impl ExpiringKey {
    pub fn event(&self, now: UnixMillis) -> WebhookEvent {
        let mut data = Map::new();
        data.insert("keyId".into(), self.key_id.clone().into());
        data.insert("apiId".into(), self.api_id.clone().into());
        if let Some(name) = &self.name {
            data.insert("name".into(), name.clone().into());
        }
        data.insert("expires".into(), self.expires.into());
        WebhookEvent::new(WebhookEventType::KeyExpiringSoon, now, data)
    }
}
