//! Converting between rows and domain records.
//!
//! A row that does not convert (hand-edited or corrupt data) is a `FromSqlConversionFailure`,
//! which surfaces as a backend error rather than a wrong answer.

use keywarden_core::api::Api;
use keywarden_core::credits::Credits;
use keywarden_core::identity::Identity;
use keywarden_core::key::KeyRecord;
use keywarden_core::namespace::{Namespace, RateOverride};
use keywarden_core::root_key::RootKey;
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;
use rusqlite::types::Type;
use rusqlite::{Row, named_params};

pub use crate::columns::page_fetch;
use crate::columns::{
    StoredApi, StoredCredits, StoredIdentity, StoredKey, StoredNamespace, StoredOverride,
    StoredRootKey, StoredWorkspace,
};

pub(super) fn bad<E: std::error::Error + Send + Sync + 'static>(
    column: usize,
    e: E,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
}

/// Reads a record whose columns start at `at` from its stored form.
fn convert<T>(at: usize, r: Result<T, crate::columns::ColumnError>) -> rusqlite::Result<T> {
    r.map_err(|e| bad(at, e))
}

fn encoded<T>(r: Result<T, crate::columns::EncodeError>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Selects keys (as `k`) with the identity each belongs to (as `i`) and their API's
/// restrictions (from `a`), in the column order
/// [`key_from_row`] reads.
pub const KEY_SELECT: &str = "SELECT k.id, k.workspace_id, k.api_id, k.hash, k.start, k.prefix, \
    k.byte_length, k.name, k.meta, k.enabled, k.expires, k.credits_remaining, k.refill_interval, \
    k.refill_amount, k.refill_day, k.last_refill_at, k.created_at, k.updated_at, k.deleted_at, \
    k.ratelimits, i.id, i.workspace_id, i.external_id, i.meta, i.ratelimits, i.created_at, \
    i.updated_at, k.last_used_at, k.replaced_at, k.rotated_to, k.encryption_key_id, \
    k.encrypted, k.restrictions, a.restrictions \
    FROM keys k LEFT JOIN identities i ON i.id = k.identity_id \
    LEFT JOIN apis a ON a.id = k.api_id";

/// Where `k.last_used_at` is in [`KEY_SELECT`]: after the identity's seven columns; the
/// rotation marker (`replaced_at`, `rotated_to`) and the sealed plaintext
/// (`encryption_key_id`, `encrypted`) follow it.
const KEY_LAST_USED_AT: usize = KEY_IDENTITY_AT + 7;

/// The first column of the identity in [`KEY_SELECT`].
const KEY_IDENTITY_AT: usize = 20;

pub const IDENTITY_COLUMNS: &str =
    "id, workspace_id, external_id, meta, ratelimits, created_at, updated_at";

/// Reads an identity from the seven columns starting at `at`, in [`IDENTITY_COLUMNS`] order.
fn identity_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Identity> {
    let stored = StoredIdentity {
        id: row.get(at)?,
        workspace_id: row.get(at + 1)?,
        external_id: row.get(at + 2)?,
        meta: row.get(at + 3)?,
        ratelimits: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
        updated_at: row.get(at + 6)?,
    };
    convert(at, stored.into_identity())
}

pub fn identity_from_row(row: &Row<'_>) -> rusqlite::Result<Identity> {
    identity_at(row, 0)
}

/// Writes `identity`'s metadata and limits in their stored form.
pub fn identity_values(identity: &Identity) -> rusqlite::Result<(Option<String>, Option<String>)> {
    let stored = encoded(StoredIdentity::of(identity))?;
    Ok((stored.meta, stored.ratelimits))
}

/// The balance columns of a key, in this order from `at`; the same order as in
/// [`KEY_SELECT`], so spending credits can read just these.
pub const CREDIT_COLUMNS: &str =
    "credits_remaining, refill_interval, refill_amount, refill_day, last_refill_at, created_at";

fn stored_credits_at(row: &Row<'_>, at: usize) -> rusqlite::Result<StoredCredits> {
    Ok(StoredCredits {
        remaining: row.get(at)?,
        interval: row.get(at + 1)?,
        amount: row.get(at + 2)?,
        day: row.get(at + 3)?,
        last_refill_at: row.get(at + 4)?,
    })
}

/// A key's balance from the six [`CREDIT_COLUMNS`] starting at `at`; `None` is unlimited.
pub fn credits_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Credits>> {
    let created_at = UnixMillis::from_millis(row.get(at + 5)?);
    convert(at, stored_credits_at(row, at)?.into_credits(created_at))
}

pub fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let stored = StoredKey {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        api_id: row.get(2)?,
        hash: row.get(3)?,
        start: row.get(4)?,
        prefix: row.get(5)?,
        byte_length: row.get(6)?,
        name: row.get(7)?,
        meta: row.get(8)?,
        enabled: row.get(9)?,
        expires: row.get(10)?,
        credits: stored_credits_at(row, 11)?,
        created_at: row.get(16)?,
        updated_at: row.get(17)?,
        deleted_at: row.get(18)?,
        identity_id: row.get(KEY_IDENTITY_AT)?,
        ratelimits: row.get(19)?,
        last_used_at: row.get(KEY_LAST_USED_AT)?,
        replaced_at: row.get(KEY_LAST_USED_AT + 1)?,
        rotated_to: row.get(KEY_LAST_USED_AT + 2)?,
        encryption_key_id: row.get(KEY_LAST_USED_AT + 3)?,
        encrypted: row.get(KEY_LAST_USED_AT + 4)?,
        restrictions: row.get(KEY_LAST_USED_AT + 5)?,
        api_restrictions: row.get(KEY_LAST_USED_AT + 6)?,
    };
    let identity = match stored.identity_id {
        Some(_) => Some(identity_at(row, KEY_IDENTITY_AT)?),
        None => None,
    };
    convert(0, stored.into_record(identity))
}

