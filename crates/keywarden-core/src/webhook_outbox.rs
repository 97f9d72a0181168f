//! Webhook endpoints and the outbox of deliveries to them: what a workspace subscribes, which
//! admin changes become events, and the state of each delivery.
//!
//! Events of admin changes are derived from their audit entries ([`WebhookEvent::of_audit`])
//! so that the store enqueues them in the change's own transaction: a committed change always
//! has its deliveries, a failed one has none.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::audit::{AuditAction, AuditEntry};
use crate::id::{DeliveryId, WebhookEndpointId, WorkspaceId};
use crate::sealed_secret::{SecretAtRest, SecretOwner};
use crate::time::UnixMillis;
use crate::webhook::{WebhookEventType, WebhookSecret};

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Where deliveries of an endpoint are POSTed: an absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookUrl {
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must be an http:// or https:// URL with a host")]
    Shape,
}

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookUrl> {
        if text.len() > MAX_URL_LEN {
            return Err(InvalidWebhookUrl::TooLong);
        }
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        let rest = if lower.starts_with("https://") {
            &text[8..]
        } else if lower.starts_with("http://") {
            &text[7..]
        } else {
            return Err(InvalidWebhookUrl::Shape);
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_ok = !host.is_empty()
            && !host.starts_with(':')
            && !host.contains('@')
            && !host.ends_with(':');
        if !host_ok || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidWebhookUrl::Shape);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Event types as one sorted set without duplicates.
pub fn event_type_set(mut types: Vec<WebhookEventType>) -> Vec<WebhookEventType> {
    types.sort();
    types.dedup();
    types
}

/// A workspace's endpoint. Its secret signs every delivery, so it cannot be hashed (HMAC
/// needs the key itself on both sides): it is kept sealed under the master key when the
/// server has one (see `sealed_secret`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub workspace_id: WorkspaceId,
    pub url: WebhookUrl,
    pub description: Option<String>,
    /// Sorted, without duplicates.
    pub event_types: Vec<WebhookEventType>,
    pub enabled: bool,
    pub secret: SecretAtRest<WebhookSecret>,
    pub created_at: UnixMillis,
    pub updated_at: Option<UnixMillis>,
}

impl WebhookEndpoint {
    pub fn subscribes(&self, event: WebhookEventType) -> bool {
        self.event_types.contains(&event)
    }

    /// What its secret's ciphertext is bound to.
    pub fn secret_owner(&self) -> SecretOwner {
        secret_owner(&self.workspace_id, &self.id)
    }
}

/// What the secret of endpoint `id` of `workspace` is bound to when sealed.
pub fn secret_owner(workspace: &WorkspaceId, id: &WebhookEndpointId) -> SecretOwner {
    SecretOwner::WebhookEndpoint {
        workspace: workspace.clone(),
        endpoint: id.clone(),
    }
}

/// What `webhooks.updateEndpoint` (and `rotateSecret`) change; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointUpdate {
    pub url: Option<WebhookUrl>,
    pub description: Option<String>,
    pub event_types: Option<Vec<WebhookEventType>>,
    pub enabled: Option<bool>,
    /// A new secret, already in its stored form.
    pub secret: Option<SecretAtRest<WebhookSecret>>,
}

impl EndpointUpdate {
    pub fn apply(&self, endpoint: &mut WebhookEndpoint, now: UnixMillis) {
        if let Some(url) = &self.url {
            endpoint.url = url.clone();
        }
        if let Some(description) = &self.description {
            endpoint.description = Some(description.clone());
        }
        if let Some(types) = &self.event_types {
            endpoint.event_types = event_type_set(types.clone());
        }
        if let Some(enabled) = self.enabled {
            endpoint.enabled = enabled;
        }
        if let Some(secret) = &self.secret {
            endpoint.secret = secret.clone();
        }
        endpoint.updated_at = Some(now);
    }
}

/// An event ready to be enqueued: its type and the JSON body every subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub event_type: WebhookEventType,
    pub payload: Value,
}

impl WebhookEvent {
    /// `{type, timestamp (ms), data}`.
    pub fn new(event_type: WebhookEventType, time: UnixMillis, data: Map<String, Value>) -> Self {
        Self {
            event_type,
            payload: json!({
                "type": event_type.as_str(),
                "timestamp": time.as_millis(),
                "data": data,
            }),
        }
    }

