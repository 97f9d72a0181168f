//! `spawn_app()` and friends: a server on port 0 with a fresh SQLite file, a controllable
//! clock, and a store wrapper that counts reads so tests can prove what stays in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use async_trait::async_trait;
use keywarden_core::analytics_query::{Dialect, RenderedQuery};
use keywarden_core::anomaly::{AnomalyFilter, RecordedAnomaly};
use keywarden_core::api::Api;
use keywarden_core::audit::{AuditAction, AuditContext, AuditEntry, AuditFilter};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId, NamespaceId, RoleId, RootKeyId, WorkspaceId};
use keywarden_core::identity::{ExternalId, Identity, IdentityUpdate};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::namespace::{Identifier, Namespace, RateOverride};
use keywarden_core::rbac::{Permission, PermissionUpdate, Role, RoleUpdate};
use keywarden_core::root_key::{RootKey, RootKeyUpdate, RootPermissions};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::{
    AnalyticsError, AnalyticsLimits, AnalyticsRow, AnalyticsStore, AnomalyStore, ApiStore,
    AuditStore, CreditSpend, IdentityStore, ImportOutcome, KeyStore, NamespaceStore, Page,
    PageRequest, RbacStore, RootKeyStore, Store, StoreResult, UsageStore, WorkspaceStore,
};
use keywarden_core::text::Label;
use keywarden_core::time::{Clock, UnixMillis};
use keywarden_core::usage::{Granularity, VerificationEvent, VerificationRollup};
use keywarden_core::workspace::Workspace;
use keywarden_server::service::{Backends, Bootstrap, ServiceSettings, UsageSettings, bootstrap};

use crate::backend::TestStorage;
use keywarden_server::{Application, ServerSettings};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ROOT_KEY: &str = "kw_root_integration_test_0123456789";

/// A clock tests move by hand. Starts at 2026-11-27T12:00:00Z.
pub struct TestClock(AtomicI64);

impl TestClock {
    pub const START: i64 = 1_795_780_800_000;

    pub fn at(t: i64) -> Self {
        Self(AtomicI64::new(t))
    }

    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub store: Arc<CountingStore>,
    pub workspace: WorkspaceId,
    pub storage: Arc<TestStorage>,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Asserts a 200 and returns `data`.
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.body
        );
        self.data()
    }

    /// Asserts an error status and the envelope shape; returns `error`.
    pub fn err(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.body
        );
        let error = &self.body["error"];
        assert_eq!(error["status"], status, "{}", self.body);
        assert!(
            error["title"].is_string() && error["detail"].is_string(),
            "{}",
            self.body
        );
        assert!(
            error["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("https://unkey.com/docs/errors/"),
            "{}",
            self.body
        );
        assert!(
            self.body["meta"]["requestId"]
                .as_str()
                .unwrap_or("")
                .starts_with("req_"),
            "{}",
            self.body
        );
        assert_eq!(
            error.get("errors").is_some(),
            status == 400,
            "{}",
            self.body
        );
        error
    }

    /// Asserts a 400 naming `location` among its field errors.
    pub fn invalid_at(&self, location: &str) {
        let error = self.err(400);
        let errors = error["errors"].as_array().expect("errors array");
        assert!(
            errors.iter().any(|e| e["location"] == location),
            "no error at {location}: {}",
            self.body
        );
    }
}

pub async fn spawn_app() -> TestApp {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    spawn_app_in(storage, TestClock::START).await
}

/// Starts a server on `storage` (reusing what it holds) with the clock at `now`.
pub async fn spawn_app_in(storage: Arc<TestStorage>, now: i64) -> TestApp {
    spawn_app_with(storage, now, |_| {}).await
}

/// Starts a server like [`spawn_app_in`], with the test settings changed by `adjust`.
pub async fn spawn_app_with(
    storage: Arc<TestStorage>,
    now: i64,
    adjust: impl FnOnce(&mut ServerSettings),
) -> TestApp {
    try_spawn_app_with(storage, now, adjust)
        .await
        .expect("build app")
}

