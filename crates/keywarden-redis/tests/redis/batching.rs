//! Calls made together share script runs: in the order they arrived, each all or nothing as if
//! alone, batches no larger than their limits, and no call waiting past its timeout or counted
//! after its caller gave up on it before it was sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::ratelimit::{CounterKey, LimitCheck, LimitOutcome, Limiter};
use keywarden_redis::{RedisCallError, RedisLimiter, RedisLimiterSettings};
use keywarden_testkit::TcpProxy;

use crate::helpers::{
    Call, MINUTE, TestPrefix, all_in_order, away_from_a_minute_boundary, check, redis_limiter,
    redis_proxy, url_through,
};

/// `calls` made together (see `all_in_order`), each must succeed.
async fn together<'a>(redis: &'a RedisLimiter, calls: &'a [Vec<LimitCheck>]) -> Vec<LimitOutcome> {
    let futures: Vec<Call<'a, LimitOutcome>> = calls
        .iter()
        .map(|checks| -> Call<'a, LimitOutcome> {
            Box::pin(async move { redis.limit(checks).await.unwrap() })
        })
        .collect();
    all_in_order(futures).await
}

#[tokio::test]
async fn a_call_that_fails_in_a_batch_leaves_no_trace_for_the_calls_after_it() {
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await;
    let a = CounterKey::scoped("ws_batch", "key:k:a");
    let b = CounterKey::scoped("ws_batch", "key:k:b");
    away_from_a_minute_boundary().await;

    let calls = [
        // b cannot take 3: nothing is counted, on a either.
        vec![check(&a, 5, MINUTE, 3), check(&b, 2, MINUTE, 3)],
        // So a still has room for 4.
        vec![check(&a, 5, MINUTE, 4)],
        // Not for 2 more, named twice: 4 + 1 + 1 > 5 at the second check.
        vec![check(&a, 5, MINUTE, 1), check(&a, 5, MINUTE, 1)],
        // For 1 more.
        vec![check(&a, 5, MINUTE, 1)],
        // b saw nothing of the first call.
        vec![check(&b, 2, MINUTE, 2)],
    ];
    let before = redis.batch_stats();
    let outcomes = together(&redis, &calls).await;
    let after = redis.batch_stats();
    assert_eq!(after.batches - before.batches, 1, "{after:?}");
    assert_eq!(after.largest_batch, 5);

    let passed: Vec<bool> = outcomes.iter().map(|outcome| outcome.passed).collect();
    assert_eq!(passed, [false, true, false, true, true]);
    let first = &outcomes[0].decisions;
    assert!(first[0].passed && !first[1].passed);
    assert_eq!((first[0].remaining, first[1].remaining), (5, 2));
    assert_eq!(outcomes[1].decisions[0].remaining, 1);
    let third = &outcomes[2].decisions;
    assert!(third[0].passed && !third[1].passed);
    assert_eq!((third[0].remaining, third[1].remaining), (1, 1));
    assert_eq!(outcomes[3].decisions[0].remaining, 0);
    assert_eq!(outcomes[4].decisions[0].remaining, 0);

    // What the batch stored is what was decided.
    let now = redis
        .limit(&[check(&a, 5, MINUTE, 0), check(&b, 2, MINUTE, 0)])
        .await
        .unwrap();
    assert_eq!(now.decisions[0].remaining, 0);
    assert_eq!(now.decisions[1].remaining, 0);
}

#[tokio::test]
async fn batches_hold_no_more_calls_or_checks_than_their_limits() {
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await.with_batching(1, 3);
    let counter = CounterKey::scoped("ws_sizes", "key:k:requests");

    // One batch in flight, three calls in each: 3 + 3 + 3 + 1.
    let calls: Vec<Vec<LimitCheck>> = (0..10)
        .map(|_| vec![check(&counter, 1_000, MINUTE, 1)])
        .collect();
    let outcomes = together(&redis, &calls).await;
    assert!(outcomes.iter().all(|outcome| outcome.passed));
    let stats = redis.batch_stats();
    assert_eq!(
        (stats.batches, stats.calls, stats.largest_batch),
        (4, 10, 3)
    );

    // 256 checks at most: calls of 100 checks go two by two.
    let redis = redis.with_batching(1, 64);
    let wide: Vec<Vec<LimitCheck>> = (0..5)
        .map(|_| vec![check(&counter, 1_000, MINUTE, 0); 100])
        .collect();
    together(&redis, &wide).await;
    let after = redis.batch_stats();
    assert_eq!(
        (after.batches - stats.batches, after.calls - stats.calls),
        (3, 5)
    );
}

