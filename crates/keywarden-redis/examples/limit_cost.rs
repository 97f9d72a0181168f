//! What one `limit` call costs against a real Redis: sequential latency, and throughput with
//! many calls in flight on the one multiplexed connection.
//!
//! `cargo run --release -p keywarden-redis --example limit_cost [redis://127.0.0.1:6379]`, or a
//! cluster: `[redis+cluster://127.0.0.1:7000,127.0.0.1:7001]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::ratelimit::{CounterKey, LimitCheck, Limiter, WindowDuration};
use keywarden_redis::{RedisLimiter, RedisLimiterSettings};

const SEQUENTIAL: usize = 20_000;
const TASKS: usize = 64;
const PER_TASK: usize = 2_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = format!("kwbench-{}", std::process::id());
    let settings = RedisLimiterSettings {
        prefix: prefix.clone(),
        timeout: Duration::from_secs(5),
        ..RedisLimiterSettings::default()
    };
    let limiter = Arc::new(RedisLimiter::connect(&url, settings).await?);
    let minute = WindowDuration::from_millis(60_000)?;
    let check = |name: String| LimitCheck {
        counter: CounterKey::scoped("ws_bench", &name),
        limit: u64::MAX,
        duration: minute,
        cost: 1,
    };

    for (label, width) in [("1 check", 1), ("3 checks", 3)] {
        let checks: Vec<LimitCheck> = (0..width).map(|i| check(format!("c{i}"))).collect();
        let started = Instant::now();
        for _ in 0..SEQUENTIAL {
            limiter.limit(&checks).await?;
        }
        let per_call = started.elapsed() / SEQUENTIAL as u32;
        println!("sequential, {label}: {per_call:?} per call");
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let limiter = limiter.clone();
            let checks = [check(format!("user_{t}"))];
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    limiter.limit(&checks).await.expect("limit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let calls = (TASKS * PER_TASK) as f64;
    println!(
        "{TASKS} tasks in flight, 1 check: {:.0} calls/s ({:?} per call)",
        calls / elapsed.as_secs_f64(),
        elapsed / (TASKS * PER_TASK) as u32
    );

    if url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://") {
        // Each node holds only its own keys; these expire within two minutes anyway.
        println!("keys under {prefix}:* left to expire");
        return Ok(());
    }
    let mut connection = redis::Client::open(url.as_str())?.get_connection()?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut connection)?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).exec(&mut connection)?;
    }
    Ok(())
}
