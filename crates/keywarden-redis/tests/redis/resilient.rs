//! The resilient limiter: answers by its fault mode while Redis is unreachable, promptly, and
//! goes back to Redis once it answers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::ratelimit::{CounterKey, LimitOutcome, Limiter};
use keywarden_core::time::SystemClock;
use keywarden_redis::{
    FaultMode, RedisLimiterSettings, ResilientLimiter, ResilientLimiterSettings,
};

use crate::helpers::{MINUTE, TestPrefix, check, redis_limiter, redis_proxy, url_through};

const UNREACHABLE: &str = "redis://127.0.0.1:1";

async fn start(url: &str, prefix: &TestPrefix, fault_mode: FaultMode) -> ResilientLimiter {
    let settings = ResilientLimiterSettings {
        redis: RedisLimiterSettings {
            prefix: prefix.as_str().to_owned(),
            ..RedisLimiterSettings::default()
        },
        fault_mode,
        ..ResilientLimiterSettings::default()
    };
    ResilientLimiter::start(url, settings, Arc::new(SystemClock))
        .await
        .expect("starts whether or not Redis answers")
}

/// One call with one check, timed.
async fn call(limiter: &ResilientLimiter, limit: u64) -> LimitOutcome {
    let counter = CounterKey::scoped("ws_fault", "key:k:requests");
    let started = Instant::now();
    let outcome = limiter
        .limit(&[check(&counter, limit, MINUTE, 1)])
        .await
        .expect("a resilient limiter always answers");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    outcome
}

#[tokio::test]
async fn fail_open_admits_while_redis_is_unreachable() {
    let prefix = TestPrefix::new();
    let limiter = start(UNREACHABLE, &prefix, FaultMode::FailOpen).await;
    let status = limiter.status();
    assert_eq!(status.backend, "redis");
    assert!(!status.reachable);
    assert!(status.down_since.is_some());
    assert_eq!(status.fault_mode, FaultMode::FailOpen);

    for _ in 0..5 {
        let outcome = call(&limiter, 2).await;
        assert!(outcome.passed);
        assert_eq!(outcome.decisions[0].remaining, 2);
        let reset = outcome.decisions[0].reset.as_millis();
        assert_eq!(reset % MINUTE, 0);
    }
    // An explicit block needs no shared count to decide.
    assert!(!call(&limiter, 0).await.passed);
    assert_eq!(limiter.fallback_calls(), 6);
    assert_eq!(limiter.status().fallback_calls, 6);
}

#[tokio::test]
async fn fail_closed_denies_while_redis_is_unreachable() {
    let prefix = TestPrefix::new();
    let limiter = start(UNREACHABLE, &prefix, FaultMode::FailClosed).await;
    assert!(!limiter.status().reachable);
    for _ in 0..5 {
        let outcome = call(&limiter, 100).await;
        assert!(!outcome.passed);
        assert!(!outcome.decisions[0].passed);
        assert_eq!(outcome.decisions[0].remaining, 0);
    }
    assert_eq!(limiter.fallback_calls(), 5);
}

#[tokio::test]
async fn local_mode_enforces_limits_in_process_while_redis_is_unreachable() {
    let prefix = TestPrefix::new();
    let limiter = start(UNREACHABLE, &prefix, FaultMode::Local).await;
    assert!(!limiter.status().reachable);
    let passed: Vec<bool> = {
        let mut passed = Vec::new();
        for _ in 0..5 {
            passed.push(call(&limiter, 3).await.passed);
        }
        passed
    };
    assert_eq!(passed, [true, true, true, false, false]);
    assert_eq!(limiter.fallback_calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_go_back_to_redis_once_it_answers_again() {
    let prefix = TestPrefix::new();
    let mut proxy = redis_proxy().await;
    let limiter = start(&url_through(&proxy), &prefix, FaultMode::FailClosed).await;
    // Another node, straight on Redis, sees what the limiter counts there.
    let observer = redis_limiter(&prefix).await;
    let counter = CounterKey::scoped("ws_fault", "key:k:requests");
    let peek = || async {
        observer
            .limit(&[check(&counter, 100, MINUTE, 0)])
            .await
            .unwrap()
            .decisions[0]
            .remaining
    };

    assert!(limiter.status().reachable);
    assert!(call(&limiter, 100).await.passed);
    assert_eq!(peek().await, 99);

    proxy.cut().await;
    for _ in 0..5 {
        assert!(!call(&limiter, 100).await.passed, "fail-closed while down");
    }
    let status = limiter.status();
    assert!(!status.reachable);
    assert!(status.down_since.is_some());
    assert_eq!(status.fallback_calls, 5);
    assert_eq!(peek().await, 99, "nothing reached Redis");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !limiter.status().reachable {
        assert!(Instant::now() < deadline, "Redis not reported up again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(limiter.status().down_since, None);
    assert!(call(&limiter, 100).await.passed);
    assert_eq!(peek().await, 98, "counted in Redis again");
    assert_eq!(limiter.fallback_calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_timeout_then_calls_skip_it() {
    let prefix = TestPrefix::new();
    let proxy = redis_proxy().await;
    let limiter = start(&url_through(&proxy), &prefix, FaultMode::FailClosed).await;
    let observer = redis_limiter(&prefix).await;
    let counter = CounterKey::scoped("ws_fault", "key:k:requests");
    let peek = || async {
        observer
            .limit(&[check(&counter, 100, MINUTE, 0)])
            .await
            .unwrap()
            .decisions[0]
            .remaining
    };
    assert!(call(&limiter, 100).await.passed);

    proxy.pause();
    // The first call waits for its timeout (100 ms by default), the next ones for nothing.
    assert!(!call(&limiter, 100).await.passed);
    assert!(!limiter.status().reachable);
    let started = Instant::now();
    for _ in 0..20 {
        assert!(!call(&limiter, 100).await.passed);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(limiter.fallback_calls(), 21);

    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !limiter.status().reachable {
        assert!(Instant::now() < deadline, "Redis not reported up again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(call(&limiter, 100).await.passed);
    // The call that timed out reached Redis late and may have been counted there: a timeout
    // says nothing about whether Redis ran the script.
    let remaining = peek().await;
    assert!((97..=98).contains(&remaining), "remaining {remaining}");
}
