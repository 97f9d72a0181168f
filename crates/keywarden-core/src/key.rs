//! Keys as stored: configuration and state, without the plaintext. And the rules for changing
//! them: partial updates and rotation.

use crate::credits::{CreditRefill, Credits, NegativeCredits};
use crate::digest::KeyDigest;
use crate::id::{ApiId, KeyId, WorkspaceId};
use crate::identity::Identity;
use crate::key_format::{ByteLength, IssuedKey, KeyPrefix};
use crate::meta::Meta;
use crate::named_limit::{LimitSpec, NamedLimit, replace_by_name};
use crate::rbac::{Permission, Role};
use crate::restriction::Restrictions;
use crate::text::KeyName;
use crate::time::UnixMillis;
use crate::vault::SealedKey;

/// The latest expiry or grace period the wire accepts: 2100-01-01T00:00:00Z.
pub const MAX_EXPIRES: i64 = 4_102_444_800_000;

/// A stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub workspace_id: WorkspaceId,
    pub api_id: ApiId,
    pub digest: KeyDigest,
    /// Display start: prefix and first characters, never enough to use the key.
    pub start: String,
    /// Kept so a rotation issues a key of the same shape. `None` for imported keys.
    pub prefix: Option<KeyPrefix>,
    pub byte_length: ByteLength,
    pub name: Option<KeyName>,
    pub meta: Option<Meta>,
    pub enabled: bool,
    pub expires: Option<UnixMillis>,
    /// `None` means unlimited usage.
    pub credits: Option<Credits>,
    /// The identity the key belongs to, as it was when the key was read.
    pub identity: Option<Identity>,
    /// The key's own named limits; its identity's are in `identity`.
    pub ratelimits: Vec<NamedLimit>,
    /// Permissions held directly, ordered by slug.
    pub permissions: Vec<Permission>,
    /// Roles held, ordered by name, each with its permissions.
    pub roles: Vec<Role>,
    pub created_at: UnixMillis,
    pub updated_at: Option<UnixMillis>,
    pub deleted_at: Option<UnixMillis>,
    /// The latest recorded verification; written only by usage recording, so it lags
    /// verifications by the recorder's flush interval.
    pub last_used: Option<UnixMillis>,
    /// The key a reroll replaced this one with, and when: set only by rotation. A key
    /// presented after its grace ended is then known to be an old copy.
    pub rotated_to: Option<KeyId>,
    pub replaced_at: Option<UnixMillis>,
    /// For a recoverable key, its plaintext encrypted under the workspace's data key (see
    /// [`crate::vault`]); `None` for every other key.
    pub sealed: Option<SealedKey>,
    /// Where the key may be used from.
    pub restrictions: Option<Restrictions>,
    /// The restrictions of the key's API, as they were when the key was read; never written
    /// with the key.
    pub api_restrictions: Option<Restrictions>,
}

/// A field of a partial update: leave it, clear it (`null` on the wire), or set it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// A change to a key's credits through `keys.updateKey`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreditsPatch {
    /// `Clear` makes usage unlimited.
    pub remaining: Patch<i64>,
    pub refill: Patch<CreditRefill>,
}

/// A partial update of a key (`keys.updateKey`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyUpdate {
    pub name: Patch<KeyName>,
    pub meta: Patch<Meta>,
    pub expires: Patch<UnixMillis>,
    /// `Clear` makes usage unlimited and removes any refill.
    pub credits: Patch<CreditsPatch>,
    pub enabled: Option<bool>,
    /// `Set` links the key to an identity (created beforehand if needed); `Clear` unlinks.
    pub identity: Patch<Identity>,
    /// Replaces the key's limits by name.
    pub ratelimits: Option<Vec<LimitSpec>>,
    /// Replaces the directly held permissions (resolved beforehand).
    pub permissions: Option<Vec<Permission>>,
    /// Replaces the roles (resolved beforehand).
    pub roles: Option<Vec<Role>>,
    pub restrictions: Patch<Restrictions>,
}

/// Why an update cannot be applied to a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyUpdateError {
    #[error("a refill needs a credit balance: set credits.remaining as well")]
    RefillWithoutRemaining,
    #[error(transparent)]
    NegativeCredits(#[from] NegativeCredits),
}

