//! The server's use cases: what each endpoint does, over the core's domain and the store.
//! Handlers call these with domain values; nothing here knows about HTTP or JSON.

mod analytics;
mod anomalies;
mod anomaly_watch;
mod apis;
mod audit;
mod bootstrap;
mod changes;
mod hand_off;
mod identities;
mod key_access;
mod key_cache;
mod keys;
mod leaks;
mod limit_counts;
mod namespaces;
mod query_cache;
mod ratelimit;
mod rbac;
mod recoverable;
mod refill;
mod root_key_admin;
mod root_keys;
mod server_secrets;
mod tokens;
mod usage_recorder;
mod verify;
mod verify_counts;
mod verify_limits;
mod webhook_worker;
mod webhooks;

pub use webhook_worker::{WebhookSettings, WebhookStats, run_webhook_worker};
pub use webhooks::NewEndpoint;

use std::sync::Arc;

use keywarden_core::change::ChangeFeed;
use keywarden_core::ratelimit::{InMemoryLimiter, Limiter};
use keywarden_core::store::{Store, StoreResult};
use keywarden_core::time::{Clock, UnixMillis};
use tokio::sync::Notify;

pub use analytics::DEFAULT_ANALYTICS_LIMITS;
pub use anomaly_watch::{AnomalyDetection, AnomalyStats, AnomalyWatcher, ObservedVerification};
pub use apis::NewApi;
pub use bootstrap::{Bootstrap, BootstrapError, bootstrap};
pub use changes::ChannelSink;
pub use identities::NewIdentity;
pub use key_access::AccessChange;
pub use key_cache::{CacheLookups, CachedKey, KeyCache};
pub use keys::{
    AccessUpdate, CreatedKey, CreditsOperation, ImportedKey, MigrationReport, NewCredits, NewKey,
    ReadKey,
};
pub use leaks::{HandledLeak, LeakSighting, PartnerRequest};
pub use limit_counts::LimitDecisions;
pub use ratelimit::{LimitRequest, LimitResult};
pub use rbac::{NewPermission, NewRole};
pub use recoverable::{MasterKeyCheckError, RotationReport, rotate_master_key};
pub use root_key_admin::{IssuedRootKey, NewRootKey};
pub use root_keys::{Caller, RootKeyDirectory};
pub use server_secrets::{Reseal, SecretReport, ServerSecretError, seal_server_secrets};
pub use tokens::{Exchange, IssuedToken, TokenRequest, TokenSettings};
pub use usage_recorder::{UsageRecorder, UsageSettings, UsageStats, UsageWriter};
pub use verify::{RequestOrigin, SiteInput, Verification, VerifyInput};
pub use verify_limits::CheckedLimits;

use crate::error::ApiError;

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Most key records held in memory.
    pub key_cache_capacity: u64,
    /// How long cached records keep answering after the change feed lost its connection
    /// (and with it, news of changes made on other nodes); after that, every lookup asks the
    /// store.
    pub max_stale: std::time::Duration,
    /// Recording of verification events.
    pub usage: UsageSettings,
    /// What one `analytics.getVerifications` query may cost.
    pub analytics: keywarden_core::store::AnalyticsLimits,
    /// Anomaly detection over verifications.
    pub anomalies: AnomalyDetection,
    /// The keys GitHub secret scanning partner reports are signed with; none refuses them.
    pub partner_keys: keywarden_core::leak::PartnerKeys,
    /// The master keys that wrap workspaces' data keys; `None` turns recoverable keys off
    /// (412).
    pub master_keys: Option<keywarden_core::vault::MasterKeyring>,
    /// Short-lived tokens: lifetimes, signing key rotation, issuer.
    pub tokens: TokenSettings,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            key_cache_capacity: 100_000,
            max_stale: std::time::Duration::from_secs(600),
            usage: UsageSettings::default(),
            analytics: DEFAULT_ANALYTICS_LIMITS,
            anomalies: AnomalyDetection::default(),
            partner_keys: keywarden_core::leak::PartnerKeys::default(),
            master_keys: None,
            tokens: TokenSettings::default(),
        }
    }
}

