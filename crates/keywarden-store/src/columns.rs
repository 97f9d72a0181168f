//! Records in their stored form: the column values every SQL backend writes and reads back,
//! and the conversions between them and domain records. Backends differ only in how they
//! bind and fetch these values, so a record reads back the same from any of them.
//!
//! A stored value that does not convert (hand-edited or corrupt data) is a [`ColumnError`]
//! naming the column, which backends surface as a backend failure rather than a wrong answer.

use keywarden_core::api::Api;
use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{
    ApiId, DataKeyId, IdentityId, KeyId, NamespaceId, OverrideId, PermissionId, RoleId, RootKeyId,
    WorkspaceId,
};
use keywarden_core::identity::{ExternalId, Identity};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
use keywarden_core::key_lifetime::{KeyLifetime, Lifetime};
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::{decode_limits, encode_limits};
use keywarden_core::namespace::{Identifier, Namespace, NamespaceName, RateOverride};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::rbac::{Permission, PermissionSlug, Role, RoleName};
use keywarden_core::restriction::{IpNetwork, OriginPattern, Restrictions};
use keywarden_core::root_key::{RootKey, RootPermissions};
use keywarden_core::store::PageRequest;
use keywarden_core::text::{ApiName, KeyName, Label};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::VerificationRollup;
use keywarden_core::vault::SealedKey;
use keywarden_core::verify::VerifyCode;
use keywarden_core::workspace::Workspace;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A stored value that is not a valid value of its domain type.
#[derive(Debug, thiserror::Error)]
#[error("invalid value in column {column}")]
pub struct ColumnError {
    column: &'static str,
    #[source]
    cause: Cause,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Invalid(pub(crate) &'static str);

/// Turns a parse error of `column` into a [`ColumnError`].
pub(crate) fn at<E: std::error::Error + Send + Sync + 'static>(
    column: &'static str,
) -> impl FnOnce(E) -> ColumnError {
    move |e| ColumnError {
        column,
        cause: Box::new(e),
    }
}

/// Why a record could not be put in its stored form.
#[derive(Debug, thiserror::Error)]
#[error("could not encode metadata")]
pub struct EncodeError(#[from] serde_json::Error);

/// How many rows to read for a page: one more than it holds, to tell whether another follows.
pub fn page_fetch(page: &PageRequest) -> i64 {
    i64::try_from(page.limit.saturating_add(1)).unwrap_or(i64::MAX)
}

fn millis(v: Option<i64>) -> Option<UnixMillis> {
    v.map(UnixMillis::from_millis)
}

fn encode_meta(meta: Option<&Meta>) -> Result<Option<String>, EncodeError> {
    Ok(meta.map(serde_json::to_string).transpose()?)
}

fn decode_meta(column: &'static str, meta: Option<&str>) -> Result<Option<Meta>, ColumnError> {
    meta.map(serde_json::from_str::<Meta>)
        .transpose()
        .map_err(at(column))
}

/// Restrictions as a JSON object `{"allowedIps": [...], "allowedOrigins": [...]}`, each entry
/// in its canonical text form.
fn encode_restrictions(r: Option<&Restrictions>) -> Option<String> {
    r.map(|r| r.to_json().to_string())
}

fn decode_restrictions(
    column: &'static str,
    stored: Option<&str>,
) -> Result<Option<Restrictions>, ColumnError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stored).map_err(at(column))?;
    let list = |name: &str| -> Result<Vec<String>, ColumnError> {
        match parsed.get(name) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(at(column)),
        }
    };
    let ips = list("allowedIps")?
        .iter()
        .map(|s| IpNetwork::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(at(column))?;
    let origins = list("allowedOrigins")?
        .iter()
        .map(|s| OriginPattern::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(at(column))?;
    Restrictions::new(ips, origins).map_err(at(column))
}

fn lifetime(column: &'static str, ms: Option<i64>) -> Result<Option<Lifetime>, ColumnError> {
    ms.map(|ms| {
        Lifetime::from_millis(ms).ok_or_else(|| at(column)(Invalid("lifetime out of range")))
    })
    .transpose()
}

fn byte_length(column: &'static str, n: i64) -> Result<ByteLength, ColumnError> {
    ByteLength::new(n).ok_or_else(|| at(column)(Invalid("byte length out of range")))
}

/// A key's balance: `remaining` is `None` for unlimited usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredits {
    pub remaining: Option<i64>,
    /// `daily` or `monthly`; `None` without a refill.
    pub interval: Option<String>,
    pub amount: Option<i64>,
    pub day: Option<i64>,
    pub last_refill_at: Option<i64>,
}