impl KeyUpdate {
    /// Whether the update changes nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl KeyRecord {
    /// Applies a partial update. On error the record is unchanged.
    pub fn apply_update(
        &mut self,
        update: KeyUpdate,
        now: UnixMillis,
    ) -> Result<(), KeyUpdateError> {
        let credits = match update.credits {
            Patch::Keep => self.credits,
            Patch::Clear => None,
            Patch::Set(patch) => apply_credits_patch(self.credits, patch, now)?,
        };
        self.credits = credits;
        apply_patch(&mut self.name, update.name);
        apply_patch(&mut self.meta, update.meta);
        apply_patch(&mut self.expires, update.expires);
        apply_patch(&mut self.identity, update.identity);
        apply_patch(&mut self.restrictions, update.restrictions);
        if let Some(limits) = update.ratelimits {
            self.ratelimits = replace_by_name(&self.ratelimits, limits, now);
        }
        if let Some(permissions) = update.permissions {
            self.set_permissions(permissions);
        }
        if let Some(roles) = update.roles {
            self.set_roles(roles);
        }
        if let Some(enabled) = update.enabled {
            self.enabled = enabled;
        }
        self.updated_at = Some(now);
        Ok(())
    }

    /// Every permission slug the key holds, directly or through a role, sorted and without
    /// repeats: what permission queries are checked against.
    pub fn effective_permissions(&self) -> Vec<&str> {
        let mut slugs: Vec<&str> = self
            .permissions
            .iter()
            .chain(self.roles.iter().flat_map(|r| r.permissions.iter()))
            .map(|p| p.slug.as_str())
            .collect();
        slugs.sort_unstable();
        slugs.dedup();
        slugs
    }

    /// Makes `permissions` the directly held set (one entry per slug, ordered by slug).
    pub fn set_permissions(&mut self, mut permissions: Vec<Permission>) {
        permissions.sort_by(|a, b| a.slug.cmp(&b.slug));
        permissions.dedup_by(|a, b| a.slug == b.slug);
        self.permissions = permissions;
    }

    /// Makes `roles` the key's roles (one entry per role, ordered by name).
    pub fn set_roles(&mut self, mut roles: Vec<Role>) {
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles.dedup_by(|a, b| a.id == b.id);
        self.roles = roles;
    }

    /// The key that replaces this one on rotation: a new id and secret (`issued`, made with
    /// `prefix`) with this key's configuration, balance, refill, identity and limits. The
    /// limits get new ids: they belong to the new key and count from zero.
    pub fn rotated(
        &self,
        new_id: KeyId,
        prefix: Option<KeyPrefix>,
        issued: &IssuedKey,
        now: UnixMillis,
    ) -> KeyRecord {
        KeyRecord {
            id: new_id,
            workspace_id: self.workspace_id.clone(),
            api_id: self.api_id.clone(),
            digest: issued.plaintext.digest(),
            start: issued.start.clone(),
            prefix,
            byte_length: self.byte_length,
            name: self.name.clone(),
            meta: self.meta.clone(),
            enabled: self.enabled,
            expires: self.expires,
            credits: self.credits,
            identity: self.identity.clone(),
            permissions: self.permissions.clone(),
            roles: self.roles.clone(),
            ratelimits: replace_by_name(
                &[],
                self.ratelimits
                    .iter()
                    .map(|l| LimitSpec {
                        name: l.name.clone(),
                        limit: l.limit,
                        duration: l.duration,
                        auto_apply: l.auto_apply,
                    })
                    .collect(),
                now,
            ),
            created_at: now,
            updated_at: None,
            deleted_at: None,
            last_used: None,
            rotated_to: None,
            replaced_at: None,
            sealed: None,
            restrictions: self.restrictions.clone(),
            api_restrictions: self.api_restrictions.clone(),
        }
    }
}

/// The old key's expiry after a rotation with `grace` milliseconds: the earlier of the end of
/// the grace period and the expiry it already had, so a rotation never lengthens a key's life.
pub fn expiry_after_rotation(
    current: Option<UnixMillis>,
    now: UnixMillis,
    grace_ms: i64,
) -> UnixMillis {
    let end_of_grace = now.plus_millis(grace_ms.max(0));
    match current {
        Some(expires) => expires.min(end_of_grace),
        None => end_of_grace,
    }
}

fn apply_patch<T>(field: &mut Option<T>, patch: Patch<T>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *field = None,
        Patch::Set(v) => *field = Some(v),
    }
}