/// A limiter through `proxy` that waits `timeout` for each call, one batch in flight.
async fn through(proxy: &TcpProxy, prefix: &TestPrefix, timeout: Duration) -> Arc<RedisLimiter> {
    let settings = RedisLimiterSettings {
        prefix: prefix.as_str().to_owned(),
        timeout,
        ..RedisLimiterSettings::default()
    };
    let redis = RedisLimiter::connect(&url_through(proxy), settings)
        .await
        .expect("the proxied Redis answers");
    Arc::new(redis.with_batching(1, 64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_waits_no_longer_than_its_timeout() {
    let prefix = TestPrefix::new();
    let proxy = redis_proxy().await;
    let timeout = Duration::from_millis(300);
    let redis = through(&proxy, &prefix, timeout).await;
    let counter = CounterKey::scoped("ws_wait", "key:k:requests");

    proxy.pause();
    // The first call is sent and hangs; the next ones queue behind it, and would go only
    // once it is answered or times out, just before their own deadlines.
    let calls: Vec<_> = (0..3u64)
        .map(|i| {
            let redis = redis.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(80 * i)).await;
                let started = Instant::now();
                let error = redis
                    .decide(&[check(&counter, 100, MINUTE, 1)])
                    .await
                    .unwrap_err();
                (started.elapsed(), error)
            })
        })
        .collect();
    for call in calls {
        let (waited, error) = call.await.unwrap();
        // Ours, or the connection's own for the call in flight, which fires as ours does.
        let timed_out = match &error {
            RedisCallError::Timeout(t) => *t == timeout,
            RedisCallError::Redis(error) => error.is_timeout(),
            _ => false,
        };
        assert!(timed_out, "{error:?}");
        assert!(
            waited >= timeout - Duration::from_millis(5)
                && waited < timeout + Duration::from_millis(60),
            "waited {waited:?} for a {timeout:?} timeout"
        );
    }
    proxy.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_given_up_before_its_batch_is_sent_is_never_counted() {
    let prefix = TestPrefix::new();
    let proxy = redis_proxy().await;
    let redis = through(&proxy, &prefix, Duration::from_secs(5)).await;
    let observer = redis_limiter(&prefix).await;
    let sent = CounterKey::scoped("ws_gone", "key:k:sent");
    let given_up = CounterKey::scoped("ws_gone", "key:k:given_up");
    away_from_a_minute_boundary().await;

    proxy.pause();
    let first = {
        let redis = redis.clone();
        let sent = sent.clone();
        tokio::spawn(async move { redis.limit(&[check(&sent, 10, MINUTE, 1)]).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Queued behind the first call's batch, and dropped by its caller while queued.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        redis.limit(&[check(&given_up, 10, MINUTE, 1)]),
    )
    .await;
    assert!(gave_up.is_err(), "answered while Redis hung");
    proxy.resume();

    assert!(first.await.unwrap().unwrap().passed);
    // The lane's next batch, if any, was formed without it.
    let after = redis.limit(&[check(&sent, 10, MINUTE, 1)]).await.unwrap();
    assert_eq!(after.decisions[0].remaining, 8);
    let untouched = observer
        .limit(&[check(&given_up, 10, MINUTE, 0)])
        .await
        .unwrap();
    assert_eq!(
        untouched.decisions[0].remaining, 10,
        "the given-up call was counted"
    );
    assert_eq!(redis.batch_stats().calls, 2);
}
