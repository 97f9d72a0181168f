//! The shared limiter of the PostgreSQL + Redis runs: Redis, on the test's clock so tests can
//! move time across windows, under a key prefix of the test's own.

use std::sync::Arc;

use keywarden_core::ratelimit::Limiter;
use keywarden_core::time::Clock;
use keywarden_redis::{
    RedisLimiter, RedisLimiterSettings, ResilientLimiter, ResilientLimiterSettings,
};
use keywarden_testkit::redis_url;

/// A limiter on the test Redis, which must answer.
pub async fn for_test(prefix: &str, clock: Arc<dyn Clock>) -> Arc<dyn Limiter> {
    let settings = ResilientLimiterSettings {
        redis: RedisLimiterSettings {
            prefix: prefix.to_owned(),
            // Generous: a loaded CI machine must not push tests into the fault mode.
            timeout: std::time::Duration::from_secs(2),
            ..RedisLimiterSettings::default()
        },
        ..ResilientLimiterSettings::default()
    };
    let redis = RedisLimiter::connect(&redis_url(), settings.redis.clone())
        .await
        .expect("the test Redis (KEYWARDEN_TEST_REDIS_URL) must be reachable")
        .with_test_clock(Arc::clone(&clock));
    let connect_timeout = settings.redis.connect_timeout;
    let limiter = ResilientLimiter::start_on(redis, connect_timeout, settings, clock).await;
    assert!(
        limiter.status().reachable,
        "the test Redis must be reachable"
    );
    Arc::new(limiter)
}
