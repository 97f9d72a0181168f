use std::pin::pin;
use std::sync::Barrier;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread;

use super::shard::MIN_SELF_SWEEP_LEN;
use super::*;
use crate::ratelimit::CounterKey;

/// A multiple of both durations the tests use, so windows of either start here.
const BASE: i64 = 1_800_000_000_000;
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60_000;

struct TestClock(AtomicI64);

impl TestClock {
    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_millis(self.0.load(Ordering::SeqCst))
    }
}

fn limiter_at(ms: i64) -> (InMemoryLimiter, Arc<TestClock>) {
    let clock = Arc::new(TestClock(AtomicI64::new(ms)));
    (InMemoryLimiter::new(clock.clone()), clock)
}

fn duration(ms: i64) -> WindowDuration {
    WindowDuration::from_millis(ms).unwrap()
}

fn check(counter: &str, limit: u64, duration_ms: i64, cost: u64) -> LimitCheck {
    LimitCheck {
        counter: CounterKey::new(counter),
        limit,
        duration: duration(duration_ms),
        cost,
    }
}

fn one(limiter: &InMemoryLimiter, check: LimitCheck) -> LimitDecision {
    let outcome = limiter.limit_now(&[check]);
    assert_eq!(outcome.decisions.len(), 1);
    assert_eq!(outcome.passed, outcome.decisions[0].passed);
    outcome.decisions[0]
}

/// The stored (window, current, previous) of a counter.
fn stored(limiter: &InMemoryLimiter, counter: &str, duration_ms: i64) -> Option<(u64, u64, u64)> {
    limiter
        .stored(counter, duration(duration_ms))
        .map(|c| (c.seq, c.current, c.previous))
}

fn at(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(ms)
}

fn seq(ms: i64, duration_ms: i64) -> u64 {
    u64::try_from(ms / duration_ms).unwrap()
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory limiter never waits"),
    }
}

#[test]
fn a_passing_call_counts_its_cost_and_reports_what_is_left() {
    let (limiter, _clock) = limiter_at(BASE + 15_000);
    let w = seq(BASE, MINUTE);
    assert_eq!(
        one(&limiter, check("c", 10, MINUTE, 3)),
        LimitDecision {
            passed: true,
            limit: 10,
            remaining: 7,
            reset: at(BASE + MINUTE),
            window: w,
        }
    );
    assert_eq!(stored(&limiter, "c", MINUTE), Some((w, 3, 0)));
    let full = one(&limiter, check("c", 10, MINUTE, 7));
    assert!(full.passed);
    assert_eq!(full.remaining, 0);
    let over = one(&limiter, check("c", 10, MINUTE, 1));
    assert!(!over.passed);
    assert_eq!((over.remaining, over.reset), (0, at(BASE + MINUTE)));
}

#[test]
fn a_denied_call_counts_nothing_and_reports_the_count_without_it() {
    let (limiter, _clock) = limiter_at(BASE);
    assert_eq!(one(&limiter, check("c", 10, MINUTE, 8)).remaining, 2);
    let denied = one(&limiter, check("c", 10, MINUTE, 5));
    assert!(!denied.passed);
    assert_eq!(denied.remaining, 2);
    assert_eq!(
        stored(&limiter, "c", MINUTE),
        Some((seq(BASE, MINUTE), 8, 0))
    );
    let fits = one(&limiter, check("c", 10, MINUTE, 2));
    assert!(fits.passed);
    assert_eq!(fits.remaining, 0);
}

