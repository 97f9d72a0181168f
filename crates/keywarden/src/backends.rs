//! Opening what a node keeps its state in, from the configuration: the store, the change
//! feed that goes with it, and the shared rate limiter if one is configured.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use keywarden_core::change::{ChangeFeed, Standalone};
use keywarden_core::ratelimit::Limiter;
use keywarden_core::store::Store;
use keywarden_core::time::Clock;
use keywarden_redis::{
    FaultMode, RedisLimiterSettings, ResilientLimiter, ResilientLimiterSettings,
};
use keywarden_server::service::Backends;
use keywarden_store::postgres_feed::PostgresFeed;
use keywarden_store::{PostgresStore, SqliteStore, StoreLocation};

use crate::config::Config;

pub async fn open(config: &Config, clock: &Arc<dyn Clock>) -> anyhow::Result<Backends> {
    let location = StoreLocation::parse(&config.database_url)?;
    let (store, feed): (Arc<dyn Store>, Arc<dyn ChangeFeed>) = match &location {
        StoreLocation::Sqlite(path) => (
            Arc::new(SqliteStore::open(path).context("could not open the SQLite store")?),
            Arc::new(Standalone),
        ),
        StoreLocation::Postgres(url) => {
            let postgres = PostgresStore::connect_with(url, config.database_max_connections)
                .await
                .context("could not open the PostgreSQL store")?;
            let feed = PostgresFeed::new(postgres.pool().clone(), Arc::clone(clock))
                .await
                .context("could not set up the change feed on PostgreSQL")?;
            (Arc::new(postgres), Arc::new(feed))
        }
    };
    let limiter = match &config.redis_url {
        Some(url) => Some(redis_limiter(url, config, clock).await?),
        None => {
            if matches!(location, StoreLocation::Postgres(_)) {
                tracing::warn!(
                    "no Redis configured: each node keeps its own rate-limit counts, so a limit \
                     admits up to its value per node"
                );
            }
            None
        }
    };
    Ok(Backends {
        store,
        feed,
        limiter,
    })
}

async fn redis_limiter(
    url: &str,
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn Limiter>> {
    // A brace in the prefix would become the key's hash tag instead of the workspace, putting
    // every counter in one slot or splitting one call's counters across slots.
    if config.redis_prefix.contains(['{', '}']) {
        anyhow::bail!("redis_prefix must not contain '{{' or '}}'");
    }
    let fault_mode: FaultMode = config
        .redis_fault_mode
        .parse()
        .context("invalid redis_fault_mode")?;
    let settings = ResilientLimiterSettings {
        redis: RedisLimiterSettings {
            prefix: config.redis_prefix.clone(),
            timeout: Duration::from_millis(config.redis_timeout_ms),
            ..RedisLimiterSettings::default()
        },
        fault_mode,
        ..ResilientLimiterSettings::default()
    };
    let limiter = ResilientLimiter::start(url, settings, Arc::clone(clock))
        .await
        .context("invalid Redis URL")?;
    Ok(Arc::new(limiter))
}
