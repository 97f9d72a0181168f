//! The Redis limiter gives the in-process limiter's outcomes, number for number, for the same
//! calls at the same times: one call after the other, and calls made together, which Redis
//! decides in batches, in the order they arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_core::ratelimit::{
    CounterKey, InMemoryLimiter, LimitCheck, LimitOutcome, Limiter, WindowDuration,
};
use keywarden_redis::RedisLimiter;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{
    Call, MINUTE, ManualClock, SECOND, TestPrefix, all_in_order, check, redis_limiter,
};

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

/// How far the clock moves before a call, or a round of calls.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0..300i64,
        4 => 0..2_500i64,
        1 => 0..150_000i64,
        1 => -3_000..0i64,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let step = step();
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

/// Calls made together: each limit call, or refund of a call of an earlier round.
#[derive(Debug, Clone)]
enum RoundOp {
    Limit(Vec<CheckSpec>),
    Refund { call: usize },
}

fn round() -> impl Strategy<Value = (i64, Vec<RoundOp>)> {
    let round_op = prop_oneof![
        5 => prop::collection::vec(check_spec(), 1..=3).prop_map(RoundOp::Limit),
        1 => any::<usize>().prop_map(|call| RoundOp::Refund { call }),
    ];
    (step(), prop::collection::vec(round_op, 1..=12))
}

/// One call of a round, with what the in-process limiter made of it.
enum RoundCall {
    Limit {
        checks: Vec<LimitCheck>,
        expected: LimitOutcome,
    },
    Refund {
        checks: Vec<LimitCheck>,
        outcome: LimitOutcome,
    },
}

/// Runs each round's calls together, so that they share batches, while the in-process limiter
/// runs them one after the other in the same order: every outcome must be the same.
async fn run_batched_case(
    redis: &RedisLimiter,
    clock: &Arc<ManualClock>,
    start: i64,
    rounds: &[(i64, Vec<RoundOp>)],
) -> Result<(), TestCaseError> {
    clock.set(start);
    let memory = InMemoryLimiter::new(clock.clone());
    let scope = format!("case{}", CASES.fetch_add(1, Ordering::Relaxed));
    let counters: Vec<CounterKey> = COUNTERS
        .iter()
        .map(|name| CounterKey::scoped(&scope, name))
        .collect();
    let mut calls: Vec<(Vec<LimitCheck>, LimitOutcome)> = Vec::new();
    for (r, (step, ops)) in rounds.iter().enumerate() {
        clock.set(clock.ms() + step);
        let mut round: Vec<RoundCall> = Vec::new();
        for op in ops {
            match op {
                RoundOp::Limit(specs) => {
                    let checks: Vec<LimitCheck> = specs
                        .iter()
                        .map(|c| {
                            let duration = if c.minute { MINUTE } else { SECOND };
                            check(&counters[c.counter], c.limit, duration, c.cost)
                        })
                        .collect();
                    let expected = memory.limit(&checks).await.unwrap();
                    round.push(RoundCall::Limit { checks, expected });
                }
                RoundOp::Refund { call } if !calls.is_empty() => {
                    let (checks, outcome) = calls[call % calls.len()].clone();
                    memory.refund(&checks, &outcome).await.unwrap();
                    round.push(RoundCall::Refund { checks, outcome });
                }
                RoundOp::Refund { .. } => {}
            }
        }
        let together: Vec<Call<'_, Option<LimitOutcome>>> = round
            .iter()
            .map(|call| -> Call<'_, Option<LimitOutcome>> {
                match call {
                    RoundCall::Limit { checks, .. } => {
                        Box::pin(async move { Some(redis.limit(checks).await.unwrap()) })
                    }
                    RoundCall::Refund { checks, outcome } => Box::pin(async move {
                        redis.refund(checks, outcome).await.unwrap();
                        None
                    }),
                }
            })
            .collect();
        let outcomes = all_in_order(together).await;
        for (i, (call, got)) in round.into_iter().zip(outcomes).enumerate() {
            if let (RoundCall::Limit { checks, expected }, Some(got)) = (call, got) {
                prop_assert_eq!(
                    &got,
                    &expected,
                    "round {} call {} at {}: {:?}",
                    r,
                    i,
                    clock.ms(),
                    checks
                );
                calls.push((checks, expected));
            }
        }
    }
    Ok(())
}

#[test]
fn calls_made_together_are_decided_in_turn_like_the_in_memory_limiter() {
    // One thread: every call of a round queues before any batch is sent, so they share
    // batches (see `all_in_order`).
    let runtime = tokio::runtime::Builder::new_current_thread()
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
    let case = (0..MINUTE, prop::collection::vec(round(), 1..30));
    runner
        .run(&case, |(offset, rounds)| {
            runtime.block_on(run_batched_case(&redis, &clock, BASE + offset, &rounds))
        })
        .unwrap();
    let stats = redis.batch_stats();
    assert!(
        stats.largest_batch > 8 && stats.batches < stats.calls / 2,
        "calls were not batched: {stats:?}"
    );
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