/// What a node keeps its state in and talks to other nodes through.
pub struct Backends {
    pub store: Arc<dyn Store>,
    /// Carries changes between nodes; `keywarden_core::change::Standalone` for a single node.
    pub feed: Arc<dyn ChangeFeed>,
    /// Decides rate limits shared by all nodes; `None` keeps limits in this process.
    pub limiter: Option<Arc<dyn Limiter>>,
}

/// The application: store, clock, limiter and the in-memory views the hot path reads.
pub struct Keywarden {
    store: Arc<dyn Store>,
    feed: Arc<dyn ChangeFeed>,
    clock: Arc<dyn Clock>,
    keys: KeyCache,
    root_keys: RootKeyDirectory,
    namespaces: namespaces::NamespaceDirectory,
    /// Compiled permission queries of `keys.verifyKey`.
    queries: query_cache::QueryCache,
    /// Decides every rate limit.
    limiter: Arc<dyn Limiter>,
    /// The in-process limiter state, swept of ended windows in the background.
    local_limiter: Arc<InMemoryLimiter>,
    /// How the limiter decided, for `/metrics`.
    limit_counts: limit_counts::LimitCounts,
    /// Verification outcomes, for `/metrics`.
    verify_counts: verify_counts::VerifyCounts,
    /// Signalled when root keys changed, here or on another node.
    root_keys_changed: Notify,
    /// See [`ServiceSettings::max_stale`].
    max_stale_ms: i64,
    /// Completed full resyncs (see `changes.rs`).
    resyncs: std::sync::atomic::AtomicU64,
    /// Takes verification events off the hot path.
    usage: UsageRecorder,
    /// Drains `usage` into the store; taken and run by the application.
    usage_writer: parking_lot::Mutex<Option<UsageWriter>>,
    /// How long raw verification events are kept.
    usage_retention_ms: i64,
    /// See [`ServiceSettings::analytics`].
    analytics_limits: keywarden_core::store::AnalyticsLimits,
    /// Takes verification outcomes off the hot path to anomaly detection.
    anomalies: anomaly_watch::AnomalyFeed,
    /// Owns the detector; taken and run by the application.
    anomaly_watcher: parking_lot::Mutex<Option<AnomalyWatcher>>,
    /// See [`ServiceSettings::partner_keys`].
    partner_keys: keywarden_core::leak::PartnerKeys,
    /// See [`ServiceSettings::master_keys`].
    master_keys: Option<keywarden_core::vault::MasterKeyring>,
    /// Signing keys of short-lived tokens.
    tokens: tokens::TokenKeys,
}

impl Keywarden {
    /// Loads the in-memory views (known key digests, root keys) from the store.
    pub async fn start(
        backends: Backends,
        clock: Arc<dyn Clock>,
        settings: &ServiceSettings,
    ) -> StoreResult<Self> {
        let Backends {
            store,
            feed,
            limiter,
        } = backends;
        let keys = KeyCache::new(settings.key_cache_capacity);
        let known = keys.load_known(store.as_ref()).await?;
        let root_keys = RootKeyDirectory::default();
        root_keys.refresh(store.as_ref()).await?;
        tracing::info!(known_keys = known, "key index loaded");
        let local_limiter = Arc::new(InMemoryLimiter::new(Arc::clone(&clock)));
        let (usage, usage_writer) = usage_recorder::usage_channel(&settings.usage);
        let (anomalies, anomaly_watcher) = anomaly_watch::anomaly_channel(&settings.anomalies);
        let service = Self {
            store,
            feed,
            clock,
            keys,
            root_keys,
            namespaces: namespaces::NamespaceDirectory::default(),
            queries: query_cache::QueryCache::default(),
            limiter: limiter.unwrap_or_else(|| Arc::clone(&local_limiter) as Arc<dyn Limiter>),
            local_limiter,
            limit_counts: limit_counts::LimitCounts::default(),
            verify_counts: verify_counts::VerifyCounts::default(),
            root_keys_changed: Notify::new(),
            max_stale_ms: i64::try_from(settings.max_stale.as_millis()).unwrap_or(i64::MAX),
            resyncs: std::sync::atomic::AtomicU64::new(0),
            usage,
            usage_writer: parking_lot::Mutex::new(usage_writer),
            usage_retention_ms: i64::try_from(settings.usage.retention.as_millis())
                .unwrap_or(i64::MAX),
            analytics_limits: settings.analytics,
            anomalies,
            anomaly_watcher: parking_lot::Mutex::new(anomaly_watcher),
            partner_keys: settings.partner_keys.clone(),
            master_keys: settings.master_keys.clone(),
            tokens: tokens::TokenKeys::new(settings.tokens.clone()),
        };
        Ok(service)
    }