fn apply_credits_patch(
    current: Option<Credits>,
    patch: CreditsPatch,
    now: UnixMillis,
) -> Result<Option<Credits>, KeyUpdateError> {
    let with_balance = match patch.remaining {
        Patch::Keep => current,
        Patch::Clear => None,
        Patch::Set(n) => Some(match current {
            Some(c) => c.with_remaining(n)?,
            None => Credits::new(n, None, now)?,
        }),
    };
    match (with_balance, patch.refill) {
        (c, Patch::Keep) => Ok(c),
        (Some(c), Patch::Clear) => Ok(Some(c.with_refill(None))),
        (None, Patch::Clear) => Ok(None),
        (Some(c), Patch::Set(refill)) => Ok(Some(c.with_refill(Some(refill)))),
        (None, Patch::Set(_)) => Err(KeyUpdateError::RefillWithoutRemaining),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::RefillSchedule;
    use crate::key_format;

    fn now() -> UnixMillis {
        UnixMillis::from_millis(1_795_816_081_000)
    }

    fn record() -> KeyRecord {
        let issued = key_format::generate(None, ByteLength::DEFAULT);
        KeyRecord {
            id: KeyId::generate(now()),
            workspace_id: WorkspaceId::generate(now()),
            api_id: ApiId::generate(now()),
            digest: issued.plaintext.digest(),
            start: issued.start,
            prefix: None,
            byte_length: ByteLength::DEFAULT,
            name: Some(KeyName::parse("first").unwrap()),
            meta: None,
            enabled: true,
            expires: None,
            credits: None,
            identity: None,
            ratelimits: Vec::new(),
            permissions: Vec::new(),
            roles: Vec::new(),
            created_at: now(),
            updated_at: None,
            deleted_at: None,
            last_used: None,
            rotated_to: None,
            replaced_at: None,
            sealed: None,
            restrictions: None,
            api_restrictions: None,
        }
    }

    #[test]
    fn keep_clear_and_set() {
        let mut key = record();
        let update = KeyUpdate {
            name: Patch::Clear,
            expires: Patch::Set(now().plus_millis(1000)),
            enabled: Some(false),
            ..KeyUpdate::default()
        };
        key.apply_update(update, now()).unwrap();
        assert_eq!(key.name, None);
        assert_eq!(key.expires, Some(now().plus_millis(1000)));
        assert!(!key.enabled);
        assert_eq!(key.updated_at, Some(now()));
    }

    #[test]
    fn credits_patch_rules() {
        let daily = CreditRefill::new(RefillSchedule::Daily, 10).unwrap();
        let mut key = record();
        let refill_only = KeyUpdate {
            credits: Patch::Set(CreditsPatch {
                remaining: Patch::Keep,
                refill: Patch::Set(daily),
            }),
            ..KeyUpdate::default()
        };
        assert_eq!(
            key.apply_update(refill_only.clone(), now()),
            Err(KeyUpdateError::RefillWithoutRemaining)
        );
        assert_eq!(key.credits, None, "a failed update changes nothing");

        let both = KeyUpdate {
            credits: Patch::Set(CreditsPatch {
                remaining: Patch::Set(5),
                refill: Patch::Set(daily),
            }),
            ..KeyUpdate::default()
        };
        key.apply_update(both, now()).unwrap();
        assert_eq!(key.credits.map(|c| c.remaining()), Some(5));
        assert_eq!(key.credits.and_then(|c| c.refill()), Some(daily));

        key.apply_update(refill_only, now()).unwrap();
        assert_eq!(key.credits.map(|c| c.remaining()), Some(5));

        let unlimited = KeyUpdate {
            credits: Patch::Clear,
            ..KeyUpdate::default()
        };
        key.apply_update(unlimited, now()).unwrap();
        assert_eq!(key.credits, None);
    }

    #[test]
    fn rotation_never_lengthens_life() {
        let soon = now().plus_millis(1_000);
        assert_eq!(expiry_after_rotation(Some(soon), now(), 60_000), soon);
        assert_eq!(
            expiry_after_rotation(Some(now().plus_millis(3_600_000)), now(), 60_000),
            now().plus_millis(60_000)
        );
        assert_eq!(expiry_after_rotation(None, now(), 0), now());
    }

    #[test]
    fn rotated_key_copies_configuration() {
        let mut old = record();
        old.expires = Some(now().plus_millis(5));
        old.credits = Some(Credits::new(7, None, now()).unwrap());
        let issued = key_format::generate(None, ByteLength::DEFAULT);
        let plaintext = issued.plaintext.clone();
        let new = old.rotated(KeyId::generate(now()), None, &issued, now());
        assert_ne!(new.id, old.id);
        assert_eq!(new.digest, plaintext.digest());
        assert_eq!(new.name, old.name);
        assert_eq!(new.expires, old.expires);
        assert_eq!(new.credits.map(|c| c.remaining()), Some(7));
    }
}
