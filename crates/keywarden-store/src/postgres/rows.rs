//! Reading rows into domain records, through their stored form in [`crate::columns`].
//!
//! Column lists are macros expanding to string literals, so queries built from them with
//! `concat!` are `&'static str`, which sqlx accepts as SQL without an audit wrapper.

use keywarden_core::api::Api;
use keywarden_core::credits::Credits;
use keywarden_core::digest::KeyDigest;
use keywarden_core::identity::Identity;
use keywarden_core::key::KeyRecord;
use keywarden_core::namespace::{Namespace, RateOverride};
use keywarden_core::rbac::{Permission, Role};
use keywarden_core::root_key::RootKey;
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgResult;
use crate::columns::{
    StoredApi, StoredCredits, StoredIdentity, StoredKey, StoredNamespace, StoredOverride,
    StoredPermission, StoredRole, StoredRootKey, StoredWorkspace,
};

/// A statement with or without a row lock (`FOR UPDATE`) at its end, written once and still a
/// `&'static str`, as sqlx wants: `lockable!(locked, "SELECT …", …)`.
macro_rules! lockable {
    ($locked:expr, $($part:expr),+ $(,)?) => {
        if $locked {
            concat!($($part),+, " FOR UPDATE")
        } else {
            concat!($($part),+)
        }
    };
}
pub(super) use lockable;

/// Selects keys (as `k`) with the identity each belongs to (as `i`) and their API's
/// restrictions (from `a`), in the column order
/// [`key_from_row`] reads.
macro_rules! key_select {
    () => {
        "SELECT k.id, k.workspace_id, k.api_id, k.hash, k.start, k.prefix, k.byte_length, \
         k.name, k.meta, k.enabled, k.expires, k.credits_remaining, k.refill_interval, \
         k.refill_amount, k.refill_day, k.last_refill_at, k.created_at, k.updated_at, \
         k.deleted_at, k.ratelimits, i.id, i.workspace_id, i.external_id, i.meta, i.ratelimits, \
         i.created_at, i.updated_at, k.last_used_at, k.replaced_at, k.rotated_to, \
         k.encryption_key_id, k.encrypted, k.restrictions, a.restrictions \
         FROM keys k LEFT JOIN identities i ON i.id = k.identity_id \
         LEFT JOIN apis a ON a.id = k.api_id"
    };
}
pub(super) use key_select;

/// The first column of the identity in [`key_select`].
const KEY_IDENTITY_AT: usize = 20;
/// Where `k.last_used_at` is in [`key_select`]: after the identity's seven columns; the
/// rotation marker (`replaced_at`, `rotated_to`) and the sealed plaintext
/// (`encryption_key_id`, `encrypted`) follow it.
const KEY_LAST_USED_AT: usize = KEY_IDENTITY_AT + 7;

/// The balance columns of a key, in the order [`credits_at`] reads them.
macro_rules! credit_columns {
    () => {
        "credits_remaining, refill_interval, refill_amount, refill_day, last_refill_at, created_at"
    };
}
pub(super) use credit_columns;

macro_rules! identity_columns {
    () => {
        "id, workspace_id, external_id, meta, ratelimits, created_at, updated_at"
    };
}
pub(super) use identity_columns;

macro_rules! root_key_columns {
    () => {
        "id, workspace_id, hash, start, name, permissions, created_at, revoked_at, \"end\", \
         expires, enabled"
    };
}
pub(super) use root_key_columns;

macro_rules! api_columns {
    () => {
        "id, workspace_id, name, default_prefix, default_byte_length, delete_protection, \
         created_at, restrictions, default_key_lifetime_ms, max_key_lifetime_ms"
    };
}
pub(super) use api_columns;

macro_rules! namespace_columns {
    () => {
        "id, workspace_id, name, created_at"
    };
}
pub(super) use namespace_columns;

macro_rules! override_columns {
    () => {
        "id, workspace_id, namespace_id, identifier, \"limit\", duration, created_at, updated_at"
    };
}
pub(super) use override_columns;

/// Permission columns of the table aliased `p`.
macro_rules! permission_columns {
    () => {
        "p.id, p.workspace_id, p.name, p.slug, p.description, p.created_at"
    };
}
pub(super) use permission_columns;

/// Role columns of the table aliased `r`.
macro_rules! role_columns {
    () => {
        "r.id, r.workspace_id, r.name, r.description, r.created_at"
    };
}
pub(super) use role_columns;

fn identity_at(row: &PgRow, at: usize) -> PgResult<Identity> {
    let stored = StoredIdentity {
        id: row.try_get(at)?,
        workspace_id: row.try_get(at + 1)?,
        external_id: row.try_get(at + 2)?,
        meta: row.try_get(at + 3)?,
        ratelimits: row.try_get(at + 4)?,
        created_at: row.try_get(at + 5)?,
        updated_at: row.try_get(at + 6)?,
    };
    Ok(stored.into_identity()?)
}

/// An identity selected with [`identity_columns`].
pub(super) fn identity_from_row(row: &PgRow) -> PgResult<Identity> {
    identity_at(row, 0)
}

