//! The audit log: one append-only entry per committed admin change — who (root key, CLI or
//! the system), what (an action and its targets, with what changed), when and from where.
//!
//! Entries are built by the use case that makes the change and handed to the store method
//! that commits it, which writes the entry in the same transaction only when the change takes
//! effect: a change that fails or conflicts leaves no entry, a committed one always has one.
//! `changes` never holds a secret (a key, a root key, a hash); names, metadata, limits and
//! credit numbers are fine.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::{AuditId, RootKeyId, WorkspaceId};
use crate::time::UnixMillis;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request authenticated with this root key.
    RootKey(RootKeyId),
    /// The `keywarden` command line, run by whoever can open the store.
    Cli,
    /// The server itself (bootstrap).
    System,
    /// GitHub's secret scanning, through a signed partner report (a Keywarden extension).
    SecretScanning,
}

impl Actor {
    /// The kind as stored and shown: `root_key`, `cli`, `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RootKey(_) => "root_key",
            Self::Cli => "cli",
            Self::System => "system",
            Self::SecretScanning => "github_secret_scanning",
        }
    }

    /// The root key's id, for root-key actors.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::RootKey(id) => Some(id.as_str()),
            Self::Cli | Self::System | Self::SecretScanning => None,
        }
    }

    /// The actor stored as `kind` and `id`; `None` for combinations no writer produces.
    pub fn from_parts(kind: &str, id: Option<&str>) -> Option<Self> {
        match (kind, id) {
            ("root_key", Some(id)) => RootKeyId::parse(id).ok().map(Self::RootKey),
            ("cli", None) => Some(Self::Cli),
            ("system", None) => Some(Self::System),
            ("github_secret_scanning", None) => Some(Self::SecretScanning),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RootKey(id) => write!(f, "{id}"),
            Self::Cli | Self::System | Self::SecretScanning => f.write_str(self.kind()),
        }
    }
}

macro_rules! audit_actions {
    ($($variant:ident => $wire:literal,)*) => {
        /// What kind of change an entry records; `as_str` is the wire and stored form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)*
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(Self::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|a| a.as_str() == s)
            }
        }
    };
}

audit_actions! {
    ApiCreate => "api.create",
    ApiDelete => "api.delete",
    ApiUpdate => "api.update",
    KeyCreate => "key.create",
    KeyUpdate => "key.update",
    KeyDelete => "key.delete",
    KeyReroll => "key.reroll",
    KeyCreditsUpdate => "key.credits.update",
    KeyPermissionsAdd => "key.permissions.add",
    KeyPermissionsRemove => "key.permissions.remove",
    KeyPermissionsSet => "key.permissions.set",
    KeyRolesAdd => "key.roles.add",
    KeyRolesRemove => "key.roles.remove",
    KeyRolesSet => "key.roles.set",
    KeysMigrate => "keys.migrate",
    IdentityCreate => "identity.create",
    IdentityUpdate => "identity.update",
    IdentityDelete => "identity.delete",
    PermissionCreate => "permission.create",
    PermissionUpdate => "permission.update",
    PermissionDelete => "permission.delete",
    RoleCreate => "role.create",
    RoleUpdate => "role.update",
    RoleDelete => "role.delete",
    RolePermissionsSet => "role.permissions.set",
    RatelimitNamespaceCreate => "ratelimit.namespace.create",
    RatelimitOverrideSet => "ratelimit.override.set",
    RatelimitOverrideDelete => "ratelimit.override.delete",
    RootKeyCreate => "root_key.create",
    RootKeyUpdate => "root_key.update",
    RootKeyRotate => "root_key.rotate",
    RootKeyRevoke => "root_key.revoke",
    WebhookEndpointCreate => "webhook.endpoint.create",
    WebhookEndpointUpdate => "webhook.endpoint.update",
    WebhookEndpointRotateSecret => "webhook.endpoint.rotate_secret",
    WebhookEndpointDelete => "webhook.endpoint.delete",
    KeyLeaked => "key.leaked",
    LeakPolicySet => "leak.policy.set",
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object a change touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTarget {
    /// `api`, `key`, `root_key`, `identity`, `permission`, `role`, `namespace`, `override`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where a change came from; every mutating use case carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub client_ip: Option<IpAddr>,
}

impl AuditContext {
    /// A change made with the command line (no request, no address).
    pub fn cli() -> Self {
        Self {
            actor: Actor::Cli,
            request_id: None,
            client_ip: None,
        }
    }

    /// A change the server makes by itself (the first start's bootstrap).
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            request_id: None,
            client_ip: None,
        }
    }

    /// A new entry for a change of `action` in `workspace` at `time`, without targets or
    /// changes yet.
    pub fn entry(
        &self,
        workspace: &WorkspaceId,
        time: UnixMillis,
        action: AuditAction,
    ) -> AuditEntry {
        AuditEntry {
            id: AuditId::generate(time),
            workspace_id: workspace.clone(),
            time,
            actor: self.actor.clone(),
            action,
            targets: Vec::new(),
            changes: Map::new(),
            request_id: self.request_id.clone(),
            client_ip: self.client_ip,
        }
    }
}

