//! `CountingStore` passes webhook calls straight through.

use async_trait::async_trait;
use keywarden_core::audit::AuditEntry;
use keywarden_core::id::{DeliveryId, WebhookEndpointId, WorkspaceId};
use keywarden_core::store::{Page, PageRequest, StoreResult, WebhookStore};
use keywarden_core::time::UnixMillis;
use keywarden_core::webhook_outbox::{
    AttemptRecord, ClaimedDelivery, DeliveryAttempt, DeliveryFilter, EndpointUpdate,
    WebhookDelivery, WebhookEndpoint, WebhookEvent,
};

use crate::helpers::CountingStore;

#[async_trait]
impl WebhookStore for CountingStore {
    async fn insert_webhook_endpoint(
        &self,
        e: &WebhookEndpoint,
        a: &AuditEntry,
    ) -> StoreResult<()> {
        self.inner.insert_webhook_endpoint(e, a).await
    }
    async fn webhook_endpoint(
        &self,
        w: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        self.inner.webhook_endpoint(w, id).await
    }
    async fn webhook_endpoints(
        &self,
        w: &WorkspaceId,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookEndpoint>> {
        self.inner.webhook_endpoints(w, page).await
    }
    async fn update_webhook_endpoint(
        &self,
        w: &WorkspaceId,
        id: &WebhookEndpointId,
        u: &EndpointUpdate,
        now: UnixMillis,
        a: &AuditEntry,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        self.inner.update_webhook_endpoint(w, id, u, now, a).await
    }
    async fn delete_webhook_endpoint(
        &self,
        w: &WorkspaceId,
        id: &WebhookEndpointId,
        a: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner.delete_webhook_endpoint(w, id, a).await
    }
    async fn enqueue_webhook_event(
        &self,
        w: &WorkspaceId,
        e: &WebhookEvent,
        now: UnixMillis,
    ) -> StoreResult<usize> {
        self.inner.enqueue_webhook_event(w, e, now).await
    }
    async fn webhook_deliveries(
        &self,
        w: &WorkspaceId,
        f: &DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>> {
        self.inner.webhook_deliveries(w, f, page).await
    }
    async fn delivery_attempts(
        &self,
        w: &WorkspaceId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<AttemptRecord>> {
        self.inner.delivery_attempts(w, id).await
    }
    async fn claim_webhook_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.inner
            .claim_webhook_deliveries(now, lease_until, limit)
            .await
    }
    async fn record_delivery_attempt(
        &self,
        id: &DeliveryId,
        a: &DeliveryAttempt,
    ) -> StoreResult<()> {
        self.inner.record_delivery_attempt(id, a).await
    }
    async fn pending_webhook_deliveries(&self) -> StoreResult<i64> {
        self.inner.pending_webhook_deliveries().await
    }
    async fn announce_expiring_keys(
        &self,
        now: UnixMillis,
        horizon_end: UnixMillis,
    ) -> StoreResult<usize> {
        self.inner.announce_expiring_keys(now, horizon_end).await
    }
}
