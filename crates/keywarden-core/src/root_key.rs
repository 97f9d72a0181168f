//! Root keys: a workspace's administrative credentials, and the permissions they carry.
//!
//! Permissions use the tuple form `<resource>.<target|*>.<action>`, e.g. `api.*.create_key`
//! or `api.api_123.verify_key`. Checking one answers three ways (see [`Access`]) so callers
//! can tell "may not do this at all" (403, naming the permission) from "may not do this to
//! that object" (answered as if the object did not exist, so existence does not leak).

use std::fmt;
use std::str::FromStr;

use crate::digest::KeyDigest;
use crate::id::{RootKeyId, WorkspaceId};
use crate::key_format::{ByteLength, IssuedKey, KeyPrefix};
use crate::text::Label;
use crate::time::UnixMillis;

/// Prefix of generated root keys, so scanners and people recognise them.
pub const ROOT_KEY_PREFIX: &str = "kw_root";
/// Shortest root key accepted from `KEYWARDEN_BOOTSTRAP_ROOT_KEY`.
pub const MIN_BOOTSTRAP_KEY_LEN: usize = 24;

/// The kinds of object root-key permissions talk about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Api,
    Ratelimit,
    Rbac,
    Identity,
    /// The audit log (a Keywarden extension).
    Audit,
    /// Webhook endpoints and their delivery log (a Keywarden extension).
    Webhook,
    /// Anomalies raised by detection (a Keywarden extension).
    Anomaly,
    /// Leaked keys: the workspace's leak policy, reports, checks (a Keywarden extension).
    Leak,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Self::Api,
        Self::Ratelimit,
        Self::Rbac,
        Self::Identity,
        Self::Audit,
        Self::Webhook,
        Self::Anomaly,
        Self::Leak,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Ratelimit => "ratelimit",
            Self::Rbac => "rbac",
            Self::Identity => "identity",
            Self::Audit => "audit",
            Self::Webhook => "webhook",
            Self::Anomaly => "anomaly",
            Self::Leak => "leak",
        }
    }

    /// The actions a permission on this resource may name.
    pub const fn actions(self) -> &'static [&'static str] {
        match self {
            Self::Api => &[
                "read_api",
                "create_api",
                "delete_api",
                "update_api",
                "create_key",
                "update_key",
                "delete_key",
                "encrypt_key",
                "decrypt_key",
                "read_key",
                "verify_key",
                "read_analytics",
            ],
            Self::Ratelimit => &[
                "limit",
                "create_namespace",
                "read_namespace",
                "update_namespace",
                "delete_namespace",
                "set_override",
                "read_override",
                "delete_override",
                "list_overrides",
            ],
            Self::Rbac => &[
                "create_permission",
                "update_permission",
                "delete_permission",
                "read_permission",
                "create_role",
                "update_role",
                "delete_role",
                "read_role",
                "add_permission_to_key",
                "remove_permission_from_key",
                "add_role_to_key",
                "remove_role_from_key",
                "add_permission_to_role",
                "remove_permission_from_role",
            ],
            Self::Identity => &[
                "create_identity",
                "read_identity",
                "update_identity",
                "delete_identity",
            ],
            Self::Audit => &["read_logs"],
            Self::Webhook => &[
                "create_endpoint",
                "read_endpoint",
                "update_endpoint",
                "delete_endpoint",
            ],
            Self::Anomaly => &["read"],
            Self::Leak => &["manage", "report_key", "check_keys"],
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Something a root key may be allowed to do: a resource and one of its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    pub resource: Resource,
    /// Index into `resource.actions()`, so checks compare numbers, not strings.
    action: u8,
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Operation {
    /// The operation `action` on `resource`. In a `const` an unknown action fails the build.
    pub const fn new(resource: Resource, action: &str) -> Self {
        let actions = resource.actions();
        let mut i = 0;
        while i < actions.len() {
            if str_eq(actions[i], action) {
                return Self {
                    resource,
                    action: i as u8,
                };
            }
            i += 1;
        }
        panic!("unknown action for this resource");
    }

    pub fn action(self) -> &'static str {
        self.resource.actions()[usize::from(self.action)]
    }

    /// The wildcard permission that grants this operation everywhere.
    pub fn wildcard_permission(self) -> String {
        format!("{}.*.{}", self.resource.as_str(), self.action())
    }

    /// The permission that grants this operation on one target.
    pub fn permission_for(self, target: &str) -> String {
        format!("{}.{}.{}", self.resource.as_str(), target, self.action())
    }

    fn bit(self) -> u32 {
        1 << self.action
    }
}

/// The operations endpoints check.
pub mod ops {
    use super::{Operation, Resource};

    pub const CREATE_API: Operation = Operation::new(Resource::Api, "create_api");
    pub const READ_API: Operation = Operation::new(Resource::Api, "read_api");
    pub const DELETE_API: Operation = Operation::new(Resource::Api, "delete_api");
    pub const UPDATE_API: Operation = Operation::new(Resource::Api, "update_api");
    pub const CREATE_KEY: Operation = Operation::new(Resource::Api, "create_key");
    pub const READ_KEY: Operation = Operation::new(Resource::Api, "read_key");
    pub const UPDATE_KEY: Operation = Operation::new(Resource::Api, "update_key");
    pub const DELETE_KEY: Operation = Operation::new(Resource::Api, "delete_key");
    pub const VERIFY_KEY: Operation = Operation::new(Resource::Api, "verify_key");
    pub const ENCRYPT_KEY: Operation = Operation::new(Resource::Api, "encrypt_key");
    pub const DECRYPT_KEY: Operation = Operation::new(Resource::Api, "decrypt_key");
    pub const READ_ANALYTICS: Operation = Operation::new(Resource::Api, "read_analytics");

    pub const CREATE_IDENTITY: Operation = Operation::new(Resource::Identity, "create_identity");
    pub const READ_IDENTITY: Operation = Operation::new(Resource::Identity, "read_identity");
    pub const UPDATE_IDENTITY: Operation = Operation::new(Resource::Identity, "update_identity");
    pub const DELETE_IDENTITY: Operation = Operation::new(Resource::Identity, "delete_identity");

    pub const READ_AUDIT_LOGS: Operation = Operation::new(Resource::Audit, "read_logs");

    pub const CREATE_WEBHOOK_ENDPOINT: Operation =
        Operation::new(Resource::Webhook, "create_endpoint");
    pub const READ_WEBHOOK_ENDPOINT: Operation = Operation::new(Resource::Webhook, "read_endpoint");
    pub const UPDATE_WEBHOOK_ENDPOINT: Operation =
        Operation::new(Resource::Webhook, "update_endpoint");
    pub const DELETE_WEBHOOK_ENDPOINT: Operation =
        Operation::new(Resource::Webhook, "delete_endpoint");

    pub const READ_ANOMALIES: Operation = Operation::new(Resource::Anomaly, "read");

    pub const MANAGE_LEAKS: Operation = Operation::new(Resource::Leak, "manage");
    pub const REPORT_LEAKED_KEY: Operation = Operation::new(Resource::Leak, "report_key");
    pub const CHECK_KEYS: Operation = Operation::new(Resource::Leak, "check_keys");

    pub const LIMIT: Operation = Operation::new(Resource::Ratelimit, "limit");
    pub const CREATE_NAMESPACE: Operation = Operation::new(Resource::Ratelimit, "create_namespace");
    pub const SET_OVERRIDE: Operation = Operation::new(Resource::Ratelimit, "set_override");
    pub const READ_OVERRIDE: Operation = Operation::new(Resource::Ratelimit, "read_override");
    pub const DELETE_OVERRIDE: Operation = Operation::new(Resource::Ratelimit, "delete_override");

    pub const CREATE_PERMISSION: Operation = Operation::new(Resource::Rbac, "create_permission");
    pub const READ_PERMISSION: Operation = Operation::new(Resource::Rbac, "read_permission");
    pub const UPDATE_PERMISSION: Operation = Operation::new(Resource::Rbac, "update_permission");
    pub const DELETE_PERMISSION: Operation = Operation::new(Resource::Rbac, "delete_permission");
    pub const UPDATE_ROLE: Operation = Operation::new(Resource::Rbac, "update_role");
    pub const CREATE_ROLE: Operation = Operation::new(Resource::Rbac, "create_role");
    pub const READ_ROLE: Operation = Operation::new(Resource::Rbac, "read_role");
    pub const DELETE_ROLE: Operation = Operation::new(Resource::Rbac, "delete_role");
    pub const ADD_PERMISSION_TO_ROLE: Operation =
        Operation::new(Resource::Rbac, "add_permission_to_role");
    pub const REMOVE_PERMISSION_FROM_ROLE: Operation =
        Operation::new(Resource::Rbac, "remove_permission_from_role");
    pub const ADD_PERMISSION_TO_KEY: Operation =
        Operation::new(Resource::Rbac, "add_permission_to_key");
    pub const REMOVE_PERMISSION_FROM_KEY: Operation =
        Operation::new(Resource::Rbac, "remove_permission_from_key");
    pub const ADD_ROLE_TO_KEY: Operation = Operation::new(Resource::Rbac, "add_role_to_key");
    pub const REMOVE_ROLE_FROM_KEY: Operation =
        Operation::new(Resource::Rbac, "remove_role_from_key");
}

/// Which objects a permission covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `*`: every object of the resource in the workspace.
    Any,
    /// One object, by id.
    Only(String),
}