fn stored_credits_at(row: &PgRow, at: usize) -> PgResult<StoredCredits> {
    Ok(StoredCredits {
        remaining: row.try_get(at)?,
        interval: row.try_get(at + 1)?,
        amount: row.try_get(at + 2)?,
        day: row.try_get(at + 3)?,
        last_refill_at: row.try_get(at + 4)?,
    })
}

/// A key's balance from the [`credit_columns`] starting at `at`; `None` is unlimited.
pub(super) fn credits_at(row: &PgRow, at: usize) -> PgResult<Option<Credits>> {
    let created_at = UnixMillis::from_millis(row.try_get(at + 5)?);
    Ok(stored_credits_at(row, at)?.into_credits(created_at)?)
}

/// The digests of keys selected by their `hash` alone; unreadable ones are skipped, as they
/// cannot match any presented key.
pub(super) fn digests_from_rows(rows: &[PgRow]) -> PgResult<Vec<KeyDigest>> {
    let mut digests = Vec::with_capacity(rows.len());
    for row in rows {
        let hash: String = row.try_get(0)?;
        digests.extend(KeyDigest::from_base64(&hash).ok());
    }
    Ok(digests)
}

/// A key selected with [`key_select`], without what it holds (see `access`).
pub(super) fn key_from_row(row: &PgRow) -> PgResult<KeyRecord> {
    let stored = StoredKey {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        api_id: row.try_get(2)?,
        hash: row.try_get(3)?,
        start: row.try_get(4)?,
        prefix: row.try_get(5)?,
        byte_length: row.try_get(6)?,
        name: row.try_get(7)?,
        meta: row.try_get(8)?,
        enabled: row.try_get(9)?,
        expires: row.try_get(10)?,
        credits: stored_credits_at(row, 11)?,
        created_at: row.try_get(16)?,
        updated_at: row.try_get(17)?,
        deleted_at: row.try_get(18)?,
        ratelimits: row.try_get(19)?,
        identity_id: row.try_get(KEY_IDENTITY_AT)?,
        last_used_at: row.try_get(KEY_LAST_USED_AT)?,
        replaced_at: row.try_get(KEY_LAST_USED_AT + 1)?,
        rotated_to: row.try_get(KEY_LAST_USED_AT + 2)?,
        encryption_key_id: row.try_get(KEY_LAST_USED_AT + 3)?,
        encrypted: row.try_get(KEY_LAST_USED_AT + 4)?,
        restrictions: row.try_get(KEY_LAST_USED_AT + 5)?,
        api_restrictions: row.try_get(KEY_LAST_USED_AT + 6)?,
    };
    let identity = match stored.identity_id {
        Some(_) => Some(identity_at(row, KEY_IDENTITY_AT)?),
        None => None,
    };
    Ok(stored.into_record(identity)?)
}

pub(super) fn root_key_from_row(row: &PgRow) -> PgResult<RootKey> {
    let stored = StoredRootKey {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        hash: row.try_get(2)?,
        start: row.try_get(3)?,
        name: row.try_get(4)?,
        permissions: row.try_get(5)?,
        created_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
        end: row.try_get(8)?,
        expires: row.try_get(9)?,
        enabled: row.try_get(10)?,
    };
    Ok(stored.into_root_key()?)
}

pub(super) fn api_from_row(row: &PgRow) -> PgResult<Api> {
    let stored = StoredApi {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        name: row.try_get(2)?,
        default_prefix: row.try_get(3)?,
        default_byte_length: row.try_get(4)?,
        delete_protection: row.try_get(5)?,
        created_at: row.try_get(6)?,
        restrictions: row.try_get(7)?,
        default_key_lifetime_ms: row.try_get(8)?,
        max_key_lifetime_ms: row.try_get(9)?,
    };
    Ok(stored.into_api()?)
}

pub(super) fn workspace_from_row(row: &PgRow) -> PgResult<Workspace> {
    let stored = StoredWorkspace {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        created_at: row.try_get(2)?,
    };
    Ok(stored.into_workspace()?)
}

pub(super) fn namespace_from_row(row: &PgRow) -> PgResult<Namespace> {
    let stored = StoredNamespace {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
    };
    Ok(stored.into_namespace()?)
}

pub(super) fn override_from_row(row: &PgRow) -> PgResult<RateOverride> {
    let stored = StoredOverride {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        namespace_id: row.try_get(2)?,
        identifier: row.try_get(3)?,
        limit: row.try_get(4)?,
        duration: row.try_get(5)?,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
    };
    Ok(stored.into_override()?)
}

/// A permission whose [`permission_columns`] start at `at`.
pub(super) fn permission_at(row: &PgRow, at: usize) -> PgResult<Permission> {
    let stored = StoredPermission {
        id: row.try_get(at)?,
        workspace_id: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        slug: row.try_get(at + 3)?,
        description: row.try_get(at + 4)?,
        created_at: row.try_get(at + 5)?,
    };
    Ok(stored.into_permission()?)
}

/// A role whose [`role_columns`] start at `at`, without its permissions.
pub(super) fn role_at(row: &PgRow, at: usize) -> PgResult<Role> {
    let stored = StoredRole {
        id: row.try_get(at)?,
        workspace_id: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        description: row.try_get(at + 3)?,
        created_at: row.try_get(at + 4)?,
    };
    Ok(stored.into_role()?)
}
