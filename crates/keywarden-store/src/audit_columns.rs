//! Audit entries in their stored form (one `audit_log` row), shared by both backends like
//! the records of `columns`.

use std::net::IpAddr;

use keywarden_core::audit::{Actor, AuditAction, AuditEntry, AuditTarget};
use keywarden_core::id::{AuditId, WorkspaceId};
use keywarden_core::time::UnixMillis;

use crate::columns::{ColumnError, Invalid, at};

/// The columns of `audit_log`, in the order `StoredAuditEntry` binds and reads them.
pub const AUDIT_COLUMNS: &str = "id, workspace_id, time, actor_type, actor_id, action, \
                                 targets, changes, request_id, client_ip";

/// One `audit_log` row.
#[derive(Debug, Clone)]
pub struct StoredAuditEntry {
    pub id: String,
    pub workspace_id: String,
    pub time: i64,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub targets: String,
    pub changes: String,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
}

impl StoredAuditEntry {
    pub fn of(entry: &AuditEntry) -> Self {
        Self {
            id: entry.id.to_string(),
            workspace_id: entry.workspace_id.to_string(),
            time: entry.time.as_millis(),
            actor_type: entry.actor.kind().to_owned(),
            actor_id: entry.actor.id().map(str::to_owned),
            action: entry.action.as_str().to_owned(),
            targets: entry.targets_json(),
            changes: entry.changes_json(),
            request_id: entry.request_id.clone(),
            client_ip: entry.client_ip.map(|ip| ip.to_string()),
        }
    }

    pub fn into_entry(self) -> Result<AuditEntry, ColumnError> {
        let actor = Actor::from_parts(&self.actor_type, self.actor_id.as_deref())
            .ok_or_else(|| at("actor_type")(Invalid("unknown actor")))?;
        let action = AuditAction::parse(&self.action)
            .ok_or_else(|| at("action")(Invalid("unknown action")))?;
        let targets: Vec<AuditTarget> =
            serde_json::from_str(&self.targets).map_err(at("targets"))?;
        let changes = serde_json::from_str(&self.changes).map_err(at("changes"))?;
        let client_ip = self
            .client_ip
            .map(|ip| ip.parse::<IpAddr>())
            .transpose()
            .map_err(at("client_ip"))?;
        Ok(AuditEntry {
            id: AuditId::parse(&self.id).map_err(at("id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id).map_err(at("workspace_id"))?,
            time: UnixMillis::from_millis(self.time),
            actor,
            action,
            targets,
            changes,
            request_id: self.request_id,
            client_ip,
        })
    }
}
