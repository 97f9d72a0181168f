//! How much memory the in-memory limiter holds per active identifier, and whether a sweep
//! gives it back.
//!
//! `cargo run --release -p keywarden-core --example limiter_memory` (Linux: it reads VmRSS
//! from /proc/self/status).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use keywarden_core::ratelimit::{CounterKey, InMemoryLimiter, LimitCheck, WindowDuration};
use keywarden_core::time::{Clock, UnixMillis};

const IDENTIFIERS: u64 = 1_000_000;
const DURATION_MS: i64 = 60_000;
/// 2027-01-15T08:00:00Z, the start of a one-minute window.
const START_MS: i64 = 1_800_000_000_000;

/// Stands still unless moved, so every call lands in the same window.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_millis(self.0.load(Ordering::SeqCst))
    }
}

fn main() {
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let limiter = InMemoryLimiter::new(clock.clone());
    let duration = WindowDuration::from_millis(DURATION_MS).expect("a minute is a valid window");

    let rss_before = rss_bytes();
    let started = Instant::now();
    for i in 0..IDENTIFIERS {
        let check = LimitCheck {
            counter: CounterKey::new(format!("rlns_0VcDiUqz0sX6VFBv:user_{i:09}")),
            limit: 100,
            duration,
            cost: 1,
        };
        assert!(limiter.limit_now(&[check]).passed);
    }
    let took = started.elapsed();
    let rss_after = rss_bytes();

    let grown = rss_after.saturating_sub(rss_before);
    println!("identifiers:            {IDENTIFIERS}");
    println!("tracked states:         {}", limiter.len());
    println!("RSS before:             {:.1} MB", mb(rss_before));
    println!("RSS after:              {:.1} MB", mb(rss_after));
    println!("RSS delta:              {:.1} MB", mb(grown));
    println!("bytes per identifier:   {}", grown / IDENTIFIERS);
    println!(
        "calls:                  {:.0} per second on one thread",
        IDENTIFIERS as f64 / took.as_secs_f64()
    );

    clock.0.store(START_MS + 2 * DURATION_MS, Ordering::SeqCst);
    let swept = limiter.sweep();
    println!("swept after two windows: {swept}");
    println!("states left:            {}", limiter.len());
    println!("RSS after sweep:        {:.1} MB", mb(rss_bytes()));
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