/// One parsed permission, e.g. `api.*.create_key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RootPermission {
    operation: Operation,
    scope: Scope,
}

/// Why a string is not a root-key permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionParseError {
    #[error("'{0}' is not of the form <resource>.<id or *>.<action>")]
    Shape(String),
    #[error("'{0}' names an unknown resource; expected one of api, ratelimit, rbac, identity")]
    Resource(String),
    #[error("'{permission}' names an unknown action; {resource} actions are: {known}")]
    Action {
        permission: String,
        resource: &'static str,
        known: String,
    },
}

impl FromStr for RootPermission {
    type Err = PermissionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || PermissionParseError::Shape(s.to_owned());
        let (resource, rest) = s.split_once('.').ok_or_else(shape)?;
        let (target, action) = rest.rsplit_once('.').ok_or_else(shape)?;
        let resource = Resource::parse(resource)
            .ok_or_else(|| PermissionParseError::Resource(s.to_owned()))?;
        let scope = match target {
            "*" => Scope::Any,
            id if !id.is_empty()
                && id.len() <= 255
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Scope::Only(id.to_owned())
            }
            _ => return Err(shape()),
        };
        let action = resource
            .actions()
            .iter()
            .position(|a| *a == action)
            .ok_or_else(|| PermissionParseError::Action {
                permission: s.to_owned(),
                resource: resource.as_str(),
                known: resource.actions().join(", "),
            })?;
        Ok(Self {
            operation: Operation {
                resource,
                action: u8::try_from(action).expect("fewer than 256 actions"),
            },
            scope,
        })
    }
}

