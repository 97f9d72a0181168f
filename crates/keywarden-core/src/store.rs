//! The storage the domain needs, as traits. Implementations live in `keywarden-store`.
//!
//! Every method that reads or changes workspace data takes the workspace id, so an
//! implementation cannot forget the tenant filter. Methods that decide something against
//! current state (spending credits, applying an update, rotating) do it atomically inside the
//! store, so concurrent requests, on one node or many, never act on a stale read.
//!
//! Methods that make an admin change take the [`AuditEntry`] describing it and write it in
//! the same transaction, only when the change takes effect (not on `None`, `false`, an inner
//! error or a conflict): the audit log holds exactly the committed changes.

use async_trait::async_trait;

use crate::analytics_query::{Dialect, RenderedQuery};
use crate::anomaly::{AnomalyFilter, RecordedAnomaly};
use crate::api::{Api, ApiUpdate, ApiUpdateError};
use crate::audit::{AuditEntry, AuditFilter};
use crate::credits::SpendOutcome;
use crate::digest::KeyDigest;
use crate::id::RoleId;
use crate::id::{ApiId, KeyId, NamespaceId, RootKeyId, WorkspaceId};
use crate::id::{DeliveryId, WebhookEndpointId};
use crate::identity::{ExternalId, Identity, IdentityUpdate};
use crate::key::KeyRecord;
use crate::key_change::{KeyChange, KeyChangeError};
use crate::leak::LeakPolicy;
use crate::namespace::{Identifier, Namespace, RateOverride};
use crate::rbac::{Permission, PermissionUpdate, Role, RoleUpdate};
use crate::root_key::{RootKey, RootKeyUpdate};
use crate::time::UnixMillis;
use crate::usage::{Granularity, VerificationEvent, VerificationRollup};
use crate::vault::WrappedDataKey;
use crate::webhook_outbox::{
    AttemptRecord, ClaimedDelivery, DeliveryAttempt, DeliveryFilter, EndpointUpdate,
    WebhookDelivery, WebhookEndpoint, WebhookEvent,
};
use crate::workspace::Workspace;

/// A failure of the storage backend, or a uniqueness conflict.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (a key hash, a name) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The backend cannot be reached (down, restarting, network): the operation did not
    /// happen and can be retried once it is back.
    #[error("storage backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed; the cause is for logs, never for clients.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which page of a list to read: ids from `from` (inclusive), at most `limit` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub from: Option<String>,
    pub limit: usize,
}

/// One page of a list; `next` is the id the next page starts at, absent on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Splits `limit + 1` rows, ordered by id, into a page and the start of the next one.
    pub fn from_overfetch(mut rows: Vec<T>, limit: usize, id_of: impl Fn(&T) -> String) -> Self {
        let next = if rows.len() > limit {
            rows.truncate(limit + 1);
            rows.pop().map(|row| id_of(&row))
        } else {
            None
        };
        Self { items: rows, next }
    }
}

/// What spending credits on a verification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditSpend {
    Outcome(SpendOutcome),
    /// The key has no balance: usage is unlimited.
    Unlimited,
    /// The key no longer exists.
    KeyMissing,
}

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Creates `workspace` with `root_key` if no root key exists yet, recording `audit`;
    /// returns whether it did. Atomic, so two processes starting on one empty store
    /// bootstrap once.
    async fn bootstrap(
        &self,
        workspace: &Workspace,
        root_key: &RootKey,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    async fn insert_workspace(&self, workspace: &Workspace) -> StoreResult<()>;
    async fn workspaces(&self) -> StoreResult<Vec<Workspace>>;
}

