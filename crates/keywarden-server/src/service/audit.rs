//! The audit log: reading it (`audit.listLogs`), and describing key changes for the entries
//! their use cases write. Descriptions name what changed with non-secret values only: never
//! a key, its hash or a root key.

use keywarden_core::audit::{AuditEntry, AuditFilter};
use keywarden_core::key::{KeyRecord, KeyUpdate, Patch};
use keywarden_core::rbac::{Permission, Role};
use keywarden_core::restriction::Restrictions;
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};
use serde_json::Value;

use super::{Caller, Keywarden};
use crate::error::ApiError;

impl Keywarden {
    /// A page of the caller's workspace's audit log, newest first.
    pub async fn audit_logs(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, ApiError> {
        caller.require_everywhere(ops::READ_AUDIT_LOGS)?;
        Ok(self
            .store
            .audit_entries(caller.workspace(), filter, page)
            .await?)
    }
}

fn slugs(permissions: &[Permission]) -> Vec<&str> {
    permissions.iter().map(|p| p.slug.as_str()).collect()
}

fn role_names(roles: &[Role]) -> Vec<&str> {
    roles.iter().map(|r| r.name.as_str()).collect()
}

fn patch<T>(patch: &Patch<T>, value: impl FnOnce(&T) -> Value) -> Option<Value> {
    match patch {
        Patch::Keep => None,
        Patch::Clear => Some(Value::Null),
        Patch::Set(v) => Some(value(v)),
    }
}

/// The entry of `keys.createKey`: the new key's settings, without its secret.
pub(super) fn describe_new_key(entry: AuditEntry, key: &KeyRecord) -> AuditEntry {
    entry
        .target(
            "key",
            key.id.as_str(),
            key.name.as_ref().map(|n| n.as_str()),
        )
        .target("api", key.api_id.as_str(), None)
        .change("name", key.name.as_ref().map(|n| n.as_str()))
        .change("meta", &key.meta)
        .change("enabled", key.enabled)
        .change("expires", key.expires.map(|e| e.as_millis()))
        .change("credits", key.credits.map(|c| c.remaining()))
        .change(
            "externalId",
            key.identity.as_ref().map(|i| i.external_id.as_str()),
        )
        .change(
            "ratelimits",
            key.ratelimits
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
        )
        .change("permissions", slugs(&key.permissions))
        .change("roles", role_names(&key.roles))
        .change(
            "restrictions",
            key.restrictions.as_ref().map(Restrictions::to_json),
        )
}

/// The entry of `keys.updateKey`: each field the update sets or clears.
pub(super) fn describe_key_update(mut entry: AuditEntry, update: &KeyUpdate) -> AuditEntry {
    let fields = [
        ("name", patch(&update.name, |n| n.as_str().into())),
        (
            "meta",
            patch(&update.meta, |m| {
                serde_json::to_value(m).unwrap_or_default()
            }),
        ),
        ("expires", patch(&update.expires, |e| e.as_millis().into())),
        (
            "restrictions",
            patch(&update.restrictions, Restrictions::to_json),
        ),
        (
            "credits",
            patch(&update.credits, |c| {
                let mut credits = serde_json::Map::new();
                if let Some(remaining) = patch(&c.remaining, |r| (*r).into()) {
                    credits.insert("remaining".into(), remaining);
                }
                if let Some(refill) = patch(&c.refill, |r| r.amount().into()) {
                    credits.insert("refillAmount".into(), refill);
                }
                Value::Object(credits)
            }),
        ),
        ("enabled", update.enabled.map(Value::Bool)),
        (
            "externalId",
            patch(&update.identity, |i| i.external_id.as_str().into()),
        ),
        (
            "ratelimits",
            update
                .ratelimits
                .as_ref()
                .map(|l| l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().into()),
        ),
        (
            "permissions",
            update.permissions.as_deref().map(|p| slugs(p).into()),
        ),
        (
            "roles",
            update.roles.as_deref().map(|r| role_names(r).into()),
        ),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            entry = entry.change(field, value);
        }
    }
    entry
}