    /// The event an admin change announces, if any: key creations, updates (settings,
    /// credits, permissions, roles), deletions and rerolls. The data holds the key's and
    /// API's ids, the entry's changes (which never hold a secret), the actor and the request
    /// id.
    pub fn of_audit(entry: &AuditEntry) -> Option<Self> {
        use AuditAction as A;
        let event_type = match entry.action {
            A::KeyCreate => WebhookEventType::KeyCreated,
            A::KeyUpdate
            | A::KeyCreditsUpdate
            | A::KeyPermissionsAdd
            | A::KeyPermissionsRemove
            | A::KeyPermissionsSet
            | A::KeyRolesAdd
            | A::KeyRolesRemove
            | A::KeyRolesSet => WebhookEventType::KeyUpdated,
            A::KeyDelete => WebhookEventType::KeyDeleted,
            A::KeyReroll => WebhookEventType::KeyRerolled,
            A::KeyLeaked => WebhookEventType::KeyLeaked,
            _ => return None,
        };
        let mut keys = entry.targets.iter().filter(|t| t.kind == "key");
        let mut data = Map::new();
        if let Some(key) = keys.next() {
            data.insert("keyId".into(), key.id.clone().into());
        }
        if event_type == WebhookEventType::KeyRerolled
            && let Some(new) = keys.next()
        {
            data.insert("newKeyId".into(), new.id.clone().into());
        }
        if let Some(api) = entry.targets.iter().find(|t| t.kind == "api") {
            data.insert("apiId".into(), api.id.clone().into());
        }
        data.insert("action".into(), entry.action.as_str().into());
        data.insert("changes".into(), Value::Object(entry.changes.clone()));
        let mut actor = Map::new();
        actor.insert("type".into(), entry.actor.kind().into());
        if let Some(id) = entry.actor.id() {
            actor.insert("id".into(), id.into());
        }
        data.insert("actor".into(), Value::Object(actor));
        if let Some(request_id) = &entry.request_id {
            data.insert("requestId".into(), request_id.clone().into());
        }
        data.insert("auditLogId".into(), entry.id.as_str().into());
        Some(Self::new(event_type, entry.time, data))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Gave up after the retry policy's last attempt.
    Failed,
}

impl DeliveryState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One row of the outbox: one event for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    pub workspace_id: WorkspaceId,
    pub endpoint_id: WebhookEndpointId,
    pub event_type: WebhookEventType,
    /// The exact body sent (JSON text), so every attempt is signed over the same bytes.
    pub payload: String,
    pub created_at: UnixMillis,
    pub attempts: u32,
    pub state: DeliveryState,
    pub next_attempt_at: Option<UnixMillis>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<UnixMillis>,
}

/// A delivery a worker has leased, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    /// As stored: opened only to sign this delivery.
    pub secret: SecretAtRest<WebhookSecret>,
}

/// What one attempt did, and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub at: UnixMillis,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed without (or despite) an answer; never holds the secret.
    pub error: Option<String>,
    pub duration_ms: i64,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    RetryAt(UnixMillis),
    GiveUp,
}

impl AttemptNext {
    pub fn state(self) -> DeliveryState {
        match self {
            Self::Delivered => DeliveryState::Delivered,
            Self::RetryAt(_) => DeliveryState::Pending,
            Self::GiveUp => DeliveryState::Failed,
        }
    }
}

/// Which deliveries `webhooks.listDeliveries` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint: Option<WebhookEndpointId>,
    pub state: Option<DeliveryState>,
}

/// One attempt as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub at: UnixMillis,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditContext;

    #[test]
    fn urls_must_be_http_with_a_host_and_bounded() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://example.com",
            "HTTPS://example.com/a?b=c",
        ] {
            assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://example.com",
            "http://",
            "http:///path",
            "https://exa mple.com",
            "javascript:alert(1)",
            "example.com/hook",
        ] {
            assert_eq!(
                WebhookUrl::parse(bad),
                Err(InvalidWebhookUrl::Shape),
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(WebhookUrl::parse(&long), Err(InvalidWebhookUrl::TooLong));
    }

    #[test]
    fn key_changes_become_events_and_other_changes_do_not() {
        let ws = WorkspaceId::parse("ws_1").unwrap();
        let t = UnixMillis::from_millis(1_000);
        let entry = AuditContext::cli()
            .entry(&ws, t, AuditAction::KeyReroll)
            .target("key", "key_old", None)
            .target("key", "key_new", None)
            .target("api", "api_1", None)
            .change("oldExpires", 5);
        let event = WebhookEvent::of_audit(&entry).unwrap();
        assert_eq!(event.event_type, WebhookEventType::KeyRerolled);
        assert_eq!(event.payload["type"], "key.rerolled");
        assert_eq!(event.payload["timestamp"], 1_000);
        let data = &event.payload["data"];
        assert_eq!(data["keyId"], "key_old");
        assert_eq!(data["newKeyId"], "key_new");
        assert_eq!(data["apiId"], "api_1");
        assert_eq!(data["changes"]["oldExpires"], 5);
        assert_eq!(data["actor"]["type"], "cli");
        let credits = AuditContext::cli().entry(&ws, t, AuditAction::KeyCreditsUpdate);
        assert_eq!(
            WebhookEvent::of_audit(&credits).map(|e| e.event_type),
            Some(WebhookEventType::KeyUpdated)
        );
        let api = AuditContext::cli().entry(&ws, t, AuditAction::ApiCreate);
        assert_eq!(WebhookEvent::of_audit(&api), None);
    }
}