impl fmt::Display for RootPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.scope {
            Scope::Any => "*",
            Scope::Only(id) => id,
        };
        write!(
            f,
            "{}.{}.{}",
            self.operation.resource.as_str(),
            target,
            self.operation.action()
        )
    }
}

/// The answer to "may this root key do that?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// The key holds this operation for other objects only: answer as if the object did not
    /// exist.
    OtherTargetsOnly,
    /// The key does not hold this operation anywhere.
    Denied,
}

/// The permissions of one root key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootPermissions {
    /// Every permission, sorted, for display and storage.
    listed: Vec<RootPermission>,
    /// Per resource, a bit per action held with scope `*`: the common case, checked in O(1).
    everywhere: [u32; Resource::ALL.len()],
    /// Permissions scoped to one object, scanned only when no wildcard grants the operation.
    scoped: Vec<(Operation, String)>,
}

impl RootPermissions {
    pub fn new(permissions: Vec<RootPermission>) -> Self {
        let mut listed = permissions;
        listed.sort_by_key(ToString::to_string);
        listed.dedup();
        let mut everywhere = [0u32; Resource::ALL.len()];
        let mut scoped = Vec::new();
        for p in &listed {
            match &p.scope {
                Scope::Any => everywhere[p.operation.resource as usize] |= p.operation.bit(),
                Scope::Only(id) => scoped.push((p.operation, id.clone())),
            }
        }
        Self {
            listed,
            everywhere,
            scoped,
        }
    }

    /// Every operation on every object: what the bootstrap root key holds.
    pub fn everything() -> Self {
        Self::new(
            Resource::ALL
                .into_iter()
                .flat_map(|resource| {
                    (0..resource.actions().len()).map(move |action| RootPermission {
                        operation: Operation {
                            resource,
                            action: u8::try_from(action).expect("fewer than 256 actions"),
                        },
                        scope: Scope::Any,
                    })
                })
                .collect(),
        )
    }

    /// Parses a list of permission strings, failing on the first invalid one.
    pub fn parse_all<S: AsRef<str>>(items: &[S]) -> Result<Self, PermissionParseError> {
        let parsed = items
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(parsed))
    }

    /// Whether `op` is allowed on `target` (an object id), or workspace-wide when `None`.
    pub fn access(&self, op: Operation, target: Option<&str>) -> Access {
        if self.everywhere[op.resource as usize] & op.bit() != 0 {
            return Access::Granted;
        }
        let mut elsewhere = false;
        for (_, id) in self.scoped.iter().filter(|(held, _)| *held == op) {
            if target == Some(id.as_str()) {
                return Access::Granted;
            }
            elsewhere = true;
        }
        if elsewhere {
            Access::OtherTargetsOnly
        } else {
            Access::Denied
        }
    }

    /// The objects `op` is granted on one by one (`<resource>.<id>.<action>`), in order;
    /// meaningful when [`RootPermissions::access`] says `OtherTargetsOnly`.
    pub fn targets(&self, op: Operation) -> Vec<&str> {
        self.scoped
            .iter()
            .filter(|(held, _)| *held == op)
            .map(|(_, id)| id.as_str())
            .collect()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.listed.iter().map(ToString::to_string).collect()
    }

    /// The first of `other`'s permissions that these do not grant, if any: a root key may
    /// hand out or manage only what it holds itself.
    pub fn first_not_covering(&self, other: &RootPermissions) -> Option<String> {
        other
            .listed
            .iter()
            .find(|p| {
                let target = match &p.scope {
                    Scope::Any => None,
                    Scope::Only(id) => Some(id.as_str()),
                };
                self.access(p.operation, target) != Access::Granted
            })
            .map(ToString::to_string)
    }
}