/// Like [`spawn_app_with`], but a server that refuses to start is an error, not a panic.
pub async fn try_spawn_app_with(
    storage: Arc<TestStorage>,
    now: i64,
    adjust: impl FnOnce(&mut ServerSettings),
) -> anyhow::Result<TestApp> {
    let clock = Arc::new(TestClock(AtomicI64::new(now)));
    let (inner, backends) = storage.open(clock.clone()).await;
    let store = Arc::new(CountingStore::new(inner));
    let workspace = match bootstrap(
        store.as_ref(),
        clock.now(),
        Some(PlaintextKey::new(ROOT_KEY.to_owned())),
    )
    .await
    .expect("bootstrap")
    {
        Bootstrap::FromEnvironment { workspace } => workspace,
        Bootstrap::AlreadyInitialised => store.workspaces().await.unwrap()[0].id.clone(),
        Bootstrap::Generated { .. } => unreachable!("a root key was given"),
    };
    let mut settings = ServerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        service: ServiceSettings {
            key_cache_capacity: 10_000,
            // Tests wait for recorded usage; a short interval keeps them quick.
            usage: UsageSettings {
                flush_interval: std::time::Duration::from_millis(100),
                rollup_interval: std::time::Duration::from_millis(100),
                ..UsageSettings::default()
            },
            ..ServiceSettings::default()
        },
        root_key_poll: std::time::Duration::from_millis(50),
        webhooks: keywarden_server::service::WebhookSettings {
            poll_interval: std::time::Duration::from_millis(20),
            expiring_every: std::time::Duration::from_millis(50),
            ..keywarden_server::service::WebhookSettings::default()
        },
        tls: None,
        insecure_http: false,
        trusted_proxies: Vec::new(),
    };
    adjust(&mut settings);
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let app = Application::build(
        settings,
        Backends {
            store: store.clone(),
            ..backends
        },
        clock.clone(),
    )
    .await?;
    let base_url = format!("{scheme}://{}", app.local_addr());
    let service = app.service();
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    // A node on a change feed reloads its views once the feed first listens; tests that
    // count store reads start after that, so the reload cannot land in their middle.
    if service.feed().state() != keywarden_core::change::FeedState::Standalone {
        for _ in 0..500 {
            if service.resyncs() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(service.resyncs() > 0, "the change feed never connected");
    }
    Ok(TestApp {
        base_url,
        client: reqwest::Client::new(),
        clock,
        store,
        workspace,
        storage,
        shutdown: Some(tx),
        stopped: Some(stopped),
    })
}

impl TestApp {
    /// POSTs `body` to `/v2/<operation>` with the bootstrap root key.
    pub async fn call(&self, operation: &str, body: Value) -> Reply {
        self.call_as(ROOT_KEY, operation, body).await
    }

    pub async fn call_as(&self, root_key: &str, operation: &str, body: Value) -> Reply {
        let response = self
            .client
            .post(format!("{}/v2/{operation}", self.base_url))
            .bearer_auth(root_key)
            .json(&body)
            .send()
            .await
            .expect("request");
        reply(response).await
    }

    pub async fn create_api(&self, name: &str) -> String {
        let reply = self.call("apis.createApi", json!({ "name": name })).await;
        reply.ok()["apiId"].as_str().unwrap().to_owned()
    }

    /// Creates a key with `extra` fields; returns `(keyId, key)`.
    pub async fn create_key(&self, api_id: &str, extra: Value) -> (String, String) {
        let mut body = json!({ "apiId": api_id });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let reply = self.call("keys.createKey", body).await;
        let data = reply.ok();
        (
            data["keyId"].as_str().unwrap().to_owned(),
            data["key"].as_str().unwrap().to_owned(),
        )
    }

