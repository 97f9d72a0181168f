//! What the tests share: the Redis to use, key prefixes of their own, a clock to move by hand,
//! calls made together in a known order, and a TCP proxy to cut Redis off with.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keywarden_core::ratelimit::{CounterKey, LimitCheck, WindowDuration};
use keywarden_core::time::{Clock, UnixMillis};
use keywarden_redis::{RedisLimiter, RedisLimiterSettings};
use redis::ConnectionAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60_000;

pub fn redis_url() -> String {
    std::env::var("KEYWARDEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses; its keys are deleted when it is dropped.
pub struct TestPrefix(String);

impl TestPrefix {
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random bytes");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("kwtest-{hex}"))
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

/// The real Redis's address, for the proxy to forward to.
fn redis_addr() -> (String, u16) {
    let client = redis::Client::open(redis_url()).expect("valid Redis URL");
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        other => panic!("the proxy tests need a TCP Redis, not {other:?}"),
    }
}

/// A TCP proxy in front of the real Redis that a test can stop (closing every connection
/// through it, as a Redis that went away would) and start again on the same port, or pause
/// (holding requests back, as a hung Redis would) and resume.
pub struct Proxy {
    addr: SocketAddr,
    paused: Arc<watch::Sender<bool>>,
    accepting: Option<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let paused = Arc::new(watch::Sender::new(false));
        Self {
            addr,
            accepting: Some(tokio::spawn(forward(listener, paused.clone()))),
            paused,
        }
    }

    /// The Redis URL through the proxy.
    pub fn url(&self) -> String {
        let (host, port) = redis_addr();
        let url = redis_url();
        let proxied = url.replacen(&format!("{host}:{port}"), &self.addr.to_string(), 1);
        assert_ne!(proxied, url, "cannot point {url} at the proxy");
        proxied
    }

    /// Stops accepting and closes every forwarded connection.
    pub async fn stop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub async fn restart(&mut self) {
        assert!(self.accepting.is_none(), "the proxy is running");
        let listener = TcpListener::bind(self.addr).await.expect("rebind proxy");
        self.accepting = Some(tokio::spawn(forward(listener, self.paused.clone())));
    }

    /// Holds back everything clients send, keeping their connections open.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Passes on what was held back, in order, and forwards again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

/// Accepts connections and forwards each to Redis; the forwarding tasks live in a set owned
/// by this task, so aborting it closes them all.
async fn forward(listener: TcpListener, paused: Arc<watch::Sender<bool>>) {
    let (host, port) = redis_addr();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let target = (host.clone(), port);
                let paused = paused.subscribe();
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        forward_one(client, server, paused).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection until either side closes; requests wait while paused.
async fn forward_one(
    mut client: TcpStream,
    mut server: TcpStream,
    mut paused: watch::Receiver<bool>,
) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if paused.wait_for(|paused| !paused).await.is_err() {
                return;
            }
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // What arrived just as the proxy paused is held back too.
            if paused.wait_for(|paused| !paused).await.is_err() {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let replies = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        () = requests => {}
        _ = replies => {}
    }
}
