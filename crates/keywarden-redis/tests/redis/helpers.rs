//! What the tests share: key prefixes of their own in the test Redis, a clock to move by hand,
//! and calls made together in a known order. Where the Redis is, unique names and the proxy
//! that cuts Redis off come from `keywarden_testkit`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keywarden_core::ratelimit::{CounterKey, LimitCheck, WindowDuration};
use keywarden_core::time::{Clock, UnixMillis};
use keywarden_redis::{RedisLimiter, RedisLimiterSettings};
use keywarden_testkit::{TcpProxy, redis_url, socket_of, unique_name, via_port};

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60_000;

/// A key prefix no other test uses; its keys are deleted when it is dropped.
pub struct TestPrefix(String);

impl TestPrefix {
    pub fn new() -> Self {
        Self(unique_name("kwtest-"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Settings under this prefix. The timeout is generous: these tests are about numbers,
    /// and a call that timed out under a loaded test machine may still have been counted.
    pub fn settings(&self) -> RedisLimiterSettings {
        RedisLimiterSettings {
            prefix: self.0.clone(),
            timeout: Duration::from_secs(5),
            ..RedisLimiterSettings::default()
        }
    }

    /// The keys written under this prefix.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut sync_connection())
            .expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

pub fn sync_connection() -> redis::Connection {
    redis::Client::open(redis_url())
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| panic!("Redis at {} unreachable: {e}", redis_url()))
}

/// A Redis limiter under `prefix`, on Redis's clock.
pub async fn redis_limiter(prefix: &TestPrefix) -> RedisLimiter {
    RedisLimiter::connect(&redis_url(), prefix.settings())
        .await
        .unwrap_or_else(|e| panic!("Redis at {} unreachable: {e}", redis_url()))
}

/// A clock the test moves.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_millis(self.ms())
    }
}

/// Waits out the last seconds of a minute window, so that a test on Redis's clock decides
/// within one window (at a window start the previous window's weight drops by one, which
/// would admit one more). Redis runs on this machine, so its clock is this one.
pub async fn away_from_a_minute_boundary() {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let into = u64::try_from(ms % 60_000).unwrap();
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_500 - into)).await;
    }
}

pub fn check(counter: &CounterKey, limit: u64, duration_ms: i64, cost: u64) -> LimitCheck {
    LimitCheck {
        counter: counter.clone(),
        limit,
        duration: WindowDuration::from_millis(duration_ms).expect("valid duration"),
        cost,
    }
}

/// A call in flight, of any kind.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `calls` together until all are done, polling them in list order. A limiter call
/// queues for its batch in its first poll, so they arrive in this order; on a current-thread
/// runtime no batch task runs before all of them have arrived, so they share batches.
pub async fn all_in_order<T>(calls: Vec<Call<'_, T>>) -> Vec<T> {
    let mut calls: Vec<Option<Call<'_, T>>> = calls.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = calls.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (call, output) in calls.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = call {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *call = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every call is done"))
        .collect()
}

/// A proxy in front of the test Redis, to cut it off or hang it.
pub async fn redis_proxy() -> TcpProxy {
    TcpProxy::start(socket_of(&redis_url())).await
}

/// The test Redis's URL through `proxy`.
pub fn url_through(proxy: &TcpProxy) -> String {
    via_port(&redis_url(), proxy.port())
}