#[async_trait]
pub trait RootKeyStore: Send + Sync {
    async fn insert_root_key(&self, key: &RootKey, audit: &AuditEntry) -> StoreResult<()>;
    /// All root keys, revoked ones included, oldest first.
    async fn root_keys(&self) -> StoreResult<Vec<RootKey>>;
    /// Marks a root key revoked; returns whether one was active.
    async fn revoke_root_key(
        &self,
        id: &RootKeyId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// An unrevoked root key of the workspace.
    async fn root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
    ) -> StoreResult<Option<RootKey>>;
    /// Applies `update` to an unrevoked root key atomically; returns it after.
    async fn update_root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
        update: RootKeyUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>>;
    /// Inserts `new` and shortens the old root key's life to `old_expires` (if given) unless
    /// it ends sooner, in one transaction; `None` (nothing inserted) when the old key is not
    /// live.
    async fn rotate_root_key(
        &self,
        workspace: &WorkspaceId,
        old: &RootKeyId,
        new: &RootKey,
        old_expires: Option<UnixMillis>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>>;
    /// A number that changes whenever any root key is created or revoked, by any process, so
    /// servers can notice changes made by the CLI or other nodes cheaply.
    async fn root_key_revision(&self) -> StoreResult<i64>;
}

#[async_trait]
pub trait ApiStore: Send + Sync {
    async fn insert_api(&self, api: &Api, audit: &AuditEntry) -> StoreResult<()>;
    /// A live API of the workspace.
    async fn api(&self, workspace: &WorkspaceId, id: &ApiId) -> StoreResult<Option<Api>>;
    /// Deletes an API and all its keys; returns the digests of the keys, or `None` when the
    /// API does not exist.
    async fn delete_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>>;
    /// Applies `update` to a live API inside one transaction (Keywarden's `apis.updateApi`).
    async fn update_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        update: ApiUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Result<Api, ApiUpdateError>>;
}

/// The outcome of importing one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported,
    /// A key with the same hash exists already.
    Duplicate,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a new key; `Conflict` if its digest exists.
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> StoreResult<()>;
    /// Inserts keys in one transaction, skipping those whose digest exists; writes `audit`
    /// when at least one key was imported.
    async fn import_keys(
        &self,
        keys: &[KeyRecord],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<ImportOutcome>>;
    /// The key with this digest in any workspace, soft-deleted ones included: verification
    /// needs to tell them apart from keys that never existed.
    async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<KeyRecord>>;
    /// A live (not deleted) key of the workspace.
    async fn key(&self, workspace: &WorkspaceId, id: &KeyId) -> StoreResult<Option<KeyRecord>>;
    /// Live keys of one API, ordered by id; only those of the identity with `external_id`
    /// when given.
    async fn keys_of_api(
        &self,
        workspace: &WorkspaceId,
        api: &ApiId,
        external_id: Option<&ExternalId>,
        page: PageRequest,
    ) -> StoreResult<Page<KeyRecord>>;
    /// Applies a change to a live key atomically; returns the key after the change.
    async fn change_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        change: KeyChange,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Result<KeyRecord, KeyChangeError>>;
    /// Deletes a live key (softly, keeping the row, unless `permanent`); returns it.
    async fn delete_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        permanent: bool,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>>;
    /// Inserts `new` and shortens the old key's life to `old_expires` unless it already ends
    /// sooner, in one transaction; returns the old key after the change, or `None` when the
    /// old key does not exist (then nothing is inserted).
    async fn rotate_key(
        &self,
        workspace: &WorkspaceId,
        old: &KeyId,
        new: &KeyRecord,
        old_expires: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>>;
    /// Spends `cost` credits of a key atomically (applying a refill that fell due first).
    async fn spend_credits(
        &self,
        id: &KeyId,
        cost: i64,
        now: UnixMillis,
    ) -> StoreResult<CreditSpend>;
    /// Applies every refill that fell due; returns the digests of keys whose balance changed.
    async fn refill_due_credits(&self, now: UnixMillis) -> StoreResult<Vec<KeyDigest>>;
    /// Digests of every key that can still be presented (live or soft-deleted), to seed the
    /// in-memory filter of known keys.
    async fn all_key_digests(&self) -> StoreResult<Vec<KeyDigest>>;
}

/// Identities. A `reference` is an identity id or an external id, as the wire accepts both.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts a new identity; `Conflict` if its external id is taken in the workspace.
    async fn insert_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()>;
    /// The identity with `candidate`'s external id, inserting `candidate` when there is none,
    /// atomically, so concurrent first uses of one external id make one identity. `audit`
    /// is written only when `candidate` was inserted.
    async fn upsert_identity(
        &self,
        candidate: &Identity,
        audit: &AuditEntry,
    ) -> StoreResult<Identity>;
    async fn identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Identity>>;
    /// Identities ordered by id; with `search`, those whose id or external id contains it,
    /// ignoring case.
    async fn identities(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Identity>>;
    /// Applies `update` atomically; returns the identity after it and the digests of its
    /// keys, whose cached views now show stale identity data. `None` when it does not exist.
    async fn update_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: IdentityUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<(Identity, Vec<KeyDigest>)>>;
    /// Deletes an identity and unlinks its keys (which keep working without its limits);
    /// returns their digests, or `None` when it does not exist.
    async fn delete_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>>;
}

/// Namespaces of the standalone limiter and their overrides. A namespace `reference` is its
/// id or its name.
#[async_trait]
pub trait NamespaceStore: Send + Sync {
    async fn namespace(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Namespace>>;
    /// The namespace with `candidate`'s name, inserting `candidate` when there is none,
    /// atomically.
    /// `audit` is written only when `candidate` was inserted.
    async fn upsert_namespace(
        &self,
        candidate: &Namespace,
        audit: &AuditEntry,
    ) -> StoreResult<Namespace>;
    /// Every override of a namespace, for the in-memory matcher.
    async fn overrides(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
    ) -> StoreResult<Vec<RateOverride>>;
    /// Overrides of a namespace ordered by id.
    async fn overrides_page(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        page: PageRequest,
    ) -> StoreResult<Page<RateOverride>>;
    /// Inserts `candidate`, or updates the limit and window of the override that has its
    /// identifier (keeping that one's id); returns the stored override.
    async fn set_override(
        &self,
        candidate: &RateOverride,
        audit: &AuditEntry,
    ) -> StoreResult<RateOverride>;
    /// Deletes the override with exactly this identifier; returns whether there was one.
    async fn delete_override(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        identifier: &Identifier,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
}

/// Permissions and roles. A permission `reference` is its id or slug, a role's its id or name.
#[async_trait]
pub trait RbacStore: Send + Sync {
    /// Inserts a permission; `Conflict` if its slug is taken in the workspace.
    async fn insert_permission(
        &self,
        permission: &Permission,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Permission>>;
    /// Permissions ordered by id; with `search`, those whose id, name or slug contains it,
    /// ignoring case.
    async fn permissions(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Permission>>;
    /// Applies `update` atomically; `Conflict` if the new slug is taken. `None` when the
    /// permission does not exist.
    async fn update_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: PermissionUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Permission>>;
    /// Applies `update` atomically; `Conflict` if the new name is taken. `None` when the role
    /// does not exist.
    async fn update_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: RoleUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>>;
    /// Deletes a permission and removes it from every role; returns whether it existed.
    async fn delete_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// The permissions with the candidates' slugs, inserting the candidates whose slug does
    /// not exist yet, atomically; in the candidates' order. All in one workspace. When any
    /// was inserted, writes `audit` with only the inserted ones among its targets
    /// ([`AuditEntry::only_targets`]).
    async fn upsert_permissions(
        &self,
        candidates: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<Permission>>;
    /// Inserts a role with links to its permissions (which must exist); `Conflict` if its
    /// name is taken.
    async fn insert_role(&self, role: &Role, audit: &AuditEntry) -> StoreResult<()>;
    async fn role(&self, workspace: &WorkspaceId, reference: &str) -> StoreResult<Option<Role>>;
    /// Roles ordered by id, with their permissions; with `search`, those whose id or name
    /// contains it, ignoring case.
    async fn roles(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Role>>;
    /// Deletes a role; returns whether it existed.
    async fn delete_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Makes `permissions` (existing ones) the role's whole set; returns the role after,
    /// `None` when it does not exist.
    async fn set_role_permissions(
        &self,
        workspace: &WorkspaceId,
        role: &RoleId,
        permissions: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>>;
}

/// The audit log, read side; entries are written by the changes they describe.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Entries of the workspace passing `filter`, newest first; `page.from` is the id of the
    /// newest entry of the page (inclusive).
    async fn audit_entries(
        &self,
        workspace: &WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;
}

/// Verification events: the raw rows, their rollups per minute, hour, day and month, and
/// each key's last use.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// In one transaction: stores the events (readable at once as raw events) and what they
    /// add to the rollups, pending until [`fold_verification_rollups`](Self::fold_verification_rollups).
    /// Events carry their workspace, and every row written is keyed by it.
    async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()>;
    /// Adds everything pending to its rollup row in every granularity (count and spent
    /// credits) and moves each key's last use forward to its latest event (never backwards:
    /// writes may be folded out of order), each pending write exactly once, also when several
    /// nodes fold at the same time. Returns how many writes were folded.
    async fn fold_verification_rollups(&self) -> StoreResult<u64>;
    /// Deletes raw events older than `before`; rollups stay. Returns how many were deleted.
    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64>;
    /// The workspace's rollup rows of one granularity, ordered by bucket, key, outcome, tags,
    /// after folding what is pending.
    async fn verification_rollups(
        &self,
        workspace: &WorkspaceId,
        granularity: Granularity,
    ) -> StoreResult<Vec<VerificationRollup>>;
    /// How many raw events of the workspace are stored.
    async fn count_verification_events(&self, workspace: &WorkspaceId) -> StoreResult<u64>;
}

/// One result row of an analytics query: output column name → value (integers as numbers,
/// NULL as null, tags as an array of strings).
pub type AnalyticsRow = serde_json::Map<String, serde_json::Value>;

/// What one analytics query may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsLimits {
    /// How long the database may work on the query before it is stopped.
    pub time_budget: std::time::Duration,
    /// Most rows returned; a query producing more fails rather than being cut silently.
    pub max_rows: usize,
}

/// Why an analytics query gave no rows.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The query ran past its time budget and was stopped.
    #[error("the query did not finish within {0:?}")]
    TimedOut(std::time::Duration),
    /// The query produced more rows than allowed.
    #[error("the query returned more than {0} rows")]
    TooManyRows(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs the analytics queries of `analytics.getVerifications`, read-only and within limits.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// The SQL dialect queries must be rendered in for this store.
    fn analytics_dialect(&self) -> Dialect;

    /// Runs `query` (rendered for this store's dialect, workspace filter included) in a
    /// read-only transaction, stopping it after `limits.time_budget`; each row is keyed by
    /// `query.columns[i].name` and decoded by its `OutputKind`.
    async fn run_analytics_query(
        &self,
        query: &RenderedQuery,
        limits: AnalyticsLimits,
    ) -> Result<Vec<AnalyticsRow>, AnalyticsError>;
}

/// Webhook endpoints and the outbox of deliveries. Events of admin changes are enqueued by
/// the stores themselves, in the change's transaction, from its audit entry
/// ([`WebhookEvent::of_audit`]): one delivery per enabled endpoint of the workspace that
/// subscribes to the event's type.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Endpoints ordered by id.
    async fn webhook_endpoints(
        &self,
        workspace: &WorkspaceId,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookEndpoint>>;
    /// Applies `update` atomically; returns the endpoint after, `None` when it does not exist.
    async fn update_webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        update: &EndpointUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Deletes an endpoint with its deliveries; returns whether it existed.
    async fn delete_webhook_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Enqueues an event that is not an admin change (anomalies, low credits, tests) for
    /// every subscribed endpoint; returns how many deliveries it made.
    async fn enqueue_webhook_event(
        &self,
        workspace: &WorkspaceId,
        event: &WebhookEvent,
        now: UnixMillis,
    ) -> StoreResult<usize>;
    /// Deliveries of the workspace passing `filter`, newest first; `page.from` is the id of
    /// the newest delivery of the page (inclusive).
    async fn webhook_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>>;
    /// The attempts of one delivery, oldest first.
    async fn delivery_attempts(
        &self,
        workspace: &WorkspaceId,
        id: &DeliveryId,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// Leases up to `limit` pending deliveries due at `now` (of enabled endpoints, not leased
    /// by anyone else) until `lease_until`. Two claimers never get the same delivery while
    /// its lease runs.
    async fn claim_webhook_deliveries(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt in the log and moves the delivery on (delivered, retry at a time,
    /// or failed), releasing its lease.
    async fn record_delivery_attempt(
        &self,
        id: &DeliveryId,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<()>;
    /// How many deliveries wait for an attempt, across workspaces.
    async fn pending_webhook_deliveries(&self) -> StoreResult<i64>;
    /// Enqueues `key.expiring_soon` once for every live key that expires after `now` and at
    /// or before `horizon_end` in a workspace with an enabled endpoint subscribed to it, and
    /// records the announcement in the same transaction; a key whose `expires` changed is
    /// announced again. Returns how many keys were announced.
    async fn announce_expiring_keys(
        &self,
        now: UnixMillis,
        horizon_end: UnixMillis,
    ) -> StoreResult<usize>;
}

/// Anomalies raised by detection (`anomalies.list`).
#[async_trait]
pub trait AnomalyStore: Send + Sync {
    /// Stores `anomaly` and, in the same transaction, enqueues its webhook event
    /// ([`RecordedAnomaly::webhook_event`]) for every subscribed endpoint of its workspace.
    async fn insert_anomaly(&self, anomaly: &RecordedAnomaly) -> StoreResult<()>;
    /// Anomalies of the workspace passing `filter`, newest first; `page.from` is the id of
    /// the newest anomaly of the page (inclusive).
    async fn anomalies(
        &self,
        workspace: &WorkspaceId,
        filter: &AnomalyFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RecordedAnomaly>>;
}

/// Leaked keys (a Keywarden extension): each workspace's policy, and reports that change no
/// key. Reports that revoke or disable a key go through [`KeyStore::delete_key`] and
/// [`KeyStore::change_key`] with a `key.leaked` audit entry, so the audit log is the record of
/// every report (`leaks.listReports` reads it).
#[async_trait]
pub trait LeakStore: Send + Sync {
    /// The workspace's policy; `None` when it never set one (the default applies).
    async fn leak_policy(&self, workspace: &WorkspaceId) -> StoreResult<Option<LeakPolicy>>;
    /// Sets the workspace's policy.
    async fn set_leak_policy(
        &self,
        workspace: &WorkspaceId,
        policy: LeakPolicy,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Records a report that leaves the key as it is (policy `flag`): writes `audit` and the
    /// webhook deliveries it announces.
    async fn record_leak(&self, audit: &AuditEntry) -> StoreResult<()>;
}

/// Workspaces' data keys for recoverable keys, stored only wrapped under a master key (see
/// [`crate::vault`]). Not an admin change, so no audit entry: a data key is created on a
/// workspace's first recoverable key and only ever re-wrapped.
#[async_trait]
pub trait DataKeyStore: Send + Sync {
    /// The workspace's data key, if it has one.
    async fn data_key(&self, workspace: &WorkspaceId) -> StoreResult<Option<WrappedDataKey>>;
    /// Stores `key` as its workspace's data key unless the workspace has one already; returns
    /// the one stored, so two concurrent first uses agree on a single data key.
    async fn insert_data_key(&self, key: &WrappedDataKey) -> StoreResult<WrappedDataKey>;
    /// Every workspace's data key, for master-key rotation.
    async fn data_keys(&self) -> StoreResult<Vec<WrappedDataKey>>;
    /// Replaces the wrapping of the data key with `key.id` (same key, another master key).
    async fn rewrap_data_key(&self, key: &WrappedDataKey) -> StoreResult<()>;
}
/// The keys that sign short-lived tokens, shared by every node of an installation. They
/// belong to the installation, not to a workspace, and change only by rotation (no admin
/// action, so no audit entry).
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every stored signing key.
    async fn signing_keys(&self) -> StoreResult<Vec<crate::token::SigningKeyRecord>>;
    /// In one transaction: adds `key` unless a key created after `due_before` exists (another
    /// node rotated first), and deletes every key older than the newest one created at or
    /// before `retire_before` (their tokens have all expired). Returns whether `key` was
    /// added.
    async fn rotate_signing_key(
        &self,
        key: &crate::token::SigningKeyRecord,
        due_before: UnixMillis,
        retire_before: UnixMillis,
    ) -> StoreResult<bool>;
}

/// Re-sealing server secrets in place (sealing plaintext ones once master keys are configured,
/// moving sealed ones to the current master key on rotation). The secret itself never
/// changes, so this is no admin change and writes no audit entry.
#[async_trait]
pub trait ServerSecretStore: Send + Sync {
    /// Every webhook endpoint's secret as stored, of every workspace.
    async fn webhook_endpoint_secrets(
        &self,
    ) -> StoreResult<Vec<crate::sealed_secret::EndpointSecret>>;
    /// Stores `sealed` as the endpoint's secret if the stored one is still `current.secret`
    /// (a secret rotated meanwhile is left alone); returns whether it was replaced.
    async fn reseal_webhook_secret(
        &self,
        current: &crate::sealed_secret::EndpointSecret,
        sealed: &crate::sealed_secret::SecretAtRest<crate::webhook::WebhookSecret>,
    ) -> StoreResult<bool>;
    /// Stores `sealed` as the seed of signing key `current.id` if the stored one is still
    /// `current.seed`; returns whether it was replaced (not when the key was retired).
    async fn reseal_signing_seed(
        &self,
        current: &crate::token::SigningKeyRecord,
        sealed: &crate::sealed_secret::SecretAtRest<crate::token::SigningSeed>,
    ) -> StoreResult<bool>;
}

/// Everything a server needs from storage.
#[async_trait]
pub trait Store:
    WorkspaceStore
    + RootKeyStore
    + ApiStore
    + KeyStore
    + IdentityStore
    + NamespaceStore
    + RbacStore
    + AuditStore
    + UsageStore
    + AnalyticsStore
    + WebhookStore
    + AnomalyStore
    + LeakStore
    + DataKeyStore
    + SigningKeyStore
    + ServerSecretStore
{
    /// Waits until every accepted write is durable; called on shutdown.
    async fn flush(&self) -> StoreResult<()>;

    /// A name for health reports: `"sqlite"`, `"postgres"`.
    fn kind(&self) -> &'static str;

    /// Whether the backend answers right now; for health reports.
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