    /// The task that writes recorded verifications, once (`None` when recording is off or
    /// it was taken already).
    pub fn take_usage_writer(&self) -> Option<UsageWriter> {
        self.usage_writer.lock().take()
    }

    /// The task that runs anomaly detection, once (`None` when detection is off or it was
    /// taken already).
    pub fn take_anomaly_watcher(&self) -> Option<AnomalyWatcher> {
        self.anomaly_watcher.lock().take()
    }

    pub fn anomaly_stats(&self) -> AnomalyStats {
        self.anomalies.stats()
    }

    /// The store and clock as the anomaly watcher needs them.
    pub fn anomaly_backends(
        &self,
    ) -> (Arc<dyn keywarden_core::store::AnomalyStore>, Arc<dyn Clock>) {
        (
            Arc::clone(&self.store) as Arc<dyn keywarden_core::store::AnomalyStore>,
            Arc::clone(&self.clock),
        )
    }

    pub fn usage_stats(&self) -> UsageStats {
        self.usage.stats()
    }

    /// Deletes raw verification events past their retention; rollups stay. Returns how many.
    pub async fn prune_usage(&self) -> StoreResult<u64> {
        let before = self.now().plus_millis(-self.usage_retention_ms);
        self.store.prune_verifications(before).await
    }

    /// The store as the usage writer needs it.
    pub fn usage_store(&self) -> Arc<dyn keywarden_core::store::UsageStore> {
        Arc::clone(&self.store) as Arc<dyn keywarden_core::store::UsageStore>
    }

    /// Forgets rate-limit windows that have ended; returns how many were dropped.
    pub fn sweep_limits(&self) -> usize {
        self.local_limiter.sweep()
    }

    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn limiter_health(&self) -> keywarden_core::ratelimit::LimiterHealth {
        self.limiter.health()
    }

    /// Counts a verification's outcome for `/metrics`.
    pub fn count_verification(&self, code: keywarden_core::verify::VerifyCode) {
        self.verify_counts.count(code);
    }

    pub fn verification_counts(&self) -> Vec<(keywarden_core::verify::VerifyCode, u64)> {
        self.verify_counts.snapshot()
    }

    pub fn limit_decisions(&self) -> LimitDecisions {
        self.limit_counts.snapshot()
    }

    pub fn key_cache_lookups(&self) -> CacheLookups {
        self.keys.lookup_counts()
    }

    pub fn feed(&self) -> &dyn ChangeFeed {
        self.feed.as_ref()
    }

    /// Finds the root key presented as a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        self.root_keys.authenticate(token, self.now())
    }

    /// Picks up root keys created or revoked elsewhere (CLI, other nodes).
    pub async fn refresh_root_keys(&self) -> StoreResult<()> {
        self.root_keys.refresh(self.store.as_ref()).await
    }
}
