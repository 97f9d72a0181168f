//! Anomalies in their stored form (one `anomalies` row), shared by both backends like the
//! records of `columns`.

use std::net::IpAddr;

use keywarden_core::anomaly::{Anomaly, AnomalyKind, RecordedAnomaly, Severity};
use keywarden_core::id::{AnomalyId, KeyId, WorkspaceId};
use keywarden_core::time::UnixMillis;

use crate::columns::{ColumnError, Invalid, at};

/// The columns of `anomalies`, in the order `StoredAnomaly` binds and reads them.
pub const ANOMALY_COLUMNS: &str =
    "id, workspace_id, kind, severity, key_id, client_ip, time, evidence";

/// One `anomalies` row; `evidence` is a JSON object.
#[derive(Debug, Clone)]
pub struct StoredAnomaly {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub severity: String,
    pub key_id: Option<String>,
    pub client_ip: Option<String>,
    pub time: i64,
    pub evidence: String,
}

impl StoredAnomaly {
    pub fn of(recorded: &RecordedAnomaly) -> Self {
        let a = &recorded.anomaly;
        Self {
            id: recorded.id.to_string(),
            workspace_id: a.workspace_id.to_string(),
            kind: a.kind.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            key_id: a.key_id.as_ref().map(ToString::to_string),
            client_ip: a.client_ip.map(|ip| ip.to_string()),
            time: a.time.as_millis(),
            evidence: serde_json::Value::Object(a.evidence.clone()).to_string(),
        }
    }

    pub fn into_recorded(self) -> Result<RecordedAnomaly, ColumnError> {
        let kind = AnomalyKind::parse(&self.kind)
            .ok_or_else(|| at("anomalies.kind")(Invalid("unknown kind")))?;
        let severity = Severity::parse(&self.severity)
            .ok_or_else(|| at("anomalies.severity")(Invalid("unknown severity")))?;
        Ok(RecordedAnomaly {
            id: AnomalyId::parse(&self.id).map_err(at("anomalies.id"))?,
            anomaly: Anomaly {
                kind,
                severity,
                workspace_id: WorkspaceId::parse(&self.workspace_id)
                    .map_err(at("anomalies.workspace_id"))?,
                key_id: self
                    .key_id
                    .as_deref()
                    .map(KeyId::parse)
                    .transpose()
                    .map_err(at("anomalies.key_id"))?,
                client_ip: self
                    .client_ip
                    .map(|ip| ip.parse::<IpAddr>())
                    .transpose()
                    .map_err(at("anomalies.client_ip"))?,
                time: UnixMillis::from_millis(self.time),
                evidence: serde_json::from_str(&self.evidence).map_err(at("anomalies.evidence"))?,
            },
        })
    }
}
