//! Anomalies once raised: stored with an id, listed by `anomalies.list`, and announced to
//! webhook subscribers.

use serde_json::{Map, Value};

use super::{Anomaly, AnomalyKind, Severity};
use crate::id::{AnomalyId, KeyId};
use crate::time::UnixMillis;
use crate::webhook::WebhookEventType;
use crate::webhook_outbox::WebhookEvent;

/// A stored anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAnomaly {
    pub id: AnomalyId,
    pub anomaly: Anomaly,
}

impl RecordedAnomaly {
    /// The anomaly as the wire shows it: `{anomalyId, kind, severity, keyId?, clientIp?,
    /// time, evidence}`. Listing and webhook payloads share it.
    pub fn to_json(&self) -> Map<String, Value> {
        let a = &self.anomaly;
        let mut out = Map::new();
        out.insert("anomalyId".into(), self.id.as_str().into());
        out.insert("kind".into(), a.kind.as_str().into());
        out.insert("severity".into(), a.severity.as_str().into());
        if let Some(key) = &a.key_id {
            out.insert("keyId".into(), key.as_str().into());
        }
        if let Some(ip) = a.client_ip {
            out.insert("clientIp".into(), ip.to_string().into());
        }
        out.insert("time".into(), a.time.as_millis().into());
        out.insert("evidence".into(), Value::Object(a.evidence.clone()));
        out
    }

    /// The webhook event announcing it ([`WebhookEventType::of_anomaly`]).
    pub fn webhook_event(&self) -> WebhookEvent {
        WebhookEvent::new(
            WebhookEventType::of_anomaly(self.anomaly.kind),
            self.anomaly.time,
            self.to_json(),
        )
    }
}

/// Which anomalies `anomalies.list` returns; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyFilter {
    pub kind: Option<AnomalyKind>,
    pub severity: Option<Severity>,
    pub key_id: Option<KeyId>,
    /// Anomalies at or after this time.
    pub since: Option<UnixMillis>,
    /// Anomalies at or before this time.
    pub until: Option<UnixMillis>,
}

impl AnomalyFilter {
    /// Whether `anomaly` passes; the stores filter in SQL, this states the rule once.
    pub fn matches(&self, anomaly: &Anomaly) -> bool {
        self.kind.is_none_or(|k| k == anomaly.kind)
            && self.severity.is_none_or(|s| s == anomaly.severity)
            && self
                .key_id
                .as_ref()
                .is_none_or(|k| anomaly.key_id.as_ref() == Some(k))
            && self.since.is_none_or(|t| anomaly.time >= t)
            && self.until.is_none_or(|t| anomaly.time <= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::WorkspaceId;

    #[test]
    fn the_webhook_event_carries_the_anomaly() {
        let t = UnixMillis::from_millis(1_800_000_000_000);
        let mut evidence = Map::new();
        evidence.insert("unknownKeys".into(), 5.into());
        let recorded = RecordedAnomaly {
            id: AnomalyId::generate(t),
            anomaly: Anomaly {
                kind: AnomalyKind::UnknownKeyProbing,
                severity: Severity::Warning,
                workspace_id: WorkspaceId::generate(t),
                key_id: None,
                client_ip: Some("10.0.0.1".parse().unwrap()),
                time: t,
                evidence,
            },
        };
        let event = recorded.webhook_event();
        assert_eq!(event.payload["type"], "anomaly.unknown_key_probing");
        assert_eq!(event.payload["data"]["clientIp"], "10.0.0.1");
        assert_eq!(event.payload["data"]["evidence"]["unknownKeys"], 5);
        assert!(event.payload["data"].get("keyId").is_none());
    }
}