#[test]
fn the_previous_window_weighs_by_its_remaining_overlap() {
    let (limiter, clock) = limiter_at(BASE + 200);
    assert!(one(&limiter, check("c", 100, SECOND, 10)).passed);
    let probe = |ms: i64| {
        clock.set(ms);
        let d = one(&limiter, check("c", 100, SECOND, 0));
        assert!(d.passed);
        (d.remaining, d.reset)
    };
    // The next window's first ms still overlaps all 10; half way, 10 × 500 / 1000 = 5; one ms
    // before its end, 10 × 1 / 1000 floors to 0.
    assert_eq!(probe(BASE + 1_000), (90, at(BASE + 2_000)));
    assert_eq!(probe(BASE + 1_500), (95, at(BASE + 2_000)));
    assert_eq!(probe(BASE + 1_999), (100, at(BASE + 2_000)));
    // Counting in the new window adds to its own count: 100 − (2 + 5).
    clock.set(BASE + 1_500);
    assert_eq!(one(&limiter, check("c", 100, SECOND, 2)).remaining, 93);
    assert_eq!(
        stored(&limiter, "c", SECOND),
        Some((seq(BASE, SECOND) + 1, 2, 10))
    );
}

#[test]
fn state_two_windows_old_counts_nothing() {
    let (limiter, clock) = limiter_at(BASE);
    assert!(one(&limiter, check("c", 10, SECOND, 10)).passed);
    clock.set(BASE + 1_000);
    assert!(!one(&limiter, check("c", 10, SECOND, 1)).passed);
    clock.set(BASE + 2_000);
    let fresh = one(&limiter, check("c", 10, SECOND, 10));
    assert!(fresh.passed);
    assert_eq!((fresh.remaining, fresh.reset), (0, at(BASE + 3_000)));
}

#[test]
fn cost_weighs_a_call() {
    let (limiter, _clock) = limiter_at(BASE);
    assert!(one(&limiter, check("c", 100, MINUTE, 40)).passed);
    assert!(one(&limiter, check("c", 100, MINUTE, 40)).passed);
    let denied = one(&limiter, check("c", 100, MINUTE, 30));
    assert_eq!((denied.passed, denied.remaining), (false, 20));
    let last = one(&limiter, check("c", 100, MINUTE, 20));
    assert_eq!((last.passed, last.remaining), (true, 0));
}

#[test]
fn a_call_that_costs_nothing_passes_without_counting() {
    let (limiter, _clock) = limiter_at(BASE);
    let probe = one(&limiter, check("c", 5, MINUTE, 0));
    assert_eq!((probe.passed, probe.remaining), (true, 5));
    assert_eq!(stored(&limiter, "c", MINUTE), None);
    assert!(one(&limiter, check("c", 5, MINUTE, 5)).passed);
    let at_limit = one(&limiter, check("c", 5, MINUTE, 0));
    assert_eq!((at_limit.passed, at_limit.remaining), (true, 0));
    // A limit lowered below the count admits not even a free call.
    assert!(!one(&limiter, check("c", 4, MINUTE, 0)).passed);
    assert_eq!(
        stored(&limiter, "c", MINUTE),
        Some((seq(BASE, MINUTE), 5, 0))
    );
}

#[test]
fn a_limit_of_zero_blocks_every_call() {
    let (limiter, _clock) = limiter_at(BASE);
    for cost in [0, 1] {
        let d = one(&limiter, check("c", 0, MINUTE, cost));
        assert_eq!((d.passed, d.limit, d.remaining), (false, 0, 0));
    }
    assert!(limiter.is_empty());
}

#[test]
fn one_failing_limit_leaves_the_others_untouched() {
    let (limiter, _clock) = limiter_at(BASE);
    assert!(one(&limiter, check("a", 10, MINUTE, 3)).passed);
    assert!(one(&limiter, check("b", 1, MINUTE, 1)).passed);
    let outcome = limiter.limit_now(&[
        check("a", 10, MINUTE, 1),
        check("b", 1, MINUTE, 1),
        check("c", 10, MINUTE, 2),
    ]);
    assert!(!outcome.passed);
    let verdicts: Vec<_> = outcome
        .decisions
        .iter()
        .map(|d| (d.passed, d.remaining))
        .collect();
    assert_eq!(verdicts, [(true, 7), (false, 0), (true, 10)]);
    let w = seq(BASE, MINUTE);
    assert_eq!(stored(&limiter, "a", MINUTE), Some((w, 3, 0)));
    assert_eq!(stored(&limiter, "b", MINUTE), Some((w, 1, 0)));
    assert_eq!(stored(&limiter, "c", MINUTE), None);

    let outcome = limiter.limit_now(&[check("a", 10, MINUTE, 1), check("c", 10, MINUTE, 2)]);
    assert!(outcome.passed);
    let remaining: Vec<_> = outcome.decisions.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [6, 8]);
}

