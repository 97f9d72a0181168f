//! Webhook endpoints and deliveries in their stored form, shared by both backends like the
//! records of `columns`, and the rule that picks an event's subscribers.

use keywarden_core::id::{DeliveryId, WebhookEndpointId, WorkspaceId};
use keywarden_core::sealed_secret::{EndpointSecret, SecretAtRest};
use keywarden_core::time::UnixMillis;
use keywarden_core::webhook::WebhookEventType;
use keywarden_core::webhook_outbox::{DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookUrl};

use crate::columns::{ColumnError, Invalid, at};

/// The columns of `webhook_endpoints`, in the order `StoredEndpoint` binds and reads them.
pub const ENDPOINT_COLUMNS: &str =
    "id, workspace_id, url, description, event_types, enabled, secret, created_at, updated_at";

/// The columns of `webhook_deliveries` that `StoredDelivery` reads, in its order.
pub const DELIVERY_COLUMNS: &str = "id, workspace_id, endpoint_id, event_type, payload, \
     created_at, attempts, state, next_attempt_at, last_status, last_error, delivered_at";

/// `DELIVERY_COLUMNS` qualified with a table alias, for joins.
pub fn delivery_columns_of(alias: &str) -> String {
    DELIVERY_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `webhook_endpoints` row. Its `Debug` leaves out the secret.
#[derive(Clone)]
pub struct StoredEndpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: Option<String>,
    /// A JSON array of event type names.
    pub event_types: String,
    pub enabled: bool,
    /// Deliveries are signed with it, so it cannot be hashed: `sealed:v1:…` under a master
    /// key, or the `whsec_…` form on a server without master keys.
    pub secret: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl std::fmt::Debug for StoredEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEndpoint")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl StoredEndpoint {
    pub fn of(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            workspace_id: e.workspace_id.to_string(),
            url: e.url.to_string(),
            description: e.description.clone(),
            event_types: event_types_json(&e.event_types),
            enabled: e.enabled,
            secret: e.secret.to_stored(),
            created_at: e.created_at.as_millis(),
            updated_at: e.updated_at.map(UnixMillis::as_millis),
        }
    }

    pub fn into_endpoint(self) -> Result<WebhookEndpoint, ColumnError> {
        let names: Vec<String> =
            serde_json::from_str(&self.event_types).map_err(at("event_types"))?;
        let event_types = names
            .iter()
            .map(|n| WebhookEventType::parse(n))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| at("event_types")(Invalid("unknown event type")))?;
        Ok(WebhookEndpoint {
            id: WebhookEndpointId::parse(&self.id).map_err(at("id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id).map_err(at("workspace_id"))?,
            url: WebhookUrl::parse(&self.url).map_err(at("url"))?,
            description: self.description,
            event_types,
            enabled: self.enabled,
            secret: SecretAtRest::from_stored(&self.secret).map_err(at("secret"))?,
            created_at: UnixMillis::from_millis(self.created_at),
            updated_at: self.updated_at.map(UnixMillis::from_millis),
        })
    }
}

/// One endpoint's `workspace_id`, `id` and `secret` columns, for re-sealing.
pub fn endpoint_secret(
    workspace_id: &str,
    id: &str,
    secret: &str,
) -> Result<EndpointSecret, ColumnError> {
    Ok(EndpointSecret {
        workspace_id: WorkspaceId::parse(workspace_id).map_err(at("workspace_id"))?,
        endpoint_id: WebhookEndpointId::parse(id).map_err(at("id"))?,
        secret: SecretAtRest::from_stored(secret).map_err(at("secret"))?,
    })
}

/// The stored form of a set of event types.
pub fn event_types_json(types: &[WebhookEventType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

/// Whether an endpoint whose `event_types` column is `stored` subscribes to `event`. A
/// column that does not parse subscribes to nothing (it cannot be written by this code).
pub fn subscribes(stored: &str, event: WebhookEventType) -> bool {
    serde_json::from_str::<Vec<String>>(stored)
        .map(|names| names.iter().any(|n| n == event.as_str()))
        .unwrap_or(false)
}

/// A `LIKE` pattern matching the `event_types` column of endpoints subscribed to `event`.
pub fn subscribed_pattern(event: WebhookEventType) -> String {
    format!("%\"{}\"%", event.as_str())
}

/// One `webhook_deliveries` row (without its lease).
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub id: String,
    pub workspace_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    pub state: String,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

impl StoredDelivery {
    pub fn into_delivery(self) -> Result<WebhookDelivery, ColumnError> {
        Ok(WebhookDelivery {
            id: DeliveryId::parse(&self.id).map_err(at("id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id).map_err(at("workspace_id"))?,
            endpoint_id: WebhookEndpointId::parse(&self.endpoint_id).map_err(at("endpoint_id"))?,
            event_type: WebhookEventType::parse(&self.event_type)
                .ok_or_else(|| at("event_type")(Invalid("unknown event type")))?,
            payload: self.payload,
            created_at: UnixMillis::from_millis(self.created_at),
            attempts: u32::try_from(self.attempts).map_err(at("attempts"))?,
            state: DeliveryState::parse(&self.state)
                .ok_or_else(|| at("state")(Invalid("unknown delivery state")))?,
            next_attempt_at: self.next_attempt_at.map(UnixMillis::from_millis),
            last_status: self
                .last_status
                .map(u16::try_from)
                .transpose()
                .map_err(at("last_status"))?,
            last_error: self.last_error,
            delivered_at: self.delivered_at.map(UnixMillis::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use keywarden_core::id::{WebhookEndpointId, WorkspaceId};
    use keywarden_core::sealed_secret::SecretAtRest;
    use keywarden_core::time::UnixMillis;
    use keywarden_core::webhook::WebhookSecret;
    use keywarden_core::webhook_outbox::{WebhookEndpoint, WebhookUrl};

    use super::StoredEndpoint;

    #[test]
    fn debug_output_leaves_out_the_secret() {
        let now = UnixMillis::from_millis(1_795_780_800_000);
        let endpoint = WebhookEndpoint {
            id: WebhookEndpointId::generate(now),
            workspace_id: WorkspaceId::parse("ws_1").unwrap(),
            url: WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
            description: None,
            event_types: Vec::new(),
            enabled: true,
            secret: SecretAtRest::Plain(WebhookSecret::generate()),
            created_at: now,
            updated_at: None,
        };
        let stored = StoredEndpoint::of(&endpoint);
        let secret = stored.secret.clone();
        let body = secret.trim_start_matches("whsec_");
        for shown in [format!("{stored:?}"), format!("{endpoint:?}")] {
            assert!(!shown.contains(body), "{shown}");
        }
    }
}
