//! The server's use cases: what each endpoint does, over the core's domain and the store.
//! Handlers call these with domain values; nothing here knows about HTTP or JSON.

mod apis;
mod bootstrap;
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

use std::sync::Arc;

use keywarden_core::ratelimit::{InMemoryLimiter, Limiter};
use keywarden_core::store::{Store, StoreResult};
use keywarden_core::time::{Clock, UnixMillis};

pub use apis::NewApi;
pub use bootstrap::{Bootstrap, BootstrapError, bootstrap};
pub use identities::NewIdentity;
pub use key_access::AccessChange;
pub use key_cache::{CachedKey, KeyCache};
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
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            key_cache_capacity: 100_000,
        }
    }
}

/// The application: store, clock, limiter and the in-memory views the hot path reads.
pub struct Keywarden {
    store: Arc<dyn Store>,
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
}

impl Keywarden {
    /// Loads the in-memory views (known key digests, root keys) from the store.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: &ServiceSettings,
    ) -> StoreResult<Self> {
        let keys = KeyCache::new(settings.key_cache_capacity);
        let known = keys.load_known(store.as_ref()).await?;
        let root_keys = RootKeyDirectory::default();
        root_keys.refresh(store.as_ref()).await?;
        tracing::info!(known_keys = known, "key index loaded");
        let local_limiter = Arc::new(InMemoryLimiter::new(Arc::clone(&clock)));
        Ok(Self {
            store,
            clock,
            keys,
            root_keys,
            namespaces: namespaces::NamespaceDirectory::default(),
            queries: query_cache::QueryCache::default(),
            limiter: Arc::clone(&local_limiter) as Arc<dyn Limiter>,
            local_limiter,
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

    /// Finds the root key presented as a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        self.root_keys.authenticate(token, self.now())
    }

    /// Picks up root keys created or revoked elsewhere (CLI, other nodes).
    pub async fn refresh_root_keys(&self) -> StoreResult<()> {
        self.root_keys.refresh(self.store.as_ref()).await
    }
}