#[test]
fn naming_a_counter_twice_in_one_call_accumulates() {
    let (limiter, _clock) = limiter_at(BASE);
    let twice = limiter.limit_now(&[check("x", 1, MINUTE, 1), check("x", 1, MINUTE, 1)]);
    assert!(!twice.passed);
    let verdicts: Vec<_> = twice
        .decisions
        .iter()
        .map(|d| (d.passed, d.remaining))
        .collect();
    assert_eq!(verdicts, [(true, 1), (false, 1)]);
    assert_eq!(stored(&limiter, "x", MINUTE), None);

    // Passing, every decision reports the count after the whole call: 10 − (2 + 3).
    let both = limiter.limit_now(&[check("y", 10, MINUTE, 2), check("y", 10, MINUTE, 3)]);
    assert!(both.passed);
    let remaining: Vec<_> = both.decisions.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [5, 5]);
    assert_eq!(
        stored(&limiter, "y", MINUTE),
        Some((seq(BASE, MINUTE), 5, 0))
    );

    // Each limit judges the costs before it: 4 + 2 > 5, but 2 + 2 ≤ 5.
    assert!(
        !limiter
            .limit_now(&[check("z", 10, MINUTE, 4), check("z", 5, MINUTE, 2)])
            .passed
    );
    let mixed = limiter.limit_now(&[check("z", 10, MINUTE, 2), check("z", 5, MINUTE, 2)]);
    assert!(mixed.passed);
    let remaining: Vec<_> = mixed.decisions.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [6, 1]);
}

#[test]
fn each_duration_of_a_counter_is_its_own_state() {
    let (limiter, _clock) = limiter_at(BASE);
    assert!(one(&limiter, check("k", 1, SECOND, 1)).passed);
    assert!(one(&limiter, check("k", 1, MINUTE, 1)).passed);
    assert!(!one(&limiter, check("k", 1, SECOND, 1)).passed);
    assert!(!one(&limiter, check("k", 1, MINUTE, 1)).passed);
    assert_eq!(limiter.len(), 2);
}

#[test]
fn a_call_without_checks_passes() {
    let (limiter, _clock) = limiter_at(BASE);
    let outcome = limiter.limit_now(&[]);
    assert!(outcome.passed);
    assert!(outcome.decisions.is_empty());
}

#[test]
fn a_refund_takes_back_what_a_call_counted() {
    let (limiter, _clock) = limiter_at(BASE);
    let first = [check("a", 10, MINUTE, 3), check("b", 10, MINUTE, 1)];
    let counted = limiter.limit_now(&first);
    assert!(counted.passed);
    assert!(one(&limiter, check("a", 10, MINUTE, 4)).passed);
    limiter.refund_now(&first, &counted);
    let w = seq(BASE, MINUTE);
    assert_eq!(stored(&limiter, "a", MINUTE), Some((w, 4, 0)));
    assert_eq!(stored(&limiter, "b", MINUTE), Some((w, 0, 0)));
    assert_eq!(one(&limiter, check("a", 10, MINUTE, 0)).remaining, 6);

    // A denied call counted nothing, so there is nothing to take back.
    let too_much = [check("a", 10, MINUTE, 100)];
    let denied = limiter.limit_now(&too_much);
    assert!(!denied.passed);
    limiter.refund_now(&too_much, &denied);
    assert_eq!(stored(&limiter, "a", MINUTE), Some((w, 4, 0)));
}

