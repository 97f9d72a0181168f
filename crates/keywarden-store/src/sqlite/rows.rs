//! Converting between rows and domain records.
//!
//! A row that does not convert (hand-edited or corrupt data) is a `FromSqlConversionFailure`,
//! which surfaces as a backend error rather than a wrong answer.

use keywarden_core::api::Api;
use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{
    ApiId, IdentityId, KeyId, NamespaceId, OverrideId, RootKeyId, WorkspaceId,
};
use keywarden_core::identity::{ExternalId, Identity};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_format::{ByteLength, KeyPrefix};
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::{NamedLimit, decode_limits, encode_limits};
use keywarden_core::namespace::{Identifier, Namespace, NamespaceName, RateOverride};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::root_key::{RootKey, RootPermissions};
use keywarden_core::store::PageRequest;
use keywarden_core::text::{ApiName, KeyName, Label};
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;
use rusqlite::types::Type;
use rusqlite::{Row, named_params};

pub(super) fn bad<E: std::error::Error + Send + Sync + 'static>(
    column: usize,
    e: E,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

fn invalid(column: usize, what: &str) -> rusqlite::Error {
    bad(
        column,
        Invalid(format!("invalid {what} in column {column}")),
    )
}

/// How many rows to read for a page: one more than it holds, to tell whether another follows.
pub fn page_fetch(page: &PageRequest) -> i64 {
    i64::try_from(page.limit.saturating_add(1)).unwrap_or(i64::MAX)
}

fn millis(v: Option<i64>) -> Option<UnixMillis> {
    v.map(UnixMillis::from_millis)
}

/// Selects keys (as `k`) with the identity each belongs to (as `i`), in the column order
/// [`key_from_row`] reads.
pub const KEY_SELECT: &str = "SELECT k.id, k.workspace_id, k.api_id, k.hash, k.start, k.prefix, \
    k.byte_length, k.name, k.meta, k.enabled, k.expires, k.credits_remaining, k.refill_interval, \
    k.refill_amount, k.refill_day, k.last_refill_at, k.created_at, k.updated_at, k.deleted_at, \
    k.ratelimits, i.id, i.workspace_id, i.external_id, i.meta, i.ratelimits, i.created_at, \
    i.updated_at \
    FROM keys k LEFT JOIN identities i ON i.id = k.identity_id";

/// The first column of the identity in [`KEY_SELECT`].
const KEY_IDENTITY_AT: usize = 20;

fn meta_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Meta>> {
    let meta: Option<String> = row.get(column)?;
    meta.map(|m| serde_json::from_str::<Meta>(&m))
        .transpose()
        .map_err(|e| bad(column, e))
}

fn limits_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Vec<NamedLimit>> {
    let limits: Option<String> = row.get(column)?;
    decode_limits(limits.as_deref()).map_err(|e| bad(column, e))
}

pub const IDENTITY_COLUMNS: &str =
    "id, workspace_id, external_id, meta, ratelimits, created_at, updated_at";