/// One committed admin change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub workspace_id: WorkspaceId,
    pub time: UnixMillis,
    pub actor: Actor,
    pub action: AuditAction,
    pub targets: Vec<AuditTarget>,
    /// What changed, by field; never a secret.
    pub changes: Map<String, Value>,
    pub request_id: Option<String>,
    pub client_ip: Option<IpAddr>,
}

impl AuditEntry {
    /// Adds a target.
    #[must_use]
    pub fn target(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        self.targets.push(AuditTarget {
            kind: kind.to_owned(),
            id: id.to_owned(),
            name: name.map(str::to_owned),
        });
        self
    }

    /// Records that `field` changed to `value`. Callers pass only non-secret values.
    #[must_use]
    pub fn change(mut self, field: &str, value: impl Serialize) -> Self {
        // Serializing plain domain values into a `Value` cannot fail; a value that somehow
        // did would only be missing from the description, never stop the change.
        if let Ok(value) = serde_json::to_value(value) {
            self.changes.insert(field.to_owned(), value);
        }
        self
    }

    /// The entry restricted to the targets whose ids are in `ids`: what a change that acted
    /// on only some of the objects it named (creating the missing ones of a list) records.
    pub fn only_targets(&self, ids: &[&str]) -> Self {
        let mut entry = self.clone();
        entry.targets.retain(|t| ids.contains(&t.id.as_str()));
        entry
    }

    /// The stored form of `targets`.
    pub fn targets_json(&self) -> String {
        serde_json::to_string(&self.targets).unwrap_or_else(|_| "[]".into())
    }

    /// The stored form of `changes`.
    pub fn changes_json(&self) -> String {
        serde_json::to_string(&self.changes).unwrap_or_else(|_| "{}".into())
    }
}

/// The JSON form of an entry, shared by `audit.listLogs` and `keywarden audit --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryView<'a> {
    id: &'a str,
    workspace_id: &'a str,
    time: i64,
    actor: ActorView<'a>,
    action: &'static str,
    targets: &'a [AuditTarget],
    changes: &'a Map<String, Value>,
    request_id: Option<&'a str>,
    client_ip: Option<String>,
}

#[derive(Serialize)]
struct ActorView<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

impl Serialize for AuditEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EntryView {
            id: self.id.as_str(),
            workspace_id: self.workspace_id.as_str(),
            time: self.time.as_millis(),
            actor: ActorView {
                kind: self.actor.kind(),
                id: self.actor.id(),
            },
            action: self.action.as_str(),
            targets: &self.targets,
            changes: &self.changes,
            request_id: self.request_id.as_deref(),
            client_ip: self.client_ip.map(|ip| ip.to_string()),
        }
        .serialize(serializer)
    }
}

/// Which entries to list; all given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries by this actor: a root key id, `cli` or `system`.
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    /// Entries that name this object among their targets.
    pub target_id: Option<String>,
    /// Entries at or after this time.
    pub since: Option<UnixMillis>,
    /// Entries at or before this time.
    pub until: Option<UnixMillis>,
}

impl AuditFilter {
    /// Whether `entry` passes; the stores filter in SQL, this states the same rule once for
    /// tests and in-memory callers.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.actor.as_deref().is_none_or(|a| {
            entry.actor.id() == Some(a) || (entry.actor.id().is_none() && entry.actor.kind() == a)
        }) && self.action.is_none_or(|a| a == entry.action)
            && self
                .target_id
                .as_deref()
                .is_none_or(|t| entry.targets.iter().any(|x| x.id == t))
            && self.since.is_none_or(|s| entry.time >= s)
            && self.until.is_none_or(|u| entry.time <= u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_wire_names() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
        }
        assert_eq!(AuditAction::parse("key.explode"), None);
    }

    #[test]
    fn actors_round_trip_through_their_stored_parts() {
        let key = Actor::RootKey(RootKeyId::parse("rootkey_1").unwrap());
        for actor in [key, Actor::Cli, Actor::System] {
            assert_eq!(Actor::from_parts(actor.kind(), actor.id()), Some(actor));
        }
        assert_eq!(Actor::from_parts("cli", Some("x")), None);
    }

    #[test]
    fn filter_matches_actor_kind_or_root_key_id() {
        let ws = WorkspaceId::parse("ws_1").unwrap();
        let entry = AuditContext::cli()
            .entry(&ws, UnixMillis::from_millis(10), AuditAction::ApiCreate)
            .target("api", "api_1", None);
        let by = |actor: &str| AuditFilter {
            actor: Some(actor.into()),
            ..AuditFilter::default()
        };
        assert!(by("cli").matches(&entry));
        assert!(!by("system").matches(&entry));
        let target = AuditFilter {
            target_id: Some("api_1".into()),
            since: Some(UnixMillis::from_millis(10)),
            until: Some(UnixMillis::from_millis(10)),
            ..AuditFilter::default()
        };
        assert!(target.matches(&entry));
    }
}
