//! The server's use cases: what each endpoint does, over the core's domain and the store.
//! Handlers call these with domain values; nothing here knows about HTTP or JSON.

mod apis;
mod audit;
mod bootstrap;
mod changes;
mod identities;
mod key_access;
mod key_cache;
mod keys;
mod namespaces;
mod query_cache;
mod ratelimit;
mod rbac;
mod refill;
mod root_key_admin;
mod root_keys;
mod verify;
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

pub use apis::NewApi;
pub use bootstrap::{Bootstrap, BootstrapError, bootstrap};
pub use changes::ChannelSink;
pub use identities::NewIdentity;
pub use key_access::AccessChange;
pub use key_cache::{CacheLookups, CachedKey, KeyCache};
pub use keys::{
    AccessUpdate, CreatedKey, CreditsOperation, ImportedKey, MigrationReport, NewCredits, NewKey,
};
pub use ratelimit::{LimitRequest, LimitResult};
pub use rbac::{NewPermission, NewRole};
pub use root_key_admin::{IssuedRootKey, NewRootKey};
pub use root_keys::{Caller, RootKeyDirectory};
pub use verify::{Verification, VerifyInput};
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
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            key_cache_capacity: 100_000,
            max_stale: std::time::Duration::from_secs(600),
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
    /// Signalled when root keys changed, here or on another node.
    root_keys_changed: Notify,
    /// See [`ServiceSettings::max_stale`].
    max_stale_ms: i64,
    /// Completed full resyncs (see `changes.rs`).
    resyncs: std::sync::atomic::AtomicU64,
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
        Ok(Self {
            store,
            feed,
            clock,
            keys,
            root_keys,
            namespaces: namespaces::NamespaceDirectory::default(),
            queries: query_cache::QueryCache::default(),
            limiter: limiter.unwrap_or_else(|| Arc::clone(&local_limiter) as Arc<dyn Limiter>),
            local_limiter,
            root_keys_changed: Notify::new(),
            max_stale_ms: i64::try_from(settings.max_stale.as_millis()).unwrap_or(i64::MAX),
            resyncs: std::sync::atomic::AtomicU64::new(0),
        })
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