/// Reads an identity from the seven columns starting at `at`, in [`IDENTITY_COLUMNS`] order.
fn identity_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Identity> {
    let id: String = row.get(at)?;
    let workspace_id: String = row.get(at + 1)?;
    let external_id: String = row.get(at + 2)?;
    Ok(Identity {
        id: IdentityId::parse(&id).map_err(|e| bad(at, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(at + 1, e))?,
        external_id: ExternalId::parse(&external_id).map_err(|e| bad(at + 2, e))?,
        meta: meta_at(row, at + 3)?,
        ratelimits: limits_at(row, at + 4)?,
        created_at: UnixMillis::from_millis(row.get(at + 5)?),
        updated_at: millis(row.get(at + 6)?),
    })
}

pub fn identity_from_row(row: &Row<'_>) -> rusqlite::Result<Identity> {
    identity_at(row, 0)
}

/// Writes `identity`'s metadata and limits in their stored form.
pub fn identity_values(identity: &Identity) -> rusqlite::Result<(Option<String>, Option<String>)> {
    let meta = identity
        .meta
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok((meta, encode_limits(&identity.ratelimits)))
}

/// The balance columns of a key, in this order from `at`; the same order as in
/// [`KEY_SELECT`], so spending credits can read just these.
pub const CREDIT_COLUMNS: &str =
    "credits_remaining, refill_interval, refill_amount, refill_day, last_refill_at, created_at";

/// A key's balance from the six [`CREDIT_COLUMNS`] starting at `at`; `None` is unlimited.
pub fn credits_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Credits>> {
    let remaining: Option<i64> = row.get(at)?;
    let interval: Option<String> = row.get(at + 1)?;
    let amount: Option<i64> = row.get(at + 2)?;
    let day: Option<i64> = row.get(at + 3)?;
    let last_refill_at: Option<i64> = row.get(at + 4)?;
    let created_at = UnixMillis::from_millis(row.get(at + 5)?);
    let refill = match interval.as_deref() {
        None => None,
        Some(interval) => Some(
            CreditRefill::from_wire(interval == "monthly", amount.unwrap_or(0), day)
                .map_err(|e| bad(at + 1, e))?,
        ),
    };
    Ok(remaining
        .map(|r| Credits::from_stored(r, refill, millis(last_refill_at).unwrap_or(created_at))))
}

pub fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let id: String = row.get(0)?;
    let workspace_id: String = row.get(1)?;
    let api_id: String = row.get(2)?;
    let hash: String = row.get(3)?;
    let prefix: Option<String> = row.get(5)?;
    let byte_length: i64 = row.get(6)?;
    let name: Option<String> = row.get(7)?;
    let credits = credits_at(row, 11)?;
    let created_at = UnixMillis::from_millis(row.get(16)?);
    Ok(KeyRecord {
        id: KeyId::parse(&id).map_err(|e| bad(0, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(1, e))?,
        api_id: ApiId::parse(&api_id).map_err(|e| bad(2, e))?,
        digest: KeyDigest::from_base64(&hash).map_err(|e| bad(3, e))?,
        start: row.get(4)?,
        prefix: prefix
            .map(|p| KeyPrefix::parse(&p))
            .transpose()
            .map_err(|e| bad(5, e))?,
        byte_length: ByteLength::new(byte_length).ok_or_else(|| invalid(6, "byte length"))?,
        name: name
            .map(|n| KeyName::parse(&n))
            .transpose()
            .map_err(|e| bad(7, e))?,
        meta: meta_at(row, 8)?,
        enabled: row.get(9)?,
        expires: millis(row.get(10)?),
        credits,
        ratelimits: limits_at(row, 19)?,
        // Filled in by the caller, which can run the queries (`rbac::load_access`).
        permissions: Vec::new(),
        roles: Vec::new(),
        identity: match row.get::<_, Option<String>>(KEY_IDENTITY_AT)? {
            Some(_) => Some(identity_at(row, KEY_IDENTITY_AT)?),
            None => None,
        },
        created_at,
        updated_at: millis(row.get(17)?),
        deleted_at: millis(row.get(18)?),
    })
}

/// The columns of a key that change after creation, in SQL form.
struct KeyState {
    name: Option<String>,
    meta: Option<String>,
    enabled: bool,
    expires: Option<i64>,
    remaining: Option<i64>,
    interval: Option<&'static str>,
    amount: Option<i64>,
    day: Option<i64>,
    last_refill_at: Option<i64>,
    updated_at: Option<i64>,
    deleted_at: Option<i64>,
    identity_id: Option<String>,
    ratelimits: Option<String>,
}

impl KeyState {
    fn of(key: &KeyRecord) -> rusqlite::Result<Self> {
        let refill = key.credits.and_then(|c| c.refill());
        let (interval, day) = match refill.map(|r| r.schedule()) {
            None => (None, None),
            Some(RefillSchedule::Daily) => (Some("daily"), None),
            Some(RefillSchedule::Monthly { day }) => (Some("monthly"), Some(i64::from(day))),
        };
        let meta = key
            .meta
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self {
            name: key.name.as_ref().map(|n| n.as_str().to_owned()),
            meta,
            enabled: key.enabled,
            expires: key.expires.map(UnixMillis::as_millis),
            remaining: key.credits.map(|c| c.remaining()),
            interval,
            amount: refill.map(|r| r.amount()),
            day,
            last_refill_at: key.credits.map(|c| c.last_refill_at().as_millis()),
            updated_at: key.updated_at.map(UnixMillis::as_millis),
            deleted_at: key.deleted_at.map(UnixMillis::as_millis),
            identity_id: key.identity.as_ref().map(|i| i.id.to_string()),
            ratelimits: encode_limits(&key.ratelimits),
        })
    }
}