impl StoredCredits {
    pub fn of(credits: Option<Credits>) -> Self {
        let refill = credits.and_then(|c| c.refill());
        let (interval, day) = match refill.map(|r| r.schedule()) {
            None => (None, None),
            Some(RefillSchedule::Daily) => (Some("daily"), None),
            Some(RefillSchedule::Monthly { day }) => (Some("monthly"), Some(i64::from(day))),
        };
        Self {
            remaining: credits.map(|c| c.remaining()),
            interval: interval.map(str::to_owned),
            amount: refill.map(|r| r.amount()),
            day,
            last_refill_at: credits.map(|c| c.last_refill_at().as_millis()),
        }
    }

    /// The balance; a key never refilled counts its creation as the last refill.
    pub fn into_credits(self, created_at: UnixMillis) -> Result<Option<Credits>, ColumnError> {
        let refill = self
            .interval
            .as_deref()
            .map(|interval| {
                CreditRefill::from_wire(interval == "monthly", self.amount.unwrap_or(0), self.day)
            })
            .transpose()
            .map_err(at("refill_interval"))?;
        let last_refill_at = millis(self.last_refill_at).unwrap_or(created_at);
        Ok(self
            .remaining
            .map(|r| Credits::from_stored(r, refill, last_refill_at)))
    }
}

