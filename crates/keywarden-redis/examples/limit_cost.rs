//! What one `limit` call costs against a real Redis: sequential latency, and throughput with
//! 32 and 64 callers in flight on the one limiter, with the CPU each call costs this process
//! and Redis.
//!
//! `cargo run --release -p keywarden-redis --example limit_cost [redis://127.0.0.1:6379]`, or a
//! cluster: `[redis+cluster://127.0.0.1:7000,127.0.0.1:7001]` (Redis CPU is then not reported:
//! it is spread over the nodes).
//!
//! `KW_BATCHING=in_flight,max_calls` sets how many batches may be in flight and how many calls
//! one may carry, to compare with the defaults.
//!
//! Each phase runs for a fixed time, a few seconds in all, so that it can run beside other
//! work on a small machine. Redis CPU comes from `INFO cpu` before and after a phase, so it
//! includes whatever else that Redis served meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::ratelimit::{CounterKey, LimitCheck, Limiter, WindowDuration};
use keywarden_redis::{RedisLimiter, RedisLimiterSettings};

const SEQUENTIAL_FOR: Duration = Duration::from_millis(1_000);
const CONCURRENT_FOR: Duration = Duration::from_millis(2_500);
const CALLERS: [usize; 2] = [32, 64];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let cluster = url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://");
    let prefix = format!("kwbench-{}", std::process::id());
    let settings = RedisLimiterSettings {
        prefix: prefix.clone(),
        timeout: Duration::from_secs(5),
        ..RedisLimiterSettings::default()
    };
    let mut limiter = RedisLimiter::connect(&url, settings).await?;
    // `KW_BATCHING=in_flight,max_calls` tries other batch limits.
    if let Ok(batching) = std::env::var("KW_BATCHING") {
        let (in_flight, max_calls) = batching.split_once(',').ok_or("KW_BATCHING=n,m")?;
        limiter = limiter.with_batching(in_flight.parse()?, max_calls.parse()?);
    }
    let limiter = Arc::new(limiter);
    let mut stats = if cluster {
        None
    } else {
        Some(redis::Client::open(url.as_str())?.get_connection()?)
    };
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
        let mut calls = 0u32;
        while started.elapsed() < SEQUENTIAL_FOR {
            limiter.limit(&checks).await?;
            calls += 1;
        }
        let per_call = started.elapsed() / calls;
        println!("sequential, {label}: {per_call:?} per call");
    }

    for callers in CALLERS {
        let batches_before = limiter.batch_stats();
        let before = Sample::take(stats.as_mut())?;
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|t| {
                let limiter = limiter.clone();
                // One counter per caller, as one key per client would be.
                let checks = [check(format!("user_{t}"))];
                tokio::spawn(async move {
                    let mut calls = 0u64;
                    while started.elapsed() < CONCURRENT_FOR {
                        limiter.limit(&checks).await.expect("limit");
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let mut calls = 0u64;
        for task in tasks {
            calls += task.await?;
        }
        let elapsed = started.elapsed();
        let after = Sample::take(stats.as_mut())?;
        let batches = limiter.batch_stats();
        let per_call = |total: f64| total / calls as f64;
        println!(
            "{callers} callers, 1 check: {:.0} calls/s, this process {:.1} µs CPU per call, \
             {:.1} calls per batch",
            calls as f64 / elapsed.as_secs_f64(),
            per_call(after.process_cpu_us - before.process_cpu_us),
            (batches.calls - batches_before.calls) as f64
                / (batches.batches - batches_before.batches).max(1) as f64,
        );
        if let (Some(after), Some(before)) = (after.redis, before.redis) {
            println!(
                "  Redis: {:.1} µs CPU per call (INFO cpu), {:.3} scripts per call, \
                 {:.1} µs in scripts per call (commandstats)",
                per_call(after.cpu_us - before.cpu_us),
                per_call(after.scripts - before.scripts),
                per_call(after.script_us - before.script_us),
            );
        }
    }

    let Some(connection) = stats.as_mut() else {
        // Each node holds only its own keys; these expire within two minutes anyway.
        println!("keys under {prefix}:* left to expire");
        return Ok(());
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(connection)?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).exec(connection)?;
    }
    Ok(())
}

/// CPU used so far, by this process and by Redis.
struct Sample {
    process_cpu_us: f64,
    redis: Option<RedisSample>,
}

struct RedisSample {
    /// `used_cpu_user` + `used_cpu_sys`, all of Redis's threads.
    cpu_us: f64,
    /// `EVALSHA` calls and the time spent in them, scripts' own commands included.
    scripts: f64,
    script_us: f64,
}

impl Sample {
    fn take(redis: Option<&mut redis::Connection>) -> Result<Self, Box<dyn std::error::Error>> {
        let redis = match redis {
            Some(connection) => {
                let info: String = redis::cmd("INFO").arg("cpu").query(connection)?;
                let cpu_s = field(&info, "used_cpu_user:") + field(&info, "used_cpu_sys:");
                let info: String = redis::cmd("INFO").arg("commandstats").query(connection)?;
                let evalsha = info
                    .lines()
                    .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
                    .unwrap_or("");
                Some(RedisSample {
                    cpu_us: cpu_s * 1e6,
                    scripts: field(evalsha, "calls="),
                    script_us: field(evalsha, "usec="),
                })
            }
            None => None,
        };
        Ok(Self {
            process_cpu_us: process_cpu_us()?,
            redis,
        })
    }
}

/// The number after `name` in `text`, up to the next line end or comma; 0 when absent.
fn field(text: &str, name: &str) -> f64 {
    text.split(['\n', ','])
        .find_map(|part| part.trim().strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// User + system CPU of this process, every thread, from `/proc/self/stat` (in clock ticks,
/// 100 per second on Linux).
fn process_cpu_us() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').ok_or("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; this list starts at field 3.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks * 10_000.0)
}