/// Inserts a new key row.
pub fn insert_key(conn: &rusqlite::Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    let state = KeyState::of(key)?;
    conn.prepare_cached(
        "INSERT INTO keys (id, workspace_id, api_id, hash, start, prefix, byte_length, name, \
         meta, enabled, expires, credits_remaining, refill_interval, refill_amount, refill_day, \
         last_refill_at, created_at, updated_at, deleted_at, identity_id, ratelimits) VALUES \
         (:id, :workspace_id, :api_id, :hash, :start, :prefix, :byte_length, :name, :meta, \
         :enabled, :expires, :remaining, :interval, :amount, :day, :last_refill_at, :created_at, \
         :updated_at, :deleted_at, :identity_id, :ratelimits)",
    )?
    .execute(named_params! {
        ":id": key.id.as_str(),
        ":workspace_id": key.workspace_id.as_str(),
        ":api_id": key.api_id.as_str(),
        ":hash": key.digest.to_base64(),
        ":start": key.start,
        ":prefix": key.prefix.as_ref().map(KeyPrefix::as_str),
        ":byte_length": i64::from(key.byte_length.get()),
        ":name": state.name,
        ":meta": state.meta,
        ":enabled": state.enabled,
        ":expires": state.expires,
        ":remaining": state.remaining,
        ":interval": state.interval,
        ":amount": state.amount,
        ":day": state.day,
        ":last_refill_at": state.last_refill_at,
        ":created_at": key.created_at.as_millis(),
        ":updated_at": state.updated_at,
        ":deleted_at": state.deleted_at,
        ":identity_id": state.identity_id,
        ":ratelimits": state.ratelimits,
    })?;
    Ok(())
}

/// Writes the columns of `key` that change after creation.
pub fn update_key_state(conn: &rusqlite::Connection, key: &KeyRecord) -> rusqlite::Result<()> {
    let state = KeyState::of(key)?;
    conn.prepare_cached(
        "UPDATE keys SET name = :name, meta = :meta, enabled = :enabled, expires = :expires, \
         credits_remaining = :remaining, refill_interval = :interval, refill_amount = :amount, \
         refill_day = :day, last_refill_at = :last_refill_at, updated_at = :updated_at, \
         deleted_at = :deleted_at, identity_id = :identity_id, ratelimits = :ratelimits \
         WHERE id = :id",
    )?
    .execute(named_params! {
        ":id": key.id.as_str(),
        ":name": state.name,
        ":meta": state.meta,
        ":enabled": state.enabled,
        ":expires": state.expires,
        ":remaining": state.remaining,
        ":interval": state.interval,
        ":amount": state.amount,
        ":day": state.day,
        ":last_refill_at": state.last_refill_at,
        ":updated_at": state.updated_at,
        ":deleted_at": state.deleted_at,
        ":identity_id": state.identity_id,
        ":ratelimits": state.ratelimits,
    })?;
    Ok(())
}

pub const NAMESPACE_COLUMNS: &str = "id, workspace_id, name, created_at";