    /// `n` keys of `api` (`(keyId, key)`): the first 80 % unlimited, the next 10 % with 100
    /// credits, the rest with an auto-applied limit of 50 a minute — a mix that gives every
    /// common outcome under load.
    pub async fn create_mixed_keys(&self, api: &str, n: usize) -> Vec<(String, String)> {
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            let extra = if i < n * 8 / 10 {
                json!({})
            } else if i < n * 9 / 10 {
                json!({ "credits": { "remaining": 100 } })
            } else {
                json!({ "ratelimits": [
                    { "name": "requests", "limit": 50, "duration": 60_000, "autoApply": true }
                ] })
            };
            keys.push(self.create_key(api, extra).await);
        }
        keys
    }

    pub async fn verify(&self, key: &str) -> Value {
        self.call("keys.verifyKey", json!({ "key": key }))
            .await
            .ok()
            .clone()
    }

    /// A root key of this workspace with only `permissions`, installed directly in the store.
    pub async fn root_key_with(&self, permissions: &[&str]) -> String {
        self.root_key_in(&self.workspace, permissions).await
    }

    pub async fn root_key_in(&self, workspace: &WorkspaceId, permissions: &[&str]) -> String {
        let secret = keywarden_core::root_key::generate_root_key();
        let now = self.clock.now();
        let key = RootKey {
            id: RootKeyId::generate(now),
            workspace_id: workspace.clone(),
            digest: secret.plaintext.digest(),
            end: keywarden_core::root_key::end_of(secret.plaintext.expose()),
            start: secret.start,
            name: None,
            permissions: RootPermissions::parse_all(permissions).unwrap(),
            expires: None,
            enabled: true,
            created_at: now,
            revoked_at: None,
        };
        let audit = AuditContext::cli().entry(&key.workspace_id, now, AuditAction::RootKeyCreate);
        self.store.insert_root_key(&key, &audit).await.unwrap();
        let token = secret.plaintext.expose().to_owned();
        self.wait_for_root_key(&token).await;
        token
    }

    /// A second workspace with its own all-powerful root key.
    pub async fn other_workspace(&self) -> (WorkspaceId, String) {
        let now = self.clock.now();
        let workspace = Workspace {
            id: WorkspaceId::generate(now),
            name: Label::parse("other").unwrap(),
            created_at: now,
        };
        self.store.insert_workspace(&workspace).await.unwrap();
        let all: Vec<String> = RootPermissions::everything().to_strings();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let key = self.root_key_in(&workspace.id, &all).await;
        (workspace.id, key)
    }

    /// Waits until the server's root-key poll has picked up `token`.
    pub async fn wait_for_root_key(&self, token: &str) {
        for _ in 0..200 {
            let status = self
                .client
                .post(format!("{}/v2/keys.getKey", self.base_url))
                .bearer_auth(token)
                .json(&json!({ "keyId": "key_probe" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status != 401 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server never accepted the new root key");
    }

    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    async fn stop_in_place(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    Reply { status, body }
}

/// SHA-256 of `key`, base64: how keys are stored and imported.
pub fn hash_of(key: &str) -> String {
    KeyDigest::of(key).to_base64()
}

/// Delegates to SQLite and counts the reads verification must avoid.
pub struct CountingStore {
    pub(crate) inner: Arc<dyn Store>,
    pub key_reads: AtomicUsize,
    /// When set, analytics queries run with these limits instead of the server's.
    pub analytics_limits: std::sync::Mutex<Option<AnalyticsLimits>>,
}

impl CountingStore {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            key_reads: AtomicUsize::new(0),
            analytics_limits: std::sync::Mutex::new(None),
        }
    }

    pub fn key_reads(&self) -> usize {
        self.key_reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WorkspaceStore for CountingStore {
    async fn bootstrap(
        &self,
        workspace: &Workspace,
        root_key: &RootKey,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner.bootstrap(workspace, root_key, audit).await
    }
    async fn insert_workspace(&self, workspace: &Workspace) -> StoreResult<()> {
        self.inner.insert_workspace(workspace).await
    }
    async fn workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.inner.workspaces().await
    }
}

#[async_trait]
impl RootKeyStore for CountingStore {
    async fn insert_root_key(&self, key: &RootKey, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.insert_root_key(key, audit).await
    }
    async fn root_keys(&self) -> StoreResult<Vec<RootKey>> {
        self.inner.root_keys().await
    }
    async fn revoke_root_key(
        &self,
        id: &RootKeyId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner.revoke_root_key(id, now, audit).await
    }
    async fn root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
    ) -> StoreResult<Option<RootKey>> {
        self.inner.root_key(workspace, id).await
    }
    async fn update_root_key(
        &self,
        workspace: &WorkspaceId,
        id: &RootKeyId,
        update: RootKeyUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>> {
        self.inner
            .update_root_key(workspace, id, update, audit)
            .await
    }
    async fn rotate_root_key(
        &self,
        workspace: &WorkspaceId,
        old: &RootKeyId,
        new: &RootKey,
        old_expires: Option<UnixMillis>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<RootKey>> {
        self.inner
            .rotate_root_key(workspace, old, new, old_expires, audit)
            .await
    }
    async fn root_key_revision(&self) -> StoreResult<i64> {
        self.inner.root_key_revision().await
    }
}

#[async_trait]
impl ApiStore for CountingStore {
    async fn insert_api(&self, api: &Api, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.insert_api(api, audit).await
    }
    async fn api(&self, workspace: &WorkspaceId, id: &ApiId) -> StoreResult<Option<Api>> {
        self.inner.api(workspace, id).await
    }
    async fn delete_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>> {
        self.inner.delete_api(workspace, id, now, audit).await
    }
    async fn update_api(
        &self,
        workspace: &WorkspaceId,
        id: &ApiId,
        update: keywarden_core::api::ApiUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Result<Api, keywarden_core::api::ApiUpdateError>> {
        self.inner.update_api(workspace, id, update, audit).await
    }
}

#[async_trait]
impl KeyStore for CountingStore {
    async fn insert_key(&self, key: &KeyRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.insert_key(key, audit).await
    }
    async fn import_keys(
        &self,
        keys: &[KeyRecord],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<ImportOutcome>> {
        self.inner.import_keys(keys, audit).await
    }
    async fn key_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<KeyRecord>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.key_by_digest(digest).await
    }
    async fn key(&self, workspace: &WorkspaceId, id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        self.inner.key(workspace, id).await
    }
    async fn keys_of_api(
        &self,
        workspace: &WorkspaceId,
        api: &ApiId,
        external_id: Option<&ExternalId>,
        page: PageRequest,
    ) -> StoreResult<Page<KeyRecord>> {
        self.inner
            .keys_of_api(workspace, api, external_id, page)
            .await
    }
    async fn change_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        change: KeyChange,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Result<KeyRecord, KeyChangeError>> {
        self.inner
            .change_key(workspace, id, change, now, audit)
            .await
    }
    async fn delete_key(
        &self,
        workspace: &WorkspaceId,
        id: &KeyId,
        permanent: bool,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>> {
        self.inner
            .delete_key(workspace, id, permanent, now, audit)
            .await
    }
    async fn rotate_key(
        &self,
        workspace: &WorkspaceId,
        old: &KeyId,
        new: &KeyRecord,
        old_expires: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<KeyRecord>> {
        self.inner
            .rotate_key(workspace, old, new, old_expires, audit)
            .await
    }
    async fn spend_credits(
        &self,
        id: &KeyId,
        cost: i64,
        now: UnixMillis,
    ) -> StoreResult<CreditSpend> {
        self.inner.spend_credits(id, cost, now).await
    }
    async fn refill_due_credits(&self, now: UnixMillis) -> StoreResult<Vec<KeyDigest>> {
        self.inner.refill_due_credits(now).await
    }
    async fn all_key_digests(&self) -> StoreResult<Vec<KeyDigest>> {
        self.inner.all_key_digests().await
    }
}

#[async_trait]
impl AuditStore for CountingStore {
    async fn audit_entries(
        &self,
        workspace: &WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        self.inner.audit_entries(workspace, filter, page).await
    }
}

#[async_trait]
impl keywarden_core::store::LeakStore for CountingStore {
    async fn leak_policy(
        &self,
        workspace: &WorkspaceId,
    ) -> StoreResult<Option<keywarden_core::leak::LeakPolicy>> {
        self.inner.leak_policy(workspace).await
    }
    async fn set_leak_policy(
        &self,
        workspace: &WorkspaceId,
        policy: keywarden_core::leak::LeakPolicy,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.inner.set_leak_policy(workspace, policy, audit).await
    }
    async fn record_leak(&self, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.record_leak(audit).await
    }
}

#[async_trait]
impl AnomalyStore for CountingStore {
    async fn insert_anomaly(&self, anomaly: &RecordedAnomaly) -> StoreResult<()> {
        self.inner.insert_anomaly(anomaly).await
    }
    async fn anomalies(
        &self,
        workspace: &WorkspaceId,
        filter: &AnomalyFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RecordedAnomaly>> {
        self.inner.anomalies(workspace, filter, page).await
    }
}

#[async_trait]
impl IdentityStore for CountingStore {
    async fn insert_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.insert_identity(identity, audit).await
    }
    async fn upsert_identity(
        &self,
        candidate: &Identity,
        audit: &AuditEntry,
    ) -> StoreResult<Identity> {
        self.inner.upsert_identity(candidate, audit).await
    }
    async fn identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Identity>> {
        self.inner.identity(workspace, reference).await
    }
    async fn identities(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Identity>> {
        self.inner.identities(workspace, search, page).await
    }
    async fn update_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: IdentityUpdate,
        now: UnixMillis,
        audit: &AuditEntry,
    ) -> StoreResult<Option<(Identity, Vec<KeyDigest>)>> {
        self.inner
            .update_identity(workspace, reference, update, now, audit)
            .await
    }
    async fn delete_identity(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Vec<KeyDigest>>> {
        self.inner
            .delete_identity(workspace, reference, audit)
            .await
    }
}

#[async_trait]
impl NamespaceStore for CountingStore {
    async fn namespace(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Namespace>> {
        self.inner.namespace(workspace, reference).await
    }
    async fn upsert_namespace(
        &self,
        candidate: &Namespace,
        audit: &AuditEntry,
    ) -> StoreResult<Namespace> {
        self.inner.upsert_namespace(candidate, audit).await
    }
    async fn overrides(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
    ) -> StoreResult<Vec<RateOverride>> {
        self.inner.overrides(workspace, namespace).await
    }
    async fn overrides_page(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        page: PageRequest,
    ) -> StoreResult<Page<RateOverride>> {
        self.inner.overrides_page(workspace, namespace, page).await
    }
    async fn set_override(
        &self,
        candidate: &RateOverride,
        audit: &AuditEntry,
    ) -> StoreResult<RateOverride> {
        self.inner.set_override(candidate, audit).await
    }
    async fn delete_override(
        &self,
        workspace: &WorkspaceId,
        namespace: &NamespaceId,
        identifier: &Identifier,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner
            .delete_override(workspace, namespace, identifier, audit)
            .await
    }
}

#[async_trait]
impl RbacStore for CountingStore {
    async fn insert_permission(
        &self,
        permission: &Permission,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.inner.insert_permission(permission, audit).await
    }
    async fn permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
    ) -> StoreResult<Option<Permission>> {
        self.inner.permission(workspace, reference).await
    }
    async fn permissions(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Permission>> {
        self.inner.permissions(workspace, search, page).await
    }
    async fn update_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: PermissionUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Permission>> {
        self.inner
            .update_permission(workspace, reference, update, audit)
            .await
    }
    async fn update_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        update: RoleUpdate,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>> {
        self.inner
            .update_role(workspace, reference, update, audit)
            .await
    }
    async fn delete_permission(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner
            .delete_permission(workspace, reference, audit)
            .await
    }
    async fn upsert_permissions(
        &self,
        candidates: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Vec<Permission>> {
        self.inner.upsert_permissions(candidates, audit).await
    }
    async fn insert_role(&self, role: &Role, audit: &AuditEntry) -> StoreResult<()> {
        self.inner.insert_role(role, audit).await
    }
    async fn role(&self, workspace: &WorkspaceId, reference: &str) -> StoreResult<Option<Role>> {
        self.inner.role(workspace, reference).await
    }
    async fn roles(
        &self,
        workspace: &WorkspaceId,
        search: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<Role>> {
        self.inner.roles(workspace, search, page).await
    }
    async fn delete_role(
        &self,
        workspace: &WorkspaceId,
        reference: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.inner.delete_role(workspace, reference, audit).await
    }
    async fn set_role_permissions(
        &self,
        workspace: &WorkspaceId,
        role: &RoleId,
        permissions: &[Permission],
        audit: &AuditEntry,
    ) -> StoreResult<Option<Role>> {
        self.inner
            .set_role_permissions(workspace, role, permissions, audit)
            .await
    }
}

#[async_trait]
impl UsageStore for CountingStore {
    async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()> {
        self.inner.record_verifications(events).await
    }
    async fn fold_verification_rollups(&self) -> StoreResult<u64> {
        self.inner.fold_verification_rollups().await
    }
    async fn prune_verifications(&self, before: UnixMillis) -> StoreResult<u64> {
        self.inner.prune_verifications(before).await
    }
    async fn verification_rollups(
        &self,
        workspace: &WorkspaceId,
        granularity: Granularity,
    ) -> StoreResult<Vec<VerificationRollup>> {
        self.inner
            .verification_rollups(workspace, granularity)
            .await
    }
    async fn count_verification_events(&self, workspace: &WorkspaceId) -> StoreResult<u64> {
        self.inner.count_verification_events(workspace).await
    }
}

#[async_trait]
impl AnalyticsStore for CountingStore {
    fn analytics_dialect(&self) -> Dialect {
        self.inner.analytics_dialect()
    }
    async fn run_analytics_query(
        &self,
        query: &RenderedQuery,
        limits: AnalyticsLimits,
    ) -> Result<Vec<AnalyticsRow>, AnalyticsError> {
        let limits = self.analytics_limits.lock().unwrap().unwrap_or(limits);
        self.inner.run_analytics_query(query, limits).await
    }
}

#[async_trait]
impl keywarden_core::store::DataKeyStore for CountingStore {
    async fn data_key(
        &self,
        workspace: &WorkspaceId,
    ) -> StoreResult<Option<keywarden_core::vault::WrappedDataKey>> {
        self.inner.data_key(workspace).await
    }
    async fn insert_data_key(
        &self,
        key: &keywarden_core::vault::WrappedDataKey,
    ) -> StoreResult<keywarden_core::vault::WrappedDataKey> {
        self.inner.insert_data_key(key).await
    }
    async fn data_keys(&self) -> StoreResult<Vec<keywarden_core::vault::WrappedDataKey>> {
        self.inner.data_keys().await
    }
    async fn rewrap_data_key(
        &self,
        key: &keywarden_core::vault::WrappedDataKey,
    ) -> StoreResult<()> {
        self.inner.rewrap_data_key(key).await
    }
}
#[async_trait]
impl keywarden_core::store::SigningKeyStore for CountingStore {
    async fn signing_keys(&self) -> StoreResult<Vec<keywarden_core::token::SigningKeyRecord>> {
        self.inner.signing_keys().await
    }
    async fn rotate_signing_key(
        &self,
        key: &keywarden_core::token::SigningKeyRecord,
        due_before: UnixMillis,
        retire_before: UnixMillis,
    ) -> StoreResult<bool> {
        self.inner
            .rotate_signing_key(key, due_before, retire_before)
            .await
    }
}

#[async_trait]
impl keywarden_core::store::ServerSecretStore for CountingStore {
    async fn webhook_endpoint_secrets(
        &self,
    ) -> StoreResult<Vec<keywarden_core::sealed_secret::EndpointSecret>> {
        self.inner.webhook_endpoint_secrets().await
    }
    async fn reseal_webhook_secret(
        &self,
        current: &keywarden_core::sealed_secret::EndpointSecret,
        sealed: &keywarden_core::sealed_secret::SecretAtRest<
            keywarden_core::webhook::WebhookSecret,
        >,
    ) -> StoreResult<bool> {
        self.inner.reseal_webhook_secret(current, sealed).await
    }
    async fn reseal_signing_seed(
        &self,
        current: &keywarden_core::token::SigningKeyRecord,
        sealed: &keywarden_core::sealed_secret::SecretAtRest<keywarden_core::token::SigningSeed>,
    ) -> StoreResult<bool> {
        self.inner.reseal_signing_seed(current, sealed).await
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn flush(&self) -> StoreResult<()> {
        self.inner.flush().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
}