#[test]
fn a_refund_after_its_window_ended_takes_from_the_previous_window() {
    let (limiter, clock) = limiter_at(BASE + 100);
    let call = [check("c", 100, SECOND, 6)];
    let counted = limiter.limit_now(&call);
    clock.set(BASE + 1_100);
    assert!(one(&limiter, check("c", 100, SECOND, 2)).passed);
    limiter.refund_now(&call, &counted);
    let w = seq(BASE, SECOND);
    assert_eq!(stored(&limiter, "c", SECOND), Some((w + 1, 2, 0)));
    // Without the refund this would be 100 − (2 + 6 × 500 / 1000) = 95.
    clock.set(BASE + 1_500);
    assert_eq!(one(&limiter, check("c", 100, SECOND, 0)).remaining, 98);
}

#[test]
fn a_refund_leaves_windows_it_was_not_counted_in_alone() {
    let (limiter, clock) = limiter_at(BASE + 100);
    let old = [check("c", 100, SECOND, 6)];
    let old_outcome = limiter.limit_now(&old);
    clock.set(BASE + 2_100);
    let recent = [check("c", 100, SECOND, 2)];
    let recent_outcome = limiter.limit_now(&recent);
    assert!(one(&limiter, check("c", 100, SECOND, 1)).passed);
    let w = seq(BASE, SECOND) + 2;
    limiter.refund_now(&old, &old_outcome);
    assert_eq!(stored(&limiter, "c", SECOND), Some((w, 3, 0)));
    // Refunding the same call twice cannot take the count below zero.
    limiter.refund_now(&recent, &recent_outcome);
    limiter.refund_now(&recent, &recent_outcome);
    assert_eq!(stored(&limiter, "c", SECOND), Some((w, 0, 0)));
}

#[test]
fn a_clock_that_steps_back_does_not_forget_counts() {
    let (limiter, clock) = limiter_at(BASE + 1_500);
    assert!(one(&limiter, check("c", 10, SECOND, 4)).passed);
    clock.set(BASE + 500);
    let denied = one(&limiter, check("c", 10, SECOND, 7));
    assert!(!denied.passed);
    assert_eq!(denied.remaining, 6);
    assert_eq!(denied.reset, at(BASE + 2_000));
    assert_eq!(denied.window, seq(BASE, SECOND) + 1);
}

#[test]
fn large_costs_and_limits_saturate() {
    let (limiter, _clock) = limiter_at(BASE);
    let max = i64::MAX.unsigned_abs();
    let trillion = 1_000_000_000_000;
    assert!(one(&limiter, check("c", max, MINUTE, trillion)).passed);
    let second = one(&limiter, check("c", max, MINUTE, trillion));
    assert_eq!(second.remaining, max - 2 * trillion);
    let huge = one(&limiter, check("c", max, MINUTE, u64::MAX));
    assert_eq!((huge.passed, huge.remaining), (false, max - 2 * trillion));
}

#[test]
fn the_limiter_trait_answers_like_the_synchronous_calls() {
    let (limiter, _clock) = limiter_at(BASE);
    let dyn_limiter: &dyn Limiter = &limiter;
    let checks = [check("c", 2, MINUTE, 2)];
    let outcome = block_on(dyn_limiter.limit(&checks)).unwrap();
    assert!(outcome.passed);
    assert_eq!(outcome.decisions[0].remaining, 0);
    block_on(dyn_limiter.refund(&checks, &outcome)).unwrap();
    assert_eq!(
        stored(&limiter, "c", MINUTE),
        Some((seq(BASE, MINUTE), 0, 0))
    );
}

#[test]
fn concurrent_calls_never_admit_more_than_the_limit() {
    let (limiter, _clock) = limiter_at(BASE);
    let threads = 200;
    let start = Barrier::new(threads);
    let admitted = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                if limiter.limit_now(&[check("hot", 50, MINUTE, 1)]).passed {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 50);
    assert_eq!(
        stored(&limiter, "hot", MINUTE),
        Some((seq(BASE, MINUTE), 50, 0))
    );
}