/// A row of `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    pub id: String,
    pub workspace_id: String,
    pub external_id: String,
    pub meta: Option<String>,
    pub ratelimits: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl StoredIdentity {
    pub fn of(identity: &Identity) -> Result<Self, EncodeError> {
        Ok(Self {
            id: identity.id.to_string(),
            workspace_id: identity.workspace_id.to_string(),
            external_id: identity.external_id.as_str().to_owned(),
            meta: encode_meta(identity.meta.as_ref())?,
            ratelimits: encode_limits(&identity.ratelimits),
            created_at: identity.created_at.as_millis(),
            updated_at: identity.updated_at.map(UnixMillis::as_millis),
        })
    }

    pub fn into_identity(self) -> Result<Identity, ColumnError> {
        Ok(Identity {
            id: IdentityId::parse(&self.id).map_err(at("identities.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("identities.workspace_id"))?,
            external_id: ExternalId::parse(&self.external_id)
                .map_err(at("identities.external_id"))?,
            meta: decode_meta("identities.meta", self.meta.as_deref())?,
            ratelimits: decode_limits(self.ratelimits.as_deref())
                .map_err(at("identities.ratelimits"))?,
            created_at: UnixMillis::from_millis(self.created_at),
            updated_at: millis(self.updated_at),
        })
    }
}

/// A row of `keys`. What the key holds (permissions, roles) lives in link tables, and its
/// identity in `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub workspace_id: String,
    pub api_id: String,
    pub hash: String,
    pub start: String,
    pub prefix: Option<String>,
    pub byte_length: i64,
    pub name: Option<String>,
    pub meta: Option<String>,
    pub enabled: bool,
    pub expires: Option<i64>,
    pub credits: StoredCredits,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub identity_id: Option<String>,
    pub ratelimits: Option<String>,
    /// Written only by usage recording, never by key writes.
    pub last_used_at: Option<i64>,
    /// Written only by rotation, on the replaced key.
    pub replaced_at: Option<i64>,
    pub rotated_to: Option<String>,
    /// For recoverable keys: the data key that sealed the plaintext, and the sealed
    /// plaintext (nonce, ciphertext and tag) in standard base64.
    pub encryption_key_id: Option<String>,
    pub encrypted: Option<String>,
    pub restrictions: Option<String>,
    /// Read from the key's API; never written with the key.
    pub api_restrictions: Option<String>,
}

impl StoredKey {
    pub fn of(key: &KeyRecord) -> Result<Self, EncodeError> {
        Ok(Self {
            id: key.id.to_string(),
            workspace_id: key.workspace_id.to_string(),
            api_id: key.api_id.to_string(),
            hash: key.digest.to_base64(),
            start: key.start.clone(),
            prefix: key.prefix.as_ref().map(|p| p.as_str().to_owned()),
            byte_length: i64::from(key.byte_length.get()),
            name: key.name.as_ref().map(|n| n.as_str().to_owned()),
            meta: encode_meta(key.meta.as_ref())?,
            enabled: key.enabled,
            expires: key.expires.map(UnixMillis::as_millis),
            credits: StoredCredits::of(key.credits),
            created_at: key.created_at.as_millis(),
            updated_at: key.updated_at.map(UnixMillis::as_millis),
            deleted_at: key.deleted_at.map(UnixMillis::as_millis),
            identity_id: key.identity.as_ref().map(|i| i.id.to_string()),
            ratelimits: encode_limits(&key.ratelimits),
            last_used_at: key.last_used.map(UnixMillis::as_millis),
            replaced_at: key.replaced_at.map(UnixMillis::as_millis),
            rotated_to: key.rotated_to.as_ref().map(|k| k.to_string()),
            encryption_key_id: key.sealed.as_ref().map(|s| s.data_key_id.to_string()),
            encrypted: key.sealed.as_ref().map(SealedKey::ciphertext_base64),
            restrictions: encode_restrictions(key.restrictions.as_ref()),
            api_restrictions: encode_restrictions(key.api_restrictions.as_ref()),
        })
    }

    /// The key with `identity` (read with it); its permissions and roles are left empty for
    /// the caller, which reads the link tables.
    pub fn into_record(self, identity: Option<Identity>) -> Result<KeyRecord, ColumnError> {
        let created_at = UnixMillis::from_millis(self.created_at);
        Ok(KeyRecord {
            id: KeyId::parse(&self.id).map_err(at("keys.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("keys.workspace_id"))?,
            api_id: ApiId::parse(&self.api_id).map_err(at("keys.api_id"))?,
            digest: KeyDigest::from_base64(&self.hash).map_err(at("keys.hash"))?,
            start: self.start,
            prefix: self
                .prefix
                .as_deref()
                .map(KeyPrefix::parse)
                .transpose()
                .map_err(at("keys.prefix"))?,
            byte_length: byte_length("keys.byte_length", self.byte_length)?,
            name: self
                .name
                .as_deref()
                .map(KeyName::parse)
                .transpose()
                .map_err(at("keys.name"))?,
            meta: decode_meta("keys.meta", self.meta.as_deref())?,
            enabled: self.enabled,
            expires: millis(self.expires),
            credits: self.credits.into_credits(created_at)?,
            identity,
            ratelimits: decode_limits(self.ratelimits.as_deref()).map_err(at("keys.ratelimits"))?,
            permissions: Vec::new(),
            roles: Vec::new(),
            created_at,
            updated_at: millis(self.updated_at),
            deleted_at: millis(self.deleted_at),
            last_used: millis(self.last_used_at),
            rotated_to: self
                .rotated_to
                .as_deref()
                .map(KeyId::parse)
                .transpose()
                .map_err(at("keys.rotated_to"))?,
            replaced_at: millis(self.replaced_at),
            sealed: sealed(self.encryption_key_id.as_deref(), self.encrypted.as_deref())?,
            restrictions: decode_restrictions("keys.restrictions", self.restrictions.as_deref())?,
            api_restrictions: decode_restrictions(
                "apis.restrictions",
                self.api_restrictions.as_deref(),
            )?,
        })
    }
}

/// A recoverable key's sealed plaintext from its two columns; both or neither are set.
fn sealed(
    data_key_id: Option<&str>,
    encrypted: Option<&str>,
) -> Result<Option<SealedKey>, ColumnError> {
    match (data_key_id, encrypted) {
        (None, None) => Ok(None),
        (Some(id), Some(encrypted)) => {
            let id = DataKeyId::parse(id).map_err(at("keys.encryption_key_id"))?;
            SealedKey::from_stored(id, encrypted)
                .map(Some)
                .ok_or_else(|| at("keys.encrypted")(Invalid("not a sealed key")))
        }
        _ => Err(at("keys.encrypted")(Invalid(
            "encrypted and encryption_key_id must be set together",
        ))),
    }
}

/// A row of `root_keys`; `permissions` is a JSON array of permission strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRootKey {
    pub id: String,
    pub workspace_id: String,
    pub hash: String,
    pub start: String,
    pub name: Option<String>,
    pub permissions: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub end: String,
    pub expires: Option<i64>,
    pub enabled: bool,
}

impl StoredRootKey {
    pub fn of(key: &RootKey) -> Result<Self, EncodeError> {
        Ok(Self {
            id: key.id.to_string(),
            workspace_id: key.workspace_id.to_string(),
            hash: key.digest.to_base64(),
            start: key.start.clone(),
            name: key.name.as_ref().map(|n| n.as_str().to_owned()),
            permissions: serde_json::to_string(&key.permissions.to_strings())?,
            created_at: key.created_at.as_millis(),
            revoked_at: key.revoked_at.map(UnixMillis::as_millis),
            end: key.end.clone(),
            expires: key.expires.map(UnixMillis::as_millis),
            enabled: key.enabled,
        })
    }

    pub fn into_root_key(self) -> Result<RootKey, ColumnError> {
        let permissions: Vec<String> =
            serde_json::from_str(&self.permissions).map_err(at("root_keys.permissions"))?;
        Ok(RootKey {
            id: RootKeyId::parse(&self.id).map_err(at("root_keys.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("root_keys.workspace_id"))?,
            digest: KeyDigest::from_base64(&self.hash).map_err(at("root_keys.hash"))?,
            start: self.start,
            end: self.end,
            name: self
                .name
                .as_deref()
                .map(Label::parse)
                .transpose()
                .map_err(at("root_keys.name"))?,
            permissions: RootPermissions::parse_all(&permissions)
                .map_err(at("root_keys.permissions"))?,
            expires: millis(self.expires),
            enabled: self.enabled,
            created_at: UnixMillis::from_millis(self.created_at),
            revoked_at: millis(self.revoked_at),
        })
    }
}

/// A row of `apis`, without its deletion time (deleted APIs are never read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApi {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub default_prefix: Option<String>,
    pub default_byte_length: i64,
    pub delete_protection: bool,
    pub created_at: i64,
    pub restrictions: Option<String>,
    pub default_key_lifetime_ms: Option<i64>,
    pub max_key_lifetime_ms: Option<i64>,
}

impl StoredApi {
    pub fn of(api: &Api) -> Self {
        Self {
            id: api.id.to_string(),
            workspace_id: api.workspace_id.to_string(),
            name: api.name.as_str().to_owned(),
            default_prefix: api.default_prefix.as_ref().map(|p| p.as_str().to_owned()),
            default_byte_length: i64::from(api.default_byte_length.get()),
            delete_protection: api.delete_protection,
            created_at: api.created_at.as_millis(),
            restrictions: encode_restrictions(api.restrictions.as_ref()),
            default_key_lifetime_ms: api.key_lifetime.default_lifetime().map(Lifetime::as_millis),
            max_key_lifetime_ms: api.key_lifetime.max_lifetime().map(Lifetime::as_millis),
        }
    }

    pub fn into_api(self) -> Result<Api, ColumnError> {
        Ok(Api {
            id: ApiId::parse(&self.id).map_err(at("apis.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("apis.workspace_id"))?,
            name: ApiName::parse(&self.name).map_err(at("apis.name"))?,
            default_prefix: self
                .default_prefix
                .as_deref()
                .map(KeyPrefix::parse)
                .transpose()
                .map_err(at("apis.default_prefix"))?,
            default_byte_length: byte_length("apis.default_byte_length", self.default_byte_length)?,
            delete_protection: self.delete_protection,
            created_at: UnixMillis::from_millis(self.created_at),
            restrictions: decode_restrictions("apis.restrictions", self.restrictions.as_deref())?,
            key_lifetime: KeyLifetime::new(
                lifetime("apis.default_key_lifetime_ms", self.default_key_lifetime_ms)?,
                lifetime("apis.max_key_lifetime_ms", self.max_key_lifetime_ms)?,
            )
            .map_err(at("apis.max_key_lifetime_ms"))?,
        })
    }
}

/// A row of `workspaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorkspace {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl StoredWorkspace {
    pub fn into_workspace(self) -> Result<Workspace, ColumnError> {
        Ok(Workspace {
            id: WorkspaceId::parse(&self.id).map_err(at("workspaces.id"))?,
            name: Label::parse(&self.name).map_err(at("workspaces.name"))?,
            created_at: UnixMillis::from_millis(self.created_at),
        })
    }
}

/// A row of `ratelimit_namespaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNamespace {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub created_at: i64,
}

impl StoredNamespace {
    pub fn into_namespace(self) -> Result<Namespace, ColumnError> {
        Ok(Namespace {
            id: NamespaceId::parse(&self.id).map_err(at("ratelimit_namespaces.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("ratelimit_namespaces.workspace_id"))?,
            name: NamespaceName::parse(&self.name).map_err(at("ratelimit_namespaces.name"))?,
            created_at: UnixMillis::from_millis(self.created_at),
        })
    }
}

/// A row of `ratelimit_overrides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOverride {
    pub id: String,
    pub workspace_id: String,
    pub namespace_id: String,
    pub identifier: String,
    pub limit: i64,
    pub duration: i64,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl StoredOverride {
    pub fn of(o: &RateOverride) -> Self {
        Self {
            id: o.id.to_string(),
            workspace_id: o.workspace_id.to_string(),
            namespace_id: o.namespace_id.to_string(),
            identifier: o.identifier.as_str().to_owned(),
            limit: i64::try_from(o.limit).unwrap_or(i64::MAX),
            duration: i64::try_from(o.duration.as_millis()).unwrap_or(i64::MAX),
            created_at: o.created_at.as_millis(),
            updated_at: o.updated_at.map(UnixMillis::as_millis),
        }
    }

    pub fn into_override(self) -> Result<RateOverride, ColumnError> {
        Ok(RateOverride {
            id: OverrideId::parse(&self.id).map_err(at("ratelimit_overrides.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("ratelimit_overrides.workspace_id"))?,
            namespace_id: NamespaceId::parse(&self.namespace_id)
                .map_err(at("ratelimit_overrides.namespace_id"))?,
            identifier: Identifier::from_string(self.identifier)
                .map_err(at("ratelimit_overrides.identifier"))?,
            limit: u64::try_from(self.limit).map_err(at("ratelimit_overrides.limit"))?,
            duration: WindowDuration::from_millis(self.duration)
                .map_err(at("ratelimit_overrides.duration"))?,
            created_at: UnixMillis::from_millis(self.created_at),
            updated_at: millis(self.updated_at),
        })
    }
}

/// A row of `permissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPermission {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_at: i64,
}

impl StoredPermission {
    pub fn of(p: &Permission) -> Self {
        Self {
            id: p.id.to_string(),
            workspace_id: p.workspace_id.to_string(),
            name: p.name.clone(),
            slug: p.slug.as_str().to_owned(),
            description: p.description.clone(),
            created_at: p.created_at.as_millis(),
        }
    }

    pub fn into_permission(self) -> Result<Permission, ColumnError> {
        Ok(Permission {
            id: PermissionId::parse(&self.id).map_err(at("permissions.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("permissions.workspace_id"))?,
            name: self.name,
            slug: PermissionSlug::parse(&self.slug).map_err(at("permissions.slug"))?,
            description: self.description,
            created_at: UnixMillis::from_millis(self.created_at),
        })
    }
}

/// A row of `roles`; the role's permissions live in `role_permissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRole {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
}

impl StoredRole {
    /// The role without its permissions, which the caller reads from the link table.
    pub fn into_role(self) -> Result<Role, ColumnError> {
        Ok(Role {
            id: RoleId::parse(&self.id).map_err(at("roles.id"))?,
            workspace_id: WorkspaceId::parse(&self.workspace_id)
                .map_err(at("roles.workspace_id"))?,
            name: RoleName::parse(&self.name).map_err(at("roles.name"))?,
            description: self.description,
            permissions: Vec::new(),
            created_at: UnixMillis::from_millis(self.created_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule};
    use keywarden_core::time::UnixMillis;

    use super::StoredCredits;

    const T: UnixMillis = UnixMillis::from_millis(1_795_780_800_000);

    #[test]
    fn credits_round_trip_through_their_columns() {
        for credits in [
            None,
            Some(Credits::new(5, None, T).unwrap()),
            Some(
                Credits::new(
                    3,
                    Some(CreditRefill::new(RefillSchedule::Daily, 10).unwrap()),
                    T,
                )
                .unwrap(),
            ),
            Some(
                Credits::new(
                    0,
                    Some(CreditRefill::new(RefillSchedule::Monthly { day: 31 }, 7).unwrap()),
                    T.plus_millis(9),
                )
                .unwrap(),
            ),
        ] {
            let back = StoredCredits::of(credits).into_credits(T).unwrap();
            assert_eq!(back, credits);
        }
    }

    #[test]
    fn an_unknown_refill_rule_is_a_column_error() {
        let stored = StoredCredits {
            remaining: Some(1),
            interval: Some("monthly".into()),
            amount: Some(5),
            day: Some(40),
            last_refill_at: None,
        };
        let e = stored.into_credits(T).unwrap_err();
        assert_eq!(e.to_string(), "invalid value in column refill_interval");
    }
}

/// A row of an `analytics_verifications_per_*` table, without its workspace (reads are per
/// workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRollup {
    pub time: i64,
    pub key_space_id: String,
    pub identity_id: Option<String>,
    pub external_id: Option<String>,
    pub key_id: String,
    pub outcome: String,
    pub tags: String,
    pub count: i64,
    pub spent_credits: i64,
}

impl StoredRollup {
    pub fn into_rollup(self) -> Result<VerificationRollup, ColumnError> {
        Ok(VerificationRollup {
            bucket: UnixMillis::from_millis(self.time),
            api_id: ApiId::parse(&self.key_space_id).map_err(at("rollup.key_space_id"))?,
            key_id: KeyId::parse(&self.key_id).map_err(at("rollup.key_id"))?,
            identity_id: self
                .identity_id
                .as_deref()
                .map(IdentityId::parse)
                .transpose()
                .map_err(at("rollup.identity_id"))?,
            external_id: self
                .external_id
                .as_deref()
                .map(ExternalId::parse)
                .transpose()
                .map_err(at("rollup.external_id"))?,
            outcome: VerifyCode::parse(&self.outcome)
                .ok_or_else(|| at("rollup.outcome")(Invalid("not a verification outcome")))?,
            tags: serde_json::from_str(&self.tags).map_err(at("rollup.tags"))?,
            count: self.count,
            spent_credits: self.spent_credits,
        })
    }
}
