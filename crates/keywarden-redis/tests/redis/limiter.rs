//! The Redis limiter on Redis's own clock: exact under concurrency across nodes (with calls in
//! batches), all or nothing, and the keys it leaves.

use std::sync::Arc;
use std::time::Duration;

use keywarden_core::ratelimit::{CounterKey, Limiter};
use keywarden_redis::RedisLimiter;

use crate::helpers::{
    MINUTE, TestPrefix, away_from_a_minute_boundary, check, redis_limiter, sync_connection,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_nodes_admit_exactly_the_limit() {
    let prefix = TestPrefix::new();
    let nodes = [
        Arc::new(redis_limiter(&prefix).await),
        Arc::new(redis_limiter(&prefix).await),
    ];
    let counter = CounterKey::scoped("ws_race", "ns:rlns_1:user_1");
    away_from_a_minute_boundary().await;

    let calls: Vec<_> = (0..400)
        .map(|i| {
            let node = nodes[i % 2].clone();
            let checks = [check(&counter, 100, MINUTE, 1)];
            tokio::spawn(async move { node.limit(&checks).await.unwrap().passed })
        })
        .collect();
    let mut passed = 0;
    for call in calls {
        if call.await.unwrap() {
            passed += 1;
        }
    }
    assert_eq!(passed, 100);
    let asking = nodes[0]
        .limit(&[check(&counter, 100, MINUTE, 0)])
        .await
        .unwrap();
    assert!(asking.passed, "asking costs nothing");
    assert_eq!(asking.decisions[0].remaining, 0);
    let one_more = nodes[1]
        .limit(&[check(&counter, 100, MINUTE, 1)])
        .await
        .unwrap();
    assert!(!one_more.passed);
    // They went in batches, most of them several calls at a time.
    let stats = nodes.map(|node| node.batch_stats());
    assert_eq!(stats[0].calls + stats[1].calls, 402, "{stats:?}");
    assert!(
        stats[0].largest_batch > 1 && stats[1].largest_batch > 1,
        "no batch held more than one call: {stats:?}"
    );
}

#[tokio::test]
async fn a_call_counts_on_every_counter_or_on_none() {
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await;
    let a = CounterKey::scoped("ws_all", "key:k:a");
    let b = CounterKey::scoped("ws_all", "key:k:b");
    away_from_a_minute_boundary().await;

    let both = [check(&a, 5, MINUTE, 1), check(&b, 3, MINUTE, 1)];
    for i in 0..3 {
        let outcome = redis.limit(&both).await.unwrap();
        assert!(outcome.passed);
        assert_eq!(outcome.decisions[0].remaining, 4 - i);
        assert_eq!(outcome.decisions[1].remaining, 2 - i);
    }
    // b is used up: the call fails, and a, which alone would pass, is not counted.
    for _ in 0..3 {
        let outcome = redis.limit(&both).await.unwrap();
        assert!(!outcome.passed);
        assert!(outcome.decisions[0].passed);
        assert!(!outcome.decisions[1].passed);
        assert_eq!(
            outcome.decisions[0].remaining, 2,
            "reported before the call"
        );
        assert_eq!(outcome.decisions[1].remaining, 0);
    }
    let a_alone = [check(&a, 5, MINUTE, 1)];
    assert!(redis.limit(&a_alone).await.unwrap().passed);
    assert!(redis.limit(&a_alone).await.unwrap().passed);
    assert!(!redis.limit(&a_alone).await.unwrap().passed);
}

#[tokio::test]
async fn a_call_larger_than_the_script_unpacks_at_once_is_decided_whole() {
    // 5 000 counters: more keys, and more numbers, than the script takes from Redis or
    // unpacks in one go (4 096), so it reads and unpacks them in parts.
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await;
    let counters: Vec<CounterKey> = (0..5_000)
        .map(|i| CounterKey::scoped("ws_large", &format!("key:k:{i}")))
        .collect();
    away_from_a_minute_boundary().await;

    let checks: Vec<_> = counters
        .iter()
        .enumerate()
        .map(|(i, counter)| check(counter, if i == 4_999 { 1 } else { 2 }, MINUTE, 1))
        .collect();
    let first = redis.limit(&checks).await.unwrap();
    assert!(first.passed);
    assert_eq!(first.decisions.len(), 5_000);
    assert!(first.decisions[..4_999].iter().all(|d| d.remaining == 1));
    assert_eq!(first.decisions[4_999].remaining, 0);
    // The last counter is used up: the whole call fails and counts nowhere, the first
    // counters (read in the first part) included.
    let second = redis.limit(&checks).await.unwrap();
    assert!(!second.passed);
    assert!(!second.decisions[4_999].passed);
    let first_alone = [check(&counters[0], 2, MINUTE, 1)];
    let outcome = redis.limit(&first_alone).await.unwrap();
    assert!(outcome.passed);
    assert_eq!(outcome.decisions[0].remaining, 0);
}

#[tokio::test]
async fn a_counter_named_twice_in_one_call_adds_up() {
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await;
    let a = CounterKey::scoped("ws_twice", "key:k:a");
    away_from_a_minute_boundary().await;

    // 3 fits in 5, 3 more does not: the second check sees the first one's cost.
    let twice = [check(&a, 5, MINUTE, 3), check(&a, 5, MINUTE, 3)];
    let outcome = redis.limit(&twice).await.unwrap();
    assert!(!outcome.passed);
    assert!(outcome.decisions[0].passed);
    assert!(!outcome.decisions[1].passed);
    assert_eq!(outcome.decisions[0].remaining, 5);

    // Nothing was counted; two that fit together pass, and both report the count after.
    let fits = [check(&a, 5, MINUTE, 2), check(&a, 5, MINUTE, 3)];
    let outcome = redis.limit(&fits).await.unwrap();
    assert!(outcome.passed);
    assert_eq!(outcome.decisions[0].remaining, 0);
    assert_eq!(outcome.decisions[1].remaining, 0);

    // A refund gives both back.
    redis.refund(&fits, &outcome).await.unwrap();
    let probe = redis.limit(&[check(&a, 5, MINUTE, 5)]).await.unwrap();
    assert!(probe.passed);
}

#[tokio::test]
async fn keys_carry_the_prefix_and_the_scope_tag_and_expire() {
    let prefix = TestPrefix::new();
    let redis = redis_limiter(&prefix).await;
    let requests = CounterKey::scoped("ws_keys", "key:key_1:requests");
    let tokens = CounterKey::scoped("ws_keys", "identity:id_1:tokens");
    away_from_a_minute_boundary().await;

    let outcome = redis
        .limit(&[
            check(&requests, 10, MINUTE, 1),
            check(&tokens, 10, 3_600_000, 2),
            // Costs nothing: decides, writes nothing.
            check(
                &CounterKey::scoped("ws_keys", "key:key_1:free"),
                10,
                MINUTE,
                0,
            ),
        ])
        .await
        .unwrap();
    assert!(outcome.passed);

    let p = prefix.as_str();
    assert_eq!(
        prefix.keys(),
        [
            format!("{p}:rl2:{{ws_keys}}:ws_keys:identity:id_1:tokens:3600000"),
            format!("{p}:rl2:{{ws_keys}}:ws_keys:key:key_1:requests:60000"),
        ]
    );
    let mut connection = sync_connection();
    let expiries = |connection: &mut redis::Connection| {
        for (key, duration) in prefix.keys().iter().zip([3_600_000, 60_000]) {
            let ttl: i64 = redis::cmd("PTTL").arg(key).query(connection).unwrap();
            // Kept until the window after the current one ends.
            assert!(
                (duration..=2 * duration).contains(&ttl),
                "{key} expires in {ttl} ms"
            );
        }
    };
    expiries(&mut connection);
    // Each state is its window, that window's count and the previous one's: three
    // little-endian doubles.
    let state = |connection: &mut redis::Connection, key: &str| -> [f64; 3] {
        let bytes: Vec<u8> = redis::cmd("GET").arg(key).query(connection).unwrap();
        assert_eq!(bytes.len(), 24, "{key} holds {bytes:?}");
        let number = |i: usize| f64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        [number(0), number(1), number(2)]
    };
    let requests_key = &prefix.keys()[1];
    let [window, count, previous] = state(&mut connection, requests_key);
    assert_eq!(window, outcome.decisions[0].window as f64);
    assert_eq!((count, previous), (1.0, 0.0));
    // Counted again in the same windows: the state is rewritten and keeps its expiry.
    let again = redis
        .limit(&[
            check(&requests, 10, MINUTE, 1),
            check(&tokens, 10, 3_600_000, 2),
        ])
        .await
        .unwrap();
    assert!(again.passed);
    expiries(&mut connection);
    assert_eq!(state(&mut connection, requests_key), [window, 2.0, 0.0]);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_promptly() {
    let started = std::time::Instant::now();
    let error = RedisLimiter::connect("redis://127.0.0.1:1", Default::default())
        .await
        .unwrap_err();
    assert!(error.is_io_error(), "{error}");

    let lazy = RedisLimiter::lazy("redis://127.0.0.1:1", Default::default()).unwrap();
    let counter = CounterKey::scoped("ws_down", "key:k:a");
    assert!(lazy.limit(&[check(&counter, 1, MINUTE, 1)]).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}