/// Inserts a new key row.
pub fn insert_key(conn: &rusqlite::Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    let k = encoded(StoredKey::of(key))?;
    conn.prepare_cached(
        "INSERT INTO keys (id, workspace_id, api_id, hash, start, prefix, byte_length, name, \
         meta, enabled, expires, credits_remaining, refill_interval, refill_amount, refill_day, \
         last_refill_at, created_at, updated_at, deleted_at, identity_id, ratelimits, \
         encryption_key_id, encrypted, restrictions) VALUES \
         (:id, :workspace_id, :api_id, :hash, :start, :prefix, :byte_length, :name, :meta, \
         :enabled, :expires, :remaining, :interval, :amount, :day, :last_refill_at, :created_at, \
         :updated_at, :deleted_at, :identity_id, :ratelimits, :encryption_key_id, :encrypted, \
         :restrictions)",
    )?
    .execute(named_params! {
        ":id": k.id,
        ":workspace_id": k.workspace_id,
        ":api_id": k.api_id,
        ":hash": k.hash,
        ":start": k.start,
        ":prefix": k.prefix,
        ":byte_length": k.byte_length,
        ":name": k.name,
        ":meta": k.meta,
        ":enabled": k.enabled,
        ":expires": k.expires,
        ":remaining": k.credits.remaining,
        ":interval": k.credits.interval,
        ":amount": k.credits.amount,
        ":day": k.credits.day,
        ":last_refill_at": k.credits.last_refill_at,
        ":created_at": k.created_at,
        ":updated_at": k.updated_at,
        ":deleted_at": k.deleted_at,
        ":identity_id": k.identity_id,
        ":ratelimits": k.ratelimits,
        ":encryption_key_id": k.encryption_key_id,
        ":encrypted": k.encrypted,
        ":restrictions": k.restrictions,
    })?;
    Ok(())
}

