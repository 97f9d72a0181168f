//! The Redis limiter gives the in-process limiter's outcomes, number for number, for the same
//! calls at the same times.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_core::ratelimit::{
    CounterKey, InMemoryLimiter, LimitCheck, LimitOutcome, Limiter, WindowDuration,
};
use keywarden_redis::RedisLimiter;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{MINUTE, ManualClock, SECOND, TestPrefix, check, redis_limiter};

/// A multiple of both durations, so windows of either start here.
const BASE: i64 = 1_800_000_000_000;

/// Counter names a case draws from: few, so checks meet on them.
const COUNTERS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
struct CheckSpec {
    counter: usize,
    limit: u64,
    minute: bool,
    cost: u64,
}

#[derive(Debug, Clone)]
enum Op {
    /// Moves the clock by `step` ms (backwards too, as an NTP step would), then calls.
    Limit { step: i64, checks: Vec<CheckSpec> },
    /// Refunds the outcome of an earlier call, picked by index modulo the calls so far.
    Refund { call: usize },
}

fn check_spec() -> impl Strategy<Value = CheckSpec> {
    (0..COUNTERS.len(), 0..=20u64, any::<bool>(), 0..=5u64).prop_map(
        |(counter, limit, minute, cost)| CheckSpec {
            counter,
            limit,
            minute,
            cost,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let step = prop_oneof![
        4 => 0..300i64,
        4 => 0..2_500i64,
        1 => 0..150_000i64,
        1 => -3_000..0i64,
    ];
    prop_oneof![
        5 => (step, prop::collection::vec(check_spec(), 1..=3))
            .prop_map(|(step, checks)| Op::Limit { step, checks }),
        1 => any::<usize>().prop_map(|call| Op::Refund { call }),
    ]
}

/// Each case counts in a scope of its own, so cases (and proptest's shrinking reruns) never
/// see each other's state under the one prefix.
static CASES: AtomicU64 = AtomicU64::new(0);

async fn run_case(
    redis: &RedisLimiter,
    clock: &Arc<ManualClock>,
    start: i64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    clock.set(start);
    let memory = InMemoryLimiter::new(clock.clone());
    let scope = format!("case{}", CASES.fetch_add(1, Ordering::Relaxed));
    let counters: Vec<CounterKey> = COUNTERS
        .iter()
        .map(|name| CounterKey::scoped(&scope, name))
        .collect();
    let mut calls: Vec<(Vec<LimitCheck>, LimitOutcome)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Limit { step, checks } => {
                clock.set(clock.ms() + step);
                let checks: Vec<LimitCheck> = checks
                    .iter()
                    .map(|c| {
                        let duration = if c.minute { MINUTE } else { SECOND };
                        check(&counters[c.counter], c.limit, duration, c.cost)
                    })
                    .collect();
                let expected = memory.limit(&checks).await.unwrap();
                let got = redis.limit(&checks).await.unwrap();
                prop_assert_eq!(&got, &expected, "op {} at {}: {:?}", i, clock.ms(), checks);
                calls.push((checks, expected));
            }
            Op::Refund { call } if !calls.is_empty() => {
                let (checks, outcome) = &calls[call % calls.len()];
                memory.refund(checks, outcome).await.unwrap();
                redis.refund(checks, outcome).await.unwrap();
            }
            Op::Refund { .. } => {}
        }
    }
    Ok(())
}

#[test]
fn redis_decides_like_the_in_memory_limiter() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = TestPrefix::new();
    let clock = ManualClock::at(BASE);
    let redis = runtime
        .block_on(redis_limiter(&prefix))
        .with_test_clock(clock.clone());

    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let case = (0..MINUTE, prop::collection::vec(op(), 1..120));
    runner
        .run(&case, |(offset, ops)| {
            runtime.block_on(run_case(&redis, &clock, BASE + offset, &ops))
        })
        .unwrap();
}

/// Counts and products far past what small tests reach, on the longest window, where the
/// script's doubles need its exact division: the same numbers as the in-process limiter.
#[tokio::test]
async fn large_counts_on_long_windows_stay_exact() {
    let prefix = TestPrefix::new();
    const MONTH: i64 = WindowDuration::MAX_MS;
    // A multiple of the month window, in the 2020s.
    let start = MONTH * 680;
    let clock = ManualClock::at(start);
    let redis = redis_limiter(&prefix).await.with_test_clock(clock.clone());
    let memory = InMemoryLimiter::new(clock.clone());
    let counter = CounterKey::scoped("ws_big", "key:k:requests");

    let big: u64 = 1 << 51;
    let calls: [(i64, u64, u64); 8] = [
        (0, big, big - 12_345),
        (MONTH / 3, big, 7),
        (MONTH - 1, big, 1),
        // Next window: the previous count weighs by overlap, a product near 2^83.
        (MONTH + 1, big, 1),
        (MONTH + 987_654_321, big, 3),
        (MONTH + MONTH / 2, big, big / 2),
        (2 * MONTH - 1, big, 1_000_000_007),
        (2 * MONTH + 12_345, (1 << 52) - 1, 1 << 50),
    ];
    for (at, limit, cost) in calls {
        clock.set(start + at);
        let checks = [check(&counter, limit, MONTH, cost)];
        let expected = memory.limit(&checks).await.unwrap();
        let got = redis.limit(&checks).await.unwrap();
        assert_eq!(got, expected, "at +{at} ms, limit {limit}, cost {cost}");
        assert!(
            expected.decisions[0].remaining < limit,
            "the call weighed something"
        );
    }
}
