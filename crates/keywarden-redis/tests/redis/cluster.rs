//! The limiter on a real Redis Cluster of three primaries that each test starts for itself
//! (see `local_servers`): exact across Keywarden nodes and Redis shards, all or nothing within
//! a scope, the same numbers as on one Redis, calls batched by slot, a call across slots
//! refused, and the fault modes when a shard hangs.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::ratelimit::{
    CounterKey, InMemoryLimiter, LimitCheck, LimitOutcome, Limiter, LimiterError,
};
use keywarden_core::time::SystemClock;
use keywarden_redis::{
    FaultMode, RedisCallError, RedisLimiter, RedisLimiterSettings, ResilientLimiter,
    ResilientLimiterSettings,
};

use crate::helpers::{
    Call, MINUTE, ManualClock, SECOND, all_in_order, away_from_a_minute_boundary, check,
};
use crate::local_servers::{LocalCluster, StandaloneRedis};

/// Every test has a cluster of its own, so one prefix will do.
const PREFIX: &str = "kwcluster";

/// Settings with a generous timeout: these tests are about numbers, and a call that timed out
/// on a loaded test machine may still have been counted.
fn settings() -> RedisLimiterSettings {
    RedisLimiterSettings {
        prefix: PREFIX.to_owned(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    }
}

async fn limiter_on(url: &str) -> RedisLimiter {
    RedisLimiter::connect(url, settings())
        .await
        .unwrap_or_else(|e| panic!("the test's Redis at {url} unreachable: {e}"))
}

/// The key the limiter keeps a check's state under.
fn key_of(counter: &CounterKey, duration_ms: i64) -> String {
    format!(
        "{PREFIX}:rl2:{{{}}}:{}:{duration_ms}",
        counter.scope(),
        counter.as_str()
    )
}

/// The Redis error inside a limiter's error.
fn call_error(error: &LimiterError) -> &RedisCallError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<RedisCallError>())
        .unwrap_or_else(|| panic!("not a Redis call error: {error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_two_nodes_admit_exactly_the_limit() {
    let cluster = LocalCluster::start().await;
    let nodes = [
        Arc::new(limiter_on(&cluster.url()).await),
        Arc::new(limiter_on(&cluster.url()).await),
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
    let one_more = nodes[1]
        .limit(&[check(&counter, 100, MINUTE, 1)])
        .await
        .unwrap();
    assert!(!one_more.passed);
    assert_eq!(one_more.decisions[0].remaining, 0);
    let stats = nodes.each_ref().map(|node| node.batch_stats());
    assert!(
        stats[0].largest_batch > 1 && stats[1].largest_batch > 1,
        "no batch held more than one call: {stats:?}"
    );

    let held: Vec<usize> = cluster.keys_by_node(PREFIX).iter().map(Vec::len).collect();
    assert_eq!(
        held.iter().sum::<usize>(),
        1,
        "one state, on one node: {held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_many_workspaces_spread_over_the_shards_and_each_is_exact() {
    let cluster = LocalCluster::start().await;
    let redis = Arc::new(limiter_on(&cluster.url()).await);
    let workspaces: Vec<(CounterKey, CounterKey, u64)> = (0..50u64)
        .map(|i| {
            let workspace = format!("ws_{i:02}");
            (
                CounterKey::scoped(&workspace, "key:key_1:requests"),
                CounterKey::scoped(&workspace, "identity:id_1:tokens"),
                2 + i % 4,
            )
        })
        .collect();
    let checks_of = |(requests, tokens, limit): &(CounterKey, CounterKey, u64), cost| {
        vec![
            check(requests, *limit, MINUTE, cost),
            check(tokens, 10 * limit, MINUTE, cost),
        ]
    };
    away_from_a_minute_boundary().await;

    // Two calls more than each workspace's limit, all in flight at once.
    let calls: Vec<_> = workspaces
        .iter()
        .enumerate()
        .flat_map(|(w, workspace)| (0..workspace.2 + 2).map(move |_| (w, workspace)))
        .map(|(w, workspace)| {
            let redis = redis.clone();
            let checks = checks_of(workspace, 1);
            tokio::spawn(async move { (w, redis.limit(&checks).await.unwrap().passed) })
        })
        .collect();
    let mut passed = vec![0u64; workspaces.len()];
    for call in calls {
        let (w, call_passed) = call.await.unwrap();
        passed[w] += u64::from(call_passed);
    }
    for (w, workspace) in workspaces.iter().enumerate() {
        let limit = workspace.2;
        assert_eq!(passed[w], limit, "workspace {w}");
        let now = redis.limit(&checks_of(workspace, 0)).await.unwrap();
        assert_eq!(now.decisions[0].remaining, 0, "workspace {w}");
        assert_eq!(now.decisions[1].remaining, 9 * limit, "workspace {w}");
    }

    let by_node = cluster.keys_by_node(PREFIX);
    let held: Vec<usize> = by_node.iter().map(Vec::len).collect();
    assert_eq!(held.iter().sum::<usize>(), 2 * workspaces.len(), "{held:?}");
    assert!(
        held.iter().filter(|&&n| n > 0).count() > 1,
        "every key on one node: {held:?}"
    );
    let mut slots = Vec::new();
    for (requests, tokens, _) in &workspaces {
        let (a, b) = (key_of(requests, MINUTE), key_of(tokens, MINUTE));
        let slot = cluster.slot_of(&a);
        assert_eq!(slot, cluster.slot_of(&b), "{a} and {b} apart");
        let holders: Vec<bool> = by_node
            .iter()
            .map(|keys| keys.contains(&a) && keys.contains(&b))
            .collect();
        assert_eq!(
            holders.iter().filter(|&&h| h).count(),
            1,
            "{a}: {holders:?}"
        );
        slots.push(slot);
    }
    slots.sort_unstable();
    slots.dedup();
    assert!(slots.len() > 40, "only {} slots", slots.len());
}

#[tokio::test]
async fn a_call_counts_on_every_counter_of_its_scope_or_on_none() {
    let cluster = LocalCluster::start().await;
    let redis = limiter_on(&cluster.url()).await;
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
        assert_eq!(outcome.decisions[0].remaining, 2);
        assert_eq!(outcome.decisions[1].remaining, 0);
    }
    let a_alone = [check(&a, 5, MINUTE, 1)];
    assert!(redis.limit(&a_alone).await.unwrap().passed);
    assert!(redis.limit(&a_alone).await.unwrap().passed);
    assert!(!redis.limit(&a_alone).await.unwrap().passed);

    // A refund of a call on both gives back on both.
    let refunded = [check(&a, 7, MINUTE, 1), check(&b, 4, MINUTE, 1)];
    let outcome = redis.limit(&refunded).await.unwrap();
    assert!(outcome.passed);
    redis.refund(&refunded, &outcome).await.unwrap();
    let after = redis.limit(&refunded).await.unwrap();
    assert_eq!(after.decisions[0].remaining, 1);
    assert_eq!(after.decisions[1].remaining, 0);

    let by_node = cluster.keys_by_node(PREFIX);
    let held: Vec<&Vec<String>> = by_node.iter().filter(|keys| !keys.is_empty()).collect();
    assert_eq!(
        held,
        [&vec![key_of(&a, MINUTE), key_of(&b, MINUTE)]],
        "both on one node"
    );
}

/// A small deterministic generator, so the sequence below is the same on every run.
struct Sequence(u64);

impl Sequence {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_decides_like_one_redis_and_the_in_memory_limiter() {
    let (cluster, standalone) = tokio::join!(LocalCluster::start(), StandaloneRedis::start());
    // A multiple of both durations, so windows of either start here.
    let base = 1_800_000_000_000;
    let clock = ManualClock::at(base);
    let on_cluster = limiter_on(&cluster.url())
        .await
        .with_test_clock(clock.clone());
    let on_one = limiter_on(&standalone.url())
        .await
        .with_test_clock(clock.clone());
    let memory = InMemoryLimiter::new(clock.clone());

    let scopes = ["ws_a", "ws_b", "ws_c", "ws_d", "ws_e"];
    let names = ["key:k1:requests", "key:k1:tokens", "identity:i1:requests"];
    let mut sequence = Sequence(0x5EED_CAFE_F00D_0001);
    let mut calls: Vec<(Vec<LimitCheck>, LimitOutcome)> = Vec::new();
    for op in 0..400 {
        if !calls.is_empty() && sequence.below(6) == 0 {
            let at = usize::try_from(sequence.below(calls.len() as u64)).unwrap();
            let (checks, outcome) = &calls[at];
            memory.refund(checks, outcome).await.unwrap();
            on_one.refund(checks, outcome).await.unwrap();
            on_cluster.refund(checks, outcome).await.unwrap();
            continue;
        }
        let step = match sequence.below(10) {
            0..=5 => sequence.below(300),
            6..=7 => sequence.below(2_500),
            8 => sequence.below(90_000),
            _ => 0,
        };
        let back = if sequence.below(12) == 0 { 2_000 } else { 0 };
        clock.set(clock.ms() + i64::try_from(step).unwrap() - back);
        let scope = scopes[usize::try_from(sequence.below(5)).unwrap()];
        let checks: Vec<LimitCheck> = (0..=sequence.below(3))
            .map(|_| {
                let name = names[usize::try_from(sequence.below(3)).unwrap()];
                let duration = if sequence.below(2) == 0 {
                    SECOND
                } else {
                    MINUTE
                };
                check(
                    &CounterKey::scoped(scope, name),
                    sequence.below(13),
                    duration,
                    sequence.below(5),
                )
            })
            .collect();
        let expected = memory.limit(&checks).await.unwrap();
        let single = on_one.limit(&checks).await.unwrap();
        let clustered = on_cluster.limit(&checks).await.unwrap();
        assert_eq!(single, expected, "op {op} at {}: {checks:?}", clock.ms());
        assert_eq!(clustered, expected, "op {op} at {}: {checks:?}", clock.ms());
        calls.push((checks, expected));
    }
    let passed = calls.iter().filter(|(_, outcome)| outcome.passed).count();
    assert!(
        (50..350).contains(&passed),
        "a sequence that passes {passed} of {} calls tests little",
        calls.len()
    );
}

#[tokio::test]
async fn calls_made_together_are_batched_by_slot_and_decided_in_turn() {
    let cluster = LocalCluster::start().await;
    let base = 1_800_000_000_000;
    let clock = ManualClock::at(base);
    let redis = limiter_on(&cluster.url())
        .await
        .with_test_clock(clock.clone());
    let memory = InMemoryLimiter::new(clock.clone());
    // Workspaces in as many slots, on more than one node.
    let scopes = ["ws_a", "ws_b", "ws_c", "ws_d", "ws_e", "ws_f"];
    let mut slots: Vec<u16> = scopes
        .iter()
        .map(|scope| cluster.slot_of(&key_of(&CounterKey::scoped(scope, "key"), MINUTE)))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), scopes.len());

    let mut sequence = Sequence(0x5EED_BA7C_4E50_0002);
    let mut batches = 0;
    for round in 0..20 {
        clock.set(clock.ms() + i64::try_from(sequence.below(3_000)).unwrap());
        // Calls of every scope, interleaved, several per scope: one batch per slot.
        let calls: Vec<Vec<LimitCheck>> = (0..24)
            .map(|_| {
                let scope = scopes[usize::try_from(sequence.below(6)).unwrap()];
                (0..=sequence.below(2))
                    .map(|_| {
                        let name = ["key", "identity"][usize::try_from(sequence.below(2)).unwrap()];
                        check(
                            &CounterKey::scoped(scope, name),
                            sequence.below(8),
                            if sequence.below(2) == 0 {
                                SECOND
                            } else {
                                MINUTE
                            },
                            sequence.below(3),
                        )
                    })
                    .collect()
            })
            .collect();
        let mut expected = Vec::new();
        let mut scopes_named = Vec::new();
        for checks in &calls {
            expected.push(memory.limit(checks).await.unwrap());
            scopes_named.push(checks[0].counter.scope().to_owned());
        }
        scopes_named.sort_unstable();
        scopes_named.dedup();
        let together: Vec<Call<'_, LimitOutcome>> = calls
            .iter()
            .map(|checks| -> Call<'_, LimitOutcome> {
                Box::pin(async { redis.limit(checks).await.unwrap() })
            })
            .collect();
        let got = all_in_order(together).await;
        assert_eq!(got, expected, "round {round}: {calls:?}");
        let stats = redis.batch_stats();
        assert_eq!(
            stats.batches - batches,
            scopes_named.len() as u64,
            "round {round}"
        );
        batches = stats.batches;
    }
    assert!(redis.batch_stats().largest_batch > 1);
}