pub fn namespace_from_row(row: &Row<'_>) -> rusqlite::Result<Namespace> {
    let id: String = row.get(0)?;
    let workspace_id: String = row.get(1)?;
    let name: String = row.get(2)?;
    Ok(Namespace {
        id: NamespaceId::parse(&id).map_err(|e| bad(0, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(1, e))?,
        name: NamespaceName::parse(&name).map_err(|e| bad(2, e))?,
        created_at: UnixMillis::from_millis(row.get(3)?),
    })
}

pub const OVERRIDE_COLUMNS: &str =
    "id, workspace_id, namespace_id, identifier, \"limit\", duration, created_at, updated_at";

pub fn override_from_row(row: &Row<'_>) -> rusqlite::Result<RateOverride> {
    let id: String = row.get(0)?;
    let workspace_id: String = row.get(1)?;
    let namespace_id: String = row.get(2)?;
    let identifier: String = row.get(3)?;
    let limit: i64 = row.get(4)?;
    let duration: i64 = row.get(5)?;
    Ok(RateOverride {
        id: OverrideId::parse(&id).map_err(|e| bad(0, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(1, e))?,
        namespace_id: NamespaceId::parse(&namespace_id).map_err(|e| bad(2, e))?,
        identifier: Identifier::parse(&identifier).map_err(|e| bad(3, e))?,
        limit: u64::try_from(limit).map_err(|e| bad(4, e))?,
        duration: WindowDuration::from_millis(duration).map_err(|e| bad(5, e))?,
        created_at: UnixMillis::from_millis(row.get(6)?),
        updated_at: millis(row.get(7)?),
    })
}

pub const API_COLUMNS: &str =
    "id, workspace_id, name, default_prefix, default_byte_length, delete_protection, created_at";

pub fn api_from_row(row: &Row<'_>) -> rusqlite::Result<Api> {
    let id: String = row.get(0)?;
    let workspace_id: String = row.get(1)?;
    let name: String = row.get(2)?;
    let prefix: Option<String> = row.get(3)?;
    let byte_length: i64 = row.get(4)?;
    Ok(Api {
        id: ApiId::parse(&id).map_err(|e| bad(0, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(1, e))?,
        name: ApiName::parse(&name).map_err(|e| bad(2, e))?,
        default_prefix: prefix
            .map(|p| KeyPrefix::parse(&p))
            .transpose()
            .map_err(|e| bad(3, e))?,
        default_byte_length: ByteLength::new(byte_length)
            .ok_or_else(|| invalid(4, "byte length"))?,
        delete_protection: row.get(5)?,
        created_at: UnixMillis::from_millis(row.get(6)?),
    })
}

pub const ROOT_KEY_COLUMNS: &str = "id, workspace_id, hash, start, name, permissions, created_at, \
    revoked_at, \"end\", expires, enabled";

pub fn root_key_from_row(row: &Row<'_>) -> rusqlite::Result<RootKey> {
    let id: String = row.get(0)?;
    let workspace_id: String = row.get(1)?;
    let hash: String = row.get(2)?;
    let name: Option<String> = row.get(4)?;
    let permissions: String = row.get(5)?;
    let permissions: Vec<String> = serde_json::from_str(&permissions).map_err(|e| bad(5, e))?;
    Ok(RootKey {
        id: RootKeyId::parse(&id).map_err(|e| bad(0, e))?,
        workspace_id: WorkspaceId::parse(&workspace_id).map_err(|e| bad(1, e))?,
        digest: KeyDigest::from_base64(&hash).map_err(|e| bad(2, e))?,
        start: row.get(3)?,
        name: name
            .map(|n| Label::parse(&n))
            .transpose()
            .map_err(|e| bad(4, e))?,
        permissions: RootPermissions::parse_all(&permissions).map_err(|e| bad(5, e))?,
        created_at: UnixMillis::from_millis(row.get(6)?),
        revoked_at: millis(row.get(7)?),
        end: row.get(8)?,
        expires: millis(row.get(9)?),
        enabled: row.get(10)?,
    })
}

pub fn workspace_from_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    Ok(Workspace {
        id: WorkspaceId::parse(&id).map_err(|e| bad(0, e))?,
        name: Label::parse(&name).map_err(|e| bad(1, e))?,
        created_at: UnixMillis::from_millis(row.get(2)?),
    })
}