/// A stored root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKey {
    pub id: RootKeyId,
    pub workspace_id: WorkspaceId,
    pub digest: KeyDigest,
    pub start: String,
    /// The last characters of the secret, to tell keys apart in listings.
    pub end: String,
    pub name: Option<Label>,
    pub permissions: RootPermissions,
    /// After this the key no longer authenticates.
    pub expires: Option<UnixMillis>,
    /// A disabled key does not authenticate until enabled again.
    pub enabled: bool,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

impl RootKey {
    /// Whether the key authenticates at `now`: not revoked, enabled, not expired.
    pub fn is_usable(&self, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && self.enabled && self.expires.is_none_or(|e| now <= e)
    }
}

/// A change through `rootKeys.updateKey`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootKeyUpdate {
    /// `Some(None)` removes the name.
    pub name: Option<Option<Label>>,
    pub enabled: Option<bool>,
    pub permissions: Option<RootPermissions>,
}

impl RootKey {
    pub fn apply_update(&mut self, update: RootKeyUpdate) {
        if let Some(name) = update.name {
            self.name = name;
        }
        if let Some(enabled) = update.enabled {
            self.enabled = enabled;
        }
        if let Some(permissions) = update.permissions {
            self.permissions = permissions;
        }
    }
}

/// The last four characters of a root key's secret, shown in listings as `end`.
pub fn end_of(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// Generates a root key secret: `kw_root_…` with 32 random bytes.
pub fn generate_root_key() -> IssuedKey {
    let prefix = KeyPrefix::parse(ROOT_KEY_PREFIX).expect("the root key prefix is valid");
    let len = ByteLength::new(32).expect("32 is a valid byte length");
    crate::key_format::generate(Some(&prefix), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "api.*.create_key",
            "api.api_123.verify_key",
            "identity.*.read_identity",
        ] {
            let p: RootPermission = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn targets_lists_the_objects_an_operation_is_scoped_to() {
        let p = RootPermissions::parse_all(&[
            "api.api_b.read_analytics",
            "api.api_a.read_analytics",
            "api.api_c.read_key",
        ])
        .unwrap();
        assert_eq!(p.targets(ops::READ_ANALYTICS), ["api_a", "api_b"]);
        assert_eq!(
            p.access(ops::READ_ANALYTICS, None),
            Access::OtherTargetsOnly
        );
        assert!(p.targets(ops::VERIFY_KEY).is_empty());
    }

    #[test]
    fn parse_rejects_unknown_parts() {
        assert!(matches!(
            "api.*".parse::<RootPermission>(),
            Err(PermissionParseError::Shape(_))
        ));
        assert!(matches!(
            "apis.*.create_key".parse::<RootPermission>(),
            Err(PermissionParseError::Resource(_))
        ));
        assert!(matches!(
            "api.*.create_keys".parse::<RootPermission>(),
            Err(PermissionParseError::Action { .. })
        ));
        assert!(matches!(
            "api.a-b.create_key".parse::<RootPermission>(),
            Err(PermissionParseError::Shape(_))
        ));
    }

    #[test]
    fn access_distinguishes_denied_from_other_targets() {
        let perms =
            RootPermissions::parse_all(&["api.api_a.read_key", "api.*.create_key"]).unwrap();
        assert_eq!(
            perms.access(ops::CREATE_KEY, Some("api_b")),
            Access::Granted
        );
        assert_eq!(perms.access(ops::READ_KEY, Some("api_a")), Access::Granted);
        assert_eq!(
            perms.access(ops::READ_KEY, Some("api_b")),
            Access::OtherTargetsOnly
        );
        assert_eq!(perms.access(ops::DELETE_KEY, Some("api_a")), Access::Denied);
        assert_eq!(perms.access(ops::READ_KEY, None), Access::OtherTargetsOnly);
    }

    #[test]
    fn everything_grants_every_operation() {
        let all = RootPermissions::everything();
        for resource in Resource::ALL {
            for &action in resource.actions() {
                let op = Operation::new(resource, action);
                assert_eq!(all.access(op, Some("x")), Access::Granted);
                assert_eq!(all.access(op, None), Access::Granted);
            }
        }
    }

    #[test]
    fn generated_root_keys_are_recognisable() {
        let k = generate_root_key();
        assert!(k.plaintext.expose().starts_with("kw_root_"));
        assert!(crate::key_format::has_valid_checksum(k.plaintext.expose()));
    }
}