#[tokio::test]
async fn a_call_across_hash_slots_is_refused_on_a_cluster_and_on_one_redis() {
    let (cluster, standalone) = tokio::join!(LocalCluster::start(), StandaloneRedis::start());
    let a = CounterKey::new("rlns_a:user_1");
    let b = CounterKey::new("rlns_b:user_1");
    assert_ne!(
        cluster.slot_of(&key_of(&a, MINUTE)),
        cluster.slot_of(&key_of(&b, MINUTE))
    );
    let across = [check(&a, 5, MINUTE, 1), check(&b, 5, MINUTE, 1)];

    for url in [cluster.url(), standalone.url()] {
        let redis = limiter_on(&url).await;
        let error = redis.limit(&across).await.unwrap_err();
        assert!(
            matches!(call_error(&error), RedisCallError::CrossSlot { slots: 2 }),
            "{url}: {error:?}"
        );
        // Each alone is fine, and so is one unscoped counter with two durations: its keys
        // are tagged with its whole name.
        assert!(redis.limit(&across[..1]).await.unwrap().passed);
        assert!(redis.limit(&across[1..]).await.unwrap().passed);
        let twice = [check(&a, 5, MINUTE, 1), check(&a, 5, SECOND, 1)];
        assert!(redis.limit(&twice).await.unwrap().passed);
    }
    let held: usize = cluster.keys_by_node(PREFIX).iter().map(Vec::len).sum();
    assert_eq!(held, 3, "the refused call wrote nothing");

    // The resilient limiter refuses it too, and does not take it for Redis being down.
    let resilient = ResilientLimiter::start(
        &cluster.url(),
        ResilientLimiterSettings {
            redis: settings(),
            fault_mode: FaultMode::FailOpen,
            ..ResilientLimiterSettings::default()
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let error = resilient.limit(&across).await.unwrap_err();
    assert!(matches!(
        call_error(&error),
        RedisCallError::CrossSlot { .. }
    ));
    let status = resilient.status();
    assert!(status.reachable);
    assert_eq!(status.fallback_calls, 0);
    assert!(resilient.limit(&across[..1]).await.unwrap().passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_shard_costs_one_timeout_then_the_fault_mode_decides_until_it_answers() {
    let cluster = LocalCluster::start().await;
    let settings = ResilientLimiterSettings {
        redis: RedisLimiterSettings {
            prefix: PREFIX.to_owned(),
            ..RedisLimiterSettings::default()
        },
        fault_mode: FaultMode::FailClosed,
        ..ResilientLimiterSettings::default()
    };
    let limiter = ResilientLimiter::start(&cluster.url(), settings, Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(limiter.status().reachable);
    let counter = CounterKey::scoped("ws_hung", "key:k:requests");
    let call = || async {
        let started = Instant::now();
        let outcome = limiter
            .limit(&[check(&counter, 100, MINUTE, 1)])
            .await
            .expect("a resilient limiter always answers");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
        outcome.passed
    };
    away_from_a_minute_boundary().await;
    assert!(call().await);
    let shard = cluster
        .keys_by_node(PREFIX)
        .iter()
        .position(|keys| !keys.is_empty())
        .expect("the counter's node");

    cluster.nodes()[shard].pause();
    assert!(!call().await, "fail-closed: the first call times out");
    assert!(!limiter.status().reachable);
    let started = Instant::now();
    for _ in 0..20 {
        assert!(!call().await);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // The probe pings every primary: the other shards answering does not make it up, not
    // even once a fresh connection has given up on the hung node (after the connect timeout)
    // and reaches the others.
    let watch_until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < watch_until {
        assert!(!limiter.status().reachable, "up while a shard hangs");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    cluster.nodes()[shard].resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !limiter.status().reachable {
        assert!(
            Instant::now() < deadline,
            "the cluster not reported up again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(call().await);
    assert_eq!(limiter.fallback_calls(), 21);
    // The call that timed out reached its shard late and may have been counted there.
    let observer = limiter_on(&cluster.url()).await;
    let remaining = observer
        .limit(&[check(&counter, 100, MINUTE, 0)])
        .await
        .unwrap()
        .decisions[0]
        .remaining;
    assert!((97..=98).contains(&remaining), "remaining {remaining}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_shard_hangs_the_counters_on_the_others_are_still_decided() {
    let cluster = LocalCluster::start().await;
    let settings = RedisLimiterSettings {
        prefix: PREFIX.to_owned(),
        ..RedisLimiterSettings::default()
    };
    let redis = RedisLimiter::connect(&cluster.url(), settings)
        .await
        .unwrap();
    let counters: Vec<CounterKey> = (0..12)
        .map(|i| CounterKey::scoped(&format!("ws_{i}"), "key:k:requests"))
        .collect();
    for counter in &counters {
        assert!(
            redis
                .limit(&[check(counter, 100, MINUTE, 1)])
                .await
                .unwrap()
                .passed
        );
    }
    let by_node = cluster.keys_by_node(PREFIX);
    let node_of = |counter: &CounterKey| {
        let key = key_of(counter, MINUTE);
        by_node.iter().position(|keys| keys.contains(&key)).unwrap()
    };
    let hung = node_of(&counters[0]);
    let elsewhere: Vec<&CounterKey> = counters.iter().filter(|c| node_of(c) != hung).collect();
    assert!(!elsewhere.is_empty());
    // Older than the connect timeout, the connection is replaced when a call times out.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    cluster.nodes()[hung].pause();
    let error = redis
        .limit(&[check(&counters[0], 100, MINUTE, 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            call_error(&error),
            RedisCallError::Timeout(_) | RedisCallError::Redis(_)
        ),
        "{error:?}"
    );
    // The fresh connection is ready once it has given up on the hung node, after the connect
    // timeout (1 s); from then on the other nodes answer on it.
    let paused = Instant::now();
    let mut answered = 0;
    while answered < 3 * elsewhere.len() {
        assert!(
            paused.elapsed() < Duration::from_secs(5),
            "only {answered} calls answered"
        );
        let counter = elsewhere[answered % elsewhere.len()];
        match redis.limit(&[check(counter, 100, MINUTE, 1)]).await {
            Ok(outcome) => {
                assert!(outcome.passed);
                answered += 1;
            }
            Err(_) => {
                assert_eq!(answered, 0, "a call failed once the others answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    cluster.nodes()[hung].resume();
}

#[tokio::test]
async fn a_limiter_started_while_its_cluster_hangs_decides_once_it_answers() {
    let cluster = LocalCluster::start().await;
    for node in cluster.nodes() {
        node.pause();
    }
    let settings = ResilientLimiterSettings {
        redis: RedisLimiterSettings {
            prefix: PREFIX.to_owned(),
            ..RedisLimiterSettings::default()
        },
        fault_mode: FaultMode::FailClosed,
        ..ResilientLimiterSettings::default()
    };
    let limiter = ResilientLimiter::start(&cluster.url(), settings, Arc::new(SystemClock))
        .await
        .expect("starts whether or not Redis answers");
    assert!(!limiter.status().reachable);

    for node in cluster.nodes() {
        node.resume();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !limiter.status().reachable {
        assert!(Instant::now() < deadline, "the cluster not reported up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counter = CounterKey::scoped("ws_late", "key:k:requests");
    let outcome = limiter
        .limit(&[check(&counter, 1, MINUTE, 1)])
        .await
        .unwrap();
    assert!(outcome.passed);
    assert_eq!(limiter.fallback_calls(), 0);
}

#[tokio::test]
async fn an_unreachable_cluster_is_an_error_promptly() {
    let url = "redis+cluster://127.0.0.1:1,127.0.0.1:2";
    let started = Instant::now();
    let error = RedisLimiter::connect(url, RedisLimiterSettings::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{error}");

    let lazy = RedisLimiter::lazy(url, RedisLimiterSettings::default()).unwrap();
    let counter = CounterKey::scoped("ws_down", "key:k:a");
    let started = Instant::now();
    assert!(lazy.limit(&[check(&counter, 1, MINUTE, 1)]).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    let error =
        RedisLimiter::lazy("redis+cluster://", RedisLimiterSettings::default()).unwrap_err();
    assert_eq!(error.kind(), redis::ErrorKind::InvalidClientConfig);
}