#[test]
fn concurrent_calls_on_two_counters_in_opposite_orders_admit_exactly_the_limit() {
    let (limiter, _clock) = limiter_at(BASE);
    // Two counters on different shards, so each call locks two mutexes.
    let a = "pair_a";
    let b = (0..)
        .map(|i| format!("pair_b{i}"))
        .find(|b| limiter.shard_of(b, minute()) != limiter.shard_of(a, minute()))
        .unwrap();
    let threads = 16;
    let calls_per_thread = 200;
    let start = Barrier::new(threads);
    let admitted = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..threads {
            let (start, admitted, limiter, b) = (&start, &admitted, &limiter, b.as_str());
            s.spawn(move || {
                let ab = [check(a, 300, MINUTE, 1), check(b, 1_000, MINUTE, 1)];
                let ba = [check(b, 1_000, MINUTE, 1), check(a, 300, MINUTE, 1)];
                let call = if t % 2 == 0 { &ab } else { &ba };
                start.wait();
                for _ in 0..calls_per_thread {
                    if limiter.limit_now(call).passed {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    // b could take 1000, but a call counts on b only when a admits it too.
    assert_eq!(admitted.into_inner(), 300);
    let w = seq(BASE, MINUTE);
    assert_eq!(stored(&limiter, a, MINUTE), Some((w, 300, 0)));
    assert_eq!(stored(&limiter, &b, MINUTE), Some((w, 300, 0)));
}

#[test]
fn sweep_forgets_only_state_whose_windows_have_ended() {
    let (limiter, clock) = limiter_at(BASE);
    assert!(one(&limiter, check("old", 10, SECOND, 1)).passed);
    assert!(one(&limiter, check("long", 10, MINUTE, 1)).passed);
    clock.set(BASE + 1_000);
    assert!(one(&limiter, check("recent", 10, SECOND, 4)).passed);
    assert_eq!(limiter.len(), 3);

    // "old" was counted two windows ago; "recent" is the previous window now and still weighs.
    clock.set(BASE + 2_000);
    assert_eq!(limiter.sweep(), 1);
    assert_eq!(limiter.len(), 2);
    assert_eq!(stored(&limiter, "old", SECOND), None);
    assert_eq!(one(&limiter, check("recent", 10, SECOND, 0)).remaining, 6);

    clock.set(BASE + 3_000);
    assert_eq!(limiter.sweep(), 1);
    assert_eq!(limiter.len(), 1);
    assert_eq!(limiter.sweep(), 0);

    clock.set(BASE + 2 * MINUTE - 1);
    assert_eq!(limiter.sweep(), 0);
    clock.set(BASE + 2 * MINUTE);
    assert_eq!(limiter.sweep(), 1);
    assert!(limiter.is_empty());
}

#[test]
fn shards_sweep_themselves_so_one_off_counters_cannot_pile_up() {
    let (limiter, clock) = limiter_at(BASE);
    let counters = 100_000;
    let per_window = 1_000;
    let mut largest = 0;
    for i in 0..counters {
        if i % per_window == 0 {
            // A new one-second window every thousand counters, so at most two thousand are
            // live at once.
            clock.set(BASE + SECOND * i64::try_from(i / per_window).unwrap());
            largest = largest.max(limiter.len());
        }
        assert!(one(&limiter, check(&format!("once_{i}"), 1, SECOND, 1)).passed);
    }
    largest = largest.max(limiter.len());
    // A shard sweeps itself on reaching its threshold; with about thirty live states each, the
    // threshold stays at its minimum.
    assert!(
        largest <= SHARDS * MIN_SELF_SWEEP_LEN,
        "{largest} states tracked at once"
    );
    assert!(largest >= 2 * per_window, "the live states are all tracked");
    clock.set(BASE + SECOND * 102);
    limiter.sweep();
    assert!(limiter.is_empty());
}

fn minute() -> WindowDuration {
    WindowDuration::from_millis(MINUTE).unwrap()
}