/// Marks `key` as replaced by a reroll (see [`KeyRecord::rotated_to`]).
pub fn mark_replaced(conn: &rusqlite::Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE keys SET replaced_at = ?2, rotated_to = ?3 WHERE id = ?1")?
        .execute(rusqlite::params![
            key.id.as_str(),
            key.replaced_at.map(UnixMillis::as_millis),
            key.rotated_to.as_ref().map(|k| k.as_str()),
        ])?;
    Ok(())
}

/// Writes the columns of `key` that change after creation.
pub fn update_key_state(conn: &rusqlite::Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    let k = encoded(StoredKey::of(key))?;
    conn.prepare_cached(
        "UPDATE keys SET name = :name, meta = :meta, enabled = :enabled, expires = :expires, \
         credits_remaining = :remaining, refill_interval = :interval, refill_amount = :amount, \
         refill_day = :day, last_refill_at = :last_refill_at, updated_at = :updated_at, \
         deleted_at = :deleted_at, identity_id = :identity_id, ratelimits = :ratelimits, \
         restrictions = :restrictions WHERE id = :id",
    )?
    .execute(named_params! {
        ":id": k.id,
        ":name": k.name,
        ":meta": k.meta,
        ":enabled": k.enabled,
        ":expires": k.expires,
        ":remaining": k.credits.remaining,
        ":interval": k.credits.interval,
        ":amount": k.credits.amount,
        ":day": k.credits.day,
        ":last_refill_at": k.credits.last_refill_at,
        ":updated_at": k.updated_at,
        ":deleted_at": k.deleted_at,
        ":identity_id": k.identity_id,
        ":ratelimits": k.ratelimits,
        ":restrictions": k.restrictions,
    })?;
    Ok(())
}

pub const NAMESPACE_COLUMNS: &str = "id, workspace_id, name, created_at";

pub fn namespace_from_row(row: &Row<'_>) -> rusqlite::Result<Namespace> {
    let stored = StoredNamespace {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
    };
    convert(0, stored.into_namespace())
}

pub const OVERRIDE_COLUMNS: &str =
    "id, workspace_id, namespace_id, identifier, \"limit\", duration, created_at, updated_at";

pub fn override_from_row(row: &Row<'_>) -> rusqlite::Result<RateOverride> {
    let stored = StoredOverride {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        namespace_id: row.get(2)?,
        identifier: row.get(3)?,
        limit: row.get(4)?,
        duration: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    };
    convert(0, stored.into_override())
}

pub const API_COLUMNS: &str = "id, workspace_id, name, default_prefix, default_byte_length, delete_protection, created_at, \
    restrictions, default_key_lifetime_ms, max_key_lifetime_ms";

pub fn api_from_row(row: &Row<'_>) -> rusqlite::Result<Api> {
    let stored = StoredApi {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        name: row.get(2)?,
        default_prefix: row.get(3)?,
        default_byte_length: row.get(4)?,
        delete_protection: row.get(5)?,
        created_at: row.get(6)?,
        restrictions: row.get(7)?,
        default_key_lifetime_ms: row.get(8)?,
        max_key_lifetime_ms: row.get(9)?,
    };
    convert(0, stored.into_api())
}

pub const ROOT_KEY_COLUMNS: &str = "id, workspace_id, hash, start, name, permissions, created_at, \
    revoked_at, \"end\", expires, enabled";

pub fn root_key_from_row(row: &Row<'_>) -> rusqlite::Result<RootKey> {
    let stored = StoredRootKey {
        id: row.get(0)?,
        workspace_id: row.get(1)?,
        hash: row.get(2)?,
        start: row.get(3)?,
        name: row.get(4)?,
        permissions: row.get(5)?,
        created_at: row.get(6)?,
        revoked_at: row.get(7)?,
        end: row.get(8)?,
        expires: row.get(9)?,
        enabled: row.get(10)?,
    };
    convert(0, stored.into_root_key())
}

pub fn workspace_from_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    let stored = StoredWorkspace {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    };
    convert(0, stored.into_workspace())
}
