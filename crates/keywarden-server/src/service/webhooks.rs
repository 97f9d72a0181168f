//! Webhook endpoints (`webhooks.*`, a Keywarden extension): registering, changing and
//! removing a workspace's endpoints, rotating their secrets, and reading the delivery log.
//! Every change is audited like any admin change; secrets never go into an entry or a log.

use keywarden_core::audit::AuditAction;
use keywarden_core::id::{WebhookEndpointId, WorkspaceId};
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};
use keywarden_core::webhook::{WebhookEventType, WebhookSecret};
use keywarden_core::webhook_outbox::{
    DeliveryFilter, EndpointUpdate, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookUrl,
    event_type_set,
};
use serde_json::Map;

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// What `webhooks.createEndpoint` asks for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: WebhookUrl,
    pub event_types: Vec<WebhookEventType>,
    pub description: Option<String>,
}

fn names(types: &[WebhookEventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

impl Keywarden {
    /// Registers an endpoint; returns it with its secret, which is shown only now.
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Caller,
        new: NewEndpoint,
    ) -> Result<(WebhookEndpoint, WebhookSecret), ApiError> {
        caller.require_everywhere(ops::CREATE_WEBHOOK_ENDPOINT)?;
        let now = self.now();
        let id = WebhookEndpointId::generate(now);
        let secret = WebhookSecret::generate();
        let endpoint = WebhookEndpoint {
            secret: self.seal_webhook_secret(caller.workspace(), &id, &secret),
            id,
            workspace_id: caller.workspace().clone(),
            url: new.url,
            description: new.description,
            event_types: event_type_set(new.event_types),
            enabled: true,
            created_at: now,
            updated_at: None,
        };
        let audit = caller
            .audit(now, AuditAction::WebhookEndpointCreate)
            .target("webhook_endpoint", endpoint.id.as_str(), None)
            .change("url", endpoint.url.as_str())
            .change("eventTypes", names(&endpoint.event_types));
        self.store
            .insert_webhook_endpoint(&endpoint, &audit)
            .await?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
        Ok((endpoint, secret))
    }

    pub async fn webhook_endpoints(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, ApiError> {
        caller.require_everywhere(ops::READ_WEBHOOK_ENDPOINT)?;
        Ok(self
            .store
            .webhook_endpoints(caller.workspace(), page)
            .await?)
    }

    pub async fn update_webhook_endpoint(
        &self,
        caller: &Caller,
        id: &WebhookEndpointId,
        update: EndpointUpdate,
    ) -> Result<WebhookEndpoint, ApiError> {
        caller.require_everywhere(ops::UPDATE_WEBHOOK_ENDPOINT)?;
        let now = self.now();
        let rotating = update.secret.is_some();
        let action = if rotating {
            AuditAction::WebhookEndpointRotateSecret
        } else {
            AuditAction::WebhookEndpointUpdate
        };
        let mut audit = caller
            .audit(now, action)
            .target("webhook_endpoint", id.as_str(), None);
        if let Some(url) = &update.url {
            audit = audit.change("url", url.as_str());
        }
        if let Some(types) = &update.event_types {
            audit = audit.change("eventTypes", names(&event_type_set(types.clone())));
        }
        if let Some(enabled) = update.enabled {
            audit = audit.change("enabled", enabled);
        }
        if let Some(description) = &update.description {
            audit = audit.change("description", description);
        }
        let endpoint = self
            .store
            .update_webhook_endpoint(caller.workspace(), id, &update, now, &audit)
            .await?
            .ok_or_else(ApiError::webhook_endpoint_not_found)?;
        tracing::info!(endpoint_id = %id, rotating, "webhook endpoint updated");
        Ok(endpoint)
    }

    /// Gives an endpoint a new secret; returns it (shown only now).
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: &WebhookEndpointId,
    ) -> Result<WebhookSecret, ApiError> {
        let secret = WebhookSecret::generate();
        let update = EndpointUpdate {
            secret: Some(self.seal_webhook_secret(caller.workspace(), id, &secret)),
            ..EndpointUpdate::default()
        };
        self.update_webhook_endpoint(caller, id, update).await?;
        Ok(secret)
    }

    pub async fn delete_webhook_endpoint(
        &self,
        caller: &Caller,
        id: &WebhookEndpointId,
    ) -> Result<(), ApiError> {
        caller.require_everywhere(ops::DELETE_WEBHOOK_ENDPOINT)?;
        let audit = caller
            .audit(self.now(), AuditAction::WebhookEndpointDelete)
            .target("webhook_endpoint", id.as_str(), None);
        if !self
            .store
            .delete_webhook_endpoint(caller.workspace(), id, &audit)
            .await?
        {
            return Err(ApiError::webhook_endpoint_not_found());
        }
        tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
        Ok(())
    }

    /// The delivery log, newest first.
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>, ApiError> {
        caller.require_everywhere(ops::READ_WEBHOOK_ENDPOINT)?;
        Ok(self
            .store
            .webhook_deliveries(caller.workspace(), filter, page)
            .await?)
    }

    /// Enqueues a test event (`data.test = true`) of `event_type` for the workspace's
    /// subscribers; returns how many deliveries it made.
    pub async fn send_test_webhook(
        &self,
        caller: &Caller,
        event_type: WebhookEventType,
    ) -> Result<usize, ApiError> {
        caller.require_everywhere(ops::UPDATE_WEBHOOK_ENDPOINT)?;
        let mut data = Map::new();
        data.insert("test".into(), true.into());
        self.enqueue_webhook_event(
            caller.workspace(),
            WebhookEvent::new(event_type, self.now(), data),
        )
        .await
    }

    /// Enqueues an event that is not an admin change (anomalies, low credits) for the
    /// workspace's subscribed endpoints.
    pub async fn enqueue_webhook_event(
        &self,
        workspace: &WorkspaceId,
        event: WebhookEvent,
    ) -> Result<usize, ApiError> {
        Ok(self
            .store
            .enqueue_webhook_event(workspace, &event, self.now())
            .await?)
    }
}
